#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <atomic>

#include "server/storage.h"

namespace fence::store {
namespace {

// Records and bodies live under separate prefixes so that reading a fence
// never reads object bytes.
std::string RecordKey(std::string_view key) { return "r/" + std::string(key); }
std::string BodyKey(std::string_view key) { return "b/" + std::string(key); }

Error StorageError(const std::string& what, const rocksdb::Status& s) {
  return MakeError("storage_error", what + ": " + s.ToString());
}

class RocksStorage final : public Storage {
 public:
  explicit RocksStorage(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key) override {
    std::string bytes;
    const auto s = db_->Get(rocksdb::ReadOptions(), RecordKey(key), &bytes);
    if (s.IsNotFound()) return std::optional<KeyRecord>();
    if (!s.ok()) return StorageError("reading a key record failed", s);
    auto record = DecodeKeyRecord(bytes);
    if (!record.ok()) return record.error();
    return std::optional<KeyRecord>(std::move(*record));
  }

  Result<std::optional<StoredObject>> LoadObject(std::string_view key) override {
    const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
    rocksdb::ReadOptions options;
    options.snapshot = snapshot;
    std::string record_bytes;
    std::string body;
    auto s = db_->Get(options, RecordKey(key), &record_bytes);
    rocksdb::Status body_status;
    if (s.ok()) body_status = db_->Get(options, BodyKey(key), &body);
    db_->ReleaseSnapshot(snapshot);
    if (s.IsNotFound()) return std::optional<StoredObject>();
    if (!s.ok()) return StorageError("reading a key record failed", s);
    auto record = DecodeKeyRecord(record_bytes);
    if (!record.ok()) return record.error();
    if (!record->has_object) return std::optional<StoredObject>();
    if (!body_status.ok()) {
      return StorageError("reading an object body failed", body_status);
    }
    return std::optional<StoredObject>(StoredObject{std::move(*record), std::move(body)});
  }

  Status Commit(std::string_view key, const Mutation& mutation) override {
    rocksdb::WriteBatch batch;
    batch.Put(RecordKey(key), EncodeKeyRecord(mutation.record));
    if (mutation.body_change == BodyChange::kSet) {
      batch.Put(BodyKey(key), mutation.body);
    } else if (mutation.body_change == BodyChange::kErase) {
      batch.Delete(BodyKey(key));
    }
    // sync=true: the WAL is fsynced before Write returns. Concurrent writers
    // are grouped by RocksDB's write thread into one WAL write and one fsync
    // (group commit), so per-key serialization does not serialize the disk.
    rocksdb::WriteOptions options;
    options.sync = true;
    auto s = db_->Write(options, &batch);
    if (!s.ok() && db_->Resume().ok()) {
      // A failed WAL write puts RocksDB into a background-error state;
      // Resume clears it once the cause (e.g. a full disk) is gone. The
      // failed write itself stays unacknowledged.
      s = db_->Write(options, &batch);
    }
    healthy_ = s.ok();
    if (!s.ok()) return StorageError("writing to the database failed", s);
    return OkStatus();
  }

  bool Healthy() const override { return healthy_; }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<bool> healthy_{true};
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenRocksStorage(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Recovery replays the synced WAL; a torn tail (a write never acknowledged)
  // is dropped rather than failing the open.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  options.max_open_files = 512;
  rocksdb::DB* raw = nullptr;
  const auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return MakeError("storage_unavailable",
                     "cannot open the data directory " + dir + ": " + s.ToString());
  }
  return std::unique_ptr<Storage>(
      std::make_unique<RocksStorage>(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace fence::store
