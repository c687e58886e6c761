#include "core/token.h"

#include <limits>

namespace fence {
namespace {

constexpr std::string_view kExpected =
    "expected a decimal integer from 1 to 18446744073709551615 with no sign, "
    "spaces or leading zeros";

Error BadToken(std::string_view what, std::string_view text) {
  return MakeError("bad_token", std::string("Fencing-Token ") + std::string(what) +
                                    "; " + std::string(kExpected),
                   {{"value", std::string(text)}});
}

}  // namespace

Result<Token> ParseToken(std::string_view text) {
  if (text.empty()) return BadToken("is empty", text);
  for (char c : text) {
    if (c < '0' || c > '9') {
      return BadToken("contains a character that is not a digit", text);
    }
  }
  if (text[0] == '0') {
    return BadToken(text.size() == 1 ? "is 0, which is never issued"
                                     : "has a leading zero",
                    text);
  }
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : text) {
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) {
      return BadToken("is larger than 2^64-1", text);
    }
    value = value * 10 + digit;
  }
  return Token(value);
}

Result<std::optional<Token>> ParseTokenHeader(
    std::span<const std::string_view> values) {
  if (values.empty()) return std::optional<Token>();
  if (values.size() > 1) {
    return MakeError("bad_token",
                     "the request carries " + std::to_string(values.size()) +
                         " Fencing-Token headers; expected exactly one",
                     {{"count", values.size()}});
  }
  auto token = ParseToken(values[0]);
  if (!token.ok()) return token.error();
  return std::optional<Token>(*token);
}

}  // namespace fence
