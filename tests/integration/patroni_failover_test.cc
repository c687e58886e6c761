// Failover of the PostgreSQL store under load (issue 18 item 3): a primary
// and a synchronous standby under Patroni on etcd, three fence-store
// processes (--storage postgresql, the multi-host URI) in front, and a
// seeded, bounded load of fenced writers through all three that records a
// history (core/history.h) of what each write was told. Mid-load the
// primary's postmaster gets a real SIGKILL; Patroni promotes the standby;
// the stores reconnect. The history checker, fed only the recorded history
// and a final read of every key, must find no acknowledged write lost and
// no fence lowered. The write unavailability window (kill to the first
// acknowledged write invoked after it) is printed next to Patroni's timing.
#include <gtest/gtest.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/history_recorder.h"
#include "client/store_client.h"
#include "common/monotonic_clock.h"
#include "core/history.h"
#include "tests/harness/daemon.h"
#include "tools/nemesis/nemesis.h"
#include "tools/services/patroni_cluster.h"

namespace fence::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kStores = 3;
constexpr int kWriters = 6;
constexpr int kKeys = 4;
constexpr int kMaxWritesPerWriter = 3000;       // bounds the load by count
constexpr int kAcknowledgedBeforeKill = 60;     // the load is under way
constexpr int kAcknowledgedAfterKill = 60;      // the stores are back
constexpr auto kLoadLimit = seconds(80);        // bounds the load by time
constexpr milliseconds kBackoff{20};            // after a 503 or a timeout
// Below the stores' statement timeout (5 s): a write stuck on a dead
// primary is given up and a new one sent, so the first write that can be
// acknowledged after the failover is sent within this much of it.
constexpr milliseconds kWriteTimeout{2000};

std::string KeyName(int k) { return "failover/key-" + std::to_string(k); }

// Counts shared by the writers and the test body. The counts are atomics;
// mu only orders a writer's notify against a waiter's check (WaitFor).
struct LoadState {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> next_token{1};
  std::atomic<int> acknowledged{0};
  std::atomic<std::int64_t> kill_ns{0};       // 0 until the kill
  std::atomic<int> acknowledged_after_kill{0};  // invoked after the kill
  // The same, per store: every store must have reconnected, not just one.
  std::array<std::atomic<int>, kStores> after_kill_by_store{};
  std::mutex mu;
  std::condition_variable progressed;
};

// One writer: a seeded key per write, a fresh token from a shared counter
// (so writers race and some writes are rightly refused as stale), a store
// chosen round-robin. Every call is recorded as made.
void Writer(int id, std::uint64_t seed, const std::vector<std::string>& stores,
            const std::string& history_path, LoadState& load) {
  auto history = client::HistoryFile::Open(history_path, "writer-" + std::to_string(id));
  if (!history.ok()) {
    ADD_FAILURE() << history.error().message;
    return;
  }
  std::vector<client::StoreClient> clients;
  for (const std::string& url : stores) clients.emplace_back(url, kWriteTimeout);
  std::mt19937_64 rng(seed + static_cast<std::uint64_t>(id));
  for (int n = 0; n < kMaxWritesPerWriter && !load.stop.load(); ++n) {
    const std::size_t target = static_cast<std::size_t>(id + n) % clients.size();
    client::RecordingObjectStore store(clients[target], **history);
    const std::string key = KeyName(static_cast<int>(rng() % kKeys));
    const Token token(load.next_token.fetch_add(1));
    const std::int64_t invoked = MonotonicNanos();
    auto put = store.Put(key, "w" + std::to_string(id) + "-" + std::to_string(n), token);
    if (put.ok() && put->accepted()) {
      load.acknowledged.fetch_add(1);
      const std::int64_t killed = load.kill_ns.load();
      if (killed != 0 && invoked > killed) {
        load.acknowledged_after_kill.fetch_add(1);
        load.after_kill_by_store[target].fetch_add(1);
      }
      // Taking the mutex orders this count before a waiter's check and its
      // sleep, so the wakeup cannot fall between them and be lost.
      { std::lock_guard lock(load.mu); }
      load.progressed.notify_all();
    } else if (!put.ok()) {
      std::this_thread::sleep_for(kBackoff);  // a bounded backoff, not a wait for an event
    }
  }
}

// Waits until `count` reaches `target` or `deadline` passes.
bool WaitFor(LoadState& load, const std::atomic<int>& count, int target,
             std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(load.mu);
  return load.progressed.wait_until(lock, deadline, [&] { return count.load() >= target; });
}

struct Outage {
  std::optional<std::int64_t> window_ns;  // kill to the first acknowledged write after it
  int unknown = 0;                        // writes of unknown outcome (5xx, timeout)
};

Outage MeasureOutage(const history::History& h, std::int64_t kill_ns) {
  Outage outage;
  for (const history::Op& op : h.ops) {
    if (op.op != history::kWrite) continue;
    if (op.type == history::kInfo) ++outage.unknown;
    if (op.type != history::kOk || op.invoke_ns <= kill_ns || !op.complete_ns) continue;
    const std::int64_t window = *op.complete_ns - kill_ns;
    if (!outage.window_ns || window < *outage.window_ns) outage.window_ns = window;
  }
  return outage;
}

Result<history::History> ReadHistory(const std::vector<std::string>& files,
                                     const std::vector<std::string>& extra_lines) {
  history::HistoryBuilder builder;
  std::size_t number = 0;
  for (const std::string& file : files) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      if (auto added = builder.AddLine(line, ++number); !added.ok()) return added.error();
    }
  }
  for (const std::string& line : extra_lines) {
    if (auto added = builder.AddLine(line, ++number); !added.ok()) return added.error();
  }
  return builder.Finish();
}

std::vector<Daemon> StartStores(const tools::PatroniCluster& cluster) {
  std::vector<Daemon> stores;
  // One at a time: the first creates the schema, the others find it.
  for (int i = 0; i < kStores; ++i) {
    stores.push_back(StartDaemon("fence-store", {"--storage", "postgresql", "--pg-uri",
                                                 cluster.LibpqUri()}));
  }
  return stores;
}

// FENCE_PATRONI_REPLICATION=synchronous|asynchronous reruns the test in a
// weaker mode (the default is strict): asynchronous is the control run in
// which the checker may find lost writes.
tools::PatroniOptions::Replication ReplicationFromEnv() {
  using Replication = tools::PatroniOptions::Replication;
  const char* env = std::getenv("FENCE_PATRONI_REPLICATION");
  const std::string mode = env == nullptr ? "" : env;
  if (mode == "synchronous") return Replication::kSynchronous;
  if (mode == "asynchronous") return Replication::kAsynchronous;
  EXPECT_TRUE(mode.empty() || mode == "strict")
      << "FENCE_PATRONI_REPLICATION: expected strict, synchronous or asynchronous, got " << mode;
  return Replication::kStrict;
}

std::uint64_t Seed() {
  if (const char* env = std::getenv("FENCE_SEED"); env != nullptr && *env != '\0') {
    return std::stoull(env);
  }
  return std::random_device{}();
}

// The checker must be able to fail: the same history, with one key's final
// read turned back to its first acknowledged write (what a failover to a
// standby that missed the later commits would show), is a lost write.
void ExpectCheckerCatchesALostWrite(history::History h) {
  for (const std::string& key : {KeyName(0), KeyName(1), KeyName(2), KeyName(3)}) {
    const history::Op* first = nullptr;
    int acknowledged = 0;
    for (const history::Op& op : h.ops) {
      if (op.key != key || op.op != history::kWrite || op.type != history::kOk) continue;
      ++acknowledged;
      if (first == nullptr || op.version < first->version) first = &op;
    }
    if (acknowledged < 2) continue;
    h.finals[key].value = first->value;
    h.finals[key].token = first->token;
    const history::CheckReport doctored = history::CheckHistory(h);
    bool lost = false;
    for (const auto& v : doctored.violations) lost = lost || v.check == "lost_write";
    EXPECT_TRUE(lost) << "the checker missed a lost write on " << key;
    return;
  }
  ADD_FAILURE() << "no key had two acknowledged writes to doctor";
}

// Patroni's view of the failover, for the record: when the standby became
// the leader and when the old primary was back as its synchronous standby
// (strict mode acknowledges nothing without one). Polled: Patroni's REST API
// has no way to push a change.
struct Milestones {
  std::optional<std::int64_t> promoted_ns;
  std::optional<std::int64_t> standby_back_ns;
};

Milestones WatchFailover(const tools::PatroniCluster& c, int old_leader,
                         std::chrono::steady_clock::time_point deadline) {
  const bool asynchronous =
      c.options().replication == tools::PatroniOptions::Replication::kAsynchronous;
  const std::string standby = asynchronous ? "/replica" : "/sync";
  Milestones m;
  while (std::chrono::steady_clock::now() < deadline && !m.standby_back_ns) {
    if (!m.promoted_ns && c.NodeAnswers(1 - old_leader, "/primary")) {
      m.promoted_ns = MonotonicNanos();
    }
    if (m.promoted_ns && c.NodeAnswers(old_leader, standby)) m.standby_back_ns = MonotonicNanos();
    std::this_thread::sleep_for(milliseconds(100));
  }
  return m;
}

std::string MillisAfter(std::optional<std::int64_t> t_ns, std::int64_t kill_ns) {
  if (!t_ns) return "never";
  return std::to_string((*t_ns - kill_ns) / 1000000) + " ms";
}

void PrintSummary(std::uint64_t seed, const tools::PatroniOptions& o,
                  const history::CheckReport& report, const Outage& outage,
                  const Milestones& m, std::int64_t kill_ns) {
  const double window_ms =
      outage.window_ns ? static_cast<double>(*outage.window_ns) / 1e6 : -1.0;
  std::cout << "patroni failover: seed " << seed << ", ttl " << o.timing.ttl_s
            << " s, loop_wait " << o.timing.loop_wait_s << " s, retry_timeout "
            << o.timing.retry_timeout_s << " s, replication "
            << tools::ReplicationName(o.replication) << "; write unavailability window "
            << window_ms << " ms (SIGKILL of the primary's postmaster to the first "
            << "acknowledged write invoked after it); " << report.writes_accepted
            << " writes accepted, " << report.writes_fenced << " refused as stale, "
            << outage.unknown << " of unknown outcome; " << report.violations.size()
            << " violations; standby promoted after " << MillisAfter(m.promoted_ns, kill_ns)
            << ", old primary back as standby after "
            << MillisAfter(m.standby_back_ns, kill_ns) << "\n";
}

TEST(PatroniFailoverTest, NoAcknowledgedWriteLostWhenThePrimaryIsKilled) {
  const std::uint64_t seed = Seed();
  std::cout << "seed " << seed << " (FENCE_SEED=" << seed << " repeats the load)\n";
  TempDir dir("fence-patroni-failover");
  tools::PatroniOptions options;
  options.dir = dir.path();
  options.replication = ReplicationFromEnv();
  auto cluster = tools::PatroniCluster::Launch(options);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  tools::PatroniCluster& c = **cluster;
  std::vector<Daemon> stores = StartStores(c);
  std::vector<std::string> urls;
  for (const Daemon& store : stores) {
    ASSERT_NE(store.port, 0) << "a fence-store did not start";
    urls.push_back(store.Url());
  }
  LoadState load;
  std::vector<std::string> files;
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    files.push_back(dir.Sub("history-" + std::to_string(i) + ".jsonl"));
    writers.emplace_back(Writer, i, seed, std::cref(urls), files.back(), std::ref(load));
  }
  const auto deadline = std::chrono::steady_clock::now() + kLoadLimit;
  const bool under_way = WaitFor(load, load.acknowledged, kAcknowledgedBeforeKill, deadline);
  const auto leader = c.LeaderIndex();
  const auto postmaster = leader.ok() ? c.PostmasterPid(*leader) : leader.error();
  bool killed = false;
  if (under_way && postmaster.ok()) {
    load.kill_ns = MonotonicNanos();
    killed = kill(*postmaster, SIGKILL) == 0;
  }
  const Milestones milestones =
      killed ? WatchFailover(c, *leader, deadline) : Milestones{};
  const bool recovered =
      killed && WaitFor(load, load.acknowledged_after_kill, kAcknowledgedAfterKill, deadline);
  load.stop = true;
  for (std::thread& w : writers) w.join();
  ASSERT_TRUE(under_way) << "fewer than " << kAcknowledgedBeforeKill << " writes acknowledged";
  ASSERT_TRUE(postmaster.ok()) << postmaster.error().message;
  ASSERT_TRUE(killed) << "kill(" << *postmaster << ", SIGKILL) failed";
  ASSERT_TRUE(recovered) << "fewer than " << kAcknowledgedAfterKill
                         << " writes acknowledged within 80 s of the load's start";
  for (int i = 0; i < kStores; ++i) {
    EXPECT_GT(load.after_kill_by_store[i].load(), 0)
        << "fence-store " << i << " acknowledged nothing after the failover: it did not reconnect";
  }
  const auto promoted = c.LeaderIndex();
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  EXPECT_NE(*promoted, *leader) << "the killed primary is still the leader";

  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back(KeyName(k));
  auto finals = tools::nemesis::ReadFinalLines(urls[0], keys);
  ASSERT_TRUE(finals.ok()) << finals.error().message;
  auto recorded = ReadHistory(files, *finals);
  ASSERT_TRUE(recorded.ok()) << recorded.error().message;
  const history::CheckReport report = history::CheckHistory(*recorded);
  for (const auto& v : report.violations) ADD_FAILURE() << v.check << ": " << v.message;
  const Outage outage = MeasureOutage(*recorded, load.kill_ns.load());
  PrintSummary(seed, options, report, outage, milestones, load.kill_ns.load());
  EXPECT_TRUE(outage.window_ns.has_value());
  EXPECT_GE(report.writes_accepted,
            static_cast<std::size_t>(kAcknowledgedBeforeKill + kAcknowledgedAfterKill));
  ExpectCheckerCatchesALostWrite(*recorded);
}

}  // namespace
}  // namespace fence::testing
