#include "tests/harness/external_tools.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/process.h"

#ifndef FENCE_SOURCE_DIR
#error "tests/CMakeLists.txt must define FENCE_SOURCE_DIR"
#endif

namespace fence::testing {

std::optional<std::string> FindProgram(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream stream(dirs);
  std::string dir;
  while (std::getline(stream, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + std::string(name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

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

std::string ToolRun::Output() const {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

ToolRun RunTool(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  ToolRun run;
  ChildProcess::Options options;
  options.argv = std::move(argv);
  auto child = ChildProcess::Start(std::move(options));
  if (!child.ok()) {
    run.lines.push_back(child.error().message);
    return run;
  }
  // Output closes when the tool exits: then every line has been collected.
  (*child)->WaitForLine([](std::string_view) { return false; }, timeout);
  auto status = (*child)->WaitExit(std::chrono::seconds(5));
  if (!status) {
    (*child)->Kill();
  } else if (WIFEXITED(*status)) {
    run.exit_code = WEXITSTATUS(*status);
  }
  run.lines = (*child)->Lines();
  return run;
}

int PickFreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
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
