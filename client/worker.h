// The leader-elected worker behind fence-worker: elect through a LockBackend,
// renew the lease on its own thread, do some work, write the result with the
// term's fencing token, and stop acting as leader the moment it learns a
// newer leader exists (lease lost, or the store answered 409 stale_token).
//
// Every seam is injected (lock backend, store, pauser, event sink) so the
// decisions are unit-tested with fakes; fence-worker wires the real ones.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/lock_backend.h"
#include "client/store_client.h"
#include "core/clock.h"
#include "core/leader_lease.h"
#include "core/result.h"

namespace fence::client {

// Parses --inject-pause: "before-write:DURATION", DURATION = 1*DIGIT "ms" or
// 1*DIGIT "s", between 1 ms and 1 hour. Error code "bad_pause" otherwise.
Result<Millis> ParsePauseSpec(std::string_view spec);

struct WorkerConfig {
  std::string id;   // owner name, e.g. "A"
  std::string lock;
  // The store keys the leader fences first and writes, in this order.
  std::vector<std::string> keys;
  Millis ttl{2000};
  Millis renew_interval{0};        // 0: see LeaderLease::RenewInterval
  Millis acquire_wait{5000};       // one long poll of Acquire
  Millis acquire_timeout{60000};   // give up becoming leader after this long
  bool fencing = true;             // false: write without a token (demo only)
  // With fencing: the lock's name is the store scope. The leader raises the
  // scope's fence on election, so an old leader is fenced on every key of
  // the job, not only the keys this leader writes. The store client must
  // then send the scope with every write (fence-worker sets it).
  bool scope_fencing = true;
  std::optional<Millis> pause_before_write;  // in the first term only
  Millis work{0};         // time spent working (lease renewed) before writing
  // Time from the last lease check to each write: the job's last step
  // (serializing, a slow disk), not cut short by a lost lease, as no real
  // job re-checks mid-step. A pause that lands in it makes the write stale.
  Millis write_delay{0};
  int hold_renewals = 0;  // renewals to wait for after the write, then resign
  int terms = 0;          // terms to serve; 0: until Stop()
  std::string payload;
};

// Stops the whole process for about `duration` and returns how long it was
// actually stopped. A sleep is not a pause: a sleeping process keeps
// renewing its lease from its other thread.
class Pauser {
 public:
  virtual ~Pauser() = default;
  virtual Result<Millis> Pause(Millis duration) = 0;
};

// SIGSTOPs the worker process itself after forking a small resumer process
// that sends SIGCONT once `duration` has passed. The resumer holds no file
// descriptor of ours (its stdout/stderr are /dev/null), so nobody reading our
// log pipe is kept waiting by it.
class ProcessPauser final : public Pauser {
 public:
  explicit ProcessPauser(const Clock& clock) : clock_(clock) {}
  Result<Millis> Pause(Millis duration) override;

 private:
  const Clock& clock_;
};

enum class EventLevel { kInfo, kWarn, kError };
// Receives every worker event (names from core/log_event.h); fence-worker
// sends them to fence::log, tests record them.
using EventSink =
    std::function<void(EventLevel, std::string_view event, const nlohmann::json&)>;

// What the worker does after a write, decided from the store's answer alone.
enum class WriteVerdict {
  kKeepLeading,  // accepted
  kFenced,       // 409 stale_token: a newer leader exists; never retry
  kStepDown,     // any other failure: the outcome is unknown, stop leading
};
WriteVerdict JudgeWrite(const Result<PutResult>& put);

// How one term ended.
enum class TermEnd {
  kWritten,      // the write was accepted
  kFenced,       // the store refused the write as stale
  kLeaseLost,    // the lease was lost before the write
  kStoreError,   // the write failed otherwise; stepped down
  kNotElected,   // acquire_timeout passed without a grant
  kFailed,       // the lock service refused us as invalid, or a pause failed
  kStopped,      // Stop() was called
};
std::string_view TermEndName(TermEnd end);

struct TermReport {
  TermEnd end = TermEnd::kStopped;
  std::optional<Token> token;
  std::optional<PutResult> put;
  std::optional<Error> error;
  bool lease_lost = false;  // the lease was lost at some point in the term
};

class Worker {
 public:
  // `clock` is the worker's monotonic clock (fence::MonotonicClock in
  // production): every lease and wait decision reads it.
  Worker(WorkerConfig config, LockBackend& backend, ObjectStore& store,
         Pauser& pauser, const Clock& clock, EventSink sink);
  ~Worker();

  // Serves one term, a list of steps: acquire, start renewing, fence first,
  // work, then per key: last lease check (+ injected pause), write, judge
  // the answer; leave the term.
  // Always leaves the keep-alive thread stopped.
  TermReport RunTerm();
  // Serves config.terms terms (or until Stop) and returns the exit code:
  // 0 when every term ended as a leader should (written, fenced, lease lost),
  // 1 when a term ended in an error or without being elected.
  int Run();
  // Thread-safe: ends waits and makes Run return after the current step.
  void Stop();
  // Wakes every wait to re-read the clock: a test that moved a simulated
  // clock calls it, since waits sleep on the real one.
  void WakeForTest();

 private:
  // One term's facts, passed from step to step.
  struct Term {
    LockGrant grant;
    TermReport report;
    Millis elected_at{0};  // clock time, read before `elected` is logged
  };

  // The steps of a term. Each returns false when it ended the term.
  std::optional<LockGrant> AcquireLock(TermReport& report, Millis& sent);
  void StartRenewing(Term& term, Millis acquire_sent);
  bool FenceFirst(Term& term);
  bool FenceScope(Term& term);
  bool Work(Term& term);
  bool CheckLease(Term& term);
  bool InjectPause(Term& term);
  void LastStepBeforeWrite();
  Result<PutResult> Write(Term& term, const std::string& key);
  bool JudgeAnswer(Term& term, const std::string& key, const Result<PutResult>& put);
  void Resign(Term& term);
  // After a term that ended on a store error: logs store_unavailable, waits
  // `backoff` by the worker's clock, then doubles it (up to a maximum).
  void BackOffFromStore(const TermReport& report, Millis& backoff);
  static constexpr Millis kFirstStoreBackoff{100};
  static constexpr Millis kMaxStoreBackoff{2000};

  // The store refused our token on `key` (at `step`): proof that a newer
  // leader exists. Logs `fenced` and ends the term; returns false.
  bool Fenced(Term& term, const std::string& key, const PutResult& answer,
              std::string_view step);
  // The store failed otherwise (`reason`): steps down. Returns false.
  bool StoreFailed(Term& term, const std::string& key, const Error& error,
                   std::string_view reason);

  // The TTL the worker counts with: the shorter of asked and granted.
  Millis LeaseTtl(const LockGrant& grant) const;
  // After a grant whose acquire took longer than a renewal interval (a long
  // poll), confirms the lease with one keep-alive and moves `sent` to it.
  // False (lock released) if the lease could not be confirmed.
  bool ConfirmGrant(const LockGrant& grant, Millis& sent);
  // Decides what one refused acquire means: true to ask again (after a
  // short wait), false when the term ends unelected.
  bool RetryAcquire(TermReport& report, const Error& error, Millis asked_at, Millis waited,
                    Millis& backoff);
  nlohmann::json TermFields(const Term& term, nlohmann::json fields) const;
  void Emit(EventLevel level, std::string_view event, nlohmann::json fields);
  // Logs a term-ending event once per term: a term is bounded by `elected`
  // and the first of lease_lost, fenced, stepped_down, resigned.
  bool EndTerm(EventLevel level, std::string_view event, nlohmann::json fields);
  // Ends the term as `end`: logs `event` first (the worker has stopped
  // acting as leader; nothing is logged if the keep-alive thread already
  // ended the term), then stops renewing and releases the lock, so no new
  // leader is ever elected while our term still looks open.
  void LeaveTerm(Term& term, TermEnd end, EventLevel level, std::string_view event,
                 nlohmann::json fields);
  // The same without an event of its own (the caller logged it).
  void CloseTerm(Term& term, TermEnd end);
  void KeepAliveLoop(Token term);
  // The keep-alive thread found the lease gone: marks it lost, ends the
  // term and logs lease_lost (unless the term had already ended). Unlocks.
  void LoseLease(std::unique_lock<std::mutex>& lock, Token term, std::string_view reason,
                 const std::string& message);
  void StopKeepAlive();
  // Waits until `done` holds or the clock reaches `until`; the caller holds
  // `lock` on mu_. Returns true if `done` held.
  bool WaitLocked(std::unique_lock<std::mutex>& lock, Millis until,
                  const std::function<bool()>& done);
  // Waits until `done` holds, the lease is lost, Stop is called or the
  // clock reaches `until`. Returns true if `done` held.
  bool WaitFor(Millis until, const std::function<bool()>& done);
  bool stopped() const;
  bool lost() const;

  const WorkerConfig config_;
  LockBackend& backend_;
  ObjectStore& store_;
  Pauser& pauser_;
  const Clock& clock_;
  EventSink sink_;
  bool pause_done_ = false;  // the pause is injected in the first term only

  // Shared with the keep-alive thread; all GUARDED_BY(mu_).
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool stop_ = false;
  bool keepalive_stop_ = false;
  bool lease_lost_ = false;
  bool term_open_ = false;
  int renewals_ = 0;
  std::optional<LeaderLease> lease_;
  std::thread keepalive_;
};

}  // namespace fence::client
