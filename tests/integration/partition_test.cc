// The partition experiment, end to end: fence-partition runs one scenario
// per test in a network namespace of its own (real etcd cluster, real
// fence-lockd pair, real store and workers, real iptables cuts), and the
// outcome is judged from its summary.json and from fence-logscan run here on
// the scenario's merged log. Needs root and `ip netns` (deploy/run-tests.sh
// runs the suite as root): without them, or without fence-partition, the
// tests FAIL rather than skip, so a suite that did not check this says so.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tools/logscan/timestamp.h"
#include "tools/partition/partition_net.h"
#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What `argv` printed on a pseudo-terminal of 500 columns (wide enough that
// the status line is never cut), and its exit code; -1 if it was killed
// after `timeout`. With `interrupt_at`, the run gets one SIGINT, as from
// Ctrl-C, once its output shows that text; exit_code is then 128 + SIGINT if
// it exits by itself.
struct TerminalRun {
  int exit_code = -1;
  std::string output;
};

// The last 3000 characters of a terminal's output, for a failure message.
std::string End(const std::string& shown) {
  return shown.substr(shown.size() - std::min<std::size_t>(shown.size(), 3000));
}

TerminalRun RunOnTerminal(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                          const std::string& interrupt_at = "") {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  winsize size{};
  size.ws_row = 40;
  size.ws_col = 500;
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) {
    execv(args[0], args.data());
    _exit(127);
  }
  TerminalRun run;
  if (pid < 0) return run;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  auto deadline = Clock::now() + timeout;
  int status = 0;
  bool drained = false;  // EIO: no process holds the terminal open any more
  bool exited = false;
  bool interrupted = false;
  while (!(drained && exited) && Clock::now() < deadline) {
    pollfd fds[2] = {{drained ? -1 : master, POLLIN, 0}, {exited ? -1 : pidfd, POLLIN, 0}};
    if (poll(fds, 2, 500) < 0) break;
    if (fds[0].revents != 0) {
      char buf[4096];
      const ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) run.output.append(buf, static_cast<std::size_t>(n));
      drained = n <= 0;
      if (!interrupted && !interrupt_at.empty() &&
          run.output.find(interrupt_at) != std::string::npos) {
        kill(pid, SIGINT);
        interrupted = true;
      }
    }
    if (fds[1].revents != 0 && waitpid(pid, &status, 0) == pid) {
      exited = true;
      // What it printed last is read at once; a straggler holding the
      // terminal does not hold the test.
      deadline = std::min(deadline, Clock::now() + std::chrono::seconds(2));
    }
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
  }
  if (pidfd >= 0) close(pidfd);
  close(master);
  return run;
}

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SiblingBinary("fence-partition")))
        << SiblingBinary("fence-partition") << " is missing: it is built with the tests";
    const auto missing = tools::partition::MissingPrerequisite();
    ASSERT_FALSE(missing) << *missing << " (deploy/run-tests.sh runs the tests as root)";
    dir_ = std::make_unique<testing::TempDir>("fence-partition-test");
  }

  // Runs one scenario, its stdout a pipe or (`terminal`) a pseudo-terminal;
  // returns its entry of summary.json.
  json RunScenario(const std::string& scenario, bool terminal = false) {
    const std::string out = dir_->Sub("out");
    const std::vector<std::string> argv = {SiblingBinary("fence-partition"), "--out", out,
                                           "--scenarios", scenario};
    if (terminal) {
      terminal_ = RunOnTerminal(argv, std::chrono::seconds(240));
    } else {
      run_ = testing::RunTool(argv, std::chrono::seconds(240));
      ExpectLineOrientedProgress(scenario);
    }
    const std::string text = testing::ReadFileOrEmpty(out + "/summary.json");
    json summary = json::parse(text, nullptr, false);
    EXPECT_FALSE(summary.is_discarded())
        << "no summary.json; output:\n" << (terminal ? terminal_.output : run_.Output());
    if (summary.is_discarded()) return json::object();
    // The namespace is gone after the run, on the normal path at least.
    EXPECT_FALSE(fs::exists("/run/netns/" + summary.value("namespace", std::string("?"))));
    scenario_dir_ = out + "/" + scenario;
    return summary["scenarios"].value(scenario, json::object());
  }

  // Off a terminal (CI, a pipe) the progress is one plain line per step:
  // no carriage return, no escape code, no waiting texts.
  void ExpectLineOrientedProgress(const std::string& scenario) {
    std::vector<std::string> steps;
    for (const auto& line : run_.lines) {
      EXPECT_EQ(line.find_first_of("\r\033"), std::string::npos) << line;
      if (line.rfind('[', 0) == 0) steps.push_back(line);
    }
    ASSERT_EQ(steps.size(), 2u) << run_.Output();
    EXPECT_EQ(steps[0].rfind("[1/2] creating the network namespace fence-part-", 0), 0u) << steps[0];
    EXPECT_EQ(steps[1].rfind("[2/2] scenario '" + scenario + "' (", 0), 0u) << steps[1];
    EXPECT_EQ(run_.Output().find("waiting for"), std::string::npos) << run_.Output();
  }

  // fence-logscan's term of `owner` on the experiment's lock, or null.
  static json LogscanTerm(const json& scan, const std::string& owner) {
    for (const auto& t : scan.value("terms", json::array())) {
      if (t.value("owner", "") == owner && t.value("lock", "") == "leader") return t;
    }
    return nullptr;
  }

  // A timestamp of fence-logscan's JSON in ms since the epoch; fails the
  // test (and gives -1) if it is not one.
  static std::int64_t Ms(const json& ts) {
    auto parsed = tools::logscan::ParseTimestamp(ts.is_string() ? ts.get<std::string>() : "");
    EXPECT_TRUE(parsed.ok()) << ts.dump();
    return parsed.ok() ? *parsed : -1;
  }

  // fence-logscan --json on the scenario's merged timeline.
  json Logscan(int& exit_code) {
    auto scan = testing::RunTool(
        {SiblingBinary("fence-logscan"), "--json", scenario_dir_ + "/timeline.log"});
    exit_code = scan.exit_code;
    std::string text;
    for (const auto& line : scan.lines) text += line + "\n";
    json j = json::parse(text.substr(std::min(text.find('{'), text.size())), nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  // A scenario that ran and passed, in which B took over from A with a
  // higher token and A's write was fenced; returns its facts.
  json ExpectBFencedA(const json& s) {
    EXPECT_TRUE(s.value("passed", false)) << s.dump(2);
    json facts = s.value("facts", json::object());
    EXPECT_TRUE(facts["a_token"].is_number() && facts["b_token"].is_number()) << facts.dump(2);
    if (facts["a_token"].is_number() && facts["b_token"].is_number()) {
      EXPECT_GT(facts["b_token"].get<std::uint64_t>(), facts["a_token"].get<std::uint64_t>());
    }
    EXPECT_EQ(facts["a_outcome"], "fenced");
    return facts;
  }

  std::unique_ptr<testing::TempDir> dir_;
  testing::ToolRun run_;
  TerminalRun terminal_;
  std::string scenario_dir_;
};

// Run on a pseudo-terminal, as a person would: the status line names the
// step and what the experiment waits for (the TTL-long wait for A's lease,
// A's stop) and is redrawn in place.
TEST_F(PartitionTest, QuorumLockFencesTheMinorityLeaderAfterTheHealWhileTheTerminalShowsTheWait) {
  const json s = RunScenario("etcd", /*terminal=*/true);
  ASSERT_TRUE(s.value("ran", false)) << terminal_.output;
  EXPECT_EQ(terminal_.exit_code, 0) << terminal_.output;
  const std::string& shown = terminal_.output;
  for (const std::string text :
       {"\r\033[K[1/2] creating the network namespace fence-part-",
        "\r\033[K[2/2] scenario 'etcd': waiting for the 3 etcd members to join and serve (",
        "\r\033[K[2/2] scenario 'etcd': partition up ({m3, A, C} | {m1, m2, B}); waiting for "
        "A's 4000 ms lease to expire and B to be elected",
        "\r\033[K[2/2] scenario 'etcd': partition healed; A stopped for 10000 ms before its "
        "write: waiting for A to wake and write ("}) {
    EXPECT_NE(shown.find(text), std::string::npos)
        << "missing: " << text << "\nthe end of the terminal's output:\n" << End(shown);
  }
  // Its own JSON log lines would break the status line up: they go to a
  // file, which it names.
  EXPECT_EQ(shown.find("{\"ts\""), std::string::npos) << End(shown);
  EXPECT_NE(shown.find("its log: " + dir_->Sub("out") + "/fence-partition.log"), std::string::npos);
  EXPECT_NE(testing::ReadFileOrEmpty(dir_->Sub("out") + "/fence-partition.log").find("scenario_finished"),
            std::string::npos);
  const json facts = ExpectBFencedA(s);
  EXPECT_EQ(facts["a_store_answer"].value("error", ""), "stale_token");
  // The client on the minority side never got the lock.
  EXPECT_EQ(facts["c_elected"], false);
  EXPECT_EQ(facts["c_exit_code"], 1);
  // Only B's token was ever accepted for the key: no two leaders' writes.
  ASSERT_EQ(facts["store_accepted_tokens"].size(), 1u) << facts.dump(2);
  EXPECT_EQ(facts["store_accepted_tokens"][0]["token"], facts["b_token"]);

  int exit_code = -1;
  const json scan = Logscan(exit_code);
  EXPECT_EQ(exit_code, 1);  // the fenced write is evidence of a contained split-brain
  EXPECT_EQ(scan["stale_writes"].value("landed", -1), 0);
  EXPECT_GE(scan["stale_writes"].value("rejected", 0), 1);
}

// Ctrl-C while the status line is shown: the namespace is removed and the
// status line gives way to one line saying so, so the shell's prompt starts
// on a clean row (it used to start on the status line's row).
TEST_F(PartitionTest, InterruptedOnATerminalRemovesTheNamespaceAndEndsTheStatusLine) {
  const std::string waiting = "waiting for the 3 etcd members to join and serve";
  const TerminalRun run = RunOnTerminal(
      {SiblingBinary("fence-partition"), "--out", dir_->Sub("out"), "--scenarios", "etcd"},
      std::chrono::seconds(120), waiting);
  ASSERT_NE(run.output.find(waiting), std::string::npos) << End(run.output);
  EXPECT_EQ(run.exit_code, 128 + SIGINT) << End(run.output);
  const std::string creating = "creating the network namespace ";
  const std::size_t from = run.output.find(creating) + creating.size();
  ASSERT_GT(from, creating.size()) << End(run.output);
  const std::string name = run.output.substr(from, run.output.find(' ', from) - from);
  ASSERT_EQ(name.rfind("fence-part-", 0), 0u) << name;
  // The terminal turns "\n" into "\r\n".
  const std::string last = "\r\033[Kinterrupted by signal " + std::to_string(SIGINT) +
                           "; removed the network namespace " + name + "\r\n";
  ASSERT_GE(run.output.size(), last.size()) << End(run.output);
  EXPECT_EQ(run.output.substr(run.output.size() - last.size()), last) << End(run.output);
  const auto listed = testing::RunTool({"/usr/sbin/ip", "netns", "list"}, std::chrono::seconds(10));
  EXPECT_EQ(listed.Output().find(name), std::string::npos) << listed.Output();
}

TEST_F(PartitionTest, NaivePrimaryStandbyPairElectsTwoLeadersAndTheStoreSidesWithTheHigherCounter) {
  const json s = RunScenario("naive");
  ASSERT_TRUE(s.value("ran", false)) << run_.Output();
  EXPECT_TRUE(s.value("passed", false)) << s.dump(2);
  const json& facts = s["facts"];
  EXPECT_EQ(facts["b_granted_by"], "standby");
  ASSERT_TRUE(facts["a_token"].is_number() && facts["b_token"].is_number()) << facts.dump(2);
  EXPECT_GE(facts["a_token"].get<std::uint64_t>(), facts["b_token"].get<std::uint64_t>());
  // Two leaders at once, and tokens from two counters the store cannot
  // order: B, elected by the standby while A's term was open, fenced first
  // with the standby's lower token and was refused; A, cut off from B's
  // lock server, kept leading and its write after B's election landed.
  EXPECT_EQ(facts["a_outcome"], "write_done");
  EXPECT_EQ(facts["b_outcome"], "fenced");
  EXPECT_EQ(facts["b_elected_while_a_led"], true);
  EXPECT_EQ(facts["a_wrote_after_b_elected"], true);
  ASSERT_EQ(facts["store_accepted_tokens"].size(), 1u) << facts.dump(2);
  EXPECT_EQ(facts["store_accepted_tokens"][0]["token"], facts["a_token"]);

  int exit_code = -1;
  const json scan = Logscan(exit_code);
  EXPECT_EQ(exit_code, 1);
  // fence-logscan's evidence of the two leaders, by the order of events:
  // B's term began inside A's, and the lock elected B's lower token after
  // A's. Not by the overlap's length: B is refused within about a
  // millisecond of its election, and in whole-millisecond timestamps its
  // term often starts and ends in the same one (an overlap of 0 ms, which
  // fence-logscan does not report, as for a hand-over).
  const json a = LogscanTerm(scan, "A");
  const json b = LogscanTerm(scan, "B");
  ASSERT_FALSE(a.is_null() || b.is_null()) << scan.dump(2);
  EXPECT_LT(Ms(a["elected"]), Ms(b["elected"])) << scan.dump(2);
  EXPECT_LT(Ms(b["elected"]), Ms(a["ended"])) << scan.dump(2);
  EXPECT_EQ(b["ended_by"], "fenced");
  EXPECT_EQ(a["ended_by"], "resigned");  // A led until after its write
  bool regression = false;
  for (const auto& r : scan.value("regressions", json::array())) {
    regression = regression || (r.value("kind", "") == "leader_term" &&
                                r.value("subject", "") == "leader" &&
                                r.value("before", json()) == facts["a_token"] &&
                                r.value("after", json()) == facts["b_token"]);
  }
  EXPECT_TRUE(regression) << "no leader_term regression from A's token to B's: " << scan.dump(2);
  // When B's term did last into the next millisecond, the overlap is A's
  // and B's.
  for (const auto& overlap : scan.value("overlaps", json::array())) {
    EXPECT_EQ(overlap["older"]["owner"], "A");
    EXPECT_EQ(overlap["newer"]["owner"], "B");
  }
}

TEST_F(PartitionTest, WorkerCutOffFromAHealthyLockServiceIsFenced) {
  const json s = RunScenario("worker-cut");
  ASSERT_TRUE(s.value("ran", false)) << run_.Output();
  const json facts = ExpectBFencedA(s);
  ASSERT_EQ(facts["store_accepted_tokens"].size(), 1u) << facts.dump(2);

  int exit_code = -1;
  const json scan = Logscan(exit_code);
  EXPECT_EQ(scan["stale_writes"].value("landed", -1), 0);
  EXPECT_GE(scan["stale_writes"].value("rejected", 0), 1);
}

TEST_F(PartitionTest, RefusesAnUnknownScenarioWithOneLine) {
  auto run = testing::RunTool({SiblingBinary("fence-partition"), "--scenarios", "bogus"});
  EXPECT_EQ(run.exit_code, 1);
  ASSERT_EQ(run.lines.size(), 1u) << run.Output();
  EXPECT_NE(run.lines[0].find("unknown scenario 'bogus'"), std::string::npos);
}

}  // namespace
}  // namespace fence
