// fence-crashloop end to end, short: 5 real SIGKILLs of a real fence-store
// and of a real fence-lockd under load, each restarted on its data
// directory and checked. The checker's ability to fail is shown by
// crashloop_check_test (every violation kind has a row that must be
// flagged); the long runs and a by-hand mutation check are in
// docs/reliability.md. FENCE_SEED picks the seed (default fixed, printed).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

constexpr int kKills = 5;

std::string Seed() {
  const char* env = std::getenv("FENCE_SEED");
  return env != nullptr && *env != '\0' ? env : "20261127";
}

// The crashloop_summary event of a run (null if it has none).
nlohmann::json SummaryOf(const ToolRun& run) {
  for (const auto& line : run.lines) {
    if (line.find(R"("event":"crashloop_summary")") == std::string::npos) continue;
    auto json = nlohmann::json::parse(line, nullptr, false);
    if (!json.is_discarded()) return json;
  }
  return nullptr;
}

int CountLines(const std::string& text, const std::string& needle) {
  int count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

class CrashloopTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CrashloopTest, SurvivesKillsWithNoViolation) {
  TempDir dir("fence-crashloop-test");
  const std::string seed = Seed();
  ToolRun run = RunTool({SiblingBinary("fence-crashloop"), "--target", GetParam(), "--kills",
                         std::to_string(kKills), "--seed", seed, "--dir", dir.path(),
                         "--max-seconds", "60"},
                        std::chrono::seconds(120));
  ASSERT_EQ(run.exit_code, 0) << "seed " << seed << "\n" << run.Output();
  const nlohmann::json summary = SummaryOf(run);
  ASSERT_TRUE(summary.is_object()) << "no crashloop_summary line:\n" << run.Output();
  EXPECT_EQ(summary.value("target", ""), GetParam());
  EXPECT_EQ(std::to_string(summary.value("seed", std::uint64_t{0})), seed);
  EXPECT_EQ(summary.value("kills", -1), kKills);
  EXPECT_GT(summary.value("ops_acknowledged", 0L), 0);
  EXPECT_GT(summary.value("verified", 0L), 0);
  EXPECT_EQ(summary.value("violations", -1), 0) << summary.dump();
  // The daemon really ran kKills + 1 times on one data directory, and each
  // run but the last was SIGKILLed (no "stopped" line from those).
  const std::string daemon_log = ReadFileOrEmpty(dir.Sub("daemon.log"));
  EXPECT_EQ(CountLines(daemon_log, R"("event":"listening")"), kKills + 1);
  EXPECT_EQ(CountLines(daemon_log, R"("event":"stopped")"), 1);
  EXPECT_EQ(CountLines(run.Output(), R"("event":"daemon_killed")"), kKills);
}

INSTANTIATE_TEST_SUITE_P(Targets, CrashloopTest, ::testing::Values("store", "lockd"),
                         [](const auto& param_info) { return param_info.param; });

TEST(CrashloopCliTest, HelpAndBadFlags) {
  ToolRun help = RunTool({SiblingBinary("fence-crashloop"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.Output().find("--kills"), std::string::npos) << help.Output();
  ToolRun bad = RunTool({SiblingBinary("fence-crashloop"), "--target", "etcd"});
  EXPECT_EQ(bad.exit_code, 2) << bad.Output();
  ToolRun crowded = RunTool(
      {SiblingBinary("fence-crashloop"), "--target", "store", "--writers", "4", "--keys", "2"});
  EXPECT_EQ(crowded.exit_code, 1) << crowded.Output();
  EXPECT_NE(crowded.Output().find("--writers <= --keys"), std::string::npos) << crowded.Output();
}

}  // namespace
}  // namespace fence::testing
