// The store's state machine: the fence rule applied per key, atomically,
// over a Storage. No HTTP here; handlers map its results to responses.
//
// Writes go through one committer thread (group commit). It takes every
// write queued while the previous group was being synced, applies the fence
// rule to each in arrival order against the records as the earlier writes
// of the group left them, and makes the accepted ones durable with one
// batch and one WAL fsync. So the rule is atomic per key without locks, and
// one fsync covers as many writers as were waiting for it, whether they
// write different keys or one hot key. Nothing is acknowledged before its
// group's sync returns, and readers never see a write before then (RocksDB
// inserts into the memtable after the WAL sync).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/fence_rule.h"
#include "core/token.h"
#include "server/object_cache.h"
#include "server/storage.h"
#include "server/store_backend.h"

namespace fence::store {

struct StoreServiceOptions {
  // Writes queued for the committer at once; one more is refused with
  // "overloaded" at once rather than made to wait.
  std::size_t max_queued_writes = 4096;
  // Bounds on one group: its batch is held in memory until its sync.
  std::size_t max_group_writes = 1024;
  std::uint64_t max_group_bytes = 32ull * 1024 * 1024;
  // The ObjectCache of committed keys; 0 bytes disables it.
  std::uint64_t cache_bytes = 64ull * 1024 * 1024;
  std::uint64_t cache_max_body_bytes = 64ull * 1024;
  // The cache of scope records (one small record per scope).
  std::uint64_t scope_cache_bytes = 4ull * 1024 * 1024;
};

// The RocksDB backend: the rule applied on one committer thread, against an
// in-memory cache that is current because this process alone writes the
// database. Error codes: see StoreBackend.
class StoreService final : public StoreBackend {
 public:
  StoreService(Storage& storage, FencingMode mode, StoreServiceOptions options = {});
  ~StoreService() override;  // Close()
  StoreService(const StoreService&) = delete;
  StoreService& operator=(const StoreService&) = delete;

  // Checks a write from its header alone, before its body is read, so that
  // a stale writer is refused without sending its bytes. Advisory only: the
  // committer checks again.
  // An empty key with a scope prechecks a scope raise.
  Status Precheck(const std::string& key, std::optional<Token> token,
                  const std::optional<std::string>& scope = std::nullopt,
                  ReadFrom from = ReadFrom::kAnywhere) override;

  // Queues a write for the committer; `done` gets its outcome.
  void Write(WriteRequest request, WriteDone done) override;

  // Blocking forms of Write, for tests and tools.
  Result<WriteReceipt> Put(const std::string& key, std::optional<Token> token,
                           std::string body, std::string content_type,
                           std::optional<std::string> scope = std::nullopt);
  Result<WriteReceipt> Delete(const std::string& key, std::optional<Token> token,
                              std::optional<std::string> scope = std::nullopt);
  // Raises the fence without writing the object: a new leader fences first.
  Result<WriteReceipt> RaiseFence(const std::string& key,
                                  std::optional<Token> token,
                                  std::optional<std::string> scope = std::nullopt);
  // Raises a scope's fence alone: every key's writes in the scope with a
  // lower token are refused from then on.
  Result<WriteReceipt> RaiseScope(const std::string& scope, std::optional<Token> token);
  // Lowers the key's fence from `expected` to `lowered_to` (both checked
  // against the committed fence by the committer, in order with every other
  // write of the key); not_found if never fenced, fence_moved if not
  // `expected`.
  Result<WriteReceipt> RepairFence(const std::string& key, Token expected, Token lowered_to);

  Result<StoredObject> Get(const std::string& key,
                           ReadFrom from = ReadFrom::kAnywhere) override;
  Result<FenceState> GetFence(const std::string& key,
                              ReadFrom from = ReadFrom::kAnywhere) override;
  Result<ScopeState> GetScope(const std::string& scope,
                              ReadFrom from = ReadFrom::kAnywhere) override;
  bool Healthy() const override { return storage_.Healthy(); }
  std::string UnhealthyReason() const override {
    return "storage refuses writes (the disk is full or failing); writes answer 507 "
           "and the store retries until storage recovers, with no restart needed";
  }

  std::uint64_t cached_bytes() const { return cache_.bytes(); }

  // Called on the committer thread after each group made durable, with the
  // number of writes it held (the writes that shared one WAL sync). Set
  // before the first write.
  void SetGroupObserver(std::function<void(std::size_t writes)> observer) override;

  // Refuses new writes ("shutting_down"), then waits until every queued
  // write is committed and answered. Idempotent.
  void Close() override;

 private:
  struct Queued {
    WriteRequest request;
    WriteDone done;
  };
  // A write the committer accepted into the current group.
  struct Staged {
    std::size_t index;  // into the group
    WriteReceipt receipt;
  };
  // The fences a write is decided against: the key's record (null for a
  // scope raise) and the scope's (null for an unscoped write).
  struct Fences {
    const KeyRecord* key = nullptr;
    const KeyRecord* scope = nullptr;
  };
  // What the fence rule makes of a write: the fences after it, and whether
  // the scope's record must be written.
  struct Admitted {
    std::optional<Token> key_highest;
    std::optional<Token> scope_highest;
    bool write_scope = false;
  };
  // The mutations of one accepted write: its key's, and its scope's if the
  // scope's fence moved.
  struct Decided {
    std::optional<KeyMutation> key;
    std::optional<KeyMutation> scope;
  };
  // Each key and scope as the group's earlier writes left them.
  struct GroupState {
    std::unordered_map<std::string, KeyRecord> keys;
    std::unordered_map<std::string, KeyRecord> scopes;
  };

  Result<WriteReceipt> WriteAndWait(WriteRequest request);
  void RunCommitter();
  bool TakeGroup(std::vector<Queued>& group);
  void CommitGroup(std::vector<Queued>& group);
  // Applies the fence rules to `request` on top of `current` and, if the
  // write may proceed, returns the mutations that make it.
  Result<Decided> Decide(WriteRequest& request, Fences current) const;
  Result<Admitted> Admit(const WriteRequest& request, Fences current) const;
  static Result<Decided> DecideRepairWrite(const WriteRequest& request, Fences current);
  Result<WriteReceipt> Stage(WriteRequest& request, GroupState& latest,
                             std::vector<KeyMutation>& batch);
  // Loads the write's key and scope records into `state` (once per group).
  Status LoadForGroup(const WriteRequest& request, GroupState& state);
  // The key's committed record: from the cache, else from the storage.
  Result<std::optional<KeyRecord>> LoadRecord(const std::string& key, ReadFrom from);
  Result<std::optional<KeyRecord>> LoadScope(const std::string& scope, ReadFrom from);
  // After a group's sync: the cache takes each key's new state.
  void CacheCommitted(std::vector<KeyMutation>& batch);

  Storage& storage_;
  const FencingMode mode_;
  const StoreServiceOptions options_;
  ObjectCache cache_;  // written only by the committer thread
  ObjectCache scope_cache_;  // scope records; written only by the committer
  std::function<void(std::size_t)> group_observer_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;  // GUARDED_BY(mu_)
  bool closed_ = false;       // GUARDED_BY(mu_)
  // Gathering a group (TakeGroup): the queue size that wakes the committer,
  // the last group's size, and how long its sync took.
  static constexpr std::chrono::microseconds kMaxGatherWait{2000};
  std::size_t wanted_ = 1;                  // GUARDED_BY(mu_)
  std::size_t last_group_writes_ = 0;       // GUARDED_BY(mu_)
  std::chrono::microseconds last_sync_{0};  // GUARDED_BY(mu_)
  std::thread committer_;     // last: starts once everything above exists
};

}  // namespace fence::store
