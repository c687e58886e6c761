// fence-worker against real fence-lockd and fence-store processes: the pause
// is a real whole-process stop (the lease expires because nothing renews
// it), and a fenced write is never retried.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

using namespace std::chrono_literals;

std::function<bool(std::string_view)> Event(const std::string& event) {
  return [event](std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    return !j.is_discarded() && j.is_object() && j.value("event", "") == event;
  };
}

nlohmann::json Json(const std::optional<std::string>& line) {
  return line ? nlohmann::json::parse(*line, nullptr, false) : nlohmann::json();
}

char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? '?' : text[paren + 2];
}

class WorkerProcessTest : public ::testing::Test {
 public:
  void SetUp() override {
    lockd_ = StartDaemon("fence-lockd", {"--data-dir", dir_.Sub("lockd")});
    store_ = StartDaemon("fence-store", {"--data-dir", dir_.Sub("store")});
    ASSERT_GT(lockd_.port, 0);
    ASSERT_GT(store_.port, 0);
  }
  std::unique_ptr<ChildProcess> StartWorker(std::vector<std::string> extra,
                                            const std::string& id = "A",
                                            const std::string& key = "out/result") {
    std::vector<std::string> argv = {SiblingBinary("fence-worker"), "--id", id, "--backend",
                                     "lockd", "--lock-endpoints", lockd_.Url(""), "--lock",
                                     "job", "--store", store_.Url(""), "--key", key,
                                     "--terms", "1", "--acquire-timeout-ms", "20000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = ChildProcess::Start({argv, "", {}});
    EXPECT_TRUE(child.ok());
    return child.ok() ? std::move(*child) : nullptr;
  }

 protected:
  TempDir dir_{"fence-worker-test"};
  Daemon lockd_, store_;
};

TEST_F(WorkerProcessTest, PauseStopsTheWholeProcessSoTheLeaseExpires) {
  auto w = StartWorker({"--ttl-ms", "300", "--inject-pause", "before-write:1500ms"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->WaitForLine(Event("pause_injected"), 20s)) << "no pause_injected";
  // The stop follows the log line; wait for it as a state, bounded.
  char state = '?';
  for (int i = 0; i < 200 && state != 'T'; ++i) {
    state = ProcessState(w->pid());
    if (state != 'T') std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(state, 'T') << "the worker process is not stopped";
  // Nothing renews the lease while the process is stopped: lockd expires it.
  auto expired = lockd_.process->WaitForLine(Event("expired"), 5s);
  ASSERT_TRUE(expired);
  EXPECT_EQ(Json(expired)["owner"], "A");
  auto resumed = Json(w->WaitForLine(Event("resumed"), 20s));
  ASSERT_TRUE(resumed.is_object());
  EXPECT_GE(resumed["paused_ms"].get<std::int64_t>(), 1500);
  auto status = w->WaitExit(20s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  // The resumed worker learns it lost the lease (the renewal is refused).
  EXPECT_TRUE(w->WaitForLine(Event("lease_lost"), 1s));
}

TEST_F(WorkerProcessTest, FencedWorkerIsNotRetriedAndStops) {
  // A newer leader has already fenced the key far above any token lockd
  // will issue in this test: the worker learns it when it fences first.
  auto raised = Request(net::http::verb::post, store_.Url("/v1/fences/out/result"),
                        {{"Fencing-Token", "1000000"}});
  ASSERT_EQ(raised.result_int(), 200u) << raised.body();
  auto w = StartWorker({"--ttl-ms", "2000"});
  ASSERT_TRUE(w);
  auto status = w->WaitExit(30s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  auto fenced = Json(w->WaitForLine(Event("fenced"), 1s));
  ASSERT_TRUE(fenced.is_object());
  EXPECT_EQ(fenced["highest_token"], 1000000);
  EXPECT_LT(fenced["token"].get<std::uint64_t>(), 1000000u);
  EXPECT_EQ(fenced["step"], "fence_first");
  int attempts = 0;
  for (const auto& l : w->Lines()) attempts += Event("write_attempt")(l);
  EXPECT_EQ(attempts, 0) << "a leader refused at its fence does no work and writes nothing";
  // The store logs through a batching thread: its line for the refusal can
  // arrive after the worker had the answer and exited, so wait for it.
  ASSERT_TRUE(store_.process->WaitForLine(Event("write_fenced"), 5s))
      << "the store did not log the refused write:\n" << store_.process->OutputTail();
  int store_fenced = 0;
  for (const auto& l : store_.process->Lines()) store_fenced += Event("write_fenced")(l);
  EXPECT_EQ(store_fenced, 1);
  // It released the lock: a new owner gets it at once.
  auto acquire = Request(net::http::verb::post, lockd_.Url("/v1/locks/job/acquire"),
                         {{"Content-Type", "application/json"}},
                         R"({"owner":"C","ttl_ms":1000,"wait_ms":0})");
  EXPECT_EQ(acquire.result_int(), 200u) << acquire.body();
}

// The old leader A is frozen (its own --inject-pause, a real SIGSTOP) past
// its lease; B is elected with a higher token and is still working when A
// resumes and sends its write. B never wrote yet, so only a fence B raised
// at its election can refuse A's write.
TEST_F(WorkerProcessTest, NewLeaderFencesFirstSoTheOldLeadersWriteIsRefusedDuringItsWork) {
  auto a = StartWorker({"--ttl-ms", "300", "--inject-pause", "before-write:3000ms"});
  ASSERT_TRUE(a);
  auto a_elected = Json(a->WaitForLine(Event("elected"), 20s));
  ASSERT_TRUE(a_elected.is_object());
  ASSERT_TRUE(a->WaitForLine(Event("pause_injected"), 20s));
  auto b = StartWorker({"--ttl-ms", "2000", "--work-ms", "30000"}, "B");
  ASSERT_TRUE(b);
  auto b_elected = Json(b->WaitForLine(Event("elected"), 20s));
  ASSERT_TRUE(b_elected.is_object()) << "B was not elected";
  EXPECT_GT(b_elected["token"].get<std::uint64_t>(), a_elected["token"].get<std::uint64_t>());
  ASSERT_FALSE(a->WaitForLine(Event("resumed"), 0ms))
      << "A resumed before B was elected; the schedule needs a longer pause here";

  // A's answer from the store, while B is still working.
  auto answer = a->WaitForLine(
      [](std::string_view l) { return Event("write_done")(l) || Event("fenced")(l); }, 20s);
  ASSERT_TRUE(answer) << "A never wrote";
  for (const auto& l : b->Lines()) {
    ASSERT_FALSE(Event("write_attempt")(l)) << "B wrote before A: " << l;
  }
  EXPECT_TRUE(Event("fenced")(*answer)) << "A's stale write was accepted during B's term: "
                                        << *answer;
  auto fenced = Json(answer);
  EXPECT_EQ(fenced["token"], a_elected["token"]);
  EXPECT_EQ(fenced["highest_token"], b_elected["token"]);
  EXPECT_EQ(fenced["store_answer"]["error"], "stale_token") << fenced.dump();
  b->Signal(SIGTERM);
  EXPECT_TRUE(b->WaitExit(10s));
  EXPECT_TRUE(a->WaitExit(10s));
}

// A (frozen past its lease) writes key x only; B, elected with a higher
// token, writes key y only and is still working when A resumes. Only the
// scope fence B raised at its election (the lock's name, "job") can refuse
// A's write to x. With `scope_fencing` off, nothing does: A's write lands.
// Returns A's answer line (write_done or fenced) and B's elected line.
std::pair<nlohmann::json, nlohmann::json> OldLeaderWritesAKeyTheNewOneNeverTouches(
    WorkerProcessTest& t, const std::string& scope_fencing);

TEST_F(WorkerProcessTest, ScopeFenceRefusesTheOldLeaderOnAKeyTheNewLeaderNeverTouched) {
  auto [answer, b_elected] = OldLeaderWritesAKeyTheNewOneNeverTouches(*this, "on");
  ASSERT_EQ(answer.value("event", ""), "fenced") << "A's stale write to x was accepted: "
                                                  << answer.dump();
  const auto& store_answer = answer["store_answer"];
  EXPECT_EQ(store_answer["error"], "stale_token") << answer.dump();
  EXPECT_EQ(store_answer["refused_by"], "scope");
  EXPECT_EQ(store_answer["scope"], "job");
  EXPECT_EQ(store_answer["key"], "x");
  EXPECT_EQ(store_answer["scope_highest_token"], b_elected["token"]);
  EXPECT_EQ(answer["highest_token"], b_elected["token"]);
  auto fenced = store_.process->WaitForLine(
      [](std::string_view l) {
        return Event("write_fenced")(l) &&
               nlohmann::json::parse(l, nullptr, false).value("refused_by", "") == "scope";
      },
      1s);
  EXPECT_TRUE(fenced) << "the store did not log which fence refused the write";
  auto x = Request(net::http::verb::get, store_.Url("/v1/objects/x"));
  EXPECT_EQ(x.result_int(), 404u) << "A's write reached x: " << x.body();
}

// The contrast that shows what the scope adds: per-key fences alone let A's
// write to x through, since B never fenced x.
TEST_F(WorkerProcessTest, WithoutScopeFencingTheOldLeadersWriteToAnUntouchedKeyLands) {
  auto [answer, b_elected] = OldLeaderWritesAKeyTheNewOneNeverTouches(*this, "off");
  EXPECT_EQ(answer.value("event", ""), "write_done") << answer.dump();
  auto x = Request(net::http::verb::get, store_.Url("/v1/objects/x"));
  EXPECT_EQ(x.result_int(), 200u);
}

std::pair<nlohmann::json, nlohmann::json> OldLeaderWritesAKeyTheNewOneNeverTouches(
    WorkerProcessTest& t, const std::string& scope_fencing) {
  auto a = t.StartWorker({"--ttl-ms", "300", "--inject-pause", "before-write:3000ms",
                          "--scope-fencing", scope_fencing},
                         "A", "x");
  EXPECT_TRUE(a);
  if (!a) return {};
  auto a_elected = Json(a->WaitForLine(Event("elected"), 20s));
  EXPECT_TRUE(a->WaitForLine(Event("pause_injected"), 20s));
  auto b = t.StartWorker({"--ttl-ms", "2000", "--work-ms", "30000", "--scope-fencing",
                          scope_fencing},
                         "B", "y");
  EXPECT_TRUE(b);
  if (!b) return {};
  auto b_elected = Json(b->WaitForLine(Event("elected"), 20s));
  EXPECT_TRUE(b_elected.is_object()) << "B was not elected";
  if (scope_fencing == "on") {
    EXPECT_TRUE(b->WaitForLine(Event("scope_fence_raised"), 20s));
  }
  EXPECT_FALSE(a->WaitForLine(Event("resumed"), 0ms))
      << "A resumed before B was elected; the schedule needs a longer pause here";
  auto answer = a->WaitForLine(
      [](std::string_view l) { return Event("write_done")(l) || Event("fenced")(l); }, 20s);
  EXPECT_TRUE(answer) << "A never wrote";
  for (const auto& l : b->Lines()) {
    EXPECT_FALSE(Event("write_attempt")(l)) << "B wrote before A: " << l;
  }
  EXPECT_GT(b_elected.value("token", 0u), a_elected.value("token", 0u));
  b->Signal(SIGTERM);
  EXPECT_TRUE(b->WaitExit(10s));
  EXPECT_TRUE(a->WaitExit(10s));
  return {Json(answer), b_elected};
}

TEST_F(WorkerProcessTest, TwoLockdEndpointsExitWithOneLine) {
  ToolRun run = RunTool({SiblingBinary("fence-worker"), "--id", "A", "--backend", "lockd",
                         "--lock-endpoints", lockd_.Url("") + "," + lockd_.Url(""), "--store",
                         store_.Url(""), "--key", "k", "--terms", "1",
                         "--acquire-timeout-ms", "3000"});
  EXPECT_NE(run.exit_code, 0);
  ASSERT_EQ(run.lines.size(), 1u) << run.Output();
  EXPECT_NE(run.lines[0].find("one lockd endpoint"), std::string::npos) << run.lines[0];
}

TEST_F(WorkerProcessTest, ALockNameThatCannotBeAScopeExitsWithOneLine) {
  ToolRun run = RunTool({SiblingBinary("fence-worker"), "--id", "A", "--lock-endpoints",
                         lockd_.Url(""), "--store", store_.Url(""), "--key", "k", "--lock",
                         "jobs//etl"});
  EXPECT_NE(run.exit_code, 0);
  ASSERT_EQ(run.lines.size(), 1u) << run.Output();
  EXPECT_NE(run.lines[0].find("--scope-fencing"), std::string::npos) << run.lines[0];
  EXPECT_NE(run.lines[0].find("empty segment"), std::string::npos) << run.lines[0];
}

TEST_F(WorkerProcessTest, BadPauseSpecExitsWithOneLine) {
  ToolRun run = RunTool({SiblingBinary("fence-worker"), "--id", "A", "--lock-endpoints",
                         lockd_.Url(""), "--store", store_.Url(""), "--key", "k",
                         "--inject-pause", "before-write:3"});
  EXPECT_NE(run.exit_code, 0);
  ASSERT_EQ(run.lines.size(), 1u) << run.Output();
  EXPECT_NE(run.lines[0].find("before-write:DURATION"), std::string::npos);
}

// --lock-delay-ms: a range, and lockd only; each refusal is one line that
// names the flag.
TEST_F(WorkerProcessTest, LockDelayOutOfRangeOrWithoutLockdExitsWithOneLine) {
  const std::vector<std::string> common = {SiblingBinary("fence-worker"), "--id", "A",
                                           "--store", store_.Url(""), "--key", "k",
                                           "--terms", "1", "--acquire-timeout-ms", "3000"};
  struct Case {
    std::string backend, endpoints, delay, says;
  };
  const std::vector<Case> cases = {
      {"lockd", lockd_.Url(""), "-1", "--lock-delay-ms"},
      {"lockd", lockd_.Url(""), "3600001", "--lock-delay-ms"},
      {"lockd", lockd_.Url(""), "soon", "--lock-delay-ms"},
      {"etcd", "http://127.0.0.1:2379", "500", "is a fence-lockd feature"},
      {"zookeeper", "127.0.0.1:2181", "500", "is a fence-lockd feature"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = common;
    argv.insert(argv.end(), {"--backend", c.backend, "--lock-endpoints", c.endpoints,
                             "--lock-delay-ms", c.delay});
    ToolRun run = RunTool(argv);
    EXPECT_NE(run.exit_code, 0) << c.backend << " " << c.delay;
    ASSERT_EQ(run.lines.size(), 1u) << run.Output();
    EXPECT_NE(run.lines[0].find(c.says), std::string::npos) << run.lines[0];
    EXPECT_NE(run.lines[0].find("--lock-delay-ms"), std::string::npos) << run.lines[0];
  }
}

}  // namespace
}  // namespace fence::testing
