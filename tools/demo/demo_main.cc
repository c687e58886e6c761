// fence-demo: the split-brain, staged with real processes and real SIGSTOP,
// without and with fencing; writes logs, summary.json, the TTL trade-off and
// report.md and report.html into --out. Exits non-zero, naming it, if any expected outcome
// did not happen.
#include <signal.h>

#include <sstream>

#include "tools/demo/demo.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/tls.h"
#include "core/result.h"

namespace {

// The flags as typed; ToOptions turns them into DemoOptions.
struct Flags {
  fence::tools::demo::DemoOptions options;
  std::int64_t ttl_ms = options.ttl.count();
  std::int64_t margin_ms = 0;
  std::string endpoints;
  std::string tradeoff = "250,500,1000,2000";
  std::int64_t stall_median = 300;
};

void AddOptions(CLI::App& app, Flags& f) {
  auto& o = f.options;
  app.add_option("--out", o.out_dir, "output folder (created; files in it are replaced)")
      ->capture_default_str();
  app.add_option("--backend", o.backend, "lock service to elect with")
      ->check(CLI::IsMember({"lockd", "etcd", "zookeeper"}))
      ->capture_default_str();
  app.add_option("--ttl-ms", f.ttl_ms,
                 "lease TTL asked for the unfenced, fenced and failover runs (the runs use what "
                 "the lock service grants; etcd and ZooKeeper may raise it)")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{10000}))
      ->capture_default_str();
  app.add_option("--lock-endpoints", f.endpoints,
                 "use this running lock service (comma-separated) instead of starting one; https:// "
                 "URLs with --tls-ca (and --tls-cert/--tls-key), passed on to the workers");
  app.add_option("--pause-margin-ms", f.margin_ms,
                 "A is stopped for the granted TTL + this margin; 0 picks max(1000, TTL)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000}))
      ->capture_default_str();
  app.add_option("--failover-trials", o.failover_trials, "failover trials at --ttl-ms")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  app.add_option("--tradeoff-ttls", f.tradeoff,
                 "comma-separated TTLs (ms) asked in the trade-off; TTLs granted as the same "
                 "lease share one row; 'none' skips it")
      ->capture_default_str();
  app.add_option("--tradeoff-trials", o.tradeoff_failover_trials,
                 "failover trials per trade-off TTL")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_option("--stall-trials", o.stall_trials, "stalled healthy leaders per trade-off TTL")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  app.add_option("--stall-median-ms", f.stall_median, "median of the log-normal stall durations")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10000}))
      ->capture_default_str();
  app.add_option("--stall-sigma", o.stalls.sigma, "sigma of the log-normal stall durations")
      ->check(CLI::Range(0.0, 3.0))
      ->capture_default_str();
  app.add_option("--stall-max-ms", o.stalls.max_ms, "stalls are clamped to at most this")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{10000}))
      ->capture_default_str();
  app.add_option("--seed", o.stalls.seed, "seed of the stall durations")->capture_default_str();
}

// --tradeoff-ttls: "none", or up to 8 TTLs in ms from 100 to 10000.
fence::Result<std::vector<std::int64_t>> ParseTradeoffTtls(const std::string& text) {
  std::vector<std::int64_t> ttls;
  if (text == "none") return ttls;
  for (const auto& item : fence::SplitCommaList(text)) {
    std::int64_t v = 0;
    std::size_t used = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 100 || v > 10000) {
      return fence::MakeError("bad_flag", "--tradeoff-ttls: '" + item +
                                              "' is not a TTL in ms from 100 to 10000; "
                                              "expected e.g. 250,500,1000,2000 or none");
    }
    ttls.push_back(v);
  }
  if (ttls.size() > 8) return fence::MakeError("bad_flag", "--tradeoff-ttls: at most 8 TTLs");
  return ttls;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "fence-demo";
  CLI::App app{
      "fence-demo: starts a lock service and fence-store on free loopback ports and stages the "
      "split-brain with two fence-worker processes: leader A is stopped (SIGSTOP) past its lease, "
      "B takes over and writes, A resumes and writes. Without fencing A's stale write wins; with "
      "fencing the store refuses it (409). Also: a bypass write, failover timing, the lease "
      "TTL trade-off and, with lockd, a lock-delay run (failover = TTL + delay) and an "
      "operator's audited lease break. Writes report.md, report.html (timelines of the runs) and the evidence "
      "into --out.",
      program};
  Flags flags;
  AddOptions(app, flags);
  fence::net::AddTlsClientFlags(app, flags.options.tls);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  if (auto tls = fence::net::ConfigureClientTls(flags.options.tls); !tls.ok()) {
    return fence::FailStartup(program, tls.error().message);
  }

  auto& o = flags.options;
  o.ttl = fence::Millis(flags.ttl_ms);
  o.pause_margin = fence::Millis(flags.margin_ms);
  o.stalls.median_ms = static_cast<double>(flags.stall_median);
  o.lock_endpoints = fence::SplitCommaList(flags.endpoints);
  auto ttls = ParseTradeoffTtls(flags.tradeoff);
  if (!ttls.ok()) return fence::FailStartup(program, ttls.error().message);
  o.tradeoff_ttls = std::move(*ttls);
  signal(SIGPIPE, SIG_IGN);
  fence::log::Init("demo");
  return fence::tools::demo::RunDemo(o);
}
