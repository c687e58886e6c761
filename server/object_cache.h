// The committed state of recently written keys, in memory, so that reads,
// prechecks and the committer's fence decisions skip RocksDB (a memtable
// search and decoding the record) for the keys in use.
//
// Only the committer writes it: after a group's sync and before the group
// is acknowledged, and with records it has just read from the storage
// (which only the committer changes). So an entry is never ahead of the
// disk, and never behind the last acknowledged write of its key. Readers
// never insert: a reader's copy could be overtaken by a commit between its
// read and its insert. Bounded in bytes; evicting an entry costs only a
// RocksDB read later.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/key_record.h"

namespace fence::store {

struct CachedKey {
  KeyRecord record;
  // The object's bytes when record.has_object and they are cached; null
  // when there is no object or its bytes are not cached (too large, or
  // only the record was read).
  std::shared_ptr<const std::string> body;
};

class ObjectCache {
 public:
  // `max_bytes` 0 disables the cache. Bodies larger than `max_body_bytes`
  // are not cached (their records are).
  ObjectCache(std::uint64_t max_bytes, std::uint64_t max_body_bytes);

  std::optional<CachedKey> Find(const std::string& key) const;
  // Replaces the key's entry, then evicts other entries of its shard while
  // the shard is over its share of max_bytes. A body over max_body_bytes is
  // dropped.
  void Put(const std::string& key, CachedKey entry);

  std::uint64_t bytes() const;
  std::uint64_t max_body_bytes() const { return max_body_bytes_; }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, CachedKey> entries;  // GUARDED_BY(mu)
    std::uint64_t bytes = 0;                             // GUARDED_BY(mu)
  };
  static std::uint64_t Cost(const std::string& key, const CachedKey& entry);
  Shard& ShardFor(const std::string& key);
  const Shard& ShardFor(const std::string& key) const;

  const std::uint64_t shard_max_bytes_;
  const std::uint64_t max_body_bytes_;
  std::array<Shard, kShards> shards_;
};

}  // namespace fence::store
