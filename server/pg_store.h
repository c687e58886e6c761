// The PostgreSQL backend: PostgreSQL applies the fence rule in the statement
// that commits each write (server/pg_schema.cc), so any number of
// fence-store processes may serve the same keys with no coordination among
// them. No object cache: another process may have written any key since.
//
// Writes run on `pool size` worker threads behind a bounded queue, one
// statement each, and are answered after PostgreSQL reports the commit. A
// write whose connection broke after it was sent has an unknown outcome:
// it is answered 503 commit_unknown, never 200.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "server/pg_pool.h"
#include "server/storage_queue.h"
#include "server/store_backend.h"

namespace fence::store {

struct PgStoreOptions {
  PgPoolOptions pool;
  // Writes waiting for a worker at once; one more is refused with
  // "overloaded" at once rather than made to wait.
  std::size_t max_queued_writes = 4096;
  // How often the database is probed (and the schema installed, until it
  // is): /readyz follows it.
  std::chrono::milliseconds probe_interval{500};
};

class PgStore final : public StoreBackend {
 public:
  // Never waits for the database: until it answers, writes and reads get
  // 503 storage_unavailable and /readyz says why.
  explicit PgStore(PgStoreOptions options);
  ~PgStore() override;  // Close()
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  Status Precheck(const std::string& key, std::optional<Token> token,
                  const std::optional<std::string>& scope, ReadFrom from) override;
  void Write(WriteRequest request, WriteDone done) override;
  Result<StoredObject> Get(const std::string& key, ReadFrom from) override;
  Result<FenceState> GetFence(const std::string& key, ReadFrom from) override;
  Result<ScopeState> GetScope(const std::string& scope, ReadFrom from) override;
  bool Healthy() const override { return healthy_.load(); }
  std::string UnhealthyReason() const override;
  void SetGroupObserver(std::function<void(std::size_t writes)> observer) override;
  void Close() override;

  // Blocks until the database has answered and the schema is installed, or
  // `timeout` passes; true if ready.
  bool WaitReady(std::chrono::milliseconds timeout);

 private:
  Result<WriteReceipt> Apply(const WriteRequest& request);
  Result<WriteReceipt> ApplyRepair(const WriteRequest& request);
  Result<PgPool::Lease> LeaseForWrite();
  Error CommitUnknown(const WriteRequest& request, const std::string& why);
  Status Reachable() const;
  void RunProbe();
  Status Probe();
  // Records a failure that may mean the database is gone: /readyz turns not
  // ready at once and the idle connections (dead too) are dropped.
  void MarkUnavailable(const std::string& why);

  const PgStoreOptions options_;
  PgPool pool_;
  std::atomic<bool> healthy_{false};
  std::atomic<bool> schema_ready_{false};

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::string unhealthy_reason_;  // GUARDED_BY(mu_)
  std::function<void(std::size_t)> observer_;  // GUARDED_BY(mu_)
  bool closed_ = false;  // GUARDED_BY(mu_)
  bool reported_down_ = false;  // GUARDED_BY(mu_): storage_unavailable logged

  StorageQueue writers_;
  std::thread prober_;  // last: starts once everything above exists
};

}  // namespace fence::store
