// The one process launcher, for the tools and the tests alike: start a
// binary, collect its output lines, wait for a line (such as the "listening"
// event) as an event, signal it, and stop it on every path. On top of it:
// one of our daemons started on a free port (StartListeningDaemon), a
// third-party server on picked ports (StartOnPickedPorts), a command run to
// completion (RunToCompletion), and the lookups they need (SiblingBinary,
// FindProgram, PickFreeLoopbackPort).
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

#include "core/clock.h"
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
  // The last `count` output lines, one per line, for error messages.
  std::string OutputTail(std::size_t count = 20) const;

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

// The absolute path of the executable `name` on $PATH, then in the sbin and
// bin folders a non-login PATH may lack (iproute2 and iptables live in
// sbin); nullopt if there is none.
std::optional<std::string> FindProgram(std::string_view name);

// A loopback port that was free a moment ago (bound to port 0, read, closed),
// for third-party servers that cannot bind port 0 and report the port they
// got. Another process may take it before the server binds it: see
// StartOnPickedPorts.
Result<int> PickFreeLoopbackPort();

// One of our daemons, listening.
struct ListeningDaemon {
  std::unique_ptr<ChildProcess> process;
  std::string host = "127.0.0.1";
  int port = 0;  // 0 only in a default-constructed value
  // "http://host:port" + path.
  std::string Url(std::string_view path = "") const;
};

// Starts one of our daemons: `options.argv` (argv[0] its path, or a wrapper
// such as `ip netns exec` whose last words are the daemon's command line)
// with `--listen <listen>` appended, and waits up to `timeout` for its
// {"event":"listening",...,"port":N} line. With the default listen address
// the kernel picks a free port and the daemon reports it, so there is no
// race for ports. On every failure (cannot start, exits, never listens) the
// child is killed and reaped before the error (with its last output lines)
// is returned.
Result<ListeningDaemon> StartListeningDaemon(ChildProcess::Options options,
                                             const std::string& listen = "127.0.0.1:0",
                                             Millis timeout = Millis(20000));

// A third-party server (etcd, ZooKeeper, Prometheus, Alertmanager) on ports
// picked for it. `command` builds its command line for the picked ports (it
// may write a config file or make a data folder); `ready` is one bounded
// readiness probe (an HTTP GET, a four-letter word), asked every
// `probe_interval` until it answers true, the server exits, or
// `ready_timeout` passes. A server that exits before it is ready most likely
// lost a port to another process: it is started again on new ports, up to
// `attempts` times. Every server that is not returned is killed and reaped.
struct PickedPortsOptions {
  std::string name;  // for errors and logs, e.g. "etcd"
  int port_count = 1;
  std::function<Result<ChildProcess::Options>(const std::vector<int>& ports)> command;
  std::function<bool(const std::vector<int>& ports)> ready;
  Millis ready_timeout{30000};
  Millis probe_interval{50};
  int attempts = 5;
};
struct PickedPortsServer {
  std::unique_ptr<ChildProcess> process;
  std::vector<int> ports;
};
Result<PickedPortsServer> StartOnPickedPorts(const PickedPortsOptions& options);

// A command run to completion.
struct CommandResult {
  int exit_code = -1;  // -1: killed after the timeout, or ended by a signal
  std::vector<std::string> lines;  // stdout and stderr, interleaved
  std::string Output() const;      // the lines, each ending in '\n'
};
// Runs `options.argv` (argv[0] an absolute path) until it exits, bounded by
// `timeout`: a command that overstays is killed (exit_code -1). An error
// only if it could not be started.
Result<CommandResult> RunToCompletion(ChildProcess::Options options, Millis timeout);

}  // namespace fence
