#include "server/object_cache.h"

#include <functional>

namespace fence::store {

ObjectCache::ObjectCache(std::uint64_t max_bytes, std::uint64_t max_body_bytes)
    : shard_max_bytes_(max_bytes / kShards), max_body_bytes_(max_body_bytes) {}

ObjectCache::Shard& ObjectCache::ShardFor(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

const ObjectCache::Shard& ObjectCache::ShardFor(const std::string& key) const {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

// The bytes an entry holds, roughly: key, record strings, body, and the
// map node and record themselves.
std::uint64_t ObjectCache::Cost(const std::string& key, const CachedKey& entry) {
  constexpr std::uint64_t kOverhead = 192;
  return kOverhead + key.size() + entry.record.etag.size() +
         entry.record.content_type.size() + (entry.body ? entry.body->size() : 0);
}

std::optional<CachedKey> ObjectCache::Find(const std::string& key) const {
  if (shard_max_bytes_ == 0) return std::nullopt;
  const Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) return std::nullopt;
  return it->second;
}

void ObjectCache::Put(const std::string& key, CachedKey entry) {
  if (shard_max_bytes_ == 0) return;
  if (!entry.record.has_object || (entry.body && entry.body->size() > max_body_bytes_)) {
    entry.body.reset();
  }
  const std::uint64_t cost = Cost(key, entry);
  if (cost > shard_max_bytes_) return;
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  auto [it, inserted] = shard.entries.try_emplace(key);
  if (!inserted) shard.bytes -= Cost(key, it->second);
  it->second = std::move(entry);
  shard.bytes += cost;
  // Evicts in the map's order, which has nothing to do with use: simple,
  // and any entry is as cheap to read back as any other.
  for (auto victim = shard.entries.begin();
       shard.bytes > shard_max_bytes_ && victim != shard.entries.end();) {
    if (victim->first == key) {
      ++victim;
      continue;
    }
    shard.bytes -= Cost(victim->first, victim->second);
    victim = shard.entries.erase(victim);
  }
}

std::uint64_t ObjectCache::bytes() const {
  std::uint64_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    total += shard.bytes;
  }
  return total;
}

}  // namespace fence::store
