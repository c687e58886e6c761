// fence-nemesis: a seeded fault run over real workers, store and lock
// service, judged by fence-check-history from the recorded history alone.
// Exit status: the checker's (0 no violation, 1 violations), 2 when the run
// itself could not be made (bad flags, a process that would not start).
#include <stdlib.h>

#include <filesystem>
#include <iostream>
#include <random>

#include "common/cli.h"
#include "common/logging.h"
#include "common/process.h"
#include "tools/nemesis/nemesis.h"
#include "tools/partition/partition_net.h"

namespace {

constexpr const char* kProgram = "fence-nemesis";

}  // namespace

int main(int argc, char** argv) {
  namespace nem = fence::tools::nemesis;
  CLI::App app{
      "fence-nemesis: runs fence-worker processes contending for one lock and writing shared "
      "keys through fence-store while a seeded nemesis pauses workers (SIGSTOP) for about a "
      "TTL, kills and restarts the store and fence-lockd (kill -9) or freezes etcd or "
      "ZooKeeper; every call is recorded as a history, and fence-check-history judges it. "
      "--fencing off runs the store unfenced: the control run the checker must flag.",
      kProgram};
  nem::NemesisOptions o;
  std::int64_t seconds = 30, ttl_ms = 1000, write_delay_ms = 200, fault_gap_ms = 1500;
  std::string fencing = "on";
  std::optional<std::uint64_t> seed;
  app.add_option("--backend", o.backend, "lock service")
      ->check(CLI::IsMember({"lockd", "etcd", "zookeeper"}))
      ->capture_default_str();
  app.add_option("--seconds", seconds, "how long faults are injected")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400}))
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the fault schedule (printed; random if not given)");
  app.add_option("--workers", o.workers, "fence-worker processes")
      ->check(CLI::Range(2, 20))
      ->capture_default_str();
  app.add_option("--keys", o.keys, "keys every leader writes")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--ttl-ms", ttl_ms, "the workers' lease TTL (etcd rounds up to whole seconds)")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{60000}))
      ->capture_default_str();
  app.add_option("--write-delay-ms", write_delay_ms,
                 "each worker's time from its last lease check to its write")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000}))
      ->capture_default_str();
  app.add_option("--fault-gap-ms", fault_gap_ms, "mean time between faults")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{600000}))
      ->capture_default_str();
  app.add_option("--fencing", fencing, "the store's --fencing: 'off' is the control run")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  std::vector<std::string> faults;
  app.add_option("--faults", faults,
                 "fault kinds to draw from, comma-separated: pause, partition, kill-store, "
                 "kill-lockd, freeze (default all; those the run cannot make are skipped)")
      ->delimiter(',')
      ->check(CLI::IsMember({"pause", "partition", "kill-store", "kill-lockd", "freeze"}));
  std::string partitions = "auto";
  app.add_option("--partitions", partitions,
                 "also cut workers off the lock service and the store, every process in a "
                 "network namespace of its own (root, iproute2, iptables; lockd only); "
                 "'auto' does so where possible")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--dir", o.dir, "run directory (default: a new one under $TMPDIR or /tmp)");
  std::string final_store;
  std::vector<std::string> final_keys;
  auto* final_read = app.add_subcommand(
      "final-read", "(used by the run itself, inside its namespace) print the final read of "
                    "each key as history lines");
  final_read->add_option("--store", final_store, "fence-store URL")->required();
  final_read->add_option("--key", final_keys, "key to read")->required();
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  if (final_read->parsed()) {
    auto lines = nem::ReadFinalLines(final_store, final_keys);
    if (!lines.ok()) return fence::FailStartup(kProgram, lines.error().message);
    for (const std::string& line : *lines) std::cout << line << "\n";
    return 0;
  }
  const auto missing = fence::tools::partition::MissingPrerequisite();
  if (partitions == "on" && missing) return fence::FailStartup(kProgram, "--partitions on: " + *missing);
  if (!faults.empty()) o.faults = {faults.begin(), faults.end()};
  o.partitions = partitions == "on" || (partitions == "auto" && !missing && o.backend == "lockd");
  o.duration = fence::Millis(seconds * 1000);
  o.ttl = fence::Millis(ttl_ms);
  o.write_delay = fence::Millis(write_delay_ms);
  o.fault_gap = fence::Millis(fault_gap_ms);
  o.fencing = fencing == "on";
  o.seed = seed.value_or(std::random_device{}());
  if (o.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/fence-nemesis.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return fence::FailStartup(kProgram, "cannot create a run directory in " + pattern);
    }
    o.dir = pattern;
  }
  fence::log::Init("nemesis");
  std::cout << "nemesis: backend " << o.backend << ", seed " << o.seed << " (--seed), "
            << seconds << " s, store fencing " << fencing << ", partitions "
            << (o.partitions ? "on" : "off") << ", run directory " << o.dir
            << std::endl;

  auto run = nem::RunNemesis(o);
  if (!run.ok()) {
    std::cerr << kProgram << ": " << run.error().message << "\n";
    return 2;
  }
  std::vector<std::string> argv_check = {fence::SiblingBinary("fence-check-history")};
  for (const auto& entry : std::filesystem::directory_iterator(run->history_dir)) {
    argv_check.push_back(entry.path().string());
  }
  auto checked = fence::RunToCompletion({argv_check, "", {}}, fence::Millis(600000));
  if (!checked.ok()) {
    std::cerr << kProgram << ": fence-check-history: " << checked.error().message << "\n";
    return 2;
  }
  std::cout << checked->Output();
  std::cout << "faults:";
  for (const auto& [kind, count] : run->faults) std::cout << " " << kind << "=" << count;
  std::cout << ", workers restarted " << run->worker_restarts << "; seed " << o.seed
            << "; history in " << run->history_dir << std::endl;
  return checked->exit_code == 0 || checked->exit_code == 1 ? checked->exit_code : 2;
}
