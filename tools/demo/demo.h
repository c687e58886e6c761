// fence-demo: stages the split-brain with real processes (a lock service,
// fence-store, fence-worker A and B), once without fencing and once with it,
// then the bypass write, the failover measurement and the TTL trade-off, with
// lockd also a lock-delay run and an operator's lease break, and writes the
// evidence (logs, summary.json, CSV, SVG, report.md, report.html).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tools/demo/demo_logs.h"
#include "tools/demo/demo_signing.h"
#include "common/tls.h"
#include "core/clock.h"

namespace fence::tools::demo {

struct DemoOptions {
  std::string out_dir = "demo-out";
  std::string backend = "lockd";
  Millis ttl{1000};
  // Use an already running lock service instead of starting one.
  std::vector<std::string> lock_endpoints;
  // For https:// lock_endpoints: the demo's own calls use it (main makes it
  // the process default) and every fence-worker it starts gets it as flags.
  net::TlsClientFiles tls;
  // A's pause is TTL + margin; 0 picks max(1000 ms, TTL): long enough for the
  // lease to expire, B to be elected and write, on a loaded 2-core machine.
  Millis pause_margin{0};
  int failover_trials = 5;
  std::vector<std::int64_t> tradeoff_ttls{250, 500, 1000, 2000};
  int tradeoff_failover_trials = 3;
  int stall_trials = 12;
  StallDistribution stalls;
};

// One run of the A/B schedule: A is elected and paused before its write for
// TTL + margin; B, waiting on the lock, is elected when A's lease expires and
// writes; A resumes and writes.
struct ScheduleOutcome {
  std::string name;
  bool fencing = true;
  std::int64_t ttl_ms = 0;
  std::int64_t pause_ms = 0;
  std::string log_path;
  std::vector<LogLine> lines;  // lock service, store, A and B merged by ts

  std::optional<std::uint64_t> a_token, b_token;
  std::optional<std::int64_t> a_granted_ttl_ms;  // ttl_ms of A's elected line
  std::optional<std::int64_t> a_elected_ts, a_pause_ts, a_resumed_ts, a_write_ts;
  std::optional<std::int64_t> a_term_end_ts;  // A's first term-ending event
  std::string a_term_end_event;
  std::optional<std::int64_t> b_elected_ts, b_write_done_ts, b_accepted_ts;
  std::optional<std::int64_t> b_fence_raised_ts;  // B fenced its key first (fenced run)
  std::optional<std::int64_t> lease_remaining_ms;  // A's lease left at pause start (lower bound)
  std::optional<std::int64_t> paused_ms;           // measured by A
  std::string a_result;  // "write_done", "fenced" or "none"
  nlohmann::json a_result_line;  // A's write_done or fenced line
  std::string b_result;
  std::optional<std::int64_t> failover_ms;  // B accepted by the store - A's pause start

  // lockd's side of the handover, by lockd's clock (its own log lines; none
  // for etcd or ZooKeeper, whose logs carry no such lines).
  std::int64_t lock_delay_ms = 0;  // asked with every acquire of this run
  bool broken = false;             // the demo broke A's lease during A's pause
  std::string a_lease_id;
  std::optional<std::int64_t> a_renewed_ts;  // lockd: A's grant or last renewal
  std::optional<std::int64_t> a_lease_end_ts;  // lockd: A's lease expired or was broken
  std::string a_lease_end_event;
  std::optional<std::int64_t> delay_started_ts, delay_ended_ts;
  std::optional<std::int64_t> delay_asked_ms;        // lock_delay_started.lock_delay_ms
  std::optional<std::int64_t> delay_since_expiry_ms;  // lock_delay_ended, lockd's monotonic clock
  std::optional<std::int64_t> b_granted_ts;  // lockd: granted with B's token
  nlohmann::json broken_line;                // lockd's lease_broken line
  bool a_keepalive_refused_broken = false;   // lockd: A's keep-alive refused, lease_broken
  std::string a_lease_lost_line;             // A's lease_lost line, as printed
  // A's last renewal at lockd -> B's grant: TTL (+ lock-delay) for an expiry.
  std::optional<std::int64_t> renewal_to_grant_ms;
  // A's lease end at lockd (expiry or break) -> B's grant.
  std::optional<std::int64_t> end_to_grant_ms;
  // A's pause start -> B's elected line (worker clocks, one machine).
  std::optional<std::int64_t> pause_to_elected_ms;
  nlohmann::json final_object;              // the stored object, parsed
  std::string final_owner;
  std::optional<std::uint64_t> final_token;  // Fencing-Token header of the object
  std::vector<std::string> problems;         // expected facts that did not hold
};

struct StallTrial {
  std::int64_t stall_ms = 0;
  std::int64_t phase_ms = 0;  // work before the stall, i.e. its renewal phase
  std::optional<std::int64_t> paused_ms;
  bool evicted = false;
  std::string problem;
};

struct TradeoffRow {
  std::int64_t ttl_ms = 0;  // the TTL the lock service granted
  // The TTLs asked (--tradeoff-ttls) that were granted as ttl_ms: more than
  // one when the service raised or rounded them to the same lease.
  std::vector<std::int64_t> asked_ms;
  std::vector<std::int64_t> failovers_ms;
  Stats failover;
  std::vector<StallTrial> stalls;
  int evictions = 0;
  int stall_trials_ok = 0;
};

struct BypassOutcome {
  std::string curl;
  std::uint64_t token = 0;
  int status = 0;
  std::string response_text;
  nlohmann::json body;
  std::string store_line;
  // With signed tokens (lockd started by the demo): the PUT above carried
  // t1's real signature, and a forged future token followed it.
  bool signed_tokens = false;
  ForgedWrite forged;
};

// The operator's POST /v1/locks/{name}/break during A's pause.
struct BreakCall {
  std::string curl;
  std::string reason;
  bool a_stopped = false;  // A's state was "stopped" when the call was sent
  bool b_waiting = false;  // lockd counted B's acquire as waiting
  std::optional<std::int64_t> sent_ts;  // the demo's clock, epoch ms
  int status = 0;
  nlohmann::json body;
  // The break sent -> B's elected line (the demo's and B's clocks).
  std::optional<std::int64_t> to_b_elected_ms;
};

struct DemoResults {
  DemoOptions options;
  std::string started_at;
  double elapsed_s = 0;
  // --ttl-ms, and what the lock service granted for it: the TTL the
  // unfenced, fenced and failover runs used.
  std::int64_t ttl_asked_ms = 0;
  std::int64_t ttl_granted_ms = 0;
  std::string lock_endpoints;
  std::string store_unfenced_url, store_fenced_url;
  ScheduleOutcome unfenced, fenced;
  BypassOutcome bypass;
  std::vector<ScheduleOutcome> failover_trials;
  Stats failover;
  std::vector<TradeoffRow> tradeoff;
  // lockd only (its features, read from its log): the fenced schedule with a
  // lock-delay, and one where the demo breaks A's lease by hand. Empty
  // (skip_lockd_runs says why) for etcd, ZooKeeper or an external lockd.
  std::string skip_lockd_runs;
  ScheduleOutcome lock_delay, broken;
  BreakCall break_call;
  std::vector<std::string> failures;
};

// Runs everything, writes the files, prints the summary; the exit code is 0
// only if every expected outcome happened.
int RunDemo(const DemoOptions& options);

// Reads the facts of one schedule from its merged log lines and records the
// expectations that did not hold in outcome.problems. Pure.
void AnalyzeSchedule(ScheduleOutcome& outcome);

// Renderers of the output files. Pure.
nlohmann::json SummaryJson(const DemoResults& results);
std::string TradeoffCsv(const DemoResults& results);
std::string TradeoffSvg(const DemoResults& results);
std::string ReportMarkdown(const DemoResults& results);
// report.html: the same run as pictures (a timeline per run, the TTL
// trade-off) and the outcome table, in one self-contained page.
std::string ReportHtml(const DemoResults& results);
std::string SummaryText(const DemoResults& results);

}  // namespace fence::tools::demo
