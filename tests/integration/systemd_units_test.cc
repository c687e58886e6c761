// The shipped systemd units are checked by systemd itself: `systemd-analyze
// verify` (syntax, keys, the ExecStart binary) and `systemd-analyze security
// --offline` (the hardening actually adds up).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <regex>

#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

class SystemdUnitsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto tool = FindProgram("systemd-analyze");
    // systemd is in deploy/install-deps.sh; without it there is nothing to
    // check the units with.
    ASSERT_TRUE(tool) << "systemd-analyze not on PATH; run deploy/install-deps.sh";
    analyze_ = *tool;
    binary_ = SiblingBinary(GetParam());
    struct stat st {};
    ASSERT_EQ(stat(binary_.c_str(), &st), 0) << binary_ << " is not built";
    unit_text_ = ReadFileOrEmpty(SourcePath("deploy/systemd/" + GetParam() + ".service"));
    ASSERT_FALSE(unit_text_.empty());
  }

  // The unit as shipped, but starting the binary of this build, since
  // verify insists that ExecStart names an executable.
  std::string WriteUnitForThisBuild(const TempDir& dir) {
    std::string text = unit_text_;
    const std::string installed = "/usr/local/bin/" + GetParam();
    const auto pos = text.find("ExecStart=" + installed);
    EXPECT_NE(pos, std::string::npos) << "ExecStart must start " << installed;
    if (pos != std::string::npos) text.replace(pos + 10, installed.size(), binary_);
    std::string path = dir.Sub(GetParam() + ".service");
    EXPECT_TRUE(WriteFile(path, text));
    return path;
  }

  std::string analyze_, binary_, unit_text_;
};

TEST_P(SystemdUnitsTest, VerifiesCleanly) {
  TempDir dir("fence-systemd");
  const std::string unit = WriteUnitForThisBuild(dir);
  ToolRun run = RunTool({analyze_, "verify", unit});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  // verify only warns (exit 0) about unknown keys and bad values, naming the
  // file: any line about our unit is a defect.
  for (const auto& line : run.lines) {
    EXPECT_EQ(line.find(GetParam()), std::string::npos) << line;
  }
}

TEST_P(SystemdUnitsTest, CarriesTheRequiredHardening) {
  for (const std::string& line :
       {std::string("NoNewPrivileges=yes"), std::string("ProtectSystem=strict"),
        "ReadWritePaths=/var/lib/" + GetParam(), "StateDirectory=" + GetParam(),
        std::string("PrivateTmp=yes"), std::string("PrivateDevices=yes"),
        std::string("ProtectHome=yes"), std::string("CapabilityBoundingSet="),
        std::string("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"),
        std::string("SystemCallFilter=@system-service")}) {
    EXPECT_NE(unit_text_.find("\n" + line), std::string::npos) << "missing " << line;
  }
  // The daemon writes where the sandbox lets it.
  EXPECT_NE(unit_text_.find(" --data-dir /var/lib/" + GetParam()), std::string::npos);
  if (GetParam() == "fence-store") {
    EXPECT_NE(unit_text_.find("--fencing on"), std::string::npos);
    EXPECT_EQ(unit_text_.find("--fencing off"), std::string::npos);
  }
}

TEST_P(SystemdUnitsTest, SecurityExposureIsLow) {
  TempDir dir("fence-systemd");
  const std::string unit = WriteUnitForThisBuild(dir);
  ToolRun run = RunTool({analyze_, "security", "--offline=true", "--no-pager", unit});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  std::smatch m;
  const std::string out = run.Output();
  static const std::regex kLevel(R"(Overall exposure level for \S+: ([0-9.]+))");
  ASSERT_TRUE(std::regex_search(out, m, kLevel)) << out;
  // systemd rates 0-10; below 2 is its "OK" band. The units measured 1.4.
  EXPECT_LT(std::stod(m[1]), 2.0) << out;
}

INSTANTIATE_TEST_SUITE_P(Units, SystemdUnitsTest,
                         ::testing::Values("fence-store", "fence-lockd"),
                         [](const auto& p) {
                           return p.param == "fence-store" ? std::string("Store")
                                                              : std::string("Lockd");
                         });

}  // namespace
}  // namespace fence::testing
