#include "core/json_text.h"

#include <array>
#include <charconv>

namespace fence {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Bytes copied as they are: ASCII that needs no escape. One table lookup
// per byte keeps the scan of long, plain strings (keys, messages) short.
constexpr std::array<bool, 256> kPlainBytes = [] {
  std::array<bool, 256> plain{};
  for (int byte = 0x20; byte < 0x80; ++byte) plain[byte] = byte != '"' && byte != '\\';
  return plain;
}();

void AppendEscapedAscii(std::string& out, unsigned char byte) {
  switch (byte) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      break;
  }
  constexpr std::string_view kHex = "0123456789abcdef";
  out += "\\u00";
  out += kHex[byte >> 4];
  out += kHex[byte & 0xf];
}

// The UTF-8 sequence a lead byte starts (RFC 3629): how many continuation
// bytes follow and the range of the first one, which excludes overlong
// forms, surrogates and code points above U+10FFFF. False for a byte that
// cannot start a sequence.
struct Sequence {
  int continuation_bytes = 0;
  unsigned char first_low = 0x80;
  unsigned char first_high = 0xBF;
};
bool StartsSequence(unsigned char lead, Sequence& sequence) {
  if (lead >= 0xC2 && lead <= 0xDF) {
    sequence = {1, 0x80, 0xBF};
  } else if (lead == 0xE0) {
    sequence = {2, 0xA0, 0xBF};
  } else if (lead == 0xED) {
    sequence = {2, 0x80, 0x9F};
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    sequence = {2, 0x80, 0xBF};
  } else if (lead == 0xF0) {
    sequence = {3, 0x90, 0xBF};
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    sequence = {3, 0x80, 0xBF};
  } else if (lead == 0xF4) {
    sequence = {3, 0x80, 0x8F};
  } else {
    return false;
  }
  return true;
}

void AppendJsonObject(std::string& out, const nlohmann::json& object) {
  out += '{';
  bool first = true;
  for (const auto& [key, value] : object.items()) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, key);
    out += ':';
    AppendJsonValue(out, value);
  }
  out += '}';
}

void AppendJsonArray(std::string& out, const nlohmann::json& array) {
  out += '[';
  bool first = true;
  for (const auto& value : array) {
    if (!first) out += ',';
    first = false;
    AppendJsonValue(out, value);
  }
  out += ']';
}

}  // namespace

// Replacement follows nlohmann's decoder: a byte that cannot start a
// sequence is replaced and consumed; a sequence broken by a byte out of
// range is replaced and that byte is read again as a fresh start; a
// sequence cut short by the end is replaced.
void AppendJsonString(std::string& out, std::string_view text) {
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  std::size_t whole = out.size();  // out's size after the last whole code point
  int missing = 0;                 // continuation bytes the current sequence still needs
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (missing == 0 && byte < 0x80) {
      std::size_t run = i;
      while (run < text.size() && kPlainBytes[static_cast<unsigned char>(text[run])]) ++run;
      if (run > i) {
        out.append(text.substr(i, run - i));
        i = run;
      } else {
        AppendEscapedAscii(out, byte);
        ++i;
      }
      whole = out.size();
      continue;
    }
    if (missing == 0) {
      Sequence sequence;
      if (StartsSequence(byte, sequence)) {
        missing = sequence.continuation_bytes;
        low = sequence.first_low;
        high = sequence.first_high;
        out += static_cast<char>(byte);
      } else {
        out += kReplacementCharacter;
        whole = out.size();
      }
      ++i;
      continue;
    }
    if (byte < low || byte > high) {
      out.resize(whole);
      out += kReplacementCharacter;
      whole = out.size();
      missing = 0;
      continue;  // the same byte again, as a start
    }
    out += static_cast<char>(byte);
    low = 0x80;
    high = 0xBF;
    if (--missing == 0) whole = out.size();
    ++i;
  }
  if (missing > 0) {
    out.resize(whole);
    out += kReplacementCharacter;
  }
  out += '"';
}

void AppendJsonNumber(std::string& out, std::uint64_t value) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

void AppendJsonValue(std::string& out, const nlohmann::json& value) {
  using Type = nlohmann::json::value_t;
  switch (value.type()) {
    case Type::null:
      out += "null";
      return;
    case Type::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case Type::string:
      AppendJsonString(out, value.get_ref<const std::string&>());
      return;
    case Type::number_unsigned:
      AppendJsonNumber(out, value.get<std::uint64_t>());
      return;
    case Type::number_integer: {
      const auto signed_value = value.get<std::int64_t>();
      std::array<char, 24> digits{};
      const auto end =
          std::to_chars(digits.data(), digits.data() + digits.size(), signed_value).ptr;
      out.append(digits.data(), end);
      return;
    }
    case Type::object:
      AppendJsonObject(out, value);
      return;
    case Type::array:
      AppendJsonArray(out, value);
      return;
    default:  // floating point, binary, discarded
      out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
  }
}

void JsonMembers::Name(std::string_view name) {
  if (!text_.empty()) text_ += ',';
  AppendJsonString(text_, name);
  text_ += ':';
}

JsonMembers& JsonMembers::AddString(std::string_view name, std::string_view value) {
  Name(name);
  AppendJsonString(text_, value);
  return *this;
}

JsonMembers& JsonMembers::AddNumber(std::string_view name, std::uint64_t value) {
  Name(name);
  AppendJsonNumber(text_, value);
  return *this;
}

JsonMembers& JsonMembers::AddBool(std::string_view name, bool value) {
  Name(name);
  text_ += value ? "true" : "false";
  return *this;
}

JsonMembers& JsonMembers::AddNull(std::string_view name) {
  Name(name);
  text_ += "null";
  return *this;
}

}  // namespace fence
