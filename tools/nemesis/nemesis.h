// fence-nemesis: several real fence-worker processes contend for one lock
// and write shared keys through a real fence-store, while a seeded nemesis
// injects faults: SIGSTOP/SIGCONT of workers for lengths around the TTL,
// kill -9 and restart of the store and of fence-lockd, and freezes
// (SIGSTOP) of etcd or ZooKeeper. Every worker records its calls as a
// history (fence-worker --history); the nemesis adds its faults and, once
// every fault has stopped, a final read of every key. fence-check-history
// then judges the run from those files alone.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace fence::tools::nemesis {

// Fault kinds, as --faults names them.
inline constexpr std::string_view kPause = "pause";          // SIGSTOP a worker
inline constexpr std::string_view kPartition = "partition";  // cut a worker off
inline constexpr std::string_view kKillStore = "kill-store";
inline constexpr std::string_view kKillLockd = "kill-lockd";
inline constexpr std::string_view kFreeze = "freeze";  // SIGSTOP etcd or ZooKeeper

struct NemesisOptions {
  std::string backend = "lockd";  // lockd, etcd or zookeeper
  int workers = 3;
  int keys = 2;
  Millis duration{30000};  // faults are injected for this long
  std::uint64_t seed = 0;
  std::string dir;         // run directory: histories, logs, data
  bool fencing = true;     // false: the store runs --fencing off (control run)
  Millis ttl{1000};        // the workers' lease TTL
  Millis write_delay{200}; // fence-worker --write-delay-ms
  Millis fault_gap{1500};  // mean time between the starts of two faults
  // Run every process in a network namespace of its own and add network
  // partitions to the faults (needs root, iproute2 and iptables; lockd only:
  // etcd and ZooKeeper are started outside any namespace).
  bool partitions = false;
  // The fault kinds to draw from; those a run cannot make are skipped.
  std::set<std::string> faults = {std::string(kPause), std::string(kPartition),
                                  std::string(kKillStore), std::string(kKillLockd),
                                  std::string(kFreeze)};
};

struct NemesisRun {
  std::map<std::string, int> faults;  // by kind
  std::string history_dir;            // every *.jsonl file in it is the history
  int worker_restarts = 0;            // workers that exited and were started again
};

// Runs the processes and the faults, then the final reads. Errors (code
// "nemesis_failed") say which process could not be started or read.
Result<NemesisRun> RunNemesis(const NemesisOptions& options);

// The final read of each key from the store at `store_url`: one history line
// (type "final") per key. Run in the processes' namespace when there is one
// (fence-nemesis final-read).
Result<std::vector<std::string>> ReadFinalLines(const std::string& store_url,
                                                const std::vector<std::string>& keys);

}  // namespace fence::tools::nemesis
