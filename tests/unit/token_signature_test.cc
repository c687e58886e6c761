#include "core/token_signature.h"

#include <gtest/gtest.h>

#include <string>

namespace fence {
namespace {

// 32 bytes 00 01 .. 1f, as hex.
constexpr char kSecretHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr char kOtherHex[] =
    "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TokenKeyRing Ring(const std::string& file) {
  auto keys = ParseTokenKeys(file);
  EXPECT_TRUE(keys.ok()) << (keys.ok() ? "" : keys.error().message);
  auto ring = TokenKeyRing::Make(*keys);
  EXPECT_TRUE(ring.ok()) << (ring.ok() ? "" : ring.error().message);
  return *ring;
}

// Parses and validates a key file as a daemon does at start.
Status Load(const std::string& text) {
  auto keys = ParseTokenKeys(text);
  if (!keys.ok()) return keys.error();
  auto ring = TokenKeyRing::Make(std::move(*keys));
  if (!ring.ok()) return ring.error();
  return OkStatus();
}

// A fixed vector, computed independently (Python's hmac module over the
// bytes documented in docs/signed-tokens.md): the signed bytes and the MAC
// can change only on purpose, with a new domain version.
TEST(TokenSignatureTest, KnownAnswer) {
  const std::string input = TokenSigningInput("k1", "etl-leader", Token(7));
  std::string hex;
  for (unsigned char c : input) {
    hex += "0123456789abcdef"[c >> 4];
    hex += "0123456789abcdef"[c & 15];
  }
  EXPECT_EQ(hex,
            "66656e63696e672d73746f726520746f6b656e207369676e61747572652076310000026b31"
            "0000000a65746c2d6c65616465720000000000000007");
  EXPECT_EQ(Ring(std::string("k1 ") + kSecretHex).Sign("etl-leader", Token(7)),
            "k1.ff0f368e2b07fb50f3d4daebd5b57d7c0474c708af870523b0b78152401fae22");
}

TEST(TokenSignatureTest, KeyFileTable) {
  const std::string good = std::string("k1 ") + kSecretHex;
  struct Row {
    std::string text;
    bool ok;
    std::string message_part;  // for errors
  };
  const Row kRows[] = {
      {good, true, ""},
      {"# comment\n\n  " + good + "  \r\n", true, ""},
      {"", false, "lists no key"},
      {"# only a comment\n", false, "lists no key"},
      {"k1", false, "line 1: expected '<key id> <secret as hex>'"},
      {"k.1 " + std::string(kSecretHex), false, "key id must be"},
      {std::string(33, 'k') + " " + kSecretHex, false, "key id must be"},
      {"k1 zz" + std::string(kSecretHex).substr(2), false, "is not hex"},
      {"k1 abc", false, "is not hex"},
      {"k1 " + std::string(kSecretHex).substr(2), false, "is 31 bytes; expected 32"},
      {good + " extra", false, "nothing after the secret"},
      {good + "\n" + "k1 " + kOtherHex, false, "'k1' is listed twice"},
      {good + "\n" + "k2 " + kSecretHex, false, "'k2' repeats the secret"},
      {good + "\n# old key\nk0 " + kOtherHex, true, ""},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.text);
    const Status made = Load(row.text);
    EXPECT_EQ(made.ok(), row.ok);
    if (!made.ok()) {
      EXPECT_EQ(made.error().code, "bad_token_key_file");
      EXPECT_NE(made.error().message.find(row.message_part), std::string::npos)
          << made.error().message;
      // A secret never appears in an error.
      EXPECT_EQ(made.error().message.find(kSecretHex), std::string::npos);
      EXPECT_EQ(made.error().message.find("0c0d0e0f"), std::string::npos);
    }
  }
}

TEST(TokenSignatureTest, VerifyTable) {
  const TokenKeyRing ring = Ring(std::string("k1 ") + kSecretHex);
  const std::string good = ring.Sign("job", Token(42));
  std::string flipped = good;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  std::string upper = good;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  upper.replace(0, 2, "k1");
  const TokenKeyRing other = Ring(std::string("k1 ") + kOtherHex);
  struct Row {
    std::string lock;
    std::uint64_t token;
    std::string signature;
    std::string reason;  // empty: verifies
  };
  const Row kRows[] = {
      {"job", 42, good, ""},
      {"job", 43, good, "mismatch"},                     // altered token
      {"job", 18446744073709551615ull, good, "mismatch"},  // forged future token
      {"job2", 42, good, "mismatch"},                    // another lock
      {"job", 42, flipped, "mismatch"},                  // altered signature
      {"job", 42, other.Sign("job", Token(42)), "mismatch"},  // same id, wrong secret
      {"job", 42, "k9" + good.substr(2), "unknown_key_id"},
      {"job", 42, "", "missing"},
      {"job", 42, good.substr(3), "malformed"},           // no key id
      {"job", 42, good.substr(0, good.size() - 1), "malformed"},
      {"job", 42, good + "0", "malformed"},
      {"job", 42, upper, "malformed"},                    // one spelling only
      {"job", 42, "k1.", "malformed"},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.lock + " " + std::to_string(row.token) + " " + row.signature);
    Status verified = ring.Verify(row.lock, Token(row.token), row.signature);
    EXPECT_EQ(verified.ok(), row.reason.empty());
    if (!verified.ok()) {
      EXPECT_EQ(verified.error().code, "bad_token_signature");
      EXPECT_EQ(verified.error().details["reason"], row.reason);
      EXPECT_TRUE(verified.error().details.contains("expected"));
    }
  }
}

// Rotation: the store lists the new and the old key and accepts both; the
// lockd whose file lists the new key first signs with it.
TEST(TokenSignatureTest, RotationAcceptsEveryListedKeySignsWithTheFirst) {
  const TokenKeyRing old_lockd = Ring(std::string("old ") + kSecretHex);
  const TokenKeyRing new_lockd =
      Ring(std::string("new ") + kOtherHex + "\nold " + kSecretHex);
  const TokenKeyRing store = Ring(std::string("new ") + kOtherHex + "\nold " + kSecretHex);
  const TokenKeyRing new_only = Ring(std::string("new ") + kOtherHex);
  EXPECT_EQ(new_lockd.current_key_id(), "new");
  EXPECT_EQ(new_lockd.Sign("a", Token(5)).substr(0, 4), "new.");
  EXPECT_TRUE(store.Verify("a", Token(5), old_lockd.Sign("a", Token(5))).ok());
  EXPECT_TRUE(store.Verify("a", Token(5), new_lockd.Sign("a", Token(5))).ok());
  EXPECT_EQ(new_only.Verify("a", Token(5), old_lockd.Sign("a", Token(5))).error().details["reason"],
            "unknown_key_id");
  EXPECT_EQ(store.KeyIds(), (std::vector<std::string>{"new", "old"}));
}

// The length prefixes keep (lock, token) pairs apart whose naive
// concatenations would collide.
TEST(TokenSignatureTest, SigningInputIsUnambiguous) {
  EXPECT_NE(TokenSigningInput("k", "a1", Token(2)), TokenSigningInput("k", "a", Token(12)));
  EXPECT_NE(TokenSigningInput("k1", "a", Token(2)), TokenSigningInput("k", "1a", Token(2)));
}

}  // namespace
}  // namespace fence
