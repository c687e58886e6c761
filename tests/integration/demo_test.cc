// fence-demo end to end (real lockd, store and worker processes, real
// SIGSTOP): asserts the outcomes from summary.json and from the raw logs,
// not the wording of the report.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "tools/demo/demo_logs.h"
#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

using tools::demo::FindEvent;
using tools::demo::LogLine;
using tools::demo::ParseLines;

std::vector<LogLine> ReadLog(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return ParseLines(lines, path);
}

std::optional<std::uint64_t> U(const LogLine* l, const char* field) {
  if (l == nullptr || !l->json.contains(field) || !l->json[field].is_number_unsigned()) {
    return std::nullopt;
  }
  return l->json[field].get<std::uint64_t>();
}

const LogLine* Worker(const std::vector<LogLine>& lines, const std::string& owner,
                      std::string_view event) {
  return FindEvent(lines, "worker", event,
                   [&](const LogLine& l) { return l.Str("owner") == owner; });
}

// A's and B's tokens from their elected lines; t1 < t2.
std::pair<std::uint64_t, std::uint64_t> ExpectTokensRise(const std::vector<LogLine>& lines) {
  const auto t1 = U(Worker(lines, "A", "elected"), "token");
  const auto t2 = U(Worker(lines, "B", "elected"), "token");
  EXPECT_TRUE(t1 && t2) << "A or B was not elected";
  if (!t1 || !t2) return {0, 0};
  EXPECT_LT(*t1, *t2);
  return {*t1, *t2};
}

class DemoTest : public ::testing::Test {
 protected:
  // One small demo run shared by the tests: short TTL, few trials.
  static void SetUpTestSuite() {
    dir_ = new TempDir("fence-demo-test");
    run_ = RunTool({SiblingBinary("fence-demo"), "--out", dir_->Sub("out"), "--ttl-ms", "300",
                    "--pause-margin-ms", "800", "--failover-trials", "3", "--tradeoff-ttls",
                    "200,400", "--tradeoff-trials", "1", "--stall-trials", "3"},
                   std::chrono::minutes(5));
    std::ifstream in(dir_->Sub("out/summary.json"));
    std::stringstream text;
    text << in.rdbuf();
    summary_ = nlohmann::json::parse(text.str(), nullptr, false);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(run_.exit_code, 0) << run_.Output();
    ASSERT_FALSE(summary_.is_discarded()) << "summary.json is missing or not JSON";
  }
  static std::string Out(const std::string& name) { return dir_->Sub("out/" + name); }

  static TempDir* dir_;
  static ToolRun run_;
  static nlohmann::json summary_;
};

TempDir* DemoTest::dir_ = nullptr;
ToolRun DemoTest::run_;
nlohmann::json DemoTest::summary_;

TEST_F(DemoTest, UnfencedRunEndsWithAsStaleObjectAndTwoLeaders) {
  EXPECT_EQ(summary_["unfenced"]["final_owner"], "A");
  const auto lines = ReadLog(Out("unfenced.log"));
  ASSERT_NE(ExpectTokensRise(lines).first, 0u);
  // Both wrote, and both writes were accepted by the store.
  ASSERT_NE(Worker(lines, "A", "write_done"), nullptr);
  ASSERT_NE(Worker(lines, "B", "write_done"), nullptr);
  int accepted = 0;
  for (const auto& l : lines) {
    accepted += l.Str("component") == "store" && l.Event() == "write_accepted";
  }
  EXPECT_EQ(accepted, 2);
  // A's write reached the store after B's.
  EXPECT_LT(*Worker(lines, "B", "write_done")->ts_ms, *Worker(lines, "A", "write_done")->ts_ms);
}

TEST_F(DemoTest, FencedRunRefusesAWithLowerTokenAndKeepsB) {
  EXPECT_EQ(summary_["fenced"]["final_owner"], "B");
  const auto lines = ReadLog(Out("fenced.log"));
  const auto [t1, t2] = ExpectTokensRise(lines);
  ASSERT_NE(t1, 0u);
  const LogLine* fenced = Worker(lines, "A", "fenced");
  ASSERT_NE(fenced, nullptr) << "A was not fenced";
  EXPECT_EQ(U(fenced, "token"), t1);
  EXPECT_EQ(U(fenced, "highest_token"), t2);
  EXPECT_EQ(fenced->json["store_answer"]["error"], "stale_token");
  EXPECT_EQ(Worker(lines, "A", "write_done"), nullptr);
  const LogLine* store_fenced = FindEvent(lines, "store", "write_fenced");
  ASSERT_NE(store_fenced, nullptr);
  EXPECT_EQ(U(store_fenced, "token"), t1);
  EXPECT_EQ(summary_["fenced"]["final_token"], t2);
}

TEST_F(DemoTest, BypassWithTheStaleTokenGets409) {
  EXPECT_EQ(summary_["bypass"]["status"], 409);
  EXPECT_EQ(summary_["bypass"]["response"]["error"], "stale_token");
  EXPECT_EQ(summary_["bypass"]["token"], summary_["fenced"]["a_token"]);
  const std::string log = ReadFileOrEmpty(Out("bypass.log"));
  EXPECT_NE(log.find("curl "), std::string::npos);
  EXPECT_NE(log.find("409"), std::string::npos);
}

// The demo starts lockd, so tokens are signed: the forged future token is
// refused, and the fence read back before and after is B's token t2 as the
// fenced run's own log has it.
TEST_F(DemoTest, ForgedFutureTokenGets403AndTheFenceStays) {
  const auto& forged = summary_["bypass"]["forged"];
  ASSERT_TRUE(forged.is_object()) << summary_["bypass"].dump();
  EXPECT_EQ(forged["status"], 403);
  EXPECT_EQ(forged["response"]["error"], "bad_token_signature");
  const auto [t1, t2] = ExpectTokensRise(ReadLog(Out("fenced.log")));
  ASSERT_NE(t2, 0u);
  EXPECT_EQ(forged["fence_before"], t2);
  EXPECT_EQ(forged["fence_after"], t2);
  // The store's own line in bypass.log: the forged token, refused before
  // the fence rule, and no write of it accepted.
  const auto bypass = ReadLog(Out("bypass.log"));
  const LogLine* refused = FindEvent(bypass, "store", "token_signature_refused");
  ASSERT_NE(refused, nullptr) << ReadFileOrEmpty(Out("bypass.log"));
  EXPECT_EQ(U(refused, "token"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(refused->Str("reason"), "mismatch");
  EXPECT_EQ(FindEvent(bypass, "store", "write_accepted"), nullptr);
  EXPECT_NE(ReadFileOrEmpty(Out("bypass.log")).find("fence after: " + std::to_string(t2)),
            std::string::npos);
}

TEST_F(DemoTest, EachFailoverIsAtLeastTheLeaseTimeALeft) {
  const auto& trials = summary_["failover"]["trials"];
  ASSERT_EQ(trials.size(), 3u);
  for (const auto& t : trials) {
    // Recomputed from the trial's own log, not taken from the demo's figure.
    const auto lines = ReadLog(t["log"].get<std::string>());
    const LogLine* pause = Worker(lines, "A", "pause_injected");
    const auto t2 = U(Worker(lines, "B", "elected"), "token");
    ASSERT_TRUE(pause && t2) << t.dump();
    const LogLine* accepted = FindEvent(lines, "store", "write_accepted",
                                        [&](const LogLine& l) { return U(&l, "token") == t2; });
    ASSERT_NE(accepted, nullptr);
    const std::int64_t failover = *accepted->ts_ms - *pause->ts_ms;
    const std::int64_t lease_left = *pause->Int("lease_remaining_ms");
    // Timestamps are truncated to the millisecond.
    EXPECT_GE(failover + 1, lease_left) << t.dump();
    EXPECT_EQ(t["failover_ms"], failover);
  }
}

TEST_F(DemoTest, WritesTheTradeoffFilesAndReport) {
  const auto& rows = summary_["tradeoff"]["rows"];
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_EQ(row["stall_trials"], 3) << row.dump();
    EXPECT_EQ(row["failovers_ms"].size(), 1u);
  }
  const std::string csv = ReadFileOrEmpty(Out("ttl_tradeoff.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(ReadFileOrEmpty(Out("ttl_tradeoff.svg")).find("<svg"), std::string::npos);
  EXPECT_FALSE(ReadFileOrEmpty(Out("report.md")).empty());
  // The fenced run's new leader also fenced its lock's scope (the whole job).
  EXPECT_NE(ReadFileOrEmpty(Out("report.md")).find("`scope_fence_raised` at "), std::string::npos);
  EXPECT_NE(run_.Output().find(Out("report.md")), std::string::npos);
}

const LogLine* Lockd(const std::vector<LogLine>& lines, std::string_view event,
                     const std::function<bool(const LogLine&)>& also = nullptr) {
  return FindEvent(lines, "lockd", event, also);
}

// A was fenced by the store: 409 stale_token, its token below B's.
void ExpectAFenced(const std::vector<LogLine>& lines, std::uint64_t t1, std::uint64_t t2) {
  const LogLine* fenced = Worker(lines, "A", "fenced");
  ASSERT_NE(fenced, nullptr) << "A was not fenced";
  EXPECT_EQ(fenced->json["store_answer"]["error"], "stale_token");
  EXPECT_EQ(U(fenced, "token"), t1);
  EXPECT_EQ(U(fenced, "highest_token"), t2);
  EXPECT_EQ(Worker(lines, "A", "write_done"), nullptr);
}

// Recomputed from lock-delay.log: lockd granted B no sooner than TTL +
// lock-delay after A's last renewal, and only after the delay it logged.
void ExpectLockDelayRun(const std::vector<LogLine>& lines, const nlohmann::json& summary) {
  const auto tokens = ExpectTokensRise(lines);
  const std::uint64_t t1 = tokens.first, t2 = tokens.second;  // (lambdas capture them)
  ASSERT_NE(t1, 0u);
  const LogLine* a_granted = Lockd(lines, "granted", [&](const LogLine& l) { return U(&l, "token") == t1; });
  ASSERT_NE(a_granted, nullptr);
  const std::string lease = a_granted->Str("lease_id");
  const std::int64_t ttl = *a_granted->Int("ttl_ms");
  const std::int64_t delay = a_granted->Int("lock_delay_ms").value_or(0);
  EXPECT_EQ(ttl, 300);
  EXPECT_EQ(delay, 300) << "A's acquire did not ask for the lock-delay: " << a_granted->text;
  std::int64_t last_renewal = *a_granted->ts_ms;
  for (const auto& l : lines) {
    if (l.Str("component") == "lockd" && l.Event() == "renewed" && l.Str("lease_id") == lease) {
      last_renewal = *l.ts_ms;
    }
  }
  const LogLine* started = Lockd(lines, "lock_delay_started", [&](const LogLine& l) { return l.Str("lease_id") == lease; });
  const LogLine* ended = Lockd(lines, "lock_delay_ended", [&](const LogLine& l) { return l.Str("lease_id") == lease; });
  const LogLine* b_granted = Lockd(lines, "granted", [&](const LogLine& l) { return U(&l, "token") == t2; });
  ASSERT_TRUE(started && ended && b_granted) << "lock-delay lines missing";
  EXPECT_GE(*ended->Int("since_expiry_ms"), delay) << ended->text;
  EXPECT_GE(*b_granted->ts_ms, *ended->ts_ms);
  // Millisecond timestamps: 1 ms short is the clock, not lockd.
  EXPECT_GE(*b_granted->ts_ms - last_renewal + 1, ttl + delay);
  ExpectAFenced(lines, t1, t2);
  EXPECT_EQ(summary["renewal_to_grant_ms"], *b_granted->ts_ms - last_renewal);
  EXPECT_EQ(summary["final_owner"], "B");
}

// Recomputed from break.log: lockd logged the break with holder, token,
// reason and caller, granted B before A's lease would have expired, and
// refused A's keep-alive; the store refused A's write.
void ExpectBreakRun(const std::vector<LogLine>& lines, const nlohmann::json& summary) {
  const auto tokens = ExpectTokensRise(lines);
  const std::uint64_t t1 = tokens.first, t2 = tokens.second;  // (lambdas capture them)
  ASSERT_NE(t1, 0u);
  const LogLine* broken = Lockd(lines, "lease_broken");
  ASSERT_NE(broken, nullptr) << "lockd did not log lease_broken";
  EXPECT_EQ(broken->Str("owner"), "A");
  EXPECT_EQ(U(broken, "token"), t1);
  EXPECT_NE(broken->Str("reason").find("fence-demo"), std::string::npos) << broken->text;
  EXPECT_EQ(broken->Str("caller").rfind("127.0.0.1:", 0), 0u) << broken->text;
  const LogLine* b_granted = Lockd(lines, "granted", [&](const LogLine& l) { return U(&l, "token") == t2; });
  const LogLine* a_elected = Worker(lines, "A", "elected");
  const LogLine* b_elected = Worker(lines, "B", "elected");
  ASSERT_TRUE(b_granted && a_elected && b_elected);
  EXPECT_LT(*b_granted->ts_ms - *broken->ts_ms, *broken->Int("expires_in_ms"));
  // B led before A's lease could have run out by itself.
  EXPECT_LT(*b_elected->ts_ms, *a_elected->ts_ms + *a_elected->Int("ttl_ms"));
  EXPECT_EQ(Lockd(lines, "lock_delay_started"), nullptr) << "a break starts no lock-delay";
  const std::string lease = broken->Str("lease_id");
  EXPECT_NE(Lockd(lines, "refused",
                  [&](const LogLine& l) {
                    return l.Str("lease_id") == lease && l.Str("op") == "keepalive" &&
                           l.Str("error") == "lease_broken";
                  }),
            nullptr)
      << "lockd did not refuse A's keep-alive with lease_broken";
  const LogLine* lost = Worker(lines, "A", "lease_lost");
  ASSERT_NE(lost, nullptr);
  EXPECT_NE(lost->Str("message").find("an operator broke it"), std::string::npos) << lost->text;
  ExpectAFenced(lines, t1, t2);
  EXPECT_EQ(summary["call"]["status"], 200);
  EXPECT_EQ(summary["final_owner"], "B");
}

// One test for both lockd runs: each test of this suite runs the demo again.
TEST_F(DemoTest, LockDelayAndBreakRunsHoldInTheirLogs) {
  {
    SCOPED_TRACE("lock-delay.log");
    ExpectLockDelayRun(ReadLog(Out("lock-delay.log")), summary_["lockd_runs"]["lock_delay"]);
  }
  SCOPED_TRACE("break.log");
  ExpectBreakRun(ReadLog(Out("break.log")), summary_["lockd_runs"]["break"]);
}

// The README's other lock services, as a new user runs them
// (`build/bin/fence-demo --backend etcd`, `--backend zookeeper`): the same
// TTLs (the default sweep 250,500,1000,2000 and --ttl-ms 1000), fewer trials
// to keep the suite short (the README says so). etcd grants at least 1 s in
// whole seconds and ZooKeeper at least its 2-tick minimum session timeout,
// so the demo must plan with the TTL that was granted, say which, and still
// see every expected outcome.
class DemoBackendTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DemoBackendTest, ReadmeCommandExitsZeroAndUsesTheGrantedTtl) {
  TempDir dir("fence-demo-" + GetParam());
  ToolRun run = RunTool({SiblingBinary("fence-demo"), "--backend", GetParam(), "--out",
                         dir.Sub("out"), "--failover-trials", "1", "--tradeoff-trials", "1",
                         "--stall-trials", "3"},
                        std::chrono::minutes(5));
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  const auto summary =
      nlohmann::json::parse(ReadFileOrEmpty(dir.Sub("out/summary.json")), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << "no summary.json; output:\n" << run.Output();
  EXPECT_EQ(summary.value("backend", ""), GetParam());
  EXPECT_EQ(summary.value("ttl_asked_ms", 0), 1000);
  EXPECT_EQ(summary.value("ttl_granted_ms", 0), 1000) << summary.dump(2);

  // Every asked TTL of the sweep is accounted for exactly once, each row
  // ran at a TTL the service really granted, and no two rows measured the
  // same lease.
  std::multiset<std::int64_t> asked;
  std::set<std::int64_t> granted;
  const std::int64_t minimum = GetParam() == "etcd" ? 1000 : 400;
  for (const auto& row : summary["tradeoff"]["rows"]) {
    const auto ttl = row.value("ttl_ms", std::int64_t{0});
    EXPECT_TRUE(granted.insert(ttl).second) << "two rows at TTL " << ttl;
    EXPECT_GE(ttl, minimum) << row.dump();
    if (GetParam() == "etcd") {
      EXPECT_EQ(ttl % 1000, 0) << row.dump();
    }
    for (const auto& a : row.value("ttl_asked_ms", nlohmann::json::array())) {
      asked.insert(a.get<std::int64_t>());
    }
  }
  EXPECT_EQ(asked, (std::multiset<std::int64_t>{250, 500, 1000, 2000})) << summary["tradeoff"];

  // The fenced run: B's object stands, A's write was refused 409.
  const auto& fenced = summary["fenced"];
  EXPECT_EQ(fenced.value("final_owner", ""), "B") << fenced.dump(2);
  EXPECT_EQ(fenced.value("a_result", ""), "fenced") << fenced.dump(2);
  const auto a_token = fenced.value("a_token", std::uint64_t{0});
  const auto b_token = fenced.value("b_token", std::uint64_t{0});
  EXPECT_GT(b_token, a_token);
  EXPECT_EQ(fenced.value("final_token", std::uint64_t{0}), b_token);
  EXPECT_EQ(fenced["a_result_line"]["store_answer"].value("error", ""), "stale_token");
  EXPECT_EQ(summary["unfenced"].value("final_owner", ""), "A");

  // A person reading the report and the summary learns what was granted.
  EXPECT_NE(ReadFileOrEmpty(dir.Sub("out/report.md")).find("granted"), std::string::npos);
  EXPECT_NE(run.Output().find("granted"), std::string::npos) << run.Output();
  // Lock-delay and the break are lockd's: skipped, and the report says why.
  EXPECT_NE(summary["lockd_runs"].value("skipped", "").find("fence-lockd features"),
            std::string::npos)
      << summary["lockd_runs"];
}

INSTANTIATE_TEST_SUITE_P(ExternalLockServices, DemoBackendTest,
                         ::testing::Values("etcd", "zookeeper"));

TEST(DemoFlagsTest, BadFlagExitsNonZeroWithOneLine) {
  ToolRun run = RunTool({SiblingBinary("fence-demo"), "--ttl-ms", "nope"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(run.lines.size(), 1u) << run.Output();
  ToolRun bad_ttls = RunTool({SiblingBinary("fence-demo"), "--tradeoff-ttls", "250,x"});
  EXPECT_NE(bad_ttls.exit_code, 0);
}

}  // namespace
}  // namespace fence::testing
