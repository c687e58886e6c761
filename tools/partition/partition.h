// fence-partition: the partition experiment (issue 8). The other cause of
// split-brain besides a pause is a partition. Three scenarios run inside a
// network namespace created for the run, each with its own fresh processes:
//
//   etcd        quorum lock, partitioned: a 3-member etcd cluster; leader A
//               talks only to member 3; {member 3, A} are cut off from
//               {members 1, 2, B}. A's lease cannot be renewed and expires, a
//               client on A's side cannot acquire (no quorum), B acquires on
//               the majority side with a higher token and writes; after the
//               heal A's stale write is fenced by the store.
//   naive       a primary fence-lockd and a standby the workers fall back to
//               (two counters). Cut {primary, A} from {standby, B}: both
//               sides elect a leader at once and the stale leader's token is
//               not lower, so its write is accepted.
//   worker-cut  the etcd cluster stays healthy; only A's traffic to it is
//               cut: A's lease expires, B takes over, A's write is fenced.
//
// Each scenario writes its process logs, a merged timeline.log, the iptables
// rules, and fence-logscan's findings into <out>/<scenario>/; the run writes
// summary.json and report.md into <out>.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tools/logscan/logscan.h"

namespace fence::tools::partition {

inline const std::vector<std::string> kScenarioNames = {"etcd", "naive", "worker-cut"};

struct PartitionOptions {
  std::string out_dir = "partition-out";
  std::vector<std::string> scenarios = kScenarioNames;
};

// One timed fact of a scenario, in ms after the cut (negative: before it).
struct Mark {
  std::string what;
  std::int64_t at_ms = 0;
};

struct ScenarioResult {
  std::string name;
  std::string title;
  std::string dir;
  bool ran = false;
  std::vector<std::string> problems;  // expected outcomes that did not happen
  std::int64_t cut_ts = 0;   // epoch ms
  std::int64_t heal_ts = 0;  // epoch ms
  std::string cut_rules;     // the iptables-restore input of the cut
  nlohmann::json facts = nlohmann::json::object();    // tokens, outcomes
  nlohmann::json figures = nlohmann::json::object();  // ms after the cut
  std::vector<logscan::LogEvent> timeline;             // our-schema events
  int logscan_exit = -1;
  nlohmann::json logscan = nlohmann::json::object();
  std::string logscan_report;

  bool passed() const { return ran && problems.empty(); }
};

struct PartitionResults {
  std::string namespace_name;
  std::string started_at;
  double elapsed_s = 0;
  std::vector<std::string> stale_namespaces_removed;
  std::vector<ScenarioResult> scenarios;
  std::vector<std::string> failures;  // setup failures
  bool passed() const;
};

// Runs the scenarios, writes the files, prints a one-line verdict per
// scenario. Exit code 0 only if every expected outcome happened; 1 if not;
// 3 if the machine cannot run the experiment (not root, no `ip netns`).
int RunPartition(const PartitionOptions& options);

// The hidden worker of the naive scenario: fence-worker's loop over the
// primary/standby fallback. Returns the exit code.
struct NaiveWorkerOptions {
  std::string id;
  std::string primary;
  std::string standby;
  std::string lock = "leader";
  std::string store;
  std::string key;
  std::int64_t ttl_ms = 3000;
  std::int64_t wait_ms = 1000;
  std::int64_t work_ms = 0;
  std::int64_t acquire_timeout_ms = 60000;
  int hold_renewals = 0;
  int terms = 1;
};
int RunNaiveWorker(const NaiveWorkerOptions& options);

// Renderers. Pure.
nlohmann::json SummaryJson(const PartitionResults& results);
std::string ReportMarkdown(const PartitionResults& results);

}  // namespace fence::tools::partition
