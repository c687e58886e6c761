// Authentication on both daemons as real processes: every 401 and 403 path
// (before and after the body), the open routes, the refusal metric, secrets
// kept out of the log, SIGHUP reload (good file and bad file), the refusal
// to listen beyond loopback without an auth file, and fence repair.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "core/auth.h"
#include "tests/harness/daemon.h"
#include "tests/harness/responses.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Each token is unguessable in production; here each is distinctive, so the
// log check below can find any trace of one.
constexpr char kReaderToken[] = "reader-secret-Q3xv";
constexpr char kWriterToken[] = "writer-secret-Z8kd";
constexpr char kAdminToken[] = "admin-secret-P1mw";
constexpr char kClientToken[] = "client-secret-R7ta";
constexpr char kNewWriterToken[] = "writer-secret-after-reload-N4cc";
constexpr char kForged[] = "18446744073709551615";

std::string Line(std::string_view role, std::string_view token, std::string_view name) {
  return std::string(role) + " " + auth::HexOf(auth::HashToken(token)) + " " +
         std::string(name) + "\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

Headers Bearer(std::string_view token, Headers more = {}) {
  more.emplace_back("Authorization", "Bearer " + std::string(token));
  return more;
}


// The value of one series in a Prometheus text page, or -1 if absent.
double Metric(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

bool IsEvent(std::string_view line, std::string_view event) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.value("event", "") == event;
}

class StoreAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(auth_file_, "# test credentials\n" + Line("reader", kReaderToken, "r") +
                              Line("writer", kWriterToken, "w") +
                              Line("admin", kAdminToken, "ops"));
    store_ = StartDaemon("fence-store",
                         {"--data-dir", dir_.Sub("data"), "--auth-file", auth_file_});
    ASSERT_GT(store_.port, 0);
  }

  net::Response Call(verb method, const std::string& path, Headers headers = {},
                     std::string body = "") {
    return Request(method, store_.Url(path), std::move(headers), std::move(body));
  }

  // Waits for the next `event` line after the first `from` lines.
  bool LoggedAfter(std::string_view event, std::size_t from) {
    return store_.process
        ->WaitForLine([&](std::string_view l) { return IsEvent(l, event); },
                      std::chrono::seconds(10), from)
        .has_value();
  }

  TempDir dir_{"fence-auth-test"};
  std::string auth_file_ = dir_.Sub("auth");
  Daemon store_;
};

struct Refusal {
  std::string what;
  verb method;
  std::string path;
  Headers headers;
  status expected;
  std::string reason;  // the body's "reason"
};

TEST_F(StoreAuthTest, EveryRefusalIsJsonWithItsReasonAndNothingMoves) {
  ASSERT_EQ(Call(verb::put, "/v1/objects/k", Bearer(kWriterToken, {{"Fencing-Token", "5"}}),
                 "v5").result(), status::ok);
  const std::vector<Refusal> kRows = {
      {"forged PUT, no credentials", verb::put, "/v1/objects/k",
       {{"Fencing-Token", kForged}}, status::unauthorized, "missing"},
      {"forged fence raise, no credentials", verb::post, "/v1/fences/k",
       {{"Fencing-Token", kForged}}, status::unauthorized, "missing"},
      {"GET, no credentials", verb::get, "/v1/objects/k", {}, status::unauthorized, "missing"},
      {"HEAD, no credentials", verb::head, "/v1/objects/k", {}, status::unauthorized, ""},
      {"GET fence, no credentials", verb::get, "/v1/fences/k", {}, status::unauthorized, "missing"},
      {"Basic scheme", verb::get, "/v1/objects/k", {{"Authorization", "Basic dTpw"}},
       status::unauthorized, "malformed"},
      {"two Authorization headers", verb::get, "/v1/objects/k",
       Bearer(kReaderToken, Bearer(kReaderToken)), status::unauthorized, "malformed"},
      {"unknown token", verb::put, "/v1/objects/k",
       Bearer("guessed-token", {{"Fencing-Token", kForged}}), status::unauthorized,
       "unknown_token"},
      {"reader PUT", verb::put, "/v1/objects/k", Bearer(kReaderToken, {{"Fencing-Token", kForged}}),
       status::forbidden, "forbidden"},
      {"reader DELETE", verb::delete_, "/v1/objects/k",
       Bearer(kReaderToken, {{"Fencing-Token", kForged}}), status::forbidden, "forbidden"},
      {"reader fence raise", verb::post, "/v1/fences/k",
       Bearer(kReaderToken, {{"Fencing-Token", kForged}}), status::forbidden, "forbidden"},
      {"reader scope raise", verb::post, "/v1/scopes/job/fence",
       Bearer(kReaderToken, {{"Fencing-Token", kForged}}), status::forbidden, "forbidden"},
      {"writer repair", verb::post, "/v1/fences/k/repair", Bearer(kWriterToken),
       status::forbidden, "forbidden"},
      {"repair, no credentials", verb::post, "/v1/fences/k/repair", {}, status::unauthorized,
       "missing"},
  };
  for (const Refusal& row : kRows) {
    SCOPED_TRACE(row.what);
    // A large body, refused from the header: it is never read.
    auto res = Call(row.method, row.path, row.headers,
                    row.method == verb::put ? std::string(std::size_t{64} * 1024, 'x') : "");
    EXPECT_EQ(res.result(), row.expected) << res.body();
    EXPECT_NE(Header(res, "WWW-Authenticate").find("Bearer realm=\"fence-store\""),
              std::string::npos);
    if (row.method == verb::head) continue;  // no body
    auto body = Json(res);
    EXPECT_EQ(body["error"], row.expected == status::unauthorized ? "unauthorized" : "forbidden");
    EXPECT_EQ(body["reason"], row.reason);
    EXPECT_FALSE(body.value("message", "").empty());
  }
  auto fence = Call(verb::get, "/v1/fences/k", Bearer(kReaderToken));
  ASSERT_EQ(fence.result(), status::ok);
  EXPECT_EQ(Json(fence)["highest_token"], 5);
  auto object = Call(verb::get, "/v1/objects/k", Bearer(kReaderToken));
  EXPECT_EQ(object.body(), "v5");

  const std::string metrics = Call(verb::get, "/metrics").body();
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_refusals_total{reason="missing"})"), 6);
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_refusals_total{reason="malformed"})"), 2);
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_refusals_total{reason="unknown_token"})"), 1);
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_refusals_total{reason="forbidden"})"), 5);
}

TEST_F(StoreAuthTest, RolesAllowWhatTheyShouldAndProbesStayOpen) {
  EXPECT_EQ(Call(verb::get, "/metrics").result(), status::ok);
  EXPECT_EQ(Call(verb::get, "/healthz").result(), status::ok);
  EXPECT_EQ(Call(verb::get, "/readyz").result(), status::ok);
  EXPECT_EQ(Call(verb::put, "/v1/objects/a", Bearer(kWriterToken, {{"Fencing-Token", "3"}}), "x")
                .result(), status::ok);
  EXPECT_EQ(Call(verb::put, "/v1/objects/a", Bearer(kAdminToken, {{"Fencing-Token", "4"}}), "y")
                .result(), status::ok);
  EXPECT_EQ(Call(verb::get, "/v1/objects/a", Bearer(kReaderToken)).body(), "y");
  EXPECT_EQ(Call(verb::get, "/v1/objects/a", Bearer(kWriterToken)).body(), "y");
  EXPECT_EQ(Call(verb::delete_, "/v1/objects/a", Bearer(kWriterToken, {{"Fencing-Token", "4"}}))
                .result(), status::ok);
  // A key whose last segment is "repair": its raise carries a token.
  EXPECT_EQ(Call(verb::post, "/v1/fences/a/repair", Bearer(kWriterToken, {{"Fencing-Token", "4"}}))
                .result(), status::ok);
}

// The tokens must appear nowhere in the daemon's output, whatever it logged
// about them (refusals, accepted writes, the listening line).
TEST_F(StoreAuthTest, NoTokenEverReachesTheLog) {
  for (const char* token : {kReaderToken, kWriterToken, kAdminToken, "guessed-token"}) {
    Call(verb::put, "/v1/objects/s", Bearer(token, {{"Fencing-Token", "9"}}), "v");
    Call(verb::post, "/v1/fences/s/repair", Bearer(token),
         R"({"expected":9,"new":1,"reason":"test"})");
  }
  Call(verb::get, "/v1/objects/s", {{"Authorization", std::string("Basic ") + kWriterToken}});
  const std::size_t lines = store_.process->LineCount();
  store_.process->Stop();
  const auto output = store_.process->Lines();
  ASSERT_GE(output.size(), lines);
  std::size_t refusals = 0;
  for (const std::string& line : output) {
    refusals += IsEvent(line, "auth_refused") ? 1 : 0;
    for (const char* token : {kReaderToken, kWriterToken, kAdminToken, "guessed-token"}) {
      EXPECT_EQ(line.find(token), std::string::npos) << line;
    }
  }
  EXPECT_GE(refusals, 5u);  // the check saw the refusal lines it is about
}

TEST_F(StoreAuthTest, SighupReloadsAGoodFileAndKeepsTheOldOneOnABadOne) {
  const auto put = [&](const char* token) {
    return Call(verb::put, "/v1/objects/r", Bearer(token, {{"Fencing-Token", "1"}}), "v")
        .result();
  };
  ASSERT_EQ(put(kNewWriterToken), status::unauthorized);
  WriteFile(auth_file_, Line("writer", kNewWriterToken, "w2") + Line("admin", kAdminToken, "ops"));
  std::size_t from = store_.process->LineCount();
  ASSERT_TRUE(store_.process->Signal(SIGHUP));
  ASSERT_TRUE(LoggedAfter("auth_reloaded", from)) << store_.process->OutputTail();
  EXPECT_EQ(put(kNewWriterToken), status::ok);
  EXPECT_EQ(put(kWriterToken), status::unauthorized);  // removed from the file

  WriteFile(auth_file_, "writer not-a-hash\n");
  from = store_.process->LineCount();
  ASSERT_TRUE(store_.process->Signal(SIGHUP));
  ASSERT_TRUE(LoggedAfter("auth_reload_failed", from)) << store_.process->OutputTail();
  EXPECT_EQ(put(kNewWriterToken), status::ok);  // the credentials before stay
  const auto failed = store_.process->WaitForLine(
      [](std::string_view l) { return IsEvent(l, "auth_reload_failed"); },
      std::chrono::seconds(1), from);
  ASSERT_TRUE(failed);
  EXPECT_NE(failed->find("line 1"), std::string::npos) << *failed;
  const std::string metrics = Call(verb::get, "/metrics").body();
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_reloads_total{result="ok"})"), 1);
  EXPECT_EQ(Metric(metrics, R"(fence_store_auth_reloads_total{result="error"})"), 1);
}

// The issue's case: a forged 2^64-1 fence, repaired by an admin; a repair
// that names a value the fence no longer has changes nothing.
TEST_F(StoreAuthTest, AdminRepairsAForgedFenceWithThePreconditionAndAnAuditLine) {
  ASSERT_EQ(Call(verb::put, "/v1/objects/job/out", Bearer(kWriterToken, {{"Fencing-Token", "7"}}),
                 "v7").result(), status::ok);
  ASSERT_EQ(Call(verb::post, "/v1/fences/job/out", Bearer(kWriterToken, {{"Fencing-Token", kForged}}))
                .result(), status::ok);
  ASSERT_EQ(Call(verb::put, "/v1/objects/job/out", Bearer(kWriterToken, {{"Fencing-Token", "8"}}),
                 "v8").result(), status::conflict);
  const std::string repair =
      std::string(R"({"expected":)") + kForged + R"(,"new":7,"reason":"forged token, OPS-9"})";
  EXPECT_EQ(Call(verb::post, "/v1/fences/job/out/repair", Bearer(kAdminToken), "{").result(),
            status::bad_request);
  const std::size_t from = store_.process->LineCount();
  auto repaired = Call(verb::post, "/v1/fences/job/out/repair", Bearer(kAdminToken), repair);
  ASSERT_EQ(repaired.result(), status::ok) << repaired.body();
  EXPECT_EQ(Json(repaired)["highest_token"], 7);
  EXPECT_EQ(Json(repaired)["previous_highest_token"], std::stoull(kForged));
  auto audit = store_.process->WaitForLine(
      [](std::string_view l) { return IsEvent(l, "fence_repaired"); }, std::chrono::seconds(10),
      from);
  ASSERT_TRUE(audit);
  auto line = nlohmann::json::parse(*audit);
  EXPECT_EQ(line["who"], "ops");
  EXPECT_EQ(line["key"], "job/out");
  EXPECT_EQ(line["old_highest_token"], std::stoull(kForged));
  EXPECT_EQ(line["highest_token"], 7);
  EXPECT_EQ(line["reason"], "forged token, OPS-9");

  // The same repair again: the fence is 7 now, not the expected value.
  auto moved = Call(verb::post, "/v1/fences/job/out/repair", Bearer(kAdminToken), repair);
  EXPECT_EQ(moved.result(), status::precondition_failed);
  EXPECT_EQ(Json(moved)["error"], "fence_moved");
  EXPECT_EQ(Json(moved)["highest_token"], 7);
  auto never = Call(verb::post, "/v1/fences/nothing/repair", Bearer(kAdminToken), repair);
  EXPECT_EQ(never.result(), status::not_found);

  // The honest next leader writes again.
  EXPECT_EQ(Call(verb::put, "/v1/objects/job/out", Bearer(kWriterToken, {{"Fencing-Token", "8"}}),
                 "v8").result(), status::ok);
  const std::string metrics = Call(verb::get, "/metrics").body();
  EXPECT_EQ(Metric(metrics, R"(fence_store_fence_repairs_total{result="repaired"})"), 1);
  EXPECT_EQ(Metric(metrics, R"(fence_store_fence_repairs_total{result="refused"})"), 3);
}

TEST(AuthStartupTest, ABadAuthFileStopsTheStartNamingTheLine) {
  TempDir dir("fence-auth-test");
  // A token pasted where its hash belongs; both daemons know the admin role.
  WriteFile(dir.Sub("auth"), Line("admin", kAdminToken, "ops") + "admin " + kWriterToken + "\n");
  for (const char* binary : {"fence-store", "fence-lockd"}) {
    ChildProcess::Options options;
    options.argv = {SiblingBinary(binary), "--listen", "127.0.0.1:0", "--data-dir",
                    dir.Sub(binary), "--auth-file", dir.Sub("auth")};
    auto run = RunToCompletion(options, Millis(20000));
    ASSERT_TRUE(run.ok());
    EXPECT_NE(run->exit_code, 0);
    const std::string out = run->Output();
    EXPECT_NE(out.find("line 2"), std::string::npos) << out;
    EXPECT_EQ(out.find("\"event\":\"listening\""), std::string::npos) << out;
    EXPECT_EQ(out.find(kWriterToken), std::string::npos) << out;  // not even the bad line
  }
}

// 192.0.2.1 (TEST-NET-1) is on no interface here: even a daemon that got
// past the check could not bind it. The check must come first and say why.
TEST(AuthStartupTest, ANonLoopbackListenNeedsAnAuthFileOrAnExplicitFlag) {
  TempDir dir("fence-auth-test");
  WriteFile(dir.Sub("auth"), Line("admin", kAdminToken, "ops"));
  struct Row {
    std::vector<std::string> extra;
    bool refused_for_auth;
  };
  const Row kRows[] = {
      {{}, true},
      {{"--allow-unauthenticated"}, false},
      {{"--auth-file", dir.Sub("auth")}, false},
  };
  for (const char* binary : {"fence-store", "fence-lockd"}) {
    for (const Row& row : kRows) {
      ChildProcess::Options options;
      options.argv = {SiblingBinary(binary), "--listen", "192.0.2.1:0", "--data-dir",
                      dir.Sub(binary)};
      options.argv.insert(options.argv.end(), row.extra.begin(), row.extra.end());
      auto run = RunToCompletion(options, Millis(20000));
      ASSERT_TRUE(run.ok());
      const std::string out = run->Output();
      SCOPED_TRACE(std::string(binary) + ": " + out);
      EXPECT_NE(run->exit_code, 0);
      EXPECT_EQ(out.find("\"event\":\"listening\""), std::string::npos);
      EXPECT_EQ(out.find("--allow-unauthenticated") != std::string::npos, row.refused_for_auth);
    }
  }
}

class LockdAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.Sub("auth"),
              Line("client", kClientToken, "worker-a") + Line("admin", kAdminToken, "ops"));
    lockd_ = StartDaemon("fence-lockd",
                         {"--data-dir", dir_.Sub("lockd"), "--auth-file", dir_.Sub("auth")});
    ASSERT_GT(lockd_.port, 0);
  }
  net::Response Post(const std::string& path, Headers headers, const nlohmann::json& body) {
    headers.emplace_back("Content-Type", "application/json");
    return Request(verb::post, lockd_.Url(path), std::move(headers), body.dump());
  }

  TempDir dir_{"fence-auth-test"};
  Daemon lockd_;
};

TEST_F(LockdAuthTest, ClientsLockAndOnlyAdminsBreak) {
  const nlohmann::json acquire = {{"owner", "a"}, {"ttl_ms", 10000}, {"wait_ms", 0}};
  const nlohmann::json why = {{"reason", "test"}};
  struct Row {
    std::string what;
    verb method;
    std::string path;
    Headers headers;
    status expected;
  };
  const std::vector<Row> kRows = {
      {"acquire, no credentials", verb::post, "/v1/locks/job/acquire", {}, status::unauthorized},
      {"acquire, unknown token", verb::post, "/v1/locks/job/acquire", Bearer("nope"),
       status::unauthorized},
      {"acquire, store's token", verb::post, "/v1/locks/job/acquire", Bearer(kWriterToken),
       status::unauthorized},
      {"status, no credentials", verb::get, "/v1/locks/job", {}, status::unauthorized},
      {"keepalive, no credentials", verb::post, "/v1/leases/1/keepalive", {},
       status::unauthorized},
      {"release, no credentials", verb::post, "/v1/locks/job/release", {}, status::unauthorized},
      {"break, no credentials", verb::post, "/v1/locks/job/break", {}, status::unauthorized},
      {"break by a client", verb::post, "/v1/locks/job/break", Bearer(kClientToken),
       status::forbidden},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.what);
    auto res = row.method == verb::get
                   ? Request(verb::get, lockd_.Url(row.path), row.headers)
                   : Post(row.path, row.headers, row.path.ends_with("break") ? why : acquire);
    EXPECT_EQ(res.result(), row.expected) << res.body();
    EXPECT_NE(Header(res, "WWW-Authenticate").find("fence-lockd"), std::string::npos);
  }
  auto granted = Post("/v1/locks/job/acquire", Bearer(kClientToken), acquire);
  ASSERT_EQ(granted.result(), status::ok) << granted.body();
  const std::string lease = Json(granted)["lease_id"];
  EXPECT_EQ(Post("/v1/leases/" + lease + "/keepalive", Bearer(kClientToken), {}).result(),
            status::ok);
  EXPECT_EQ(Request(verb::get, lockd_.Url("/v1/locks/job"), Bearer(kClientToken)).result(),
            status::ok);
  EXPECT_EQ(Post("/v1/locks/job/break", Bearer(kAdminToken), why).result(), status::ok);
  EXPECT_EQ(Request(verb::get, lockd_.Url("/healthz")).result(), status::ok);
  const std::string metrics = Request(verb::get, lockd_.Url("/metrics")).body();
  EXPECT_EQ(Metric(metrics, R"(fence_lockd_auth_refusals_total{reason="missing"})"), 5);
  EXPECT_EQ(Metric(metrics, R"(fence_lockd_auth_refusals_total{reason="unknown_token"})"), 2);
  EXPECT_EQ(Metric(metrics, R"(fence_lockd_auth_refusals_total{reason="forbidden"})"), 1);
}

// fence-worker passes its token from a file to both daemons: it is elected
// by lockd (role client), fences and writes at the store (role writer).
TEST(WorkerAuthTest, AWorkerWithATokenFileIsElectedAndWrites) {
  TempDir dir("fence-auth-test");
  constexpr char kWorkerToken[] = "worker-secret-K2hq";
  WriteFile(dir.Sub("lockd.auth"), Line("client", kWorkerToken, "worker-a"));
  WriteFile(dir.Sub("store.auth"),
            Line("writer", kWorkerToken, "worker-a") + Line("reader", kReaderToken, "r"));
  WriteFile(dir.Sub("token"), std::string(kWorkerToken) + "\n");
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd"), "--auth-file",
                                             dir.Sub("lockd.auth")});
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store"), "--auth-file",
                                             dir.Sub("store.auth")});
  ASSERT_GT(lockd.port, 0);
  ASSERT_GT(store.port, 0);
  const std::vector<std::string> argv = {
      SiblingBinary("fence-worker"), "--id", "A", "--backend", "lockd", "--lock-endpoints",
      lockd.Url(""), "--lock", "job", "--store", store.Url(""), "--key", "out/result",
      "--terms", "1", "--acquire-timeout-ms", "20000"};
  ChildProcess::Options options;
  options.argv = argv;
  options.argv.insert(options.argv.end(), {"--auth-token-file", dir.Sub("token")});
  auto run = RunToCompletion(options, Millis(30000));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->exit_code, 0) << run->Output();
  EXPECT_EQ(run->Output().find(kWorkerToken), std::string::npos);
  auto object = Request(verb::get, store.Url("/v1/objects/out/result"), Bearer(kReaderToken));
  ASSERT_EQ(object.result(), status::ok) << object.body();
  EXPECT_EQ(Json(object)["payload"], "result computed by A");
  EXPECT_FALSE(Header(object, "Fencing-Token").empty());

  // A token file that cannot be used stops the worker before it starts.
  WriteFile(dir.Sub("bad-token"), "two\nlines\n");
  options.argv = argv;
  options.argv.insert(options.argv.end(), {"--auth-token-file", dir.Sub("bad-token")});
  auto bad = RunToCompletion(options, Millis(30000));
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->exit_code, 0);
  EXPECT_NE(bad->Output().find("--auth-token-file"), std::string::npos) << bad->Output();
}

// The shipped units start each daemon with its auth file and re-read it on
// `systemctl reload` (SIGHUP); systemd_units_test verifies the units.
TEST(AuthDeployTest, SystemdUnitsLoadTheAuthFileAndReloadItOnSighup) {
  for (const std::string name : {"fence-store", "fence-lockd"}) {
    std::ifstream in(std::string(FENCE_SOURCE_DIR) + "/deploy/systemd/" + name + ".service");
    const std::string unit((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(unit.empty()) << name;
    EXPECT_NE(unit.find("--auth-file /etc/" + name + "/auth\""), std::string::npos) << name;
    EXPECT_NE(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n"), std::string::npos) << name;
    EXPECT_NE(unit.find("_AUTH_ARGS\n"), std::string::npos) << "ExecStart passes it: " << name;
  }
}

}  // namespace
}  // namespace fence::testing
