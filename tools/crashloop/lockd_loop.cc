// The lockd target: W clients on a few locks acquire (short TTLs), keep
// alive and release; lockd is SIGKILLed at a seeded moment and restarted
// on the same data directory on a new port; the grants of each lockd
// instance are checked against every grant before it.
#include "common/http_client.h"
#include "common/logging.h"
#include "tools/crashloop/crashloop.h"
#include "tools/crashloop/loop_support.h"

namespace fence::crashloop {

namespace {

namespace http = net::http;

// The kill lands this long after the instance listens: sometimes inside
// its grace period (which must then hold again after the next restart),
// mostly after it, with grants to check.
constexpr int kKillMinMs = 50;
constexpr int kKillMaxMs = 700;
// The instance after the last kill runs this long past its grace, so the
// last restart is checked with grants too.
constexpr auto kFinalRoundAfterGrace = std::chrono::milliseconds(500);
constexpr int kWaitMs = 100;
constexpr auto kRequestTimeout = std::chrono::seconds(5);
// lockd reads its clock in whole milliseconds (docs/lockd.md), so its grace
// may end up to 1 ms before spawn + TTL as measured here.
constexpr auto kClockResolution = std::chrono::milliseconds(1);

struct Tally {
  long acknowledged = 0;
  long indeterminate = 0;
  std::vector<Grant> grants;
};

struct ClientSetup {
  std::string url;
  std::vector<std::string> locks;
  std::uint64_t seed = 0;
  int client = 0;
  int epoch = 0;
};

Result<net::Response> Post(const std::string& url, const nlohmann::json& body) {
  auto call = net::JsonCall(http::verb::post, url, body);
  call.timeout = kRequestTimeout;
  return net::Call(call);
}

nlohmann::json Json(const net::Response& res) {
  auto json = nlohmann::json::parse(res.body(), nullptr, false);
  return json.is_object() ? json : nlohmann::json::object();
}

// Keeps the lease alive a few times, then mostly releases it (or lets it
// expire). False if lockd stopped answering.
bool HoldLease(const ClientSetup& setup, const std::string& lock, const std::string& lease_id,
               std::int64_t ttl_ms, std::mt19937_64& rng, const std::atomic<bool>& stop,
               Tally& tally) {
  for (auto renewals = rng() % 3; renewals > 0 && !stop.load(); --renewals) {
    PauseUnlessStopped(stop, std::chrono::milliseconds(ttl_ms / 3));
    auto res = Post(setup.url + "/v1/leases/" + lease_id + "/keepalive", {});
    if (!res.ok()) {
      ++tally.indeterminate;
      return false;
    }
    if (res->result_int() != 200) break;  // expired meanwhile: acquire again
    ++tally.acknowledged;
  }
  if (rng() % 5 == 0) return true;  // left to expire
  auto res = Post(setup.url + "/v1/locks/" + lock + "/release", {{"lease_id", lease_id}});
  if (!res.ok()) {
    ++tally.indeterminate;
    return false;
  }
  if (res->result_int() == 200) ++tally.acknowledged;
  return true;
}

// Acquires until `stop` or until lockd stops answering (it was killed).
void RunClient(const ClientSetup& setup, const std::atomic<bool>& stop, Tally& tally) {
  std::seed_seq seq{setup.seed, static_cast<std::uint64_t>(setup.client),
                    static_cast<std::uint64_t>(setup.epoch)};
  std::mt19937_64 rng(seq);
  const std::string owner = "client-" + std::to_string(setup.client);
  while (!stop.load()) {
    const std::string& lock = setup.locks[rng() % setup.locks.size()];
    const std::int64_t ttl_ms = 100 + 50 * static_cast<std::int64_t>(rng() % 4);
    auto res = Post(setup.url + "/v1/locks/" + lock + "/acquire",
                    {{"owner", owner}, {"ttl_ms", ttl_ms}, {"wait_ms", kWaitMs}});
    if (!res.ok()) {
      ++tally.indeterminate;
      return;
    }
    const auto json = Json(*res);
    if (res->result_int() == 200 && json.value("token", std::uint64_t{0}) > 0) {
      const auto completed_at = MonotonicNow();
      ++tally.acknowledged;
      tally.grants.push_back({setup.epoch, lock, json["token"].get<std::uint64_t>(),
                              json.value("ttl_ms", ttl_ms), completed_at});
      if (!HoldLease(setup, lock, json.value("lease_id", ""), ttl_ms, rng, stop, tally)) return;
    } else if (res->result_int() == 503) {
      // The grace period: ask again soon, so a grant that comes too early
      // would be seen.
      PauseUnlessStopped(stop, std::chrono::milliseconds(
                                   std::min<std::int64_t>(json.value("retry_after_ms", 20), 20)));
    }
  }
}

// One lockd instance's round: clients until `delay` has passed, then
// SIGKILL (or, for the last instance, a clean stop).
Tally RunRound(ListeningDaemon& lockd, const Options& options, int locks, int epoch,
               std::chrono::milliseconds delay, bool last) {
  std::vector<Tally> tallies(static_cast<std::size_t>(options.writers));
  ClientSetup setup{lockd.Url(), {}, options.seed, 0, epoch};
  for (int l = 0; l < locks; ++l) setup.locks.push_back("crashloop-l" + std::to_string(l));
  RunWorkersUntil(
      options.writers, delay,
      [&](int c, const std::atomic<bool>& stop) {
        ClientSetup own = setup;
        own.client = c;
        RunClient(own, stop, tallies[static_cast<std::size_t>(c)]);
      },
      [&] {
        if (last) {
          lockd.process->Stop();
        } else {
          KillDaemon(lockd, epoch + 1, delay);
        }
      });
  Tally total;
  for (auto& t : tallies) {
    total.acknowledged += t.acknowledged;
    total.indeterminate += t.indeterminate;
    total.grants.insert(total.grants.end(), t.grants.begin(), t.grants.end());
  }
  return total;
}

}  // namespace

Result<Summary> RunLockdLoop(const Options& options) {
  Summary summary;
  summary.target = "lockd";
  summary.seed = options.seed;
  const Deadline deadline(options.max_seconds);
  const std::string data = options.work_dir + "/data";
  const std::string daemon_log = options.work_dir + "/daemon.log";
  const int locks = options.keys;
  GrantHistory history;
  std::mt19937_64 rng(options.seed);

  auto spawned_at = MonotonicNow();
  auto lockd = StartDaemon("fence-lockd", data, daemon_log);
  if (!lockd.ok()) return lockd.error();
  log::Info("daemon_started", {{"target", "lockd"}, {"port", lockd->port}, {"data_dir", data}});
  for (int epoch = 0;; ++epoch) {
    const bool last = epoch == options.kills || deadline.Passed();
    const auto delay = last ? std::chrono::milliseconds(history.max_ttl_ms) + kFinalRoundAfterGrace
                            : KillDelay(rng, kKillMinMs, kKillMaxMs);
    Tally round = RunRound(*lockd, options, locks, epoch, delay, last);
    summary.acknowledged += round.acknowledged;
    summary.indeterminate += round.indeterminate;
    summary.verified += static_cast<long>(round.grants.size());
    const std::size_t before = summary.violations.size();
    Report(CheckEpochGrants(history, epoch, spawned_at, round.grants, kClockResolution), epoch,
           options.seed, summary.violations);
    // How close to the end of the grace the first grant came: a figure for
    // the docs, and a hint when a run is flagged.
    nlohmann::json first_after_grace_ms = nullptr;
    for (const Grant& g : round.grants) {
      const double ms = std::chrono::duration<double, std::milli>(
                            g.completed_at - spawned_at -
                            std::chrono::milliseconds(epoch == 0 ? 0 : history.max_ttl_ms))
                            .count();
      if (first_after_grace_ms.is_null() || ms < first_after_grace_ms.get<double>()) {
        first_after_grace_ms = ms;
      }
    }
    log::Info("grants_verified",
              {{"kill", epoch}, {"grants", round.grants.size()},
               {"grace_ms", epoch == 0 ? 0 : history.max_ttl_ms},
               {"first_grant_after_grace_ms", first_after_grace_ms},
               {"acknowledged", round.acknowledged}, {"indeterminate", round.indeterminate},
               {"violations", summary.violations.size() - before}});
    AddToHistory(history, round.grants);
    if (last) break;
    summary.kills = epoch + 1;
    spawned_at = MonotonicNow();
    lockd = StartDaemon("fence-lockd", data, daemon_log);
    if (!lockd.ok()) {
      Report({{"restart_failed", "", "lockd restarts on its data directory",
               lockd.error().message, epoch + 1}},
             epoch + 1, options.seed, summary.violations);
      break;
    }
    log::Info("daemon_restarted", {{"kill", epoch + 1}, {"port", lockd->port}});
  }
  summary.wall_seconds = deadline.Elapsed();
  return summary;
}

}  // namespace fence::crashloop
