// Storage behind one interface: RocksDB in production, memory for unit tests
// of the service (with fault injection). Implementations are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/key_record.h"
#include "core/result.h"

namespace rocksdb {
class FileSystem;
class SystemClock;
}  // namespace rocksdb

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

// Where a record lives: keys hold objects and their fences; scopes hold only
// a fence (highest_token and version of a KeyRecord), for a whole job.
enum class RecordSpace { kKey, kScope };

struct KeyMutation {
  std::string key;  // the key, or the scope's name for RecordSpace::kScope
  Mutation mutation;
  RecordSpace space = RecordSpace::kKey;  // a scope mutation has kKeep
};

// Where a read may look. kMemoryOnly never waits for the disk: it answers
// from the memtables and the block cache, or fails with "not_in_memory", so
// an HTTP I/O thread may call it and hand only a miss to a storage thread.
enum class ReadFrom { kAnywhere, kMemoryOnly };

class Storage {
 public:
  virtual ~Storage() = default;
  virtual Result<std::optional<KeyRecord>> LoadRecord(
      std::string_view key, ReadFrom from) = 0;
  // A scope's fence record (only highest_token and version are used).
  virtual Result<std::optional<KeyRecord>> LoadScope(
      std::string_view name, ReadFrom from) = 0;
  // The record and the body as of one instant (a consistent view).
  virtual Result<std::optional<StoredObject>> LoadObject(
      std::string_view key, ReadFrom from) = 0;
  // Applies every mutation of the group atomically, in order, and returns
  // only once all are durable (one WAL fsync). Readers see none of them
  // before that. Errors have code "storage_error": nothing was applied.
  virtual Status CommitGroup(const std::vector<KeyMutation>& group) = 0;
  // False while the last write failed; /readyz reports it.
  virtual bool Healthy() const = 0;
};

// What opening the database does with a damaged write-ahead log. Every write
// is fsynced before it is acknowledged, so after a crash only the last
// record can be incomplete (a write torn mid-way, never acknowledged);
// damage anywhere else is bit rot or a bad disk, and the records after it
// were acknowledged.
enum class WalRecovery {
  // Replay every record; drop only an incomplete record at the end of a
  // log. Any other damage fails the open (code "wal_corrupt").
  kStrict,
  // Skip damaged records and replay the rest (RocksDB's
  // kSkipAnyCorruptedRecords); every skipped range is reported as a WalDrop.
  // Acknowledged writes in those ranges are lost: an operator's choice only.
  kSkipCorrupted,
};

// A range of a write-ahead log that recovery could not replay, as precisely
// as RocksDB reports it: the file, the number of bytes, the reason. RocksDB
// does not report the offset.
struct WalDrop {
  std::string file;
  std::uint64_t bytes = 0;
  std::string reason;
};

struct RocksOptions {
  WalRecovery wal_recovery = WalRecovery::kStrict;
  // The file system RocksDB writes through; null is the real one. Tests pass
  // a wrapper that simulates power loss.
  std::shared_ptr<rocksdb::FileSystem> file_system;
  // RocksDB's clock; null is the real one. The power-cut test shortens the
  // one-second back-off after each failed background flush.
  std::shared_ptr<rocksdb::SystemClock> clock;
  // Memtable size in bytes; 0 keeps RocksDB's default (64 MiB). Tests use a
  // small one so that flushes, log switches and compactions happen often.
  std::size_t write_buffer_bytes = 0;
};

// Opens (creating if needed) a RocksDB database in `dir`. Errors have code
// "wal_corrupt" (details: file, bytes, reason) when a write-ahead log is
// damaged before its end under WalRecovery::kStrict, else
// "storage_unavailable"; both say why (permissions, lock held, corruption).
// Under kSkipCorrupted, what recovery skipped is appended to `dropped`.
Result<std::unique_ptr<Storage>> OpenRocksStorage(
    const std::string& dir, const RocksOptions& options = {},
    std::vector<WalDrop>* dropped = nullptr);

}  // namespace fence::store
