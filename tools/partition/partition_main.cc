// fence-partition: the partition experiment (issue 8, docs/partition.md).
// Needs root: it creates a network namespace of its own, starts every
// process inside it, cuts the network with iptables rules inside that
// namespace only, and removes the namespace on every exit path.
#include <algorithm>
#include <sstream>

#include "tools/partition/partition.h"
#include "tools/partition/partition_net.h"
#include "common/cli.h"
#include "common/logging.h"

namespace {

namespace part = fence::tools::partition;

// The naive scenario's workers: fence-worker's loop over a primary lockd
// with a fallback to a standby. Started by the experiment itself.
CLI::App* AddNaiveWorkerCommand(CLI::App& app, part::NaiveWorkerOptions& naive) {
  auto* worker = app.add_subcommand(
      "naive-worker",
      "(used by the experiment) a leader-elected worker whose lock client falls back from "
      "a primary fence-lockd to a standby when the primary is unreachable");
  worker->add_option("--id", naive.id, "owner name")->required();
  worker->add_option("--primary", naive.primary, "primary fence-lockd URL")->required();
  worker->add_option("--standby", naive.standby, "standby fence-lockd URL")->required();
  worker->add_option("--lock", naive.lock, "lock name")->capture_default_str();
  worker->add_option("--store", naive.store, "fence-store URL")->required();
  worker->add_option("--key", naive.key, "store key")->required();
  worker->add_option("--ttl-ms", naive.ttl_ms, "lease TTL")
      ->check(CLI::Range(std::int64_t{50}, std::int64_t{600000}))
      ->capture_default_str();
  worker->add_option("--wait-ms", naive.wait_ms, "one acquire long poll")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{600000}))
      ->capture_default_str();
  worker->add_option("--work-ms", naive.work_ms, "work before the write (lease renewed)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}))
      ->capture_default_str();
  worker->add_option("--acquire-timeout-ms", naive.acquire_timeout_ms, "give up after")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}))
      ->capture_default_str();
  worker->add_option("--hold-renewals", naive.hold_renewals, "renewals to stay leader after the write")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  worker->add_option("--terms", naive.terms, "terms to serve")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  return worker;
}

struct RunAsFlags {
  unsigned gid = 0;
  int parent = 0;
  std::vector<std::string> argv;
};

// Starts a process of the experiment under its role's group (used by the
// experiment itself, between `ip netns exec` and the program).
CLI::App* AddRunAsCommand(CLI::App& app, RunAsFlags& flags) {
  auto* run_as = app.add_subcommand(
      "run-as", "(used by the experiment) exec a program with a role's group id, killed "
                "when the experiment dies");
  run_as->add_option("--gid", flags.gid, "group id")->required();
  run_as->add_option("--parent", flags.parent, "pid of the experiment")->required();
  run_as->add_option("argv", flags.argv, "program (absolute path) and arguments, after --")
      ->required();
  return run_as;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "fence-partition";
  CLI::App app{
      "fence-partition: the partition experiment. In a network namespace of its own it runs "
      "three scenarios with real processes and iptables cuts: 'etcd' (a 3-member etcd "
      "cluster, leader A cut off with the minority member: A's lease expires, B is elected "
      "on the majority side with a higher token, A's stale write is fenced after the heal), "
      "'naive' (a primary and a standby fence-lockd with their own counters: both sides "
      "elect a leader and the stale leader's write is accepted) and 'worker-cut' (only A is "
      "cut off from a healthy etcd: fenced). Writes per-scenario logs, summary.json and "
      "report.md into --out. On a terminal one status line shows the step, what it waits "
      "for and the elapsed time (its JSON log then goes to <out>/fence-partition.log); "
      "piped, one line per step. Needs root. Exit 0: every expected outcome happened; 1: "
      "not; 3: this machine cannot run it.",
      program};
  part::PartitionOptions options;
  std::string scenarios = "etcd,naive,worker-cut";
  app.add_option("--out", options.out_dir, "output folder")->capture_default_str();
  app.add_option("--scenarios", scenarios, "comma-separated subset of etcd,naive,worker-cut")
      ->capture_default_str();

  part::NaiveWorkerOptions naive;
  auto* worker = AddNaiveWorkerCommand(app, naive);
  RunAsFlags run_as_flags;
  auto* run_as = AddRunAsCommand(app, run_as_flags);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;

  if (run_as->parsed()) {
    return part::RunAs(run_as_flags.gid, run_as_flags.parent, run_as_flags.argv);
  }
  if (worker->parsed()) {
    fence::log::Init("worker");
    return part::RunNaiveWorker(naive);
  }
  options.scenarios = fence::SplitCommaList(scenarios);
  for (const auto& s : options.scenarios) {
    if (std::find(part::kScenarioNames.begin(), part::kScenarioNames.end(), s) ==
        part::kScenarioNames.end()) {
      return fence::FailStartup(program, "--scenarios: unknown scenario '" + s +
                                             "'; expected a comma-separated subset of "
                                             "etcd,naive,worker-cut");
    }
  }
  if (options.scenarios.empty()) {
    return fence::FailStartup(program, "--scenarios is empty; expected etcd,naive,worker-cut");
  }
  fence::log::Init("partition");
  return part::RunPartition(options);
}
