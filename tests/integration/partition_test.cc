// The partition experiment, end to end: fence-partition runs one scenario
// per test in a network namespace of its own (real etcd cluster, real
// fence-lockd pair, real store and workers, real iptables cuts), and the
// outcome is judged from its summary.json and from fence-logscan run here on
// the scenario's merged log. Needs root and `ip netns` (deploy/run-tests.sh
// runs the suite as root): without them, or without fence-partition, the
// tests FAIL rather than skip, so a suite that did not check this says so.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tools/partition/partition_net.h"
#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SiblingBinary("fence-partition")))
        << SiblingBinary("fence-partition") << " is missing: it is built with the tests";
    const auto missing = tools::partition::MissingPrerequisite();
    ASSERT_FALSE(missing) << *missing << " (deploy/run-tests.sh runs the tests as root)";
    dir_ = std::make_unique<testing::TempDir>("fence-partition-test");
  }

  // Runs one scenario; returns its entry of summary.json.
  json RunScenario(const std::string& scenario) {
    const std::string out = dir_->Sub("out");
    run_ = testing::RunTool({SiblingBinary("fence-partition"), "--out", out, "--scenarios", scenario},
                            std::chrono::seconds(240));
    const std::string text = testing::ReadFileOrEmpty(out + "/summary.json");
    json summary = json::parse(text, nullptr, false);
    EXPECT_FALSE(summary.is_discarded()) << "no summary.json; output:\n" << run_.Output();
    if (summary.is_discarded()) return json::object();
    // The namespace is gone after the run, on the normal path at least.
    EXPECT_FALSE(fs::exists("/run/netns/" + summary.value("namespace", std::string("?"))));
    scenario_dir_ = out + "/" + scenario;
    return summary["scenarios"].value(scenario, json::object());
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
  std::string scenario_dir_;
};

TEST_F(PartitionTest, QuorumLockFencesTheMinorityLeaderAfterTheHeal) {
  const json s = RunScenario("etcd");
  ASSERT_TRUE(s.value("ran", false)) << run_.Output();
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

TEST_F(PartitionTest, NaivePrimaryStandbyPairElectsTwoLeadersAndTheStoreSidesWithTheHigherCounter) {
  const json s = RunScenario("naive");
  ASSERT_TRUE(s.value("ran", false)) << run_.Output();
  EXPECT_TRUE(s.value("passed", false)) << s.dump(2);
  const json& facts = s["facts"];
  EXPECT_EQ(facts["b_granted_by"], "standby");
  ASSERT_TRUE(facts["a_token"].is_number() && facts["b_token"].is_number()) << facts.dump(2);
  EXPECT_GE(facts["a_token"].get<std::uint64_t>(), facts["b_token"].get<std::uint64_t>());
  // Two leaders at once, and tokens from two counters the store cannot
  // order: B fenced first with the standby's lower token and was refused;
  // A, cut off from B's lock server, kept leading and its write landed
  // while B led.
  EXPECT_EQ(facts["a_outcome"], "write_done");
  EXPECT_EQ(facts["b_outcome"], "fenced");
  EXPECT_EQ(facts["a_wrote_while_b_led"], true);
  ASSERT_EQ(facts["store_accepted_tokens"].size(), 1u) << facts.dump(2);
  EXPECT_EQ(facts["store_accepted_tokens"][0]["token"], facts["a_token"]);

  int exit_code = -1;
  const json scan = Logscan(exit_code);
  EXPECT_EQ(exit_code, 1);
  // fence-logscan's evidence of the split-brain: the overlapping terms, or
  // (when B was fenced in the very millisecond it was elected) A's write
  // after B's election as a stale write that landed.
  const std::size_t overlaps = scan.value("overlaps", json::array()).size();
  const int landed = scan["stale_writes"].value("landed", 0);
  EXPECT_TRUE(overlaps >= 1 || landed >= 1) << scan.dump(2);
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
