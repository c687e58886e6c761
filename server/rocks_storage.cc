#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/system_clock.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdarg>
#include <mutex>
#include <regex>

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
  RocksStorage(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db)
      : env_(std::move(env)), db_(std::move(db)) {}

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
  std::unique_ptr<rocksdb::Env> env_;  // null: the default Env; outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<bool> healthy_{true};
};

// Forwards RocksDB's info log to its usual file and, during recovery, keeps
// the lines in which the WAL reader reports what it could not replay
// ("<file>: dropping <n> bytes; <reason>"): RocksDB's Open status names
// neither the file nor the size.
class RecoveryLogger final : public rocksdb::LoggerWrapper {
 public:
  explicit RecoveryLogger(std::shared_ptr<rocksdb::Logger> inner)
      : rocksdb::LoggerWrapper(inner.get()), inner_(std::move(inner)) {}

  using rocksdb::LoggerWrapper::Logv;
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level >= rocksdb::InfoLogLevel::WARN_LEVEL) {
      va_list copy;
      va_copy(copy, ap);
      Capture(format, copy);
      va_end(copy);
    }
    rocksdb::LoggerWrapper::Logv(level, format, ap);
  }

  // What recovery dropped; stops collecting (later warnings are not ours).
  std::vector<WalDrop> TakeDrops() {
    collecting_ = false;
    std::lock_guard lock(mu_);
    return std::move(drops_);
  }

 private:
  void Capture(const char* format, va_list ap) {
    if (!collecting_.load()) return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    // "[db/db_impl/db_impl_open.cc:982] (ignoring error) /d/000004.log:
    // dropping 32768 bytes; Corruption: checksum mismatch"
    static const std::regex kDrop(
        R"(^(?:\[[^\]]*\] )?(?:\(ignoring error\) )?(.+): dropping (\d+) bytes(?:; (.*))?$)");
    std::cmatch m;
    if (!std::regex_match(line, m, kDrop)) return;
    std::lock_guard lock(mu_);
    drops_.push_back({m[1].str(), std::stoull(m[2].str()),
                      m[3].matched ? m[3].str() : "the rest of the log"});
  }

  std::shared_ptr<rocksdb::Logger> inner_;
  std::mutex mu_;
  std::vector<WalDrop> drops_;  // GUARDED_BY(mu_)
  std::atomic<bool> collecting_{true};
};

// The default Env with the file system and clock of RocksOptions.
class SeamEnv final : public rocksdb::EnvWrapper {
 public:
  SeamEnv(const std::shared_ptr<rocksdb::FileSystem>& fs,
          const std::shared_ptr<rocksdb::SystemClock>& clock)
      : rocksdb::EnvWrapper(Base(fs)) {
    file_system_ = target()->GetFileSystem();
    system_clock_ = clock ? clock : target()->GetSystemClock();
  }

 private:
  static std::shared_ptr<rocksdb::Env> Base(const std::shared_ptr<rocksdb::FileSystem>& fs) {
    if (fs) return rocksdb::NewCompositeEnv(fs);
    return {rocksdb::Env::Default(), [](rocksdb::Env*) {}};  // not owned
  }
};

rocksdb::Options DatabaseOptions(const RocksOptions& ro) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Every acknowledged write was fsynced, so only an incomplete last record
  // (a write torn by a crash, never acknowledged) may be dropped. RocksDB's
  // kPointInTimeRecovery would also stop silently at a damaged record in the
  // middle and drop every acknowledged write after it, lowering fences.
  options.wal_recovery_mode = ro.wal_recovery == WalRecovery::kStrict
                                  ? rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords
                                  : rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
  options.max_open_files = 512;
  if (ro.write_buffer_bytes > 0) options.write_buffer_size = ro.write_buffer_bytes;
  return options;
}

Error OpenError(const std::string& dir, const rocksdb::Status& s,
                const std::vector<WalDrop>& drops) {
  if (!s.IsCorruption() || drops.empty()) {
    return MakeError("storage_unavailable",
                     "cannot open the data directory " + dir + ": " + s.ToString());
  }
  const WalDrop& first = drops.front();
  return MakeError(
      "wal_corrupt",
      "the write-ahead log " + first.file + " is damaged before its end (" +
          first.reason + "; " + std::to_string(first.bytes) +
          " bytes unreadable): writes acknowledged after that point cannot be "
          "replayed",
      {{"file", first.file}, {"bytes", first.bytes}, {"reason", first.reason}});
}

}  // namespace

Result<std::unique_ptr<Storage>> OpenRocksStorage(const std::string& dir,
                                                  const RocksOptions& ro,
                                                  std::vector<WalDrop>* dropped) {
  rocksdb::Options options = DatabaseOptions(ro);
  std::unique_ptr<rocksdb::Env> env;
  if (ro.file_system || ro.clock) {
    env = std::make_unique<SeamEnv>(ro.file_system, ro.clock);
    options.env = env.get();
  }
  std::shared_ptr<rocksdb::Logger> file_log;
  auto s = rocksdb::CreateLoggerFromOptions(dir, options, &file_log);
  if (!s.ok()) {
    return MakeError("storage_unavailable",
                     "cannot open the data directory " + dir + ": " + s.ToString());
  }
  auto logger = std::make_shared<RecoveryLogger>(std::move(file_log));
  options.info_log = logger;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(options, dir, &raw);
  std::vector<WalDrop> drops = logger->TakeDrops();
  if (!s.ok()) return OpenError(dir, s, drops);
  if (dropped != nullptr) {
    dropped->insert(dropped->end(), drops.begin(), drops.end());
  }
  return std::unique_ptr<Storage>(std::make_unique<RocksStorage>(
      std::move(env), std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace fence::store
