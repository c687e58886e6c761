// Fuzzes the store's on-disk key-record decoder (core/key_record): any bytes
// as a stored record. A record that decodes re-encodes and decodes equal,
// and holds only valid tokens (never 0); a refusal is "corrupt_record".
#include <cstdint>
#include <string>
#include <string_view>

#include "core/key_record.h"
#include "fuzz/fuzz_check.h"

namespace {

bool Equal(const fence::KeyRecord& a, const fence::KeyRecord& b) {
  return a.highest_token == b.highest_token && a.has_object == b.has_object &&
         a.object_token == b.object_token && a.size == b.size && a.etag == b.etag &&
         a.content_type == b.content_type && a.deleted == b.deleted &&
         a.version == b.version;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using fence::fuzz::Check;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto record = fence::DecodeKeyRecord(bytes);
  if (!record.ok()) {
    Check(record.error().code == "corrupt_record", "refusal without code corrupt_record");
    return 0;
  }
  Check(!record->highest_token || record->highest_token->value() != 0,
        "a record with highest_token 0 decoded");
  Check(!record->object_token || record->object_token->value() != 0,
        "a record with object_token 0 decoded");
  const std::string encoded = fence::EncodeKeyRecord(*record);
  const auto again = fence::DecodeKeyRecord(encoded);
  Check(again.ok(), "a re-encoded record does not decode");
  Check(Equal(*record, *again), "a re-encoded record decodes different");
  Check(fence::EncodeKeyRecord(*again) == encoded, "encoding is not stable");
  return 0;
}
