// Fuzzes the Fencing-Token parser (core/token): any bytes in; a token that
// parses spells back to exactly the input (the wire spelling is unique), is
// never 0, and agrees with an independent reading of 1*DIGIT without
// leading zeros; a refusal is a "bad_token" with a sentence.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "core/token.h"
#include "fuzz/fuzz_check.h"

namespace {

// The contract's grammar, read a second way: digits only, no leading zero,
// and at most 2^64-1 by comparing decimal strings.
bool IsWireToken(std::string_view text) {
  static const std::string kMax = std::to_string(std::numeric_limits<std::uint64_t>::max());
  if (text.empty() || text[0] == '0') return false;
  if (text.find_first_not_of("0123456789") != std::string_view::npos) return false;
  return text.size() < kMax.size() || (text.size() == kMax.size() && text <= kMax);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using fence::fuzz::Check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto token = fence::ParseToken(text);
  Check(token.ok() == IsWireToken(text), "ParseToken disagrees with the grammar");
  if (token.ok()) {
    Check(token->value() != 0, "token 0 accepted");
    Check(token->ToString() == text, "a parsed token does not spell back to its input");
  } else {
    Check(token.error().code == "bad_token", "refusal without code bad_token");
    Check(!token.error().message.empty(), "refusal without a sentence");
  }
  // The header form: one value behaves as ParseToken, two are refused.
  const std::string_view one[] = {text};
  const auto header = fence::ParseTokenHeader(one);
  Check(header.ok() == token.ok(), "ParseTokenHeader(one) differs from ParseToken");
  const std::string_view two[] = {text, text};
  Check(!fence::ParseTokenHeader(two).ok(), "two Fencing-Token headers accepted");
  return 0;
}
