// Test harness for tests that drive third-party tools (promtool, prometheus,
// alertmanager, systemd-analyze) and read files of the source tree. Finding
// a program and picking a free port are common/process.h's FindProgram and
// PickFreeLoopbackPort.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"

namespace fence::testing {

// A path inside the source tree (FENCE_SOURCE_DIR, set by tests/CMakeLists).
std::string SourcePath(std::string_view relative);

std::string ReadFileOrEmpty(const std::string& path);
bool WriteFile(const std::string& path, std::string_view text);

using ToolRun = CommandResult;

// RunToCompletion of argv (argv[0] an absolute path), bounded by `timeout`;
// a run that overstays is killed and reported with exit_code -1, one that
// cannot start with exit_code -1 and the reason as its only line.
ToolRun RunTool(std::vector<std::string> argv,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// `promtool check metrics` (Debian's prometheus package) must accept a
// Prometheus text exposition; fails the calling test with promtool's report.
// `scratch_path` is where the text is written for promtool to read.
void ExpectPromtoolAcceptsMetrics(std::string_view exposition,
                                  const std::string& scratch_path);

}  // namespace fence::testing
