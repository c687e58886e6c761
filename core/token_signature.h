// Signed fencing tokens: fence-lockd signs each grant (lock name, token) with
// HMAC-SHA256 under a key it shares with fence-store; a store started with
// --require-signed-tokens refuses a write whose token it cannot verify. The
// signature binds a token to lockd: a client can no longer invent a FUTURE
// token (2^64-1) and fence a key beyond every token lockd will ever issue.
// See docs/signed-tokens.md for the exact bytes and the threat model.
//
// Pure: no I/O, no threads, no globals (HMAC comes from libcrypto).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/token.h"

namespace fence {

inline constexpr std::string_view kFencingTokenSignatureHeader = "Fencing-Token-Signature";
// The lock the signature binds the token to (percent-encoded like
// Fencing-Scope); a scoped write may leave it out: its scope is its lock.
inline constexpr std::string_view kFencingLockHeader = "Fencing-Lock";
// Domain separation: these bytes open every signed message, so an HMAC made
// with the same key for another purpose never verifies as a token signature.
inline constexpr std::string_view kTokenSignatureDomain = "fencing-store token signature v1";
inline constexpr std::size_t kMinTokenSecretBytes = 32;
inline constexpr std::size_t kMaxTokenSecretBytes = 1024;
inline constexpr std::size_t kMaxTokenKeyIdBytes = 32;
inline constexpr std::size_t kTokenMacBytes = 32;  // HMAC-SHA256

struct TokenKey {
  std::string id;      // [A-Za-z0-9_-]{1,32}
  std::string secret;  // raw bytes, at least kMinTokenSecretBytes
};

// Parses a key file: one key per line, "<key id> <secret as hex>", blank
// lines and lines starting with '#' ignored; the first key is the current
// (signing) one. Errors have code "bad_token_key_file" and name the line and
// what was expected, never a secret.
Result<std::vector<TokenKey>> ParseTokenKeys(std::string_view text);

// The exact bytes HMAC-SHA256 signs:
//   kTokenSignatureDomain, 0x00,
//   uint16 big-endian length of key_id, key_id,
//   uint32 big-endian length of lock, lock (raw bytes, not percent-encoded),
//   uint64 big-endian token.
// Length prefixes make the encoding unambiguous for any lock name.
std::string TokenSigningInput(std::string_view key_id, std::string_view lock, Token token);

// Why a signature did not verify (the metric label and the log's "reason").
inline constexpr std::string_view kSignatureMissing = "missing";
inline constexpr std::string_view kSignatureMalformed = "malformed";
inline constexpr std::string_view kSignatureUnknownKey = "unknown_key_id";
inline constexpr std::string_view kSignatureMismatch = "mismatch";

// A validated, non-empty list of keys. Immutable after construction, so it
// is shared by every I/O thread without a lock.
class TokenKeyRing {
 public:
  // Validates: at least one key, valid ids and lengths, no duplicate id or
  // secret. Errors have code "bad_token_key_file".
  static Result<TokenKeyRing> Make(std::vector<TokenKey> keys);

  // "<key id>.<64 lowercase hex digits>", with the first (current) key.
  std::string Sign(std::string_view lock, Token token) const;
  // OK iff `signature` is "<id>.<hex>" for a listed id and the MAC of (id,
  // lock, token) under that id's secret; compared in constant time. Errors
  // have code "bad_token_signature", details "reason" (one of the
  // kSignature* above) and "expected".
  Status Verify(std::string_view lock, Token token, std::string_view signature) const;

  std::vector<std::string> KeyIds() const;
  const std::string& current_key_id() const { return keys_.front().id; }

 private:
  explicit TokenKeyRing(std::vector<TokenKey> keys) : keys_(std::move(keys)) {}
  std::vector<TokenKey> keys_;
};

}  // namespace fence
