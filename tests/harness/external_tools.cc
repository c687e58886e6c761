#include "tests/harness/external_tools.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#ifndef FENCE_SOURCE_DIR
#error "tests/CMakeLists.txt must define FENCE_SOURCE_DIR"
#endif

namespace fence::testing {

std::string SourcePath(std::string_view relative) {
  return std::string(FENCE_SOURCE_DIR) + "/" + std::string(relative);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool WriteFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

ToolRun RunTool(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  ChildProcess::Options options;
  options.argv = std::move(argv);
  auto run = RunToCompletion(std::move(options), timeout);
  if (!run.ok()) return ToolRun{-1, {run.error().message}};
  return std::move(*run);
}

void ExpectPromtoolAcceptsMetrics(std::string_view exposition,
                                  const std::string& scratch_path) {
  auto promtool = FindProgram("promtool");
  ASSERT_TRUE(promtool) << "promtool not on PATH; run deploy/install-deps.sh";
  ASSERT_TRUE(WriteFile(scratch_path, exposition));
  // promtool reads the exposition on stdin.
  ToolRun run = RunTool({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"",
                         *promtool, scratch_path});
  EXPECT_EQ(run.exit_code, 0) << run.Output() << "\n--- metrics ---\n" << exposition;
}

}  // namespace fence::testing
