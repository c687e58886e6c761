#include "core/key.h"

#include <cstdint>

namespace fence {
namespace {

Error BadKey(std::string message) {
  return MakeError("bad_key", std::move(message) +
                                  "; expected 1-512 bytes of UTF-8 in "
                                  "'/'-separated segments, none empty, '.' or "
                                  "'..', with no control characters");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Returns the length of the valid UTF-8 sequence at s[i], or 0 if invalid
// (overlong forms, surrogates and values above U+10FFFF are invalid).
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) {
    return static_cast<std::uint8_t>(s[k]);
  };
  const std::uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t len;
  std::uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr std::uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len]) return 0;
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

Result<std::string> ParseKey(std::string_view encoded) {
  std::string key;
  key.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      key.push_back(encoded[i]);
      continue;
    }
    if (i + 2 >= encoded.size()) {
      return BadKey("the key has a truncated percent-escape at byte " +
                    std::to_string(i));
    }
    const int hi = HexValue(encoded[i + 1]);
    const int lo = HexValue(encoded[i + 2]);
    if (hi < 0 || lo < 0) {
      return BadKey("the key has an invalid percent-escape at byte " +
                    std::to_string(i));
    }
    key.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  if (key.empty()) return BadKey("the key is empty");
  if (key.size() > kMaxKeyBytes) {
    return BadKey("the key is " + std::to_string(key.size()) +
                  " bytes long after decoding");
  }
  for (std::size_t i = 0; i < key.size();) {
    const auto b = static_cast<std::uint8_t>(key[i]);
    if (b < 0x20 || b == 0x7F) {
      return BadKey("the key contains control byte " + std::to_string(b) +
                    " at byte " + std::to_string(i));
    }
    const std::size_t len = Utf8SequenceLength(key, i);
    if (len == 0) {
      return BadKey("the key is not valid UTF-8 at byte " + std::to_string(i));
    }
    i += len;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = key.find('/', start);
    const std::string_view segment =
        std::string_view(key).substr(start, slash == std::string::npos
                                                ? std::string::npos
                                                : slash - start);
    if (segment.empty()) return BadKey("the key has an empty segment");
    if (segment == "." || segment == "..") {
      return BadKey("the key has a '" + std::string(segment) + "' segment");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return key;
}

std::string EncodeKeyForPath(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : key) {
    const auto b = static_cast<std::uint8_t>(c);
    const bool unreserved = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                            (b >= '0' && b <= '9') || b == '-' || b == '.' ||
                            b == '_' || b == '~' || b == '/';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  return out;
}

Status ValidateContentType(std::string_view content_type) {
  if (content_type.size() > kMaxContentTypeBytes) {
    return MakeError("bad_content_type",
                     "Content-Type is " + std::to_string(content_type.size()) +
                         " bytes; expected at most " + std::to_string(kMaxContentTypeBytes));
  }
  for (const char c : content_type) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && byte != '\t') || byte > 0x7e) {
      return MakeError("bad_content_type",
                       "Content-Type holds a byte that is not visible ASCII; expected a media "
                       "type such as text/plain; charset=utf-8");
    }
  }
  return OkStatus();
}

}  // namespace fence
