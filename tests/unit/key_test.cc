#include "core/key.h"

#include <gtest/gtest.h>

namespace fence {
namespace {

TEST(KeyParseTest, AcceptsValidKeys) {
  const std::pair<std::string, std::string> kValid[] = {
      {"result.csv", "result.csv"},
      {"a/b/c", "a/b/c"},
      {"a%2Fb", "a/b"},
      {"with%20space", "with space"},
      {"%C3%A9t%C3%A9", "\xC3\xA9t\xC3\xA9"},  // "été"
      {"caf\xC3\xA9", "caf\xC3\xA9"},
      {"...", "..."},
      {".hidden", ".hidden"},
      {"a..b", "a..b"},
      {std::string(512, 'k'), std::string(512, 'k')},
      {"%F0%9F%94%92", "\xF0\x9F\x94\x92"},  // a 4-byte code point
  };
  for (const auto& [encoded, decoded] : kValid) {
    auto key = ParseKey(encoded);
    ASSERT_TRUE(key.ok()) << encoded << ": " << key.error().message;
    EXPECT_EQ(*key, decoded);
  }
}

TEST(KeyParseTest, RejectsInvalidKeys) {
  const std::string kInvalid[] = {
      "",
      "..",
      ".",
      "a/../b",
      "a/./b",
      "%2E%2E",       // ".." spelled with escapes
      "a/%2E/b",
      "a//b",
      "/a",
      "a/",
      "a%2F%2Fb",      // empty segment after decoding
      "a%00b",         // NUL
      "a%0Ab",         // newline
      "a%1Fb",
      "a%7Fb",         // DEL
      std::string("a\tb"),
      std::string(513, 'k'),
      std::string(300, 'k') + std::string(71, '/').replace(0, 71, 71, 'x') +
          std::string(142, 'z'),  // 513 bytes
      "%",
      "%4",
      "a%G1",
      "a%zz",
      "%C3",           // truncated UTF-8
      "%C0%AF",        // overlong encoding of '/'
      "%ED%A0%80",     // UTF-16 surrogate
      "%F4%90%80%80",  // above U+10FFFF
      "\xFF",
  };
  for (const auto& encoded : kInvalid) {
    auto key = ParseKey(encoded);
    ASSERT_FALSE(key.ok()) << "accepted '" << encoded << "'";
    EXPECT_EQ(key.error().code, "bad_key");
    EXPECT_NE(key.error().message.find("expected"), std::string::npos);
  }
}

TEST(KeyParseTest, LengthLimitIsInDecodedBytes) {
  std::string encoded;
  for (int i = 0; i < 512; ++i) encoded += "%41";  // 1536 chars, 512 bytes
  EXPECT_TRUE(ParseKey(encoded).ok());
  EXPECT_FALSE(ParseKey(encoded + "A").ok());
}

TEST(KeyEncodeTest, RoundTripsThroughParse) {
  const std::string kKeys[] = {"a/b c/d%e", "\xC3\xA9t\xC3\xA9/x?y#z",
                               "plain-key_1.txt"};
  for (const auto& key : kKeys) {
    auto parsed = ParseKey(EncodeKeyForPath(key));
    ASSERT_TRUE(parsed.ok()) << key;
    EXPECT_EQ(*parsed, key);
  }
}

TEST(ContentTypeTest, VisibleAsciiUpToTheLimitIsAccepted) {
  for (std::string_view ok : {"", "text/plain", "text/plain; charset=utf-8",
                              "application/json;\tq=1", "x/y !#$%&'*+-.^_`|~"}) {
    EXPECT_TRUE(ValidateContentType(ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateContentType(std::string(kMaxContentTypeBytes, 'a')).ok());
}

TEST(ContentTypeTest, OtherBytesAndOverlongValuesAreRefusedSayingWhatWasExpected) {
  const std::string cases[] = {"text/\xff", "text/\xc3\xa9", std::string("a\0b", 3), "a\x7f",
                               "a\r\nb", std::string(kMaxContentTypeBytes + 1, 'a')};
  for (const std::string& bad : cases) {
    auto status = ValidateContentType(bad);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_EQ(status.error().code, "bad_content_type");
    EXPECT_NE(status.error().message.find("expected"), std::string::npos);
  }
}

}  // namespace
}  // namespace fence
