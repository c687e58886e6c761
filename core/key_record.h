// What the store keeps per key besides the object bytes, and its encoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/token.h"

namespace fence {

struct KeyRecord {
  // The fence: the highest token ever accepted for the key. Absent only while
  // the store runs with fencing off and has seen no token for the key.
  std::optional<Token> highest_token;
  // The current object, or none: never written, deleted (tombstone), or only
  // fenced. `object_token` is the token the object was written with.
  bool has_object = false;
  std::optional<Token> object_token;
  std::uint64_t size = 0;
  std::string etag;
  std::string content_type;
  bool deleted = false;  // a tombstone keeps the fence after DELETE
  // How many writes (PUT, DELETE, fence raise) the store has accepted for the
  // key: each accepted write takes the next version, so versions give the
  // key's commit order (as etcd's per-key version does). 0: never written,
  // or last written before records had versions.
  std::uint64_t version = 0;
};

std::string EncodeKeyRecord(const KeyRecord& record);
// Errors have code "corrupt_record": the bytes on disk are not a record.
Result<KeyRecord> DecodeKeyRecord(std::string_view bytes);

}  // namespace fence
