// Test harness for tests that drive third-party tools (promtool, prometheus,
// alertmanager, systemd-analyze) and read files of the source tree.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fence::testing {

// The absolute path of `name` found on $PATH, or nullopt.
std::optional<std::string> FindProgram(std::string_view name);

// A path inside the source tree (FENCE_SOURCE_DIR, set by tests/CMakeLists).
std::string SourcePath(std::string_view relative);

std::string ReadFileOrEmpty(const std::string& path);
bool WriteFile(const std::string& path, std::string_view text);

struct ToolRun {
  int exit_code = -1;  // -1: did not exit normally in time (killed)
  std::vector<std::string> lines;  // stdout and stderr, interleaved
  std::string Output() const;
};

// Runs argv (argv[0] an absolute path) to completion, bounded by `timeout`;
// a run that overstays is killed and reported with exit_code -1.
ToolRun RunTool(std::vector<std::string> argv,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A loopback port that was free a moment ago, for third-party servers that
// cannot report the port they bound (Prometheus, Alertmanager). A caller
// that loses the race sees the server fail to start and may pick again.
int PickFreeLoopbackPort();

// `promtool check metrics` (Debian's prometheus package) must accept a
// Prometheus text exposition; fails the calling test with promtool's report.
// `scratch_path` is where the text is written for promtool to read.
void ExpectPromtoolAcceptsMetrics(std::string_view exposition,
                                  const std::string& scratch_path);

}  // namespace fence::testing
