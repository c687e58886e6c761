// fence-logscan on the demo's own logs: the unfenced run must show
// overlapping terms and a stale write that landed; the fenced run the
// overlap and every stale write rejected. Also checks that the runbook's
// log commands find what the runbook says they find in the demo's output.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

using namespace std::chrono_literals;

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

class LogscanDemoTest : public ::testing::Test {
 protected:
  // One demo run (small settings) shared by the tests of this suite.
  static void SetUpTestSuite() {
    dir_ = new TempDir("fence-logscan-demo");
    demo_ = RunTool({SiblingBinary("fence-demo"), "--out", dir_->Sub("out"), "--ttl-ms", "500",
                     "--failover-trials", "1", "--tradeoff-ttls", "none", "--stall-trials",
                     "1"},
                    std::chrono::minutes(5));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    // A binary of this build that is missing is a failure, never a skip.
    ASSERT_TRUE(Exists(SiblingBinary("fence-demo"))) << SiblingBinary("fence-demo") << " is missing";
    ASSERT_TRUE(Exists(SiblingBinary("fence-logscan"))) << SiblingBinary("fence-logscan") << " is missing";
    ASSERT_EQ(demo_.exit_code, 0) << demo_.Output();
  }

  static std::string Out(const std::string& name) { return dir_->Sub("out/" + name); }

  // fence-logscan --json FILE: exit code and findings.
  static std::pair<int, nlohmann::json> Scan(const std::string& file) {
    ToolRun run = RunTool({SiblingBinary("fence-logscan"), "--json", file});
    auto j = nlohmann::json::parse(run.Output(), nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << run.Output();
    return {run.exit_code, j.is_discarded() ? nlohmann::json::object() : j};
  }

  static TempDir* dir_;
  static ToolRun demo_;
};

TempDir* LogscanDemoTest::dir_ = nullptr;
ToolRun LogscanDemoTest::demo_;

TEST_F(LogscanDemoTest, UnfencedRunShowsOverlapAndAStaleWriteThatLanded) {
  auto [code, f] = Scan(Out("unfenced.log"));
  EXPECT_EQ(code, 1) << f.dump(2);
  EXPECT_EQ(f["verdict"], "split_brain_evidence");
  ASSERT_GE(f["overlaps"].size(), 1u) << f.dump(2);
  const auto& o = f["overlaps"][0];
  EXPECT_NE(o["older"]["owner"], o["newer"]["owner"]);
  EXPECT_GT(o["duration_ms"].get<std::int64_t>(), 0);
  EXPECT_GE(f["stale_writes"]["landed"].get<int>(), 1) << f["stale_writes"].dump(2);
  // The stale write that landed is the older leader's.
  bool older_landed = false;
  for (const auto& w : f["stale_writes"]["writes"]) {
    if (w["outcome"] == "landed" && w["owner"] == o["older"]["owner"]) older_landed = true;
  }
  EXPECT_TRUE(older_landed) << f["stale_writes"].dump(2);
  EXPECT_EQ(f["fenced_writes"]["count"], 0);
  EXPECT_TRUE(f["regressions"].empty()) << f["regressions"].dump(2);

  ToolRun human = RunTool({SiblingBinary("fence-logscan"), Out("unfenced.log")});
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_NE(human.Output().find("SPLIT-BRAIN EVIDENCE FOUND"), std::string::npos);
  EXPECT_NE(human.Output().find("LANDED   "), std::string::npos) << human.Output();
}

TEST_F(LogscanDemoTest, FencedRunShowsOverlapAndEveryStaleWriteRejected) {
  auto [code, f] = Scan(Out("fenced.log"));
  EXPECT_EQ(code, 1) << f.dump(2);
  ASSERT_GE(f["overlaps"].size(), 1u) << f.dump(2);
  EXPECT_EQ(f["stale_writes"]["landed"], 0) << f["stale_writes"].dump(2);
  EXPECT_GE(f["stale_writes"]["rejected"].get<int>(), 1) << f["stale_writes"].dump(2);
  for (const auto& w : f["stale_writes"]["writes"]) EXPECT_EQ(w["outcome"], "rejected");
  EXPECT_GE(f["fenced_writes"]["count"].get<int>(), 1);
  EXPECT_TRUE(f["regressions"].empty()) << f["regressions"].dump(2);
}

// docs/runbook.md greps the demo's logs for these lines and shows the
// bypass answer from bypass.log.
TEST_F(LogscanDemoTest, RunbookCommandsFindWhatTheRunbookShows) {
  const std::string fenced = ReadFileOrEmpty(Out("fenced.log"));
  for (const char* needle : {R"("event":"write_fenced")", R"("event":"elected")",
                             R"("event":"fenced")", R"("event":"pause_injected")"}) {
    EXPECT_NE(fenced.find(needle), std::string::npos) << needle;
  }
  EXPECT_NE(ReadFileOrEmpty(Out("unfenced.log")).find(R"("event":"write_done")"),
            std::string::npos);
  const std::string bypass = ReadFileOrEmpty(Out("bypass.log"));
  EXPECT_NE(bypass.find("409"), std::string::npos) << bypass;
  EXPECT_NE(bypass.find("stale_token"), std::string::npos) << bypass;
  EXPECT_TRUE(Exists(Out("report.md")));
}

}  // namespace
}  // namespace fence::testing
