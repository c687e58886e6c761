// Fencing tokens: unsigned 64-bit integers from one linearizable source.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

namespace fence {

// A token is never 0 and never a timestamp; only its order matters.
class Token {
 public:
  constexpr explicit Token(std::uint64_t value) : value_(value) {}
  constexpr std::uint64_t value() const { return value_; }
  friend constexpr auto operator<=>(Token, Token) = default;  // NOLINT(modernize-use-nullptr): clang-tidy 14 misreads defaulted <=>
  std::string ToString() const { return std::to_string(value_); }

 private:
  std::uint64_t value_;
};

inline constexpr std::string_view kFencingTokenHeader = "Fencing-Token";

// Accepts exactly `1*DIGIT` without leading zeros, value 1..2^64-1.
// Anything else is an Error with code "bad_token" saying what was expected.
Result<Token> ParseToken(std::string_view text);

// Interprets every value of the Fencing-Token header in a request: none means
// "no token" (nullopt), more than one is an error (a proxy or client bug that
// must not be resolved by guessing which one counts).
Result<std::optional<Token>> ParseTokenHeader(
    std::span<const std::string_view> values);

}  // namespace fence
