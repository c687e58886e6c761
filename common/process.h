// The one process launcher, for tests and the demo: start a binary, collect
// its output lines, wait for a line (such as the "listening" event) as an
// event, signal it, and stop it on every path.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/result.h"

namespace fence {

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the binary's path
    std::string log_path;           // if set, output is also appended here
    std::vector<std::string> extra_env;  // "NAME=value"
  };

  // The child gets SIGKILL if the thread that started it exits, so a crashed
  // test or demo never leaves a daemon behind (PR_SET_PDEATHSIG).
  static Result<std::unique_ptr<ChildProcess>> Start(Options options);
  ~ChildProcess();  // SIGKILLs and reaps a child that is still running

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Blocks until an output line (stdout or stderr) at index >= `from`
  // satisfies `match`, the child closes its output, or `timeout` passes.
  std::optional<std::string> WaitForLine(
      const std::function<bool(std::string_view)>& match,
      std::chrono::milliseconds timeout, std::size_t from = 0);

  // Waits for the {"event":"listening",...,"port":N} log line.
  Result<int> WaitForListeningPort(
      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  std::vector<std::string> Lines() const;
  std::size_t LineCount() const;

  bool Signal(int signal);
  // The raw wait status once the child has exited, or nullopt on timeout.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  int Kill();  // SIGKILL and reap
  bool exited() const { return exit_status_.has_value(); }

 private:
  ChildProcess() = default;
  void ReadOutput(int fd);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> exit_status_;
  std::thread reader_;
  std::string log_path_;

  mutable std::mutex mu_;
  std::condition_variable line_added_;
  std::vector<std::string> lines_;  // GUARDED_BY(mu_)
  bool output_closed_ = false;      // GUARDED_BY(mu_)
};

// A path next to the running executable (e.g. a sibling binary in build/bin).
std::string SiblingBinary(std::string_view name);

}  // namespace fence
