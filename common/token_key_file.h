// Loads the --token-key-file of fence-lockd and fence-store (format in
// core/token_signature.h and docs/signed-tokens.md) and logs which key ids
// were loaded: ids only, never a secret.
#pragma once

#include <string>

#include "core/result.h"
#include "core/token_signature.h"

namespace fence {

inline constexpr std::size_t kMaxTokenKeyFileBytes = std::size_t{64} * 1024;

// Errors have code "bad_token_key_file" and a sentence naming the file, the
// line and what was expected.
Result<TokenKeyRing> LoadTokenKeyFile(const std::string& path);

// One "token_keys_loaded" line: the file, the current key id, every id.
void LogTokenKeys(const std::string& path, const TokenKeyRing& ring, std::string_view role);

}  // namespace fence
