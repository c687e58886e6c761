// The two measurements no off-the-shelf client makes: a lock cycle (lockd's
// acquire+release against etcd's lease grant + lock + unlock + revoke, each
// step one HTTP call on a new connection for both), and the memory of a
// fresh fence-store loaded with many small keys (through wrk).
#pragma once

#include <functional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "tools/bench/load.h"
#include "tools/bench/report.h"

namespace fence::tools::bench {

// Runs `cycle(client)` in a loop on `clients` threads until `duration`
// passes or `max_cycles` cycles (all threads together) have started. The
// rate counts completed cycles; a cycle that fails counts as an error, not
// as a completion.
Result<Measured> RunCycles(int clients, Millis duration, long max_cycles,
                           const std::function<Status(int client)>& cycle);

// One acquire+release of lock "bench-<client>" at fence-lockd `url`.
Status LockdCycle(const std::string& url, int client);
// One lease grant + lock "bench-<client>" + unlock + lease revoke at etcd's
// JSON gateway `url`.
Status EtcdLockCycle(const std::string& url, int client);

// Loads `keys` keys of `body` bytes into the fence-store at `url` (process
// `pid`) with wrk (`connections` connections, keep-alive), bounded by
// `limit`, then reads the store's VmRSS and VmHWM from /proc. `dir` holds
// the wrk script.
struct MemoryLoad {
  std::string url;
  int pid = 0;
  long keys = 1000000;
  std::size_t body = 256;
  int connections = 64;
  Millis limit{300000};
  std::string dir;
};
Result<MemoryFigure> LoadAndMeasureMemory(const MemoryLoad& load);

// The sum of counter `name` at `url`/metrics, or nullopt if it is absent or
// the scrape failed.
std::optional<double> ScrapeMetric(const std::string& url, const std::string& name);

}  // namespace fence::tools::bench
