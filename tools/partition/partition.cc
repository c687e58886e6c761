#include "tools/partition/partition.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "client/lock_backend.h"
#include "tools/partition/partition_backend.h"
#include "tools/partition/partition_net.h"
#include "client/store_client.h"
#include "client/worker.h"
#include "client/worker_process.h"
#include "common/logging.h"
#include "common/monotonic_clock.h"
#include "common/process.h"
#include "core/log_event.h"
#include "tools/progress/progress.h"

namespace fence::tools::partition {
namespace {

namespace fs = std::filesystem;
namespace ev = fence::events;
using json = nlohmann::json;
using std::chrono::milliseconds;

// Addresses inside the namespace: its loopback answers the whole 127/8 once
// it is up, so every listener gets an address of its own and fixed ports
// cannot clash with anything outside.
const std::vector<Role> kRoles = {
    {"m1", 61001, "127.0.0.1"},       {"m2", 61002, "127.0.0.2"},
    {"m3", 61003, "127.0.0.3"},       {"store", 61010, "127.0.0.10"},
    {"A", 61011, ""},                 {"B", 61012, ""},
    {"C", 61013, ""},                 {"primary", 61021, "127.0.0.21"},
    {"standby", 61022, "127.0.0.22"}, {"history", 61030, ""},
};
constexpr int kEtcdClientPort = 2379;
constexpr int kEtcdPeerPort = 2380;
constexpr int kStorePort = 8080;
constexpr int kLockdPort = 8081;
const std::string kLock = "leader";
const std::string kKey = "partition/result";

// The schedule. Leases are etcd's whole seconds; A renews every 500 ms so
// a renewal is in flight (and fails) during the cut before A stops at its
// write; A stops at before-write (after its last look at its lease) for
// long enough that B is elected and writes and the partition heals first.
constexpr std::int64_t kEtcdTtlMs = 4000;
constexpr std::int64_t kEtcdRenewMs = 500;
constexpr std::int64_t kEtcdWorkMs = 3000;
constexpr std::int64_t kEtcdPauseMs = 10000;
// C gives up acquiring through the minority member after this long.
constexpr std::int64_t kProbeTimeoutMs = 3000;
// Naive pair: A works (renewing through the primary, which it can still
// reach) long enough for B to time out on the primary (its wait + 5 s) and
// fall back to the standby first.
constexpr std::int64_t kNaiveTtlMs = 3000;
constexpr std::int64_t kNaiveWaitMs = 1000;
constexpr std::int64_t kNaiveWorkMs = 12000;
constexpr int kHistoryTerms = 3;  // earlier grants of the primary

constexpr milliseconds kStartTimeout{30000};
constexpr milliseconds kEventTimeout{30000};
constexpr milliseconds kStopGrace{3000};

std::int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Url(const std::string& address, int port) {
  return "http://" + address + ":" + std::to_string(port);
}

const Role& RoleOf(const std::string& name) {
  for (const auto& r : kRoles) {
    if (r.name == name) return r;
  }
  return kRoles.front();
}

std::optional<std::int64_t> TsOf(const json& line) {
  if (!line.is_object() || !line.contains("ts") || !line["ts"].is_string()) return std::nullopt;
  auto ts = logscan::ParseTimestamp(line["ts"].get<std::string>());
  if (!ts.ok()) return std::nullopt;
  return *ts;
}

std::optional<std::uint64_t> UintOf(const json& line, const char* field) {
  if (!line.is_object() || !line.contains(field)) return std::nullopt;
  const json& v = line[field];
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  }
  return std::nullopt;
}

// The token of an election line; nullopt without the line or its token.
std::optional<std::uint64_t> TokenOf(const std::optional<json>& line) {
  if (!line) return std::nullopt;
  return UintOf(*line, "token");
}

json ParseJsonLine(std::string_view text) {
  const auto brace = text.find('{');
  if (brace == std::string_view::npos) return nullptr;
  json j = json::parse(text.substr(brace), nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

bool IsEvent(const json& j, std::string_view event) {
  return j.is_object() && j.contains("event") && j["event"].is_string() &&
         j["event"].get<std::string>() == event;
}

// One scenario's processes and its own log of what the experiment did.
class Stage {
 public:
  // `progress` (may be null) shows a person what the scenario waits for.
  Stage(Namespace& ns, ScenarioResult& result, Progress* progress)
      : ns_(ns), r_(result), progress_(progress) {
    log_.open(r_.dir + "/partition.log", std::ios::app);
  }
  ~Stage() { StopAll(); }

  bool Start(const std::string& role, std::vector<std::string> argv) {
    auto child = ns_.Start(role, std::move(argv), r_.dir + "/" + role + ".log");
    if (!child.ok()) {
      Problem("could not start " + role + ": " + child.error().message);
      return false;
    }
    order_.push_back(role);
    procs_[role] = std::move(*child);
    return true;
  }

  ChildProcess* Proc(const std::string& role) {
    auto it = procs_.find(role);
    return it == procs_.end() ? nullptr : it->second.get();
  }

  // The first of `events` printed by `role` within `timeout`, parsed.
  std::optional<json> WaitEvent(const std::string& role, std::vector<std::string_view> events,
                                milliseconds timeout) {
    ChildProcess* p = Proc(role);
    if (p == nullptr) return std::nullopt;
    auto line = p->WaitForLine(
        [&](std::string_view text) {
          const json j = ParseJsonLine(text);
          return std::any_of(events.begin(), events.end(),
                             [&](std::string_view e) { return IsEvent(j, e); });
        },
        timeout);
    if (!line) return std::nullopt;
    return ParseJsonLine(*line);
  }

  std::vector<json> Events(const std::string& role, std::string_view event) {
    std::vector<json> out;
    ChildProcess* p = Proc(role);
    if (p == nullptr) return out;
    for (const auto& text : p->Lines()) {
      json j = ParseJsonLine(text);
      if (IsEvent(j, event)) out.push_back(std::move(j));
    }
    return out;
  }

  std::optional<json> First(const std::string& role, std::string_view event) {
    auto all = Events(role, event);
    if (all.empty()) return std::nullopt;
    return all.front();
  }

  // Records what the experiment itself did, in the logs' own schema, so
  // the timeline and fence-logscan see the cut and the heal.
  void Note(std::string_view event, json fields, std::int64_t ts = 0) {
    json line = {{"ts", logscan::FormatTimestamp(ts != 0 ? ts : NowMs())},
                 {"level", "info"},
                 {"component", "partition"},
                 {"event", event},
                 {"scenario", r_.name}};
    for (auto& [k, v] : fields.items()) line[k] = v;
    log_ << line.dump() << "\n";
    log_.flush();
    log::Info(event, line);
  }

  // What the scenario waits for now. Progress shows it on a terminal only:
  // piped output stays one line per step.
  void Waiting(const std::string& what) {
    if (progress_ != nullptr) progress_->Waiting(what);
  }

  void Problem(const std::string& what) {
    r_.problems.push_back(what);
    log::Warn("expectation_failed", {{"scenario", r_.name}, {"problem", what}});
  }

  // One of our daemons, listening at the role's address and `port`.
  bool StartDaemon(const std::string& role, std::vector<std::string> argv, int port) {
    auto command = ns_.Command(role, std::move(argv), r_.dir + "/" + role + ".log");
    if (!command.ok()) {
      Problem("could not start " + role + ": " + command.error().message);
      return false;
    }
    Waiting("waiting for " + role + " to listen on " + RoleOf(role).address);
    auto daemon = StartListeningDaemon(
        std::move(*command), RoleOf(role).address + ":" + std::to_string(port), kStartTimeout);
    if (!daemon.ok()) {
      Problem(role + " did not start listening: " + daemon.error().message);
      return false;
    }
    order_.push_back(role);
    procs_[role] = std::move(daemon->process);
    return true;
  }

  // Workers first (they release their locks), then the services.
  void StopAll() {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      auto p = procs_.find(*it);
      if (p != procs_.end() && p->second && !p->second->exited()) p->second->Stop(kStopGrace);
    }
  }

  std::optional<int> ExitCode(const std::string& role, milliseconds timeout) {
    ChildProcess* p = Proc(role);
    if (p == nullptr) return std::nullopt;
    auto status = p->WaitExit(timeout);
    if (!status || !WIFEXITED(*status)) return std::nullopt;
    return WEXITSTATUS(*status);
  }

  const std::vector<std::string>& roles() const { return order_; }

 private:
  Namespace& ns_;
  ScenarioResult& r_;
  Progress* const progress_;
  std::ofstream log_;
  std::vector<std::string> order_;
  std::map<std::string, std::unique_ptr<ChildProcess>> procs_;
};

bool StartEtcdCluster(Stage& stage, const std::string& data_dir) {
  const auto etcd_path = FindProgram("etcd");
  if (!etcd_path) {
    stage.Problem("etcd is not on PATH; install etcd-server (deploy/install-deps.sh)");
    return false;
  }
  const std::string& etcd = *etcd_path;
  std::string cluster;
  for (const char* m : {"m1", "m2", "m3"}) {
    cluster += std::string(cluster.empty() ? "" : ",") + m + "=" +
               Url(RoleOf(m).address, kEtcdPeerPort);
  }
  for (const char* m : {"m1", "m2", "m3"}) {
    const std::string client = Url(RoleOf(m).address, kEtcdClientPort);
    const std::string peer = Url(RoleOf(m).address, kEtcdPeerPort);
    // Election timeout 500 ms puts etcd's minimum lease TTL at 1 s. Pre-vote
    // keeps member 3, after campaigning alone during the cut, from deposing
    // the majority's leader when the partition heals.
    if (!stage.Start(m, {etcd, "--name", m, "--data-dir", data_dir + "/" + m,
                         "--listen-client-urls", client, "--advertise-client-urls", client,
                         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                         "--initial-cluster", cluster, "--initial-cluster-state", "new",
                         "--initial-cluster-token", "fence-partition",
                         "--heartbeat-interval", "100", "--election-timeout", "500",
                         "--pre-vote=true", "--logger", "zap", "--log-outputs", "stderr"})) {
      return false;
    }
  }
  stage.Waiting("waiting for the 3 etcd members to join and serve");
  for (const char* m : {"m1", "m2", "m3"}) {
    // etcd 3.4 prints this once the member has joined the cluster
    // (ReadyNotify) and its client listener serves.
    auto ready = stage.Proc(m)->WaitForLine(
        [](std::string_view text) {
          return text.find("\"serving client traffic") != std::string_view::npos;
        },
        kStartTimeout);
    if (!ready) {
      stage.Problem(std::string("etcd member ") + m + " did not become ready");
      return false;
    }
  }
  return true;
}

bool StartStore(Stage& stage, const std::string& data_dir) {
  return stage.StartDaemon("store", {SiblingBinary("fence-store"), "--data-dir", data_dir + "/store"},
                           kStorePort);
}

std::vector<std::string> EtcdWorker(const std::string& id, const std::string& endpoints,
                                    std::vector<std::string> extra) {
  std::vector<std::string> argv = {SiblingBinary("fence-worker"), "--id", id,
                                   "--backend", "etcd", "--lock-endpoints", endpoints,
                                   "--lock", kLock, "--store",
                                   Url(RoleOf("store").address, kStorePort), "--key", kKey,
                                   "--ttl-ms", std::to_string(kEtcdTtlMs), "--terms", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::string Endpoints(std::initializer_list<const char*> members) {
  std::string out;
  for (const char* m : members) {
    out += std::string(out.empty() ? "" : ",") + Url(RoleOf(m).address, kEtcdClientPort);
  }
  return out;
}

void Cut(Namespace& ns, Stage& stage, ScenarioResult& r, const partition::Cut& cut) {
  const std::string rules_path = r.dir + "/cut.rules";
  const std::int64_t before = NowMs();
  auto applied = ns.Apply(cut, rules_path);
  r.cut_ts = NowMs();
  std::ifstream in(rules_path);
  std::stringstream text;
  text << in.rdbuf();
  r.cut_rules = text.str();
  if (!applied.ok()) {
    stage.Problem("the cut could not be applied: " + applied.error().message);
    return;
  }
  json sides = cut.sides;
  stage.Note("partition_cut", {{"cut", cut.name}, {"sides", sides},
                               {"apply_ms", r.cut_ts - before}}, r.cut_ts);
}

void Heal(Namespace& ns, Stage& stage, ScenarioResult& r) {
  auto healed = ns.Heal();
  r.heal_ts = NowMs();
  if (!healed.ok()) {
    stage.Problem("the partition could not be healed: " + healed.error().message);
    return;
  }
  stage.Note("partition_healed", {{"cut_lasted_ms", r.heal_ts - r.cut_ts}}, r.heal_ts);
}

// ms after the cut of a log line's ts, or null.
json After(const ScenarioResult& r, const std::optional<json>& line) {
  if (!line || r.cut_ts == 0) return nullptr;
  auto ts = TsOf(*line);
  return ts ? json(*ts - r.cut_ts) : json(nullptr);
}

// What the etcd scenarios observed, as the processes logged it.
struct EtcdObserved {
  std::optional<json> a_elected, b_elected, b_written, a_end;
  std::optional<int> c_exit;
};

// Step 1: leader A (renewing often, stopped before its write) and standby B
// waiting on the lock.
bool StartLeaderAndStandby(Stage& stage, ScenarioResult& r, bool worker_cut, EtcdObserved& seen) {
  const std::string a_endpoints = worker_cut ? Endpoints({"m1", "m2", "m3"}) : Endpoints({"m3"});
  const std::string b_endpoints =
      worker_cut ? Endpoints({"m1", "m2", "m3"}) : Endpoints({"m1", "m2"});
  r.facts["a_lock_endpoints"] = a_endpoints;
  r.facts["b_lock_endpoints"] = b_endpoints;
  if (!stage.Start("A", EtcdWorker("A", a_endpoints,
                                   {"--renew-interval-ms", std::to_string(kEtcdRenewMs),
                                    "--work-ms", std::to_string(kEtcdWorkMs), "--inject-pause",
                                    "before-write:" + std::to_string(kEtcdPauseMs) + "ms",
                                    "--acquire-timeout-ms", "20000"}))) {
    return false;
  }
  stage.Waiting("waiting for A to be elected");
  seen.a_elected = stage.WaitEvent("A", {ev::kElected}, kEventTimeout);
  if (!seen.a_elected) {
    stage.Problem("A was not elected");
    return false;
  }
  stage.Waiting("waiting for B to start acquiring");
  if (!stage.Start("B", EtcdWorker("B", b_endpoints,
                                   {"--wait-ms", "1000", "--hold-renewals", "2",
                                    "--acquire-timeout-ms", "40000"})) ||
      !stage.WaitEvent("B", {ev::kAcquiring}, kEventTimeout)) {
    stage.Problem("B did not start acquiring");
    return false;
  }
  return true;
}

// Step 2: the cut; on the quorum scenario a client C on A's side asks the
// minority member for the lock; B is elected and writes; then the heal.
// False if the cut could not be made.
bool CutElectAndHeal(Namespace& ns, Stage& stage, ScenarioResult& r, bool worker_cut,
                     EtcdObserved& seen) {
  partition::Cut cut;
  if (worker_cut) {
    cut = {"worker-cut", {{"A"}, {"m1", "m2", "m3"}}};
  } else {
    cut = {"minority-cut", {{"m3", "A", "C"}, {"m1", "m2", "B"}}};
  }
  Cut(ns, stage, r, cut);
  if (!r.problems.empty()) return false;
  if (!worker_cut) {
    stage.Start("C", EtcdWorker("C", Endpoints({"m3"}),
                                {"--wait-ms", "1000", "--acquire-timeout-ms",
                                 std::to_string(kProbeTimeoutMs)}));
  }
  stage.Waiting(std::string(worker_cut ? "partition up (A cut off from etcd)"
                                        : "partition up ({m3, A, C} | {m1, m2, B})") +
                "; waiting for A's " + std::to_string(kEtcdTtlMs) +
                " ms lease to expire and B to be elected (A works " + std::to_string(kEtcdWorkMs) +
                " ms, then stops " + std::to_string(kEtcdPauseMs) + " ms before its write)");
  seen.b_elected = stage.WaitEvent("B", {ev::kElected}, kEventTimeout);
  if (seen.b_elected) {
    stage.Waiting("B elected; waiting for B's write");
    seen.b_written =
        stage.WaitEvent("B", {ev::kWriteDone, ev::kFenced, ev::kSteppedDown}, kEventTimeout);
  }
  if (!worker_cut) {
    stage.Waiting("waiting for C to give up acquiring through the minority member m3 (" +
                  std::to_string(kProbeTimeoutMs) + " ms)");
    seen.c_exit = stage.ExitCode("C", kEventTimeout);
  }
  Heal(ns, stage, r);
  return true;
}

// Step 3: A wakes after the heal and writes (or does not).
void AwaitStaleLeader(Stage& stage, EtcdObserved& seen) {
  // Said from A's own line: A stops only once its work is done.
  const auto pause = stage.First("A", ev::kPauseInjected);
  stage.Waiting(pause ? "partition healed; A stopped for " +
                            std::to_string(pause->value("duration_ms", std::int64_t{0})) +
                            " ms before its write: waiting for A to wake and write"
                      : "partition healed; waiting for A's write");
  seen.a_end = stage.WaitEvent("A", {ev::kWriteDone, ev::kFenced, ev::kSteppedDown, ev::kLeaseLost},
                               milliseconds(kEtcdPauseMs + 20000));
  // A's write (or its absence) is what the scenario is about; give it its
  // own bounded wait past the lease-lost line.
  if (seen.a_end && IsEvent(*seen.a_end, ev::kLeaseLost)) {
    seen.a_end = stage.WaitEvent("A", {ev::kWriteDone, ev::kFenced, ev::kSteppedDown}, kEventTimeout);
  }
  stage.Waiting("waiting for A and B to exit");
  stage.ExitCode("A", milliseconds(10000));
  stage.ExitCode("B", milliseconds(15000));
  stage.StopAll();
}

// Renewal attempts of A that failed while A still ran (before its stop).
int RenewalFailuresBefore(Stage& stage, std::optional<std::int64_t> stop_ts) {
  int failures = 0;
  for (const char* event : {"lock_endpoint_failed", "renewal_failed"}) {
    for (const auto& line : stage.Events("A", event)) {
      auto ts = TsOf(line);
      if (ts && stop_ts && *ts <= *stop_ts) ++failures;
    }
  }
  return failures;
}

// Step 4: the facts and figures (ms after the cut) of A and B.
void RecordEtcdFacts(Stage& stage, ScenarioResult& r, const EtcdObserved& seen) {
  const auto a_token = TokenOf(seen.a_elected);
  const auto b_token = TokenOf(seen.b_elected);
  auto a_pause = stage.First("A", ev::kPauseInjected);
  auto a_lease_lost = stage.First("A", ev::kLeaseLost);
  auto a_fenced = stage.First("A", ev::kFenced);
  auto a_written = stage.First("A", ev::kWriteDone);
  r.facts["a_token"] = a_token ? json(*a_token) : json(nullptr);
  r.facts["b_token"] = b_token ? json(*b_token) : json(nullptr);
  r.facts["a_outcome"] = a_fenced    ? json("fenced")
                         : a_written ? json("write_done")
                         : seen.a_end ? (*seen.a_end)["event"]
                                      : json("none");
  r.facts["a_store_answer"] = a_fenced && a_fenced->contains("store_answer")
                                  ? (*a_fenced)["store_answer"]
                                  : json(nullptr);
  r.facts["b_outcome"] = seen.b_written ? (*seen.b_written)["event"] : json("none");
  const auto a_pause_ts = a_pause ? TsOf(*a_pause) : std::nullopt;
  r.facts["a_renewal_failures_before_stop"] = RenewalFailuresBefore(stage, a_pause_ts);
  if (a_lease_lost) r.facts["a_lease_lost_reason"] = (*a_lease_lost).value("reason", "");

  r.figures["a_elected"] = After(r, seen.a_elected);
  if (a_pause && a_pause_ts) {
    const std::int64_t left = (*a_pause).value("lease_remaining_ms", std::int64_t{0});
    // A's own lower bound of its lease: the server's expiry is no earlier.
    r.figures["a_lease_expired_client_bound"] = *a_pause_ts + left - r.cut_ts;
    r.figures["a_stopped_before_write"] = *a_pause_ts - r.cut_ts;
  }
  r.figures["b_elected"] = After(r, seen.b_elected);
  r.figures["b_write"] = After(r, seen.b_written);
  r.figures["heal"] = r.heal_ts - r.cut_ts;
  r.figures["a_resumed"] = After(r, stage.First("A", ev::kResumed));
  r.figures["a_write_fenced"] = After(r, a_fenced);
  r.figures["a_lease_lost_logged"] = After(r, a_lease_lost);
}

// Step 5: what must hold for A and B: B elected on the majority with a
// higher token, only after A's lease could have expired; A fenced by B's
// token after the heal.
void CheckEtcdLeaders(Stage& stage, ScenarioResult& r, const EtcdObserved& seen) {
  const auto a_token = TokenOf(seen.a_elected);
  const auto b_token = TokenOf(seen.b_elected);
  auto a_fenced = stage.First("A", ev::kFenced);
  if (!seen.b_elected) stage.Problem("B was not elected on the majority side");
  if (a_token && b_token && !(*b_token > *a_token)) {
    stage.Problem("B's token " + std::to_string(*b_token) + " is not above A's " +
                  std::to_string(*a_token));
  }
  if (!seen.b_written || !IsEvent(*seen.b_written, ev::kWriteDone)) {
    stage.Problem("B's write was not accepted");
  }
  if (!a_fenced) {
    stage.Problem(stage.First("A", ev::kWriteDone) ? "A's stale write was ACCEPTED"
                                                   : "A made no write that was fenced");
  } else if (b_token && UintOf(*a_fenced, "highest_token") != b_token) {
    stage.Problem("A was fenced by a token other than B's");
  }
  if (auto a_resumed = stage.First("A", ev::kResumed); a_resumed && r.heal_ts != 0) {
    auto ts = TsOf(*a_resumed);
    if (ts && *ts < r.heal_ts) stage.Problem("A resumed before the heal; its write was not after it");
  }
  auto a_pause = stage.First("A", ev::kPauseInjected);
  const auto a_pause_ts = a_pause ? TsOf(*a_pause) : std::nullopt;
  if (a_pause_ts && seen.b_elected) {
    const std::int64_t bound = *a_pause_ts + (*a_pause).value("lease_remaining_ms", std::int64_t{0});
    auto b_ts = TsOf(*seen.b_elected);
    // etcd must not elect B while A's lease could still be valid.
    if (b_ts && *b_ts < bound) stage.Problem("B was elected before A's lease could have expired");
    r.facts["a_lease_expired_before_b_elected"] = b_ts && *b_ts >= bound;
  }
}

// Step 6 (quorum scenario): the minority side could neither renew nor
// acquire.
void CheckMinority(Stage& stage, ScenarioResult& r, const EtcdObserved& seen) {
  auto c_unavailable = stage.Events("C", "lock_unavailable");
  auto c_timeout = stage.First("C", "acquire_timeout");
  auto c_elected = stage.First("C", ev::kElected);
  r.facts["c_exit_code"] = seen.c_exit ? json(*seen.c_exit) : json(nullptr);
  r.facts["c_failed_attempts"] = c_unavailable.size();
  r.facts["c_elected"] = c_elected.has_value();
  if (!c_unavailable.empty()) {
    r.facts["c_first_error"] = c_unavailable.front().value("message", "");
  }
  r.figures["c_first_failure"] =
      c_unavailable.empty() ? json(nullptr) : After(r, c_unavailable.front());
  r.figures["c_gave_up"] = After(r, c_timeout);
  if (c_elected) stage.Problem("C acquired the lock through the minority member");
  if (!c_timeout) stage.Problem("C did not give up acquiring through the minority member");
  if (r.facts.value("a_renewal_failures_before_stop", 0) == 0) {
    stage.Problem("no failed renewal of A was logged during the cut");
  }
}

// Quorum lock (worker_cut = false) or healthy lock service with only A cut
// off (worker_cut = true): a list of steps.
void RunEtcdScenario(Namespace& ns, ScenarioResult& r, const std::string& data_dir,
                     bool worker_cut, Progress* progress) {
  Stage stage(ns, r, progress);
  if (!StartEtcdCluster(stage, data_dir) || !StartStore(stage, data_dir)) return;
  r.ran = true;
  EtcdObserved seen;
  if (!StartLeaderAndStandby(stage, r, worker_cut, seen)) return;
  if (!CutElectAndHeal(ns, stage, r, worker_cut, seen)) return;
  AwaitStaleLeader(stage, seen);
  RecordEtcdFacts(stage, r, seen);
  CheckEtcdLeaders(stage, r, seen);
  if (!worker_cut) CheckMinority(stage, r, seen);
}

std::vector<std::string> NaiveWorker(const std::string& id, std::vector<std::string> extra) {
  std::vector<std::string> argv = {
      SiblingBinary("fence-partition"), "naive-worker", "--id", id,
      "--primary", Url(RoleOf("primary").address, kLockdPort),
      "--standby", Url(RoleOf("standby").address, kLockdPort),
      "--lock", kLock, "--store", Url(RoleOf("store").address, kStorePort),
      "--key", kKey, "--ttl-ms", std::to_string(kNaiveTtlMs),
      "--wait-ms", std::to_string(kNaiveWaitMs), "--terms", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Step 1: the lockd pair, the store, and the primary's earlier terms.
bool StartNaiveServices(Stage& stage, ScenarioResult& r, const std::string& data_dir) {
  for (const char* server : {"primary", "standby"}) {
    if (!stage.StartDaemon(server,
                           {SiblingBinary("fence-lockd"), "--data-dir", data_dir + "/" + server,
                            "--max-ttl-ms", "10000"},
                           kLockdPort)) {
      return false;
    }
  }
  if (!StartStore(stage, data_dir)) return false;
  r.ran = true;
  // The primary has served before (a different lock: lockd's counter is
  // shared by all locks); the standby never has. That is the usual state of
  // a primary/standby pair, and it puts the two counters apart.
  if (!stage.Start("history",
                   {SiblingBinary("fence-worker"), "--id", "earlier", "--backend", "lockd",
                    "--lock-endpoints", Url(RoleOf("primary").address, kLockdPort), "--lock",
                    "history", "--store", Url(RoleOf("store").address, kStorePort), "--key",
                    "partition/history", "--ttl-ms", "1000", "--terms",
                    std::to_string(kHistoryTerms)})) {
    return false;
  }
  stage.Waiting("waiting for the primary's " + std::to_string(kHistoryTerms) +
                " earlier terms to complete");
  if (stage.ExitCode("history", kEventTimeout) != 0) {
    stage.Problem("the primary's earlier terms did not complete");
    return false;
  }
  return true;
}

// What the naive scenario observed, as the workers logged it.
struct NaiveObserved {
  std::optional<json> a_elected, b_fallback, b_elected, b_written, a_written;
};

// Step 2: A elected by the primary, B waiting on it; the cut; B falls back
// to the standby and is elected there while A still leads; A writes; the
// heal. False if A was not elected, B did not start or the cut failed.
bool ElectOnBothSides(Namespace& ns, Stage& stage, ScenarioResult& r, NaiveObserved& seen) {
  if (!stage.Start("A", NaiveWorker("A", {"--work-ms", std::to_string(kNaiveWorkMs),
                                          "--hold-renewals", "2"}))) {
    return false;
  }
  stage.Waiting("waiting for A to be elected by the primary");
  seen.a_elected = stage.WaitEvent("A", {ev::kElected}, kEventTimeout);
  if (!seen.a_elected) {
    stage.Problem("A was not elected");
    return false;
  }
  // B waits on the primary, which answers "held" while A leads.
  stage.Waiting("waiting for B to start acquiring from the primary");
  if (!stage.Start("B", NaiveWorker("B", {"--hold-renewals", "1000"})) ||
      !stage.WaitEvent("B", {ev::kAcquiring}, kEventTimeout)) {
    stage.Problem("B did not start acquiring");
    return false;
  }
  Cut(ns, stage, r, {"primary-standby-cut", {{"primary", "A"}, {"standby", "B"}}});
  if (!r.problems.empty()) return false;
  stage.Waiting("partition up ({primary, A} | {standby, B}); waiting for B's request to the "
                "primary to time out and B to fall back to the standby");
  seen.b_fallback = stage.WaitEvent("B", {"lock_fallback"}, kEventTimeout);
  stage.Waiting("B fell back; waiting for the standby to elect B");
  seen.b_elected = stage.WaitEvent("B", {ev::kElected}, kEventTimeout);
  if (seen.b_elected) {
    stage.Waiting("B elected by the standby; waiting for B to fence the key first");
    seen.b_written =
        stage.WaitEvent("B", {ev::kWriteDone, ev::kFenced, ev::kSteppedDown}, kEventTimeout);
  }
  stage.Waiting("waiting for A's write (A works " + std::to_string(kNaiveWorkMs) +
                " ms, renewing through the primary)");
  seen.a_written = stage.WaitEvent("A", {ev::kWriteDone, ev::kFenced, ev::kSteppedDown},
                                   milliseconds(kNaiveWorkMs + 20000));
  // B has normally ended its term at its refused fence; a B still running
  // (a check failed) is ended here.
  if (stage.Proc("B")) stage.Proc("B")->Signal(SIGTERM);
  stage.Waiting("waiting for B to exit");
  stage.ExitCode("B", milliseconds(10000));
  Heal(ns, stage, r);
  stage.Waiting("partition healed; waiting for A to resign and exit");
  stage.ExitCode("A", milliseconds(15000));
  stage.StopAll();
  return true;
}

// The ts of A's first line that ends its term (lease lost, fenced, stepped
// down, resigned), or nullopt while A's log shows its term open.
std::optional<std::int64_t> TermEndOfA(Stage& stage) {
  std::optional<std::int64_t> end;
  for (const auto event : {ev::kLeaseLost, ev::kFenced, ev::kSteppedDown, ev::kResigned}) {
    auto line = stage.First("A", event);
    auto ts = line ? TsOf(*line) : std::nullopt;
    if (ts && (!end || *ts < *end)) end = ts;
  }
  return end;
}

// Step 3: the facts and figures (ms after the cut) of A and B.
void RecordNaiveFacts(Stage& stage, ScenarioResult& r, const NaiveObserved& seen) {
  const auto a_token = UintOf(*seen.a_elected, "token");
  const auto b_token = TokenOf(seen.b_elected);
  r.facts["primary_earlier_grants"] = stage.Events("history", ev::kElected).size();
  r.facts["a_token"] = a_token ? json(*a_token) : json(nullptr);
  r.facts["a_granted_by"] = "primary";
  r.facts["b_token"] = b_token ? json(*b_token) : json(nullptr);
  r.facts["b_granted_by"] = stage.First("B", "lock_granted_by_standby") ? "standby" : "primary";
  r.facts["a_outcome"] = seen.a_written ? (*seen.a_written)["event"] : json("none");
  r.facts["b_outcome"] = seen.b_written ? (*seen.b_written)["event"] : json("none");
  if (seen.a_written && seen.a_written->contains("highest_token")) {
    r.facts["a_write_highest_token"] = (*seen.a_written)["highest_token"];
  }
  r.figures["a_elected"] = After(r, seen.a_elected);
  r.figures["b_fallback"] = After(r, seen.b_fallback);
  r.figures["b_elected"] = After(r, seen.b_elected);
  r.figures["b_fenced"] = After(r, seen.b_written);
  r.figures["a_write"] = After(r, seen.a_written);
  r.figures["heal"] = r.heal_ts - r.cut_ts;
}

// Step 4: what must hold: two leaders at once (B elected by the standby
// while A's term, granted by the primary, was open), B refused at its
// fence-first step by A's higher token, A's write after B's election
// accepted.
void CheckNaiveLeaders(Stage& stage, ScenarioResult& r, const NaiveObserved& seen) {
  if (!seen.b_elected) stage.Problem("B was not elected through the standby");
  if (!seen.b_fallback) stage.Problem("B did not fall back to the standby");
  // B fences first (POST /v1/fences) with the standby's token, which is not
  // above the primary's: the store, which cannot tell two counters apart,
  // sides with the higher number and refuses the leader the failover chose.
  if (!seen.b_written || !IsEvent(*seen.b_written, ev::kFenced)) {
    stage.Problem("B, the standby's leader, was not refused at its fence-first step");
  }
  if (!seen.a_written || !IsEvent(*seen.a_written, ev::kWriteDone)) {
    stage.Problem("A's write (the cut-off leader's) was not accepted");
  }
  const auto a_token = UintOf(*seen.a_elected, "token");
  const auto b_token = TokenOf(seen.b_elected);
  if (a_token && b_token && *a_token < *b_token) {
    stage.Problem("A's token is lower than B's: the store fenced A by luck of the counters");
  }
  if (!seen.b_elected) return;
  // Judged by the order of the lines, seconds apart by the schedule, not by
  // the length of B's term: B's fence-first answer comes within the same
  // millisecond often enough.
  const auto b_ts = TsOf(*seen.b_elected);
  const auto a_ts = TsOf(*seen.a_elected);
  const auto a_end = TermEndOfA(stage);
  const bool both = b_ts && a_ts && *a_ts < *b_ts && (!a_end || *b_ts < *a_end);
  r.facts["b_elected_while_a_led"] = both;
  if (!both) stage.Problem("B was not elected while A's term was open");
  const auto a_write_ts = seen.a_written ? TsOf(*seen.a_written) : std::nullopt;
  const bool after = b_ts && a_write_ts && *a_write_ts > *b_ts;
  r.facts["a_wrote_after_b_elected"] = after;
  if (!after) stage.Problem("A's write did not come after B's election");
}

void RunNaiveScenario(Namespace& ns, ScenarioResult& r, const std::string& data_dir,
                      Progress* progress) {
  Stage stage(ns, r, progress);
  if (!StartNaiveServices(stage, r, data_dir)) return;
  NaiveObserved seen;
  if (!ElectOnBothSides(ns, stage, r, seen)) return;
  RecordNaiveFacts(stage, r, seen);
  CheckNaiveLeaders(stage, r, seen);
}

// Our-schema events of every log file in the scenario's folder, by time.
struct TimelineLine {
  std::int64_t ts = 0;
  std::string text;
};

std::vector<TimelineLine> BuildTimeline(ScenarioResult& r) {
  std::vector<TimelineLine> lines;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(r.dir, ec)) {
    const auto& path = entry.path();
    if (path.extension() == ".log" && path.filename() != "timeline.log") files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path);
    std::string text;
    std::size_t number = 0;
    while (std::getline(in, text)) {
      ++number;
      auto parsed = logscan::ParseLine(text, path.filename().string(), number);
      if (parsed.kind != logscan::LineKind::kEvent) continue;
      lines.push_back({parsed.event->ts, text});
      r.timeline.push_back(std::move(*parsed.event));
    }
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const TimelineLine& a, const TimelineLine& b) { return a.ts < b.ts; });
  std::stable_sort(r.timeline.begin(), r.timeline.end(),
                   [](const logscan::LogEvent& a, const logscan::LogEvent& b) { return a.ts < b.ts; });
  std::ofstream out(r.dir + "/timeline.log");
  for (const auto& l : lines) out << l.text << "\n";
  return lines;
}

// fence-logscan's term of `owner` on the experiment's lock, from --json.
std::optional<json> LogscanTerm(const json& scan, const std::string& owner) {
  for (const auto& t : scan.value("terms", json::array())) {
    if (t.value("owner", "") == owner && t.value("lock", "") == kLock) return t;
  }
  return std::nullopt;
}

std::optional<std::int64_t> TermTs(const std::optional<json>& term, const char* field) {
  if (!term || !term->contains(field) || !(*term)[field].is_string()) return std::nullopt;
  auto ts = logscan::ParseTimestamp((*term)[field].get<std::string>());
  if (!ts.ok()) return std::nullopt;
  return *ts;
}

// fence-logscan's evidence of the naive pair's two leaders, judged by the
// order of events, not by the length of their overlap: B is refused at its
// fence-first step within a millisecond of its election, so with
// whole-millisecond timestamps B's term often starts and ends in the same
// millisecond and fence-logscan (rightly, as for a hand-over) reports no
// overlap. What must show: B's term began inside A's, and the lock elected
// B's lower token after A's (two counters).
void CheckNaiveLogscan(ScenarioResult& r) {
  const auto a = LogscanTerm(r.logscan, "A");
  const auto b = LogscanTerm(r.logscan, "B");
  const auto a_start = TermTs(a, "elected");
  const auto a_end = TermTs(a, "ended");
  const auto b_start = TermTs(b, "elected");
  const bool inside = a_start && a_end && b_start && *a_start < *b_start && *b_start < *a_end;
  r.facts["logscan_b_elected_inside_a_term"] = inside;
  bool regression = false;
  for (const auto& g : r.logscan.value("regressions", json::array())) {
    regression = regression || (g.value("kind", "") == "leader_term" &&
                                g.value("subject", "") == kLock &&
                                g.value("before", json(nullptr)) == r.facts["a_token"] &&
                                g.value("after", json(nullptr)) == r.facts["b_token"]);
  }
  r.facts["logscan_leader_token_regression"] = regression;
  if (r.logscan_exit != 1) r.problems.push_back("fence-logscan did not report split-brain evidence");
  if (!inside) r.problems.push_back("fence-logscan's terms do not show B elected inside A's term");
  if (!regression) {
    r.problems.push_back("fence-logscan did not report the lock electing B's token after A's");
  }
}

void RunLogscan(ScenarioResult& r) {
  const std::string timeline = r.dir + "/timeline.log";
  auto run = [&](std::vector<std::string> argv, std::string& out) -> std::optional<int> {
    auto done = RunToCompletion({std::move(argv), "", {}}, milliseconds(30000));
    if (!done.ok()) return std::nullopt;
    out += done->Output();
    if (done->exit_code < 0) return std::nullopt;
    return done->exit_code;
  };
  std::string json_text;
  auto code = run({SiblingBinary("fence-logscan"), "--json", timeline}, json_text);
  r.logscan_exit = code.value_or(-1);
  const auto brace = json_text.find('{');
  r.logscan = brace == std::string::npos ? json(nullptr)
                                         : json::parse(json_text.substr(brace), nullptr, false);
  if (r.logscan.is_discarded()) r.logscan = nullptr;
  run({SiblingBinary("fence-logscan"), timeline}, r.logscan_report);
  std::ofstream(r.dir + "/logscan.json") << json_text;
  std::ofstream(r.dir + "/logscan.txt") << r.logscan_report;

  if (!r.logscan.is_object()) {
    r.problems.push_back("fence-logscan gave no findings (exit " + std::to_string(r.logscan_exit) + ")");
    return;
  }
  const std::size_t overlaps = r.logscan.value("overlaps", json::array()).size();
  const json stale = r.logscan.value("stale_writes", json::object());
  const std::uint64_t landed = stale.value("landed", std::uint64_t{0});
  const std::uint64_t rejected = stale.value("rejected", std::uint64_t{0});
  r.facts["logscan_overlaps"] = overlaps;
  r.facts["logscan_stale_landed"] = landed;
  r.facts["logscan_stale_rejected"] = rejected;
  if (r.name == "naive") {
    CheckNaiveLogscan(r);
  } else {
    if (landed != 0) r.problems.push_back("fence-logscan found a stale write that landed");
    if (rejected == 0) r.problems.push_back("fence-logscan found no fenced stale write");
  }
  // The store's own record of which leaders' writes it accepted.
  std::set<std::string> accepted_owners;
  std::map<std::uint64_t, int> accepted_tokens;
  for (const auto& e : r.timeline) {
    if (e.component == "store" && e.event == ev::kWriteAccepted &&
        e.fields.value("key", "") == kKey) {
      if (auto t = UintOf(e.fields, "token")) ++accepted_tokens[*t];
    }
  }
  json tokens = json::array();
  for (const auto& [t, n] : accepted_tokens) tokens.push_back({{"token", t}, {"writes", n}});
  r.facts["store_accepted_tokens"] = tokens;
}

std::optional<std::string> SetUpSignals(std::atomic<bool>& done, std::string ns_name,
                                        std::thread& thread) {
  // A signal ends the run; the namespace goes first so nothing is left
  // behind, then the process exits and its children die with it
  // (PR_SET_PDEATHSIG on the thread that started them).
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  thread = std::thread([signals, &done, ns_name] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (done.load() || sig == SIGUSR1) return;
    log::Warn("interrupted", {{"signal", sig}, {"namespace", ns_name}});
    const auto removed = RunCommand({FindProgram("ip").value_or("ip"), "netns", "delete", ns_name},
                                    milliseconds(5000));
    Progress::EndWith(stdout, Progress::StdoutIsTerminal(),
                      "interrupted by signal " + std::to_string(sig) +
                          (removed.ok() ? "; removed the network namespace "
                                        : "; could not remove the network namespace ") +
                          ns_name);
    _exit(128 + sig);
  });
  return std::nullopt;
}

// On a terminal the status line is what a person watches, and the
// experiment's own JSON log lines (stderr, the same terminal) would break
// it up: while it is shown they go to `path` instead. Redirected stderr
// (CI, a file) is left alone.
class StderrAsideOnTerminal {
 public:
  StderrAsideOnTerminal(bool terminal, const std::string& path) {
    if (!terminal || isatty(STDERR_FILENO) != 1) return;
    const int file = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (file < 0) return;
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    if (saved_ >= 0) dup2(file, STDERR_FILENO);
    close(file);
  }
  ~StderrAsideOnTerminal() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
  }
  StderrAsideOnTerminal(const StderrAsideOnTerminal&) = delete;
  StderrAsideOnTerminal& operator=(const StderrAsideOnTerminal&) = delete;
  bool active() const { return saved_ >= 0; }

 private:
  int saved_ = -1;  // the terminal's stderr while ours goes to the file
};

std::string FormatMs(const json& v) {
  if (!v.is_number()) return "–";
  return std::to_string(v.get<std::int64_t>()) + " ms";
}

// One scenario in its own folder <out>/<name>, with fresh data under
// <data_root>/<name>, then its timeline and fence-logscan's findings.
ScenarioResult RunScenario(Namespace& ns, const std::string& name, const std::string& out,
                           const std::string& data_root, Progress& progress) {
  std::error_code ec;
  ScenarioResult r;
  r.name = name;
  r.dir = out + "/" + name;
  fs::remove_all(r.dir, ec);
  fs::create_directories(r.dir, ec);
  const std::string data = data_root + "/" + name;
  fs::remove_all(data, ec);
  fs::create_directories(data, ec);
  log::Info("scenario_started", {{"scenario", name}});
  // Short, so that on a terminal what the scenario waits for fits on the
  // row after it; the folder is in the report's path.
  progress.Step("scenario '" + name + "'");
  if (name == "etcd") {
    r.title = "Quorum lock (3-member etcd), partitioned";
    RunEtcdScenario(ns, r, data, false, &progress);
  } else if (name == "naive") {
    r.title = "Naive lock (primary + standby fence-lockd), partitioned";
    RunNaiveScenario(ns, r, data, &progress);
  } else if (name == "worker-cut") {
    r.title = "Worker cut off, lock service (3-member etcd) healthy";
    RunEtcdScenario(ns, r, data, true, &progress);
  } else {
    r.problems.push_back("unknown scenario");
  }
  // No rule of one scenario may leak into the next.
  (void)ns.Heal();
  progress.Waiting("merging the logs; fence-logscan");
  BuildTimeline(r);
  if (r.ran) RunLogscan(r);
  fs::remove_all(data, ec);
  log::Info("scenario_finished",
            {{"scenario", name}, {"passed", r.passed()}, {"problems", r.problems}});
  return r;
}

}  // namespace

bool PartitionResults::passed() const {
  if (!failures.empty() || scenarios.empty()) return false;
  return std::all_of(scenarios.begin(), scenarios.end(),
                     [](const ScenarioResult& s) { return s.passed(); });
}

int RunPartition(const PartitionOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  PartitionResults results;
  results.started_at = logscan::FormatTimestamp(NowMs());
  if (auto missing = MissingPrerequisite()) {
    log::Error("cannot_run", {{"reason", *missing}});
    std::fprintf(stderr, "fence-partition: %s\n", missing->c_str());
    return 3;
  }
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) {
    std::fprintf(stderr, "fence-partition: cannot create %s: %s\n", options.out_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  const std::string out = fs::absolute(options.out_dir).string();
  results.stale_namespaces_removed = RemoveStaleNamespaces();
  for (const auto& name : results.stale_namespaces_removed) {
    log::Warn("stale_namespace_removed", {{"namespace", name}});
  }
  results.namespace_name = NamespaceName(getpid());

  std::atomic<bool> done{false};
  std::thread signal_thread;
  SetUpSignals(done, results.namespace_name, signal_thread);
  const std::string log_path = out + "/fence-partition.log";
  bool log_aside = false;
  {
    // Destroyed before the results are printed: it clears its status line.
    const bool terminal = Progress::StdoutIsTerminal();
    StderrAsideOnTerminal aside(terminal, log_path);
    log_aside = aside.active();
    MonotonicClock clock;
    Progress progress(stdout, terminal,
                      static_cast<int>(options.scenarios.size()) + 1, clock);
    progress.Step("creating the network namespace " + results.namespace_name);
    auto ns = Namespace::Create(results.namespace_name, kRoles, out + "/namespace.log");
    if (!ns.ok()) {
      results.failures.push_back("cannot create the network namespace: " + ns.error().message);
    } else {
      log::Info("namespace_created", {{"namespace", results.namespace_name}});
      const std::string data_root = out + "/.data";
      for (const auto& name : options.scenarios) {
        results.scenarios.push_back(RunScenario(**ns, name, out, data_root, progress));
      }
      fs::remove_all(data_root, ec);
      (*ns)->Delete();
    }
  }
  done = true;
  kill(getpid(), SIGUSR1);
  signal_thread.join();

  results.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ofstream(out + "/summary.json") << SummaryJson(results).dump(2) << "\n";
  std::ofstream(out + "/report.md") << ReportMarkdown(results);
  for (const auto& s : results.scenarios) {
    std::printf("%-11s %s%s\n", s.name.c_str(), s.passed() ? "PASS" : "FAIL",
                s.problems.empty() ? "" : (": " + s.problems.front()).c_str());
  }
  for (const auto& f : results.failures) std::printf("setup      FAIL: %s\n", f.c_str());
  if (log_aside) std::printf("its log: %s\n", log_path.c_str());
  std::printf("report: %s/report.md (%.1f s)\n", out.c_str(), results.elapsed_s);
  return results.passed() ? 0 : 1;
}

int RunNaiveWorker(const NaiveWorkerOptions& o) {
  auto primary = client::MakeLockBackend("lockd", {o.primary});
  auto standby = client::MakeLockBackend("lockd", {o.standby});
  if (!primary.ok() || !standby.ok()) {
    std::fprintf(stderr, "fence-partition naive-worker: bad --primary or --standby URL\n");
    return 2;
  }
  FallbackLockBackend backend(std::move(*primary), "primary " + o.primary, std::move(*standby),
                              "standby " + o.standby);
  client::WorkerConfig config;
  config.id = o.id;
  config.lock = o.lock;
  config.keys = {o.key};
  config.ttl = Millis(o.ttl_ms);
  config.acquire_wait = Millis(o.wait_ms);
  config.acquire_timeout = Millis(o.acquire_timeout_ms);
  config.work = Millis(o.work_ms);
  config.hold_renewals = o.hold_renewals;
  config.terms = o.terms;
  config.payload = "result computed by " + o.id;

  return client::RunWorkerProcess(config, backend, o.store);
}

json SummaryJson(const PartitionResults& results) {
  json j;
  j["passed"] = results.passed();
  j["namespace"] = results.namespace_name;
  j["started_at"] = results.started_at;
  j["elapsed_s"] = results.elapsed_s;
  j["stale_namespaces_removed"] = results.stale_namespaces_removed;
  j["failures"] = results.failures;
  j["scenarios"] = json::object();
  for (const auto& s : results.scenarios) {
    j["scenarios"][s.name] = {{"title", s.title},
                              {"passed", s.passed()},
                              {"ran", s.ran},
                              {"problems", s.problems},
                              {"dir", s.dir},
                              {"cut_at", s.cut_ts ? json(logscan::FormatTimestamp(s.cut_ts)) : json(nullptr)},
                              {"healed_at", s.heal_ts ? json(logscan::FormatTimestamp(s.heal_ts)) : json(nullptr)},
                              {"facts", s.facts},
                              {"figures_ms_after_cut", s.figures},
                              {"logscan_exit", s.logscan_exit},
                              {"logscan_verdict", s.logscan.is_object() ? s.logscan.value("verdict", "") : ""}};
  }
  return j;
}

namespace {

std::string Who(const logscan::LogEvent& e) {
  const std::string owner = e.fields.value("owner", "");
  std::string process = e.source.substr(0, e.source.rfind('.'));
  if (e.component == "worker") return "worker " + (owner.empty() ? process : owner);
  if (e.component == "partition") return "experiment";
  if (e.component == process) return process;
  return e.component + " " + process;
}

std::string Detail(const logscan::LogEvent& e) {
  std::string out;
  for (const char* f : {"token", "highest_token", "term", "reason", "error", "from", "to",
                        "duration_ms", "lease_remaining_ms", "paused_ms", "cut", "endpoint",
                        "message"}) {
    if (!e.fields.contains(f) || e.fields[f].is_null()) continue;
    std::string v = e.fields[f].is_string() ? e.fields[f].get<std::string>() : e.fields[f].dump();
    if (v.size() > 90) v = v.substr(0, 87) + "...";
    for (auto& c : v) {
      if (c == '|' || c == '\n') c = ' ';
    }
    out += (out.empty() ? "" : ", ") + std::string(f) + "=" + v;
  }
  return out;
}

}  // namespace

std::string ReportMarkdown(const PartitionResults& results) {
  std::ostringstream md;
  md << "# Partition experiment\n\n"
     << "Run at " << results.started_at << " in network namespace `" << results.namespace_name
     << "` (" << static_cast<int>(results.elapsed_s) << " s). Verdict: **"
     << (results.passed() ? "every expected outcome happened" : "SOME EXPECTED OUTCOMES DID NOT HAPPEN")
     << "**.\n\n";
  for (const auto& f : results.failures) md << "- setup failure: " << f << "\n";
  for (const auto& s : results.scenarios) {
    md << "## " << s.name << ": " << s.title << "\n\n"
       << "Outcome: **" << (s.passed() ? "as expected" : "NOT as expected") << "**\n\n";
    for (const auto& p : s.problems) md << "- problem: " << p << "\n";
    if (!s.problems.empty()) md << "\n";
    md << "Facts:\n\n| fact | value |\n|---|---|\n";
    for (const auto& [k, v] : s.facts.items()) {
      std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      for (auto& c : text) {
        if (c == '|' || c == '\n') c = ' ';
      }
      if (text.size() > 200) text = text.substr(0, 197) + "...";
      md << "| " << k << " | " << text << " |\n";
    }
    md << "\nFigures (ms after the cut):\n\n| moment | after the cut |\n|---|---|\n";
    for (const auto& [k, v] : s.figures.items()) md << "| " << k << " | " << FormatMs(v) << " |\n";
    md << "\nThe cut (iptables-restore input applied inside the namespace):\n\n```\n"
       << s.cut_rules << "```\n\n";
    md << "Timeline (workers, store, lock servers and the experiment; etcd's own logs are in "
          "m1.log..m3.log):\n\n| +ms | who | event | details |\n|---|---|---|---|\n";
    std::size_t rows = 0;
    for (const auto& e : s.timeline) {
      if (e.event == "renewed" || e.event == "listening" || e.event == "lock_service_started") continue;
      if (e.component == "worker" && e.fields.value("owner", "") == "earlier") continue;
      if (++rows > 80) {
        md << "| | | ... | see timeline.log |\n";
        break;
      }
      md << "| " << (s.cut_ts ? std::to_string(e.ts - s.cut_ts) : "") << " | " << Who(e) << " | "
         << e.event << " | " << Detail(e) << " |\n";
    }
    md << "\nfence-logscan on timeline.log (exit " << s.logscan_exit << "):\n\n```\n"
       << s.logscan_report << "```\n\n";
  }
  md << "## Conclusion\n\n"
     << "Fencing is only as good as the token source. With a quorum lock (etcd) the minority "
        "side can neither renew nor acquire, so at most one side holds the lock at a time and "
        "every newer holder carries a higher token: the store orders the leaders and refuses "
        "the stale one. With two lock servers that each count on their own, both sides elect "
        "a leader at once and their tokens come from two counters that mean nothing relative "
        "to each other; the store accepts whatever is not lower, so the stale leader's write "
        "landed. Tokens must come from one linearizable counter (a quorum).\n";
  return md.str();
}

}  // namespace fence::tools::partition
