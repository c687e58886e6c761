// The lock service: the lease table (core) plus what makes it a daemon:
// durable tokens, random lease ids, a timer for the earliest expiry, timers
// for long-poll waiters, the post-restart grace period, logs and metrics.
//
// Concurrency: none inside. Every call (Start, the operations, and the
// Timers' callbacks) must come from one thread or strand: AsyncLockService
// runs it on an asio strand; unit tests drive it on a FakeClock and
// FakeTimers. Only GraceRemaining may be called from anywhere.
// Waiting never blocks a thread: a waiter is a queued callback plus a timer.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/clock.h"
#include "core/lease_table.h"
#include "core/result.h"
#include "lockd/metrics.h"
#include "lockd/token_journal.h"

namespace fence::lockd {

struct LockServiceOptions {
  Millis max_ttl{60000};
  Millis max_wait{30000};
  // No grant before this much time has passed since start: after a restart
  // the largest TTL ever granted (TokenJournal::grace()), so that no lease
  // granted before a crash can still be live; zero on a brand-new data
  // directory, where no lease can exist.
  Millis grace{0};
  std::string grace_source = "new_token_file";  // logged in grace_started
  std::size_t max_locks = 100000;    // locks held or in a lock-delay at once
  std::size_t max_waiters = 10000;   // acquires waiting at once
};

struct LockStatus {
  std::string name;
  std::string holder;
  Token token;
  Millis expires_in;
  Millis ttl;
  std::size_t waiters;
};

class LockService {
 public:
  using LeaseCallback = std::function<void(Result<Lease>)>;
  using StatusCallback = std::function<void(Result<LockStatus>)>;

  // `clock` is the clock `timers` run on; `timers`, `journal` and `metrics`
  // outlive the service. The grace period starts now.
  LockService(const Clock& clock, Timers& timers, TokenJournal& journal,
              LockdMetrics& metrics, LockServiceOptions options);
  ~LockService();  // cancels its timers; callbacks not yet answered are dropped
  LockService(const LockService&) = delete;
  LockService& operator=(const LockService&) = delete;

  // Arms the end of the grace period. Call once, before any operation.
  void Start();

  // `name`, `owner`, `ttl`, `wait` and `lock_delay` are already validated.
  // Errors: "held" (details holder, token, expires_in_ms, waited_ms, and
  // lock_delay_remaining_ms during a lock-delay), "starting" (details
  // retry_after_ms), "too_many_locks", "too_many_waiters", "shutting_down",
  // "storage_error". `done` runs at once or, for a waiter, from a later call
  // or timer. A waiter waits through a lock-delay like through a lease.
  void Acquire(std::string name, std::string owner, Millis ttl, Millis wait,
               Millis lock_delay, LeaseCallback done);
  // Errors: "lease_broken", "unknown_lease".
  void KeepAlive(LeaseId id, const LeaseCallback& done);
  // Errors: "lease_broken", "unknown_lease", "not_holder".
  void Release(const std::string& name, LeaseId id, const LeaseCallback& done);
  // Ends `name`'s lease at once (no lock-delay) and serves its waiters; the
  // audit log line names `reason` and `caller` (the peer's address).
  // `reason` is already validated. Errors: "not_held".
  void Break(const std::string& name, const std::string& reason,
             const std::string& caller, const LeaseCallback& done);
  // Errors: "not_held" (details waiters, grace_remaining_ms,
  // lock_delay_remaining_ms).
  void Status(const std::string& name, const StatusCallback& done);
  // Answers every waiter and every later acquire with "shutting_down", so a
  // drain does not wait out long polls.
  void Shutdown();

  Millis GraceRemaining() const;  // any thread: reads only the clock

 private:
  struct PendingWaiter {
    std::string name;
    std::string owner;
    LeaseCallback done;
    Timers::Id timer;
    Millis since;
  };

  void Wait(std::string name, std::string owner, Millis ttl, Millis wait,
            Millis lock_delay, LeaseCallback done);
  void OnWaitTimeout(WaiterId id);
  // Expires due leases (starting their lock-delays), ends due lock-delays
  // and the grace period, serves waiters of freed locks and re-arms the
  // expiry timer. Every operation starts here,
  // so a late timer never lets a dead lease look alive.
  void Tick();
  // Grants `name` to its waiters in order while it is free.
  void Serve(const std::string& name);
  // Removes the waiter and returns its callback (empty if it is gone).
  LeaseCallback TakeWaiter(WaiterId id, std::optional<Millis>* waited);
  void ArmExpiryTimer();
  void OnGranted(const Lease& lease, std::optional<Millis> waited);
  void OnFreed();
  void LogExpired(const Lease& lease);
  void LogDelayEnded(const LockDelay& delay);
  Result<Token> NextToken(Millis ttl);
  LeaseId NewLeaseId() const;
  Error Held(const std::string& name, const std::string& owner, Millis waited);
  Error Starting(const std::string& name, const std::string& owner);
  Error ShuttingDown(const std::string& name, const std::string& owner);
  void Refuse(const char* reason, nlohmann::json fields);

  const Clock& clock_;
  Timers& timers_;
  TokenJournal& journal_;
  LockdMetrics& metrics_;
  const LockServiceOptions options_;
  const Millis grace_until_;

  LeaseTable table_;
  bool granting_ = false;
  bool shutting_down_ = false;
  std::optional<Timers::Id> grace_timer_;
  std::optional<Timers::Id> expiry_timer_;
  std::optional<Millis> expiry_armed_for_;
  WaiterId next_waiter_id_ = 1;
  std::unordered_map<WaiterId, PendingWaiter> waiters_;
};

}  // namespace fence::lockd
