// What the store loop and the lockd loop share: starting and killing the
// daemon under test, the seeded kill moment, the deadline, and reporting
// violations as they are found.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/process.h"
#include "tools/crashloop/crashloop.h"

namespace fence::crashloop {

using SteadyClock = std::chrono::steady_clock;

// The machine's monotonic clock, as a duration since its epoch.
inline std::chrono::nanoseconds MonotonicNow() {
  return SteadyClock::now().time_since_epoch();
}

// Starts `binary` (a sibling of this one) on a free loopback port with
// `--data-dir data_dir`, appending its output to `log_path`.
Result<ListeningDaemon> StartDaemon(const std::string& binary, const std::string& data_dir,
                                    const std::string& log_path);

// SIGKILLs the daemon and reaps it; logs "daemon_killed".
void KillDaemon(ListeningDaemon& daemon, int kill, std::chrono::milliseconds after);

// A seeded delay in [min_ms, max_ms].
std::chrono::milliseconds KillDelay(std::mt19937_64& rng, int min_ms, int max_ms);

// Runs `worker(i, stop)` on `count` threads; after `delay` (the seeded kill
// moment) sets `stop`, then calls `end` (which kills or stops the daemon),
// then joins them. Workers stop starting requests before the daemon dies,
// so what goes unanswered is what was in flight at the kill (and, rarely,
// one request racing the flag).
void RunWorkersUntil(int count, std::chrono::milliseconds delay,
                     const std::function<void(int, const std::atomic<bool>&)>& worker,
                     const std::function<void()>& end);

// Sleeps up to `delay`, in short steps, returning early once `stop` is set.
// A pacing delay of the workload, not a wait for an event.
void PauseUnlessStopped(const std::atomic<bool>& stop, std::chrono::milliseconds delay);

// Logs each violation (kill number set to `kill` if still 0) and appends it.
void Report(std::vector<Violation> found, int kill, std::uint64_t seed,
            std::vector<Violation>& all);

// The bound of the whole run.
class Deadline {
 public:
  explicit Deadline(double seconds)
      : start_(SteadyClock::now()),
        end_(start_ + std::chrono::duration_cast<SteadyClock::duration>(
                          std::chrono::duration<double>(seconds))) {}
  bool Passed() const { return SteadyClock::now() >= end_; }
  double Elapsed() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

 private:
  SteadyClock::time_point start_;
  SteadyClock::time_point end_;
};

}  // namespace fence::crashloop
