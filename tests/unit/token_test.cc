#include "core/token.h"

#include <gtest/gtest.h>

namespace fence {
namespace {

TEST(TokenParseTest, AcceptsCanonicalDecimal) {
  const std::pair<const char*, std::uint64_t> kValid[] = {
      {"1", 1},
      {"7", 7},
      {"10", 10},
      {"4294967296", 4294967296ULL},
      {"18446744073709551615", 18446744073709551615ULL},
  };
  for (const auto& [text, value] : kValid) {
    auto token = ParseToken(text);
    ASSERT_TRUE(token.ok()) << text << ": " << token.error().message;
    EXPECT_EQ(token->value(), value) << text;
  }
}

TEST(TokenParseTest, RejectsEverythingElseWithAReason) {
  const char* kInvalid[] = {
      "",     "0",    "00",  "007", "-1",   "+1",     " 1",
      "1 ",   "1 2",  "0x10", "1e3", "1.0", "１",     "\t1",
      "18446744073709551616", "99999999999999999999", "184467440737095516150",
      "abc",  "7,8",
  };
  for (const char* text : kInvalid) {
    auto token = ParseToken(text);
    ASSERT_FALSE(token.ok()) << "accepted '" << text << "'";
    EXPECT_EQ(token.error().code, "bad_token");
    EXPECT_NE(token.error().message.find("expected"), std::string::npos)
        << token.error().message;
    EXPECT_EQ(token.error().details.at("value"), text);
  }
}

TEST(TokenParseTest, NamesTheProblem) {
  EXPECT_NE(ParseToken("0").error().message.find('0'), std::string::npos);
  EXPECT_NE(ParseToken("007").error().message.find("leading zero"),
            std::string::npos);
  EXPECT_NE(ParseToken("18446744073709551616").error().message.find("2^64-1"),
            std::string::npos);
}

TEST(TokenHeaderTest, NoHeaderMeansNoToken) {
  auto token = ParseTokenHeader({});
  ASSERT_TRUE(token.ok());
  EXPECT_FALSE(token->has_value());
}

TEST(TokenHeaderTest, OneHeaderIsParsed) {
  std::string_view values[] = {"42"};
  auto token = ParseTokenHeader(values);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->value().value(), 42u);
}

TEST(TokenHeaderTest, TwoHeadersAreRejectedEvenIfEqual) {
  std::string_view values[] = {"7", "7"};
  auto token = ParseTokenHeader(values);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, "bad_token");
  EXPECT_EQ(token.error().details.at("count"), 2);
}

TEST(TokenHeaderTest, ABadValueIsRejected) {
  std::string_view values[] = {"-3"};
  EXPECT_FALSE(ParseTokenHeader(values).ok());
}

TEST(TokenTest, OrdersByValue) {
  EXPECT_LT(Token(3), Token(7));
  EXPECT_EQ(Token(7), Token(7));
  EXPECT_EQ(Token(18446744073709551615ULL).ToString(), "18446744073709551615");
}

}  // namespace
}  // namespace fence
