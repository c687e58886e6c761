// Fuzzes key parsing and validation (core/key): any bytes as the encoded
// path tail; an accepted key obeys every rule (1-512 bytes, no control
// byte, no empty, "." or ".." segment) and survives EncodeKeyForPath and
// ParseKey unchanged; a refusal is a "bad_key" with a sentence.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/key.h"
#include "fuzz/fuzz_check.h"

namespace {

bool SegmentsValid(std::string_view key) {
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = key.find('/', start);
    const std::string_view segment = key.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool HasControlByte(std::string_view key) {
  for (char c : key) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using fence::fuzz::Check;
  const std::string_view encoded(reinterpret_cast<const char*>(data), size);
  const auto key = fence::ParseKey(encoded);
  if (!key.ok()) {
    Check(key.error().code == "bad_key", "refusal without code bad_key");
    Check(!key.error().message.empty(), "refusal without a sentence");
    return 0;
  }
  Check(!key->empty() && key->size() <= fence::kMaxKeyBytes, "key length out of 1..512");
  Check(!HasControlByte(*key), "key with a control byte accepted");
  Check(SegmentsValid(*key), "key with an empty, '.' or '..' segment accepted");
  const std::string reencoded = fence::EncodeKeyForPath(*key);
  const auto again = fence::ParseKey(reencoded);
  Check(again.ok() && *again == *key, "EncodeKeyForPath does not round-trip");
  return 0;
}
