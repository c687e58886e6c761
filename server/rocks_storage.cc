#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/system_clock.h>
#include <rocksdb/write_batch.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <ctime>
#include <mutex>
#include <regex>
#include <thread>

#include "common/logging.h"
#include "core/log_event.h"
#include "server/storage.h"

namespace fence::store {
namespace {

// Records and bodies live under separate prefixes so that reading a fence
// never reads object bytes.
std::string RecordKey(std::string_view key) { return "r/" + std::string(key); }
std::string BodyKey(std::string_view key) { return "b/" + std::string(key); }
// Scope fences: a record per scope, no body.
std::string ScopeKey(std::string_view name) { return "s/" + std::string(name); }

rocksdb::ReadOptions ReadOptionsFor(ReadFrom from) {
  rocksdb::ReadOptions options;
  // kBlockCacheTier: memtables and block cache only; Incomplete instead of
  // a disk read.
  if (from == ReadFrom::kMemoryOnly) options.read_tier = rocksdb::kBlockCacheTier;
  return options;
}

Error NotInMemory() {
  return MakeError("not_in_memory", "the record is not in memory; read it from disk");
}

Error StorageError(const std::string& what, const rocksdb::Status& s) {
  return MakeError("storage_error", what + ": " + s.ToString());
}

// The 507 answer to a write the database refused. It says what was wrong
// and what to do, and that nothing was written.
Error WriteFailed(const std::string& dir, const rocksdb::Status& s,
                  std::optional<std::uint64_t> free_bytes) {
  nlohmann::json details = {{"data_dir", dir}};
  if (free_bytes) details["free_bytes"] = *free_bytes;
  if (s.IsNoSpace()) {
    details["cause"] = "disk_full";
    return MakeError("storage_error",
                     "the disk holding the data directory " + dir + " is full (" +
                         s.ToString() + "); this write was not applied. Free space on that "
                         "volume: the store resumes writing by itself, without a restart, "
                         "once it has room to flush its memtable (about as much as its "
                         "write-ahead log holds)",
                     details);
  }
  details["cause"] = "io_error";
  return MakeError("storage_error",
                   "writing to the data directory " + dir + " failed (" + s.ToString() +
                       "); this write was not applied. Check the disk (kernel log, file-size "
                       "limits); the store retries by itself and accepts writes again "
                       "once storage works",
                   details);
}

std::optional<std::uint64_t> FreeBytes(rocksdb::Env* env, const std::string& dir) {
  std::uint64_t free_bytes = 0;
  if (!env->GetFreeSpace(dir, &free_bytes).ok()) return std::nullopt;
  return free_bytes;
}

nlohmann::json OptionalBytes(std::optional<std::uint64_t> bytes) {
  return bytes ? nlohmann::json(*bytes) : nlohmann::json(nullptr);
}

// Whether the database accepts writes, as RocksDB reports it to its
// listener: failed at a hard background error (a failed WAL write, or a
// flush or MANIFEST write, so also without any write of ours failing),
// healthy again when RocksDB says the error was cleared. Shared by the
// listener and the thread that recovers.
class StorageHealth {
 public:
  bool healthy() const { return healthy_.load(); }

  // True if the storage was healthy until now.
  bool MarkFailed() {
    std::lock_guard lock(mu_);
    const bool was_healthy = healthy_.exchange(false);
    cv_.notify_all();
    return was_healthy;
  }
  void MarkRecovered() { healthy_ = true; }
  // Blocks until the storage has failed (true) or Stop (false).
  bool WaitForFailure() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return stopping_ || !healthy_.load(); });
    return !stopping_;
  }
  // Sleeps `d` unless stopped; false once stopped.
  bool Sleep(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopping_; });
  }
  void Stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

 private:
  std::atomic<bool> healthy_{true};  // cleared under mu_ (for cv_), read anywhere
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
};

// Hears RocksDB's background errors. A hard error (a failed WAL write, a
// flush or MANIFEST write that found the disk full) stops all writes until
// DB::Resume succeeds.
class BackgroundErrorListener final : public rocksdb::EventListener {
 public:
  explicit BackgroundErrorListener(std::shared_ptr<StorageHealth> health)
      : health_(std::move(health)) {}

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* error) override {
    // A soft error (a compaction that found the disk full) leaves writes
    // working; RocksDB retries it itself once space is back.
    const bool soft = error->severity() == rocksdb::Status::Severity::kSoftError;
    // Once stopped, each failed recovery attempt reports its error here
    // again; RocksStorage::Recover logs those.
    if (!soft && !health_->MarkFailed()) return;
    nlohmann::json fields = {{"reason", ReasonName(reason)},
                             {"cause", error->IsNoSpace() ? "disk_full" : "io_error"},
                             {"writes_stopped", !soft},
                             {"message", error->ToString()}};
    if (soft) {
      log::Warn(events::kStorageDegraded, fields);
    } else {
      log::Error(events::kStorageFailed, fields);
    }
  }

  // RocksDB's own recovery from a full disk (its SstFileManager) polls every
  // 5 s until write_buffer_size (64 MiB) is free and answers a manual
  // Resume with Busy meanwhile; on a smaller volume it never resumes. The
  // store recovers a hard error itself (RocksStorage::Recover), so it turns
  // RocksDB's off for those.
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status error, bool* auto_recovery) override {
    if (error.severity() != rocksdb::Status::Severity::kSoftError) *auto_recovery = false;
  }

  // Called when a recovery cleared the background error (DB::Resume after
  // a real error, not one that found nothing to do).
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (info.new_bg_error.ok()) health_->MarkRecovered();
  }

 private:
  static const char* ReasonName(rocksdb::BackgroundErrorReason reason) {
    switch (reason) {
      case rocksdb::BackgroundErrorReason::kFlush:
      case rocksdb::BackgroundErrorReason::kFlushNoWAL:
        return "flush";
      case rocksdb::BackgroundErrorReason::kCompaction:
        return "compaction";
      case rocksdb::BackgroundErrorReason::kWriteCallback:
        return "write";
      case rocksdb::BackgroundErrorReason::kMemTable:
        return "memtable";
      default:
        return "manifest";
    }
  }

  std::shared_ptr<StorageHealth> health_;
};

class RocksStorage final : public Storage {
 public:
  RocksStorage(std::string dir, std::shared_ptr<StorageHealth> health,
               std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db)
      : dir_(std::move(dir)),
        health_(std::move(health)),
        env_(std::move(env)),
        db_(std::move(db)),
        recoverer_([this] { Recover(); }) {}

  ~RocksStorage() override {
    health_->Stop();
    recoverer_.join();
  }
  RocksStorage(const RocksStorage&) = delete;
  RocksStorage& operator=(const RocksStorage&) = delete;

  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key, ReadFrom from) override {
    return LoadAt(RecordKey(key), from);
  }

  Result<std::optional<KeyRecord>> LoadScope(std::string_view name, ReadFrom from) override {
    return LoadAt(ScopeKey(name), from);
  }

  Result<std::optional<StoredObject>> LoadObject(std::string_view key, ReadFrom from) override {
    // One MultiGet reads both keys from one consistent view of the
    // database, without the database-wide mutex an explicit snapshot takes.
    const std::string record_key = RecordKey(key);
    const std::string body_key = BodyKey(key);
    const std::vector<rocksdb::Slice> keys = {record_key, body_key};
    std::vector<std::string> values;
    const std::vector<rocksdb::Status> status =
        db_->MultiGet(ReadOptionsFor(from), keys, &values);
    if (status[0].IsNotFound()) return std::optional<StoredObject>();
    if (status[0].IsIncomplete() || status[1].IsIncomplete()) return NotInMemory();
    if (!status[0].ok()) return StorageError("reading a key record failed", status[0]);
    auto record = DecodeKeyRecord(values[0]);
    if (!record.ok()) return record.error();
    if (!record->has_object) return std::optional<StoredObject>();
    if (!status[1].ok()) return StorageError("reading an object body failed", status[1]);
    return std::optional<StoredObject>(
        StoredObject{std::move(*record), std::move(values[1])});
  }

  Status CommitGroup(const std::vector<KeyMutation>& group) override {
    rocksdb::WriteBatch batch;
    for (const auto& [key, mutation, space] : group) {
      if (space == RecordSpace::kScope) {
        batch.Put(ScopeKey(key), EncodeKeyRecord(mutation.record));
        continue;
      }
      batch.Put(RecordKey(key), EncodeKeyRecord(mutation.record));
      if (mutation.body_change == BodyChange::kSet) {
        batch.Put(BodyKey(key), mutation.body);
      } else if (mutation.body_change == BodyChange::kErase) {
        batch.Delete(BodyKey(key));
      }
    }
    // sync=true: the WAL is fsynced before Write returns, and only then is
    // the batch inserted into the memtable where readers can see it. One
    // batch is one WAL record: the whole group, or none of it, survives a
    // crash.
    rocksdb::WriteOptions options;
    options.sync = true;
    const auto s = db_->Write(options, &batch);
    if (s.ok()) return OkStatus();
    // A failed write is not in the memtable, and the WAL it may have been
    // partly appended to is retired by the recovery's flush: it is never
    // acknowledged. If the failure stopped the database, the listener has
    // heard of it and the recovery thread takes it from here.
    return WriteFailed(dir_, s, FreeBytes(db_->GetEnv(), dir_));
  }

  bool Healthy() const override { return health_->healthy(); }

 private:
  // A record (of a key or a scope) under its database key.
  Result<std::optional<KeyRecord>> LoadAt(const std::string& db_key, ReadFrom from) {
    std::string bytes;
    const auto s = db_->Get(ReadOptionsFor(from), db_key, &bytes);
    if (s.IsNotFound()) return std::optional<KeyRecord>();
    if (s.IsIncomplete()) return NotInMemory();
    if (!s.ok()) return StorageError("reading a key record failed", s);
    auto record = DecodeKeyRecord(bytes);
    if (!record.ok()) return record.error();
    return std::optional<KeyRecord>(std::move(*record));
  }

  // Runs for the storage's lifetime. After a failure, DB::Resume (which
  // flushes the memtables to new table files, switches to a new WAL and
  // clears the error) is retried with a bounded back-off until it works,
  // so the store recovers once space is freed, without a restart and
  // without waiting for a write to try.
  void Recover() {
    constexpr std::chrono::milliseconds kFirstRetry{100};
    constexpr std::chrono::milliseconds kMaxRetry{2000};
    std::chrono::milliseconds retry = kFirstRetry;
    while (health_->WaitForFailure()) {
      const auto s = db_->Resume();
      if (health_->healthy()) {
        log::Info(events::kStorageRecovered,
                  {{"data_dir", dir_},
                   {"free_bytes", OptionalBytes(FreeBytes(db_->GetEnv(), dir_))}});
        retry = kFirstRetry;
        continue;
      }
      // Resume may also answer OK having found nothing to do: RocksDB tells
      // its listeners of an error before it records it. Only the listener's
      // OnErrorRecoveryEnd marks the storage healthy; until then, retry.
      if (!s.ok()) {
        log::Warn(events::kStorageRecoveryFailed,
                  {{"data_dir", dir_},
                   {"cause", s.IsNoSpace() ? "disk_full" : "io_error"},
                   {"free_bytes", OptionalBytes(FreeBytes(db_->GetEnv(), dir_))},
                   {"retry_in_ms", retry.count()},
                   {"message", s.ToString()}});
      }
      if (!health_->Sleep(retry)) return;
      retry = std::min(retry * 2, kMaxRetry);
    }
  }

  const std::string dir_;
  std::shared_ptr<StorageHealth> health_;
  std::unique_ptr<rocksdb::Env> env_;  // null: the default Env; outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  std::thread recoverer_;  // last: starts after, and is joined before, db_ goes
};

// RocksDB's info log (DIR/LOG), written straight to its file with every
// error ignored. RocksDB's own file logger must not be used on a disk that
// can fill: after one failed append, Debian's build (assertions on) aborts
// the whole process at the next log line
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError). The log is
// diagnostics; losing lines while the disk is full is the right trade.
class BestEffortLogger final : public rocksdb::Logger {
 public:
  explicit BestEffortLogger(std::unique_ptr<rocksdb::FSWritableFile> file)
      : file_(std::move(file)) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[4096];
    timeval now{};
    gettimeofday(&now, nullptr);
    std::tm t{};
    gmtime_r(&now.tv_sec, &t);
    int n = std::snprintf(line, sizeof line, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %d ",
                          t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                          t.tm_sec, static_cast<long>(now.tv_usec), static_cast<int>(gettid()));
    n += std::max(0, std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1,
                                    format, ap));
    n = std::min(n, static_cast<int>(sizeof line) - 2);
    if (line[n - 1] != '\n') line[n++] = '\n';
    std::lock_guard lock(mu_);
    file_->Append(rocksdb::Slice(line, static_cast<std::size_t>(n)), rocksdb::IOOptions(),
                  nullptr)
        .PermitUncheckedError();
    file_->Flush(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
  }

 private:
  std::mutex mu_;
  std::unique_ptr<rocksdb::FSWritableFile> file_;  // GUARDED_BY(mu_)
};

// Opens DIR/LOG (the previous one kept as LOG.old), creating DIR if needed.
Result<std::shared_ptr<rocksdb::Logger>> OpenInfoLog(rocksdb::Env* env, const std::string& dir) {
  const auto& fs = env->GetFileSystem();
  auto s = fs->CreateDirIfMissing(dir, rocksdb::IOOptions(), nullptr);
  const std::string path = dir + "/LOG";
  if (s.ok() && fs->FileExists(path, rocksdb::IOOptions(), nullptr).ok()) {
    s = fs->RenameFile(path, path + ".old", rocksdb::IOOptions(), nullptr);
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  if (s.ok()) s = fs->NewWritableFile(path, rocksdb::FileOptions(), &file, nullptr);
  if (!s.ok()) {
    return MakeError("storage_unavailable",
                     "cannot open the data directory " + dir + ": " + s.ToString());
  }
  return std::shared_ptr<rocksdb::Logger>(std::make_shared<BestEffortLogger>(std::move(file)));
}

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

constexpr std::size_t kMemtablePrefixBytes = 256;
constexpr std::size_t kMemtableBuckets = 1u << 18;

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
  // A memtable of hash buckets, each a small skip list of one key prefix's
  // entries (the prefix is the whole key up to 256 bytes), instead of one
  // skip list of every entry: inserting a write no longer searches a list
  // of hundreds of thousands of entries, which was the committer's main
  // cost. Nothing here iterates over keys, which is what this layout makes
  // slow; one writer (the committer) means no concurrent inserts.
  options.prefix_extractor.reset(rocksdb::NewCappedPrefixTransform(kMemtablePrefixBytes));
  // The bucket array lives in the memtable's memory: scaled down with a
  // small memtable (tests), which must not start out full.
  const std::size_t buckets = std::clamp<std::size_t>(options.write_buffer_size / 256, 256,
                                                      kMemtableBuckets);
  options.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(buckets));
  options.allow_concurrent_memtable_write = false;
  return options;
}

Error OpenError(const std::string& dir, const rocksdb::Status& s,
                const std::vector<WalDrop>& drops) {
  if (s.IsNoSpace()) {
    // Opening writes: a new WAL, a new MANIFEST, and the replayed log
    // flushed to a table file.
    return MakeError("storage_unavailable",
                     "cannot open the data directory " + dir + ": " + s.ToString() +
                         "; the disk is full: free space on that volume (about as much "
                         "as the write-ahead logs in it hold) and start again");
  }
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
  auto file_log = OpenInfoLog(options.env, dir);
  if (!file_log.ok()) return file_log.error();
  auto logger = std::make_shared<RecoveryLogger>(std::move(*file_log));
  options.info_log = logger;
  auto health = std::make_shared<StorageHealth>();
  options.listeners.push_back(std::make_shared<BackgroundErrorListener>(health));
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, &raw);
  std::vector<WalDrop> drops = logger->TakeDrops();
  if (!s.ok()) return OpenError(dir, s, drops);
  if (dropped != nullptr) {
    dropped->insert(dropped->end(), drops.begin(), drops.end());
  }
  return std::unique_ptr<Storage>(std::make_unique<RocksStorage>(
      dir, std::move(health), std::move(env), std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace fence::store
