// The shipped Prometheus rules, checked and unit-tested by the real promtool:
// alerts_test.yml pages on the first fenced write, on a later one, never on a
// quiet store, and across a store restart (counter reset).
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

class RulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto promtool = FindProgram("promtool");
    // promtool is a declared dependency (deploy/install-deps.sh): its absence
    // is a broken setup, not a reason to skip.
    ASSERT_TRUE(promtool) << "promtool not on PATH; run deploy/install-deps.sh";
    promtool_ = *promtool;
  }
  std::string promtool_;
};

TEST_F(RulesTest, AlertRulesPassPromtoolCheck) {
  ToolRun run = RunTool({promtool_, "check", "rules",
                         SourcePath("deploy/prometheus/alerts.yml")});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  EXPECT_NE(run.Output().find("SUCCESS"), std::string::npos) << run.Output();
}

TEST_F(RulesTest, ScrapeConfigPassesPromtoolCheck) {
  ToolRun run = RunTool({promtool_, "check", "config",
                         SourcePath("deploy/prometheus/prometheus.yml")});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
}

TEST_F(RulesTest, RuleUnitTestsPass) {
  ToolRun run = RunTool({promtool_, "test", "rules",
                         SourcePath("deploy/prometheus/alerts_test.yml")});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  EXPECT_NE(run.Output().find("SUCCESS"), std::string::npos) << run.Output();
}

// The rule tests cover the four cases the page must get right; a test file
// that lost one of them would still pass, so its presence is checked here.
TEST_F(RulesTest, RuleUnitTestsCoverTheFencedWriteCases) {
  const std::string tests =
      ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts_test.yml"));
  for (const char* name :
       {"first fenced write after start pages", "a later fenced write pages again",
        "a quiet store never pages", "a restart without fenced writes does not page",
        "first fenced write after a restart pages"}) {
    EXPECT_NE(tests.find(std::string("name: ") + name), std::string::npos) << name;
  }
}

// Every alert carries the annotations the on-call needs, and its runbook
// link lands on a section that exists in docs/runbook.md.
TEST_F(RulesTest, EveryAlertLinksAnExistingRunbookSection) {
  const std::string rules = ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts.yml"));
  const std::string runbook = ReadFileOrEmpty(SourcePath("docs/runbook.md"));
  ASSERT_FALSE(rules.empty());
  ASSERT_FALSE(runbook.empty()) << "docs/runbook.md is missing";

  // Headings become anchors the way GitHub renders them: lower case, spaces
  // to '-', other punctuation dropped.
  std::set<std::string> anchors;
  std::regex heading(R"(^#+\s+(.*)$)", std::regex::multiline);
  for (auto it = std::sregex_iterator(runbook.begin(), runbook.end(), heading);
       it != std::sregex_iterator(); ++it) {
    std::string anchor;
    for (char c : (*it)[1].str()) {
      if (std::isalnum(static_cast<unsigned char>(c))) {
        anchor += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      } else if (c == ' ' || c == '-' || c == '_') {
        anchor += c == ' ' ? '-' : c;
      }
    }
    anchors.insert(anchor);
  }

  std::regex alert(R"(- alert: (\w+))");
  std::vector<std::string> alerts;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), alert);
       it != std::sregex_iterator(); ++it) {
    alerts.push_back((*it)[1].str());
  }
  ASSERT_EQ(alerts.size(), 5u) << "FencedWriteDetected, FenceStoreDown, "
                                  "LockExpirationSpike, FenceLockdDown, LeaseBroken";

  std::regex link(R"re(runbook_url: "docs/runbook\.md#([a-z0-9_-]+)")re");
  std::size_t links = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), link);
       it != std::sregex_iterator(); ++it) {
    ++links;
    EXPECT_TRUE(anchors.count((*it)[1].str()))
        << "runbook_url points at #" << (*it)[1].str()
        << ", which is not a heading of docs/runbook.md";
  }
  EXPECT_EQ(links, alerts.size()) << "every alert needs a runbook_url";
  std::regex summary(R"(\n\s+summary: )"), description(R"(\n\s+description: )");
  EXPECT_EQ(std::distance(std::sregex_iterator(rules.begin(), rules.end(), summary),
                          std::sregex_iterator()),
            static_cast<long>(alerts.size()));
  EXPECT_EQ(std::distance(std::sregex_iterator(rules.begin(), rules.end(), description),
                          std::sregex_iterator()),
            static_cast<long>(alerts.size()));
}

}  // namespace
}  // namespace fence::testing
