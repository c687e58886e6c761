// Signed tokens in the demo (docs/signed-tokens.md): when the demo starts
// fence-lockd itself it makes a key file, lockd signs every grant, the
// fenced store runs with --require-signed-tokens, and the bypass step also
// sends a forged future token, which the store refuses (403) without moving
// the key's fence.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/http_client.h"
#include "common/process.h"
#include "core/token_signature.h"

namespace fence::tools::demo {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The forged write of the bypass step and the key's fence around it.
struct ForgedWrite {
  std::string curl;
  std::string token;  // the forged token, 2^64-1
  int status = 0;
  std::string response_text;
  nlohmann::json body;
  std::string store_line;  // the store's token_signature_refused line
  std::optional<std::uint64_t> fence_before, fence_after;
};

// A fence as the logs show it: its token, or "none" (never fenced).
std::string FenceText(const std::optional<std::uint64_t>& fence);

// Writes a key file with one fresh random key (mode 0600) and returns it
// loaded. The secret lives only in the demo's scratch directory.
Result<TokenKeyRing> WriteDemoTokenKeys(const std::string& path);

// The headers an honest holder of (lock, token) sends: its signature from
// lockd (recomputed by the demo, which holds the key) and the lock's name.
Headers SignatureHeaders(const TokenKeyRing& keys, const std::string& lock, Token token);

// The curl command of a request, for the logs a reader can replay.
std::string CurlCommand(const std::string& method, const Headers& headers,
                        const std::string& body, const std::string& url);

// Sends a request the demo shows in its logs: fills its status, the whole
// answer as text, and the body as JSON (or as a string if not JSON). False
// on a transport error, which `text` then says.
bool SendShown(const net::HttpCall& call, int& status, std::string& text, nlohmann::json& body);

// PUT `key` with the highest token there is, carrying a real signature of a
// lower token (`signed_headers`, the old leader's): what a client that
// edits its token would send, with a writer's `bearer_token`. Reads GET
// /v1/fences/{key} before and after.
ForgedWrite RunForgedWrite(const std::string& store_url, ChildProcess& store,
                           const std::string& key, Headers signed_headers,
                           const std::string& bearer_token);

}  // namespace fence::tools::demo
