#include "core/token_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <optional>
#include <set>

namespace fence {

namespace {

constexpr char kBadKeyFile[] = "bad_token_key_file";
constexpr char kBadSignature[] = "bad_token_signature";
constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kExpectedSignature[] =
    "a Fencing-Token-Signature '<key id>.<64 lowercase hex digits>' issued by "
    "fence-lockd with this token for this lock";

using Mac = std::array<unsigned char, kTokenMacBytes>;

bool IsKeyIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

bool ValidKeyId(std::string_view id) {
  if (id.empty() || id.size() > kMaxTokenKeyIdBytes) return false;
  for (char c : id) {
    if (!IsKeyIdChar(c)) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> DecodeHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexValue(hex[i]);
    const int lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

void AppendBigEndian(std::string& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
}

Mac ComputeMac(const TokenKey& key, std::string_view lock, Token token) {
  const std::string input = TokenSigningInput(key.id, lock, token);
  Mac mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(),
       &length);
  return mac;
}

Error LineError(std::size_t line, const std::string& what) {
  return MakeError(kBadKeyFile, "token key file line " + std::to_string(line) + ": " + what,
                   {{"line", line}});
}

// One non-comment line: "<key id> <hex secret>".
Result<TokenKey> ParseKeyLine(std::string_view text, std::size_t line) {
  const auto space = text.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return LineError(line, "expected '<key id> <secret as hex>' (two fields)");
  }
  const std::string_view id = text.substr(0, space);
  std::string_view hex = text.substr(space);
  hex.remove_prefix(std::min(hex.find_first_not_of(" \t"), hex.size()));
  if (!ValidKeyId(id)) {
    return LineError(line, "the key id must be 1 to " + std::to_string(kMaxTokenKeyIdBytes) +
                               " characters of A-Z a-z 0-9 '-' '_'");
  }
  if (hex.find_first_of(" \t") != std::string_view::npos) {
    return LineError(line, "expected '<key id> <secret as hex>' with nothing after the secret");
  }
  auto secret = DecodeHex(hex);
  if (!secret) {
    return LineError(line, "the secret of key '" + std::string(id) +
                               "' is not hex (an even number of 0-9 a-f digits, as "
                               "'openssl rand -hex 32' prints)");
  }
  return TokenKey{std::string(id), std::move(*secret)};
}

}  // namespace

Result<std::vector<TokenKey>> ParseTokenKeys(std::string_view text) {
  std::vector<TokenKey> keys;
  std::size_t line = 0;
  while (!text.empty()) {
    ++line;
    const auto end = text.find('\n');
    std::string_view row = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    const auto first = row.find_first_not_of(" \t");
    if (first == std::string_view::npos || row[first] == '#') continue;
    row = row.substr(first, row.find_last_not_of(" \t") - first + 1);
    auto key = ParseKeyLine(row, line);
    if (!key.ok()) return key.error();
    keys.push_back(std::move(*key));
  }
  return keys;
}

std::string TokenSigningInput(std::string_view key_id, std::string_view lock, Token token) {
  std::string out(kTokenSignatureDomain);
  out.push_back('\0');
  AppendBigEndian(out, key_id.size(), 2);
  out.append(key_id);
  AppendBigEndian(out, lock.size(), 4);
  out.append(lock);
  AppendBigEndian(out, token.value(), 8);
  return out;
}

Result<TokenKeyRing> TokenKeyRing::Make(std::vector<TokenKey> keys) {
  if (keys.empty()) {
    return MakeError(kBadKeyFile,
                     "the token key file lists no key; expected at least one line "
                     "'<key id> <secret as hex>'");
  }
  std::set<std::string> ids;
  std::set<std::string> secrets;
  for (const TokenKey& key : keys) {
    if (!ValidKeyId(key.id)) {
      return MakeError(kBadKeyFile, "a token key id must be 1 to " +
                                        std::to_string(kMaxTokenKeyIdBytes) +
                                        " characters of A-Z a-z 0-9 '-' '_'");
    }
    if (key.secret.size() < kMinTokenSecretBytes || key.secret.size() > kMaxTokenSecretBytes) {
      return MakeError(kBadKeyFile,
                       "the secret of token key '" + key.id + "' is " +
                           std::to_string(key.secret.size()) + " bytes; expected " +
                           std::to_string(kMinTokenSecretBytes) + " to " +
                           std::to_string(kMaxTokenSecretBytes) +
                           " bytes (at least 64 hex digits: 'openssl rand -hex 32')",
                       {{"key_id", key.id}, {"secret_bytes", key.secret.size()}});
    }
    if (!ids.insert(key.id).second) {
      return MakeError(kBadKeyFile, "token key id '" + key.id +
                                        "' is listed twice; expected each id once",
                       {{"key_id", key.id}});
    }
    if (!secrets.insert(key.secret).second) {
      return MakeError(kBadKeyFile, "token key '" + key.id +
                                        "' repeats the secret of an earlier key; expected "
                                        "a fresh secret per key id",
                       {{"key_id", key.id}});
    }
  }
  return TokenKeyRing(std::move(keys));
}

std::string TokenKeyRing::Sign(std::string_view lock, Token token) const {
  const TokenKey& key = keys_.front();
  const Mac mac = ComputeMac(key, lock, token);
  std::string out = key.id + ".";
  for (unsigned char b : mac) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0x0F]);
  }
  return out;
}

namespace {

Error SignatureError(std::string_view reason, std::string message) {
  return MakeError(kBadSignature, std::move(message),
                   {{"reason", reason}, {"expected", kExpectedSignature}});
}

// Lowercase hex only: one spelling per signature, so a signature cannot be
// "altered" into another accepted spelling.
std::optional<Mac> ParseMacHex(std::string_view hex) {
  if (hex.size() != 2 * kTokenMacBytes) return std::nullopt;
  for (char c : hex) {
    if (HexValue(c) < 0 || (c >= 'A' && c <= 'F')) return std::nullopt;
  }
  const auto bytes = DecodeHex(hex);
  Mac mac{};
  std::copy(bytes->begin(), bytes->end(), mac.begin());
  return mac;
}

}  // namespace

Status TokenKeyRing::Verify(std::string_view lock, Token token,
                            std::string_view signature) const {
  if (signature.empty()) {
    return SignatureError(kSignatureMissing, "the write carries no Fencing-Token-Signature");
  }
  const auto dot = signature.find('.');
  const auto mac = dot == std::string_view::npos ? std::nullopt
                                                 : ParseMacHex(signature.substr(dot + 1));
  if (!mac) {
    return SignatureError(kSignatureMalformed,
                          "the Fencing-Token-Signature is not '<key id>.<64 lowercase "
                          "hex digits>'");
  }
  const std::string_view id = signature.substr(0, dot);
  for (const TokenKey& key : keys_) {
    if (key.id != id) continue;
    const Mac expected = ComputeMac(key, lock, token);
    // Constant time: a timing difference must not reveal how many leading
    // bytes of a guessed MAC are right.
    if (CRYPTO_memcmp(expected.data(), mac->data(), expected.size()) == 0) return OkStatus();
    return SignatureError(kSignatureMismatch,
                          "the Fencing-Token-Signature does not match token " +
                              token.ToString() + " for lock '" + std::string(lock) +
                              "': the token, the lock or the signature was not issued "
                              "together by fence-lockd");
  }
  return SignatureError(kSignatureUnknownKey,
                        "the Fencing-Token-Signature names key id '" +
                            std::string(id.substr(0, kMaxTokenKeyIdBytes)) +
                            "', which this store does not have (rotated out, or a "
                            "forgery)");
}

std::vector<std::string> TokenKeyRing::KeyIds() const {
  std::vector<std::string> ids;
  ids.reserve(keys_.size());
  for (const TokenKey& key : keys_) ids.push_back(key.id);
  return ids;
}

}  // namespace fence
