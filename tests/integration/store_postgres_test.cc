// fence-store processes sharing one real PostgreSQL 15 (started by the test,
// as the postgres user when we are root): the fence rule holds across
// processes because the database applies it in the statement that commits
// each write; a database that goes away gives 503s, never 200s, and the
// stores recover when it comes back.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "common/monotonic_clock.h"
#include "core/history.h"
#include "tests/harness/daemon.h"
#include "tests/harness/raw_socket.h"
#include "tests/harness/responses.h"
#include "tools/services/postgres.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using Headers = std::vector<std::pair<std::string, std::string>>;

class StorePostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = tools::LaunchPostgres({.dir = dir_.Sub("pg"), .settings = {}});
    ASSERT_TRUE(pg.ok()) << pg.error().message;
    pg_ = std::move(*pg);
    Status made = pg_->CreateDatabase("fence");
    ASSERT_TRUE(made.ok()) << made.error().message;
  }

  Daemon StartStore(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--storage", "postgresql", "--pg-uri", pg_->Uri("fence")};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartDaemon("fence-store", args);
  }

  static net::Response Put(const Daemon& store, const std::string& key, std::uint64_t token,
                           const std::string& body, Headers extra = {}) {
    Headers h = {{"Fencing-Token", std::to_string(token)}};
    h.insert(h.end(), extra.begin(), extra.end());
    return Request(verb::put, store.Url("/v1/objects/" + key), h, body);
  }

  TempDir dir_{"fence-store-pg"};
  std::unique_ptr<tools::LaunchedPostgres> pg_;
};

// Sends a PUT's header with Expect: 100-continue and waits until the store
// asks for the body: its precheck (a read of the fences) has passed.
void SendHeaderAndWaitForContinue(RawConnection& conn, const std::string& key,
                                  std::uint64_t token, std::size_t length,
                                  const std::string& scope = "") {
  std::string header = "PUT /v1/objects/" + key + " HTTP/1.1\r\nHost: x\r\nFencing-Token: " +
                       std::to_string(token) + "\r\nContent-Length: " +
                       std::to_string(length) + "\r\nExpect: 100-continue\r\n";
  if (!scope.empty()) header += "Fencing-Scope: " + scope + "\r\n";
  ASSERT_TRUE(conn.Send(header + "\r\n"));
  ASSERT_NE(conn.ReadUntil("100 Continue", std::chrono::seconds(10)).find("100 Continue"),
            std::string::npos);
}

// The stale write sent to the second store after a fresh write through the
// first is 409. Then the same with no help from the precheck: the stale
// write's header passes the precheck before the fresh write commits, and
// only its body comes after; the database's statement must still refuse it.
TEST_F(StorePostgresTest, StaleWriteThroughASecondStoreIs409) {
  Daemon a = StartStore();
  Daemon b = StartStore();
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  ASSERT_EQ(Put(a, "k", 7, "from a").result(), status::ok);
  auto stale = Put(b, "k", 5, "from b");
  ASSERT_EQ(stale.result(), status::conflict) << stale.body();
  EXPECT_EQ(Json(stale)["error"], "stale_token");
  EXPECT_EQ(Json(stale)["highest_token"], 7);

  RawConnection late(b.port);
  SendHeaderAndWaitForContinue(late, "k", 8, 3);
  ASSERT_EQ(Put(a, "k", 9, "newer").result(), status::ok);
  ASSERT_TRUE(late.Send("old"));
  const std::string reply = late.ReadUntil("\"highest_token\":9", std::chrono::seconds(10));
  EXPECT_NE(reply.find("HTTP/1.1 409"), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"highest_token\":9"), std::string::npos) << reply;
  auto get = Request(verb::get, b.Url("/v1/objects/k"));
  EXPECT_EQ(get.body(), "newer");
  EXPECT_EQ(Header(get, "Fencing-Token"), "9");
  auto metrics = Request(verb::get, b.Url("/metrics")).body();
  EXPECT_NE(metrics.find("fence_store_fenced_writes_total 2"), std::string::npos) << metrics;
}

// An admin's repair through one store of a fence forged through another:
// the database checks the expected value in the statement that lowers it,
// so a repair naming a value the fence no longer has (a leader raised it
// through the other store since) changes nothing.
TEST_F(StorePostgresTest, FenceRepairThroughAnotherStoreHoldsItsPrecondition) {
  Daemon a = StartStore();
  Daemon b = StartStore();
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  ASSERT_EQ(Put(a, "job", 7, "v7").result(), status::ok);
  const std::string forged = "18446744073709551615";
  ASSERT_EQ(Request(verb::post, a.Url("/v1/fences/job"), {{"Fencing-Token", forged}}).result(),
            status::ok);
  ASSERT_EQ(Put(b, "job", 8, "v8").result(), status::conflict);

  const std::string repair = R"({"expected":)" + forged + R"(,"new":7,"reason":"forged"})";
  auto repaired = Request(verb::post, b.Url("/v1/fences/job/repair"), {}, repair);
  ASSERT_EQ(repaired.result(), status::ok) << repaired.body();
  EXPECT_EQ(Json(repaired)["highest_token"], 7);
  auto fence = Request(verb::get, a.Url("/v1/fences/job"));
  EXPECT_EQ(Json(fence)["highest_token"], 7) << fence.body();

  // A leader raises the fence through a; the admin's repair, still naming
  // the forged value, is refused with the fence as it is.
  ASSERT_EQ(Put(a, "job", 9, "v9").result(), status::ok);
  auto moved = Request(verb::post, b.Url("/v1/fences/job/repair"), {},
                       R"({"expected":7,"new":3,"reason":"late"})");
  EXPECT_EQ(moved.result(), status::precondition_failed) << moved.body();
  EXPECT_EQ(Json(moved)["error"], "fence_moved");
  EXPECT_EQ(Json(moved)["highest_token"], 9);
  auto never = Request(verb::post, b.Url("/v1/fences/nothing/repair"), {}, repair);
  EXPECT_EQ(never.result(), status::not_found) << never.body();
  auto get = Request(verb::get, b.Url("/v1/objects/job"));
  EXPECT_EQ(get.body(), "v9");
  EXPECT_EQ(Header(get, "Fencing-Token"), "9");
}

// A scope raised through one store between a scoped write's precheck and
// its body on another: the scope's fence, locked in the same statement,
// refuses it.
TEST_F(StorePostgresTest, ScopeRaisedThroughAnotherStoreRefusesAWriteInFlight) {
  Daemon a = StartStore();
  Daemon b = StartStore();
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  RawConnection late(b.port);
  SendHeaderAndWaitForContinue(late, "part-1", 4, 3, "job");
  auto raise = Request(verb::post, a.Url("/v1/scopes/job/fence"), {{"Fencing-Token", "6"}});
  ASSERT_EQ(raise.result(), status::ok) << raise.body();
  ASSERT_TRUE(late.Send("old"));
  const std::string reply = late.ReadUntil("\"refused_by\":\"scope\"", std::chrono::seconds(10));
  EXPECT_NE(reply.find("HTTP/1.1 409"), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"refused_by\":\"scope\""), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"scope_highest_token\":6"), std::string::npos) << reply;
  EXPECT_EQ(Request(verb::get, a.Url("/v1/objects/part-1")).result(), status::not_found);
}

struct Recorder {
  std::mutex mu;
  history::History history;  // GUARDED_BY(mu)
  std::uint64_t next_id = 0;  // GUARDED_BY(mu)

  // Records one write as the client saw it: 200 ok (with its version), 409
  // fail (with the fence named), anything else unknown.
  void Write(const std::string& process, const std::string& key, std::uint64_t token,
             const std::string& value, std::int64_t invoked, const net::Response& res) {
    history::Op op;
    op.process = process;
    op.op = std::string(history::kWrite);
    op.key = key;
    op.token = token;
    op.value = value;
    op.invoke_ns = invoked;
    op.complete_ns = MonotonicNanos();
    auto j = nlohmann::json::parse(res.body(), nullptr, false);
    if (res.result() == status::ok && !j.is_discarded()) {
      op.type = std::string(history::kOk);
      op.version = j.value("version", std::uint64_t{0});
    } else if (res.result() == status::conflict && !j.is_discarded()) {
      op.type = std::string(history::kFail);
      op.highest_token = j.value("highest_token", std::uint64_t{0});
    } else {
      op.type = std::string(history::kInfo);
    }
    std::lock_guard lock(mu);
    op.id = next_id++;
    history.ops.push_back(std::move(op));
  }

  void Final(const Daemon& store, const std::string& key) {
    auto get = Request(verb::get, store.Url("/v1/objects/" + key));
    history::FinalRead final;
    final.key = key;
    final.exists = get.result() == status::ok;
    final.value = get.body();
    if (final.exists) {
      final.token = std::stoull(Header(get, "Fencing-Token"));
      final.highest_token = std::stoull(Header(get, "Fencing-Highest-Token"));
      final.version = std::stoull(Header(get, "Key-Version"));
    }
    std::lock_guard lock(mu);
    history.finals[key] = final;
  }

  std::string Violations() {
    std::lock_guard lock(mu);
    std::string text;
    for (const auto& v : history::CheckHistory(history).violations) {
      text += v.check + ": " + v.message + "\n";
    }
    return text;
  }
};

std::uint64_t SeedFromEnv() {
  const char* seed = std::getenv("FENCE_TEST_SEED");
  return seed != nullptr ? std::stoull(seed) : std::random_device{}();
}

// Six clients write one key through three stores with tokens drawn from one
// counter, each to a store chosen at random: bounded (6 x 30 writes), seeded
// (FENCE_TEST_SEED replays the choices). The history checker then finds the
// accepted tokens non-decreasing in commit order, the final object the
// highest accepted write's, and every 409 naming a real, higher fence.
TEST_F(StorePostgresTest, ConcurrentWritersThroughThreeStoresKeepTheRule) {
  const std::uint64_t seed = SeedFromEnv();
  std::printf("seed %llu (FENCE_TEST_SEED=%llu replays it)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::vector<Daemon> stores;
  for (int i = 0; i < 3; ++i) {
    stores.push_back(StartStore());
    ASSERT_GT(stores.back().port, 0);
  }
  constexpr int kClients = 6;
  constexpr int kWritesPerClient = 30;
  std::atomic<std::uint64_t> counter{1};
  Recorder recorder;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(seed + static_cast<std::uint64_t>(c));
      for (int i = 0; i < kWritesPerClient; ++i) {
        const std::uint64_t token = counter.fetch_add(1 + rng() % 2);
        const Daemon& store = stores[rng() % stores.size()];
        const std::string value = "c" + std::to_string(c) + " t" + std::to_string(token);
        const std::int64_t invoked = MonotonicNanos();
        auto res = Put(store, "hot", token, value);
        recorder.Write("client-" + std::to_string(c), "hot", token, value, invoked, res);
      }
    });
  }
  for (auto& t : clients) t.join();
  recorder.Final(stores[0], "hot");
  EXPECT_EQ(recorder.Violations(), "") << "seed " << seed;
  std::uint64_t accepted = 0;
  std::uint64_t highest = 0;
  for (const auto& op : recorder.history.ops) {
    if (op.type != history::kOk) continue;
    ++accepted;
    highest = std::max(highest, *op.token);
  }
  EXPECT_GT(accepted, 0u);
  const auto& final = recorder.history.finals["hot"];
  EXPECT_EQ(final.token, highest) << "seed " << seed;
  EXPECT_EQ(final.version, accepted) << "one version per accepted write; seed " << seed;
}

bool ReadyIs(const Daemon& store, status expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Request(verb::get, store.Url("/readyz")).result() == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a state, bounded
  }
  return false;
}

// The database stopped while a client writes: every answer is 200 or 503
// (storage_unavailable, commit_unknown), never another 200 once it is
// down; /readyz says not ready; after the database restarts the store
// reconnects by itself and the history (writes of unknown outcome
// included) loses no acknowledged write and never lowers the fence.
TEST_F(StorePostgresTest, DatabaseStoppedMidRunGives503AndRecovers) {
  Daemon store = StartStore({"--pg-connect-timeout-ms", "1000"});
  ASSERT_GT(store.port, 0);
  Recorder recorder;
  std::atomic<std::uint64_t> token{1};
  std::atomic<bool> stop{false};
  std::atomic<int> not_200_or_503{0};
  auto write = [&] {
    const std::uint64_t t = token.fetch_add(1);
    const std::string value = "v" + std::to_string(t);
    const std::int64_t invoked = MonotonicNanos();
    auto res = Put(store, "k", t, value);
    if (res.result() != status::ok && res.result() != status::service_unavailable) {
      ++not_200_or_503;
      ADD_FAILURE() << res.result_int() << " " << res.body();
    }
    recorder.Write("writer", "k", t, value, invoked, res);
    return res;
  };
  ASSERT_EQ(write().result(), status::ok);
  std::thread writer([&] {
    for (int i = 0; i < 2000 && !stop; ++i) write();  // bounded
  });
  pg_->Stop();
  const std::int64_t stopped = MonotonicNanos();
  ASSERT_TRUE(ReadyIs(store, status::service_unavailable));
  for (int i = 0; i < 3; ++i) {
    auto down = write();
    EXPECT_EQ(down.result(), status::service_unavailable) << down.body();
    const std::string code = Json(down).value("error", "");
    EXPECT_TRUE(code == "storage_unavailable" || code == "commit_unknown") << down.body();
  }
  EXPECT_EQ(Request(verb::get, store.Url("/v1/objects/k")).result(), status::service_unavailable);
  const std::int64_t restarting = MonotonicNanos();
  Status restarted = pg_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted.error().message;
  ASSERT_TRUE(ReadyIs(store, status::ok));
  stop = true;
  writer.join();
  auto after = write();
  EXPECT_EQ(after.result(), status::ok) << after.body();
  recorder.Final(store, "k");
  EXPECT_EQ(recorder.Violations(), "");
  EXPECT_EQ(not_200_or_503.load(), 0);
  // Nothing is acknowledged while the database is down: no 200 for a write
  // sent after the stop came before the restart began.
  for (const auto& op : recorder.history.ops) {
    if (op.type == history::kOk && op.invoke_ns > stopped) {
      EXPECT_GT(*op.complete_ns, restarting) << op.value;
    }
  }
}

// True once `sql` (a count) answers 1, polled for at most 15 s.
bool Eventually(const tools::LaunchedPostgres& pg, const std::string& sql) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    auto out = pg.Psql("fence", sql);
    if (out.ok() && out->rfind("1", 0) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a state, bounded
  }
  return false;
}

// A write the store has sent and PostgreSQL has not answered when the
// database goes away has an unknown outcome: 503 commit_unknown, never
// 200. The write is held in flight by a row lock another session holds
// (bounded by pg_sleep), and the database is stopped while the store's
// statement waits for it.
TEST_F(StorePostgresTest, WriteInFlightWhenTheDatabaseStopsIs503CommitUnknown) {
  Daemon store = StartStore();
  ASSERT_GT(store.port, 0);
  ASSERT_EQ(Put(store, "k", 1, "first").result(), status::ok);
  std::thread holder([&] {
    (void)pg_->Psql("fence",
                    "BEGIN; SELECT 1 FROM fence_objects WHERE key = 'k' FOR UPDATE; "
                    "SELECT pg_sleep(20); COMMIT;");
  });
  ASSERT_TRUE(Eventually(*pg_, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                               "'%pg_sleep(20)%' AND state = 'active' AND pid <> "
                               "pg_backend_pid()"));
  net::Response in_flight;
  std::thread writer([&] { in_flight = Put(store, "k", 2, "second"); });
  const bool waiting = Eventually(
      *pg_, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fence-store' "
            "AND wait_event_type = 'Lock'");
  pg_->Stop();
  writer.join();
  holder.join();
  ASSERT_TRUE(waiting) << "the store's write never waited for the lock";
  EXPECT_EQ(in_flight.result(), status::service_unavailable) << in_flight.body();
  EXPECT_EQ(Json(in_flight)["error"], "commit_unknown") << in_flight.body();
  Status restarted = pg_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted.error().message;
  ASSERT_TRUE(ReadyIs(store, status::ok));
  // Here it was not committed (the holder's session kept the row until the
  // stop): the fence is still 1, and the retry with the same token lands.
  EXPECT_EQ(Json(Request(verb::get, store.Url("/v1/fences/k")))["highest_token"], 1);
  EXPECT_EQ(Put(store, "k", 2, "second").result(), status::ok);
}

}  // namespace
}  // namespace fence::testing
