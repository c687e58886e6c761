// The leader-elected worker behind fence-worker: elect through a LockBackend,
// renew the lease on its own thread, do some work, write the result with the
// term's fencing token, and stop acting as leader the moment it learns a
// newer leader exists (lease lost, or the store answered 409 stale_token).
//
// Every seam is injected (lock backend, store, pauser, event sink) so the
// decisions are unit-tested with fakes; fence-worker wires the real ones.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "client/lock_backend.h"
#include "client/store_client.h"
#include "core/clock.h"
#include "core/result.h"

namespace fence::client {

// Parses --inject-pause: "before-write:DURATION", DURATION = 1*DIGIT "ms" or
// 1*DIGIT "s", between 1 ms and 1 hour. Error code "bad_pause" otherwise.
Result<Millis> ParsePauseSpec(std::string_view spec);

struct WorkerConfig {
  std::string id;   // owner name, e.g. "A"
  std::string lock;
  std::string key;  // the store key the leader writes
  Millis ttl{2000};
  Millis renew_interval{0};        // 0: a third of the TTL
  Millis acquire_wait{5000};       // one long poll of Acquire
  Millis acquire_timeout{60000};   // give up becoming leader after this long
  bool fencing = true;             // false: write without a token (demo only)
  std::optional<Millis> pause_before_write;  // in the first term only
  Millis work{0};         // time spent working (lease renewed) before writing
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
  Result<Millis> Pause(Millis duration) override;
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
  Worker(WorkerConfig config, LockBackend& backend, ObjectStore& store,
         Pauser& pauser, EventSink sink);
  ~Worker();

  // Serves one term: acquire, renew, work, (pause), write, then resign or
  // step down. Always leaves the keep-alive thread stopped.
  TermReport RunTerm();
  // Serves config.terms terms (or until Stop) and returns the exit code:
  // 0 when every term ended as a leader should (written, fenced, lease lost),
  // 1 when a term ended in an error or without being elected.
  int Run();
  // Thread-safe: ends waits and makes Run return after the current step.
  void Stop();

 private:
  void Emit(EventLevel level, std::string_view event, nlohmann::json fields);
  // Logs a term-ending event once per term: a term is bounded by `elected`
  // and the first of lease_lost, fenced, stepped_down, resigned.
  bool EndTerm(EventLevel level, std::string_view event, nlohmann::json fields);
  void KeepAliveLoop(Token term);
  // Ends the term as its leader chose to: logs `event` first (the worker has
  // stopped acting as leader), then stops renewing and releases the lock, so
  // no new leader is ever elected while our term still looks open.
  void LeaveTerm(EventLevel level, std::string_view event, nlohmann::json fields);
  void StopKeepAlive();
  // Waits until `done` holds, the lease is lost, Stop is called or `until`
  // passes. Returns true if `done` held.
  bool WaitFor(std::chrono::steady_clock::time_point until,
               const std::function<bool()>& done);
  Millis LeaseRemaining() const;

  const WorkerConfig config_;
  LockBackend& backend_;
  ObjectStore& store_;
  Pauser& pauser_;
  EventSink sink_;
  bool pause_done_ = false;  // the pause is injected in the first term only

  // Shared with the keep-alive thread; all GUARDED_BY(mu_).
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool stop_ = false;
  bool keepalive_stop_ = false;
  bool lease_lost_ = false;
  bool term_open_ = false;
  std::optional<Token> term_;
  int renewals_ = 0;
  std::chrono::steady_clock::time_point last_renew_sent_;
  std::thread keepalive_;
};

}  // namespace fence::client
