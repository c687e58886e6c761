// Storage behind one interface: RocksDB in production, memory for unit tests
// of the service (with fault injection). Implementations are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/key_record.h"
#include "core/result.h"

namespace fence::store {

struct StoredObject {
  KeyRecord record;
  std::string body;
};

enum class BodyChange { kKeep, kSet, kErase };

struct Mutation {
  KeyRecord record;
  BodyChange body_change = BodyChange::kKeep;
  std::string body;  // used with kSet
};

class Storage {
 public:
  virtual ~Storage() = default;
  virtual Result<std::optional<KeyRecord>> LoadRecord(std::string_view key) = 0;
  // The record and the body as of one instant (a snapshot).
  virtual Result<std::optional<StoredObject>> LoadObject(std::string_view key) = 0;
  // Applies the record and body change atomically and returns only once both
  // are durable (WAL fsynced). Errors have code "storage_error".
  virtual Status Commit(std::string_view key, const Mutation& mutation) = 0;
  // False while the last write failed; /readyz reports it.
  virtual bool Healthy() const = 0;
};

// Opens (creating if needed) a RocksDB database in `dir`. Errors have code
// "storage_unavailable" and say why (permissions, lock held, corruption).
Result<std::unique_ptr<Storage>> OpenRocksStorage(const std::string& dir);

}  // namespace fence::store
