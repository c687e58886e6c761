#include "common/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/logging.h"

extern char** environ;

namespace fence {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(Options options) {
  if (options.argv.empty()) {
    return MakeError("bad_argument", "no program given to start");
  }
  // Said here rather than by a child that exits 127: a program of this
  // build that is missing must be an error that names it.
  if (access(options.argv[0].c_str(), X_OK) != 0) {
    return MakeError("spawn_failed", "cannot run '" + options.argv[0] +
                                         "': " + std::strerror(errno) +
                                         "; expected an executable file");
  }
  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed in a multithreaded parent.
  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (auto& e : options.extra_env) env_storage.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return MakeError("spawn_failed", std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return MakeError("spawn_failed", std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execve(argv[0], argv.data(), envp.data());
    static constexpr char kMsg[] = "exec failed\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    _exit(127);
  }
  close(pipe_fds[1]);
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  child->log_path_ = options.log_path;
  child->reader_ = std::thread([c = child.get(), fd = pipe_fds[0]] {
    c->ReadOutput(fd);
  });
  return child;
}

void ChildProcess::ReadOutput(int fd) {
  std::ofstream log;
  if (!log_path_.empty()) log.open(log_path_, std::ios::app);
  std::string pending;
  char buf[8192];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    std::vector<std::string> complete;
    for (auto nl = pending.find('\n'); nl != std::string::npos;
         nl = pending.find('\n', start)) {
      complete.push_back(pending.substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    if (complete.empty()) continue;
    if (log.is_open()) {
      for (const auto& line : complete) log << line << '\n';
      log.flush();
    }
    std::lock_guard lock(mu_);
    for (auto& line : complete) lines_.push_back(std::move(line));
    line_added_.notify_all();
  }
  close(fd);
  std::lock_guard lock(mu_);
  if (!pending.empty()) {
    if (log.is_open()) log << pending << '\n';
    lines_.push_back(pending);
  }
  output_closed_ = true;
  line_added_.notify_all();
}

std::optional<std::string> ChildProcess::WaitForLine(
    const std::function<bool(std::string_view)>& match,
    std::chrono::milliseconds timeout, std::size_t from) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  std::size_t next = from;
  while (true) {
    for (; next < lines_.size(); ++next) {
      if (match(lines_[next])) return lines_[next];
    }
    if (output_closed_) return std::nullopt;
    if (line_added_.wait_until(lock, deadline) == std::cv_status::timeout &&
        next == lines_.size()) {
      return std::nullopt;
    }
  }
}

Result<int> ChildProcess::WaitForListeningPort(std::chrono::milliseconds timeout) {
  int port = -1;
  auto line = WaitForLine(
      [&port](std::string_view text) {
        if (text.find("\"listening\"") == std::string_view::npos) return false;
        auto j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.contains("port")) return false;
        port = j["port"].get<int>();
        return true;
      },
      timeout);
  if (!line) {
    return MakeError("not_listening", "process " + std::to_string(pid_) +
                                          " did not log a listening event within " +
                                          std::to_string(timeout.count()) +
                                          " ms; its last output:\n" + OutputTail());
  }
  return port;
}

std::vector<std::string> ChildProcess::Lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

std::size_t ChildProcess::LineCount() const {
  std::lock_guard lock(mu_);
  return lines_.size();
}

std::string ChildProcess::OutputTail(std::size_t count) const {
  std::lock_guard lock(mu_);
  std::string tail;
  for (std::size_t i = lines_.size() > count ? lines_.size() - count : 0; i < lines_.size(); ++i) {
    tail += lines_[i] + "\n";
  }
  return tail;
}

bool ChildProcess::Signal(int signal) {
  if (exit_status_) return false;
  return kill(pid_, signal) == 0;
}

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  if (pidfd_ >= 0) {
    // The pidfd becomes readable when the child exits: an event, not a poll
    // loop.
    pollfd p{pidfd_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return std::nullopt;
  }
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) exit_status_ = status;
  if (exit_status_) {
    if (reader_.joinable()) reader_.join();
    if (pidfd_ >= 0) close(pidfd_);
    pidfd_ = -1;
  }
  return exit_status_;
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (exit_status_) return *exit_status_;
  Signal(SIGCONT);  // a stopped process cannot handle SIGTERM
  Signal(SIGTERM);
  if (auto status = WaitExit(grace)) return *status;
  return Kill();
}

int ChildProcess::Kill() {
  if (exit_status_) return *exit_status_;
  kill(pid_, SIGKILL);
  return WaitExit(std::chrono::milliseconds(INT_MAX)).value_or(-1);
}

ChildProcess::~ChildProcess() {
  if (!exit_status_ && pid_ > 0) Kill();
  if (reader_.joinable()) reader_.join();
  if (pidfd_ >= 0) close(pidfd_);
}

std::string SiblingBinary(std::string_view name) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : ".";
  dir = dir.substr(0, dir.rfind('/'));
  return dir + "/" + std::string(name);
}

std::optional<std::string> FindProgram(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  dirs += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream stream(dirs);
  std::string dir;
  while (std::getline(stream, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + std::string(name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

Result<int> PickFreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return MakeError("no_free_port", std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    return MakeError("no_free_port", "cannot bind a free loopback port: " + why);
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string ListeningDaemon::Url(std::string_view path) const {
  return "http://" + host + ":" + std::to_string(port) + std::string(path);
}

Result<ListeningDaemon> StartListeningDaemon(ChildProcess::Options options,
                                             const std::string& listen, Millis timeout) {
  if (options.argv.empty()) return MakeError("bad_argument", "no daemon given to start");
  std::string command;
  for (const auto& word : options.argv) command += (command.empty() ? "" : " ") + word;
  const std::string host = listen.substr(0, listen.rfind(':'));
  options.argv.push_back("--listen");
  options.argv.push_back(listen);
  auto child = ChildProcess::Start(std::move(options));
  if (!child.ok()) return child.error();
  auto port = (*child)->WaitForListeningPort(timeout);
  if (!port.ok()) {
    (*child)->Kill();
    return MakeError("not_listening", "'" + command + " --listen " + listen +
                                          "' did not start: " + port.error().message);
  }
  ListeningDaemon daemon;
  daemon.process = std::move(*child);
  daemon.host = host;
  daemon.port = *port;
  return daemon;
}

namespace {

// Asks `ready` every `interval` until it answers true, the child exits, or
// `timeout` passes. Returns nullopt when ready, else why not.
std::optional<std::string> ProbeUntilReady(ChildProcess& child, const std::function<bool()>& ready,
                                           Millis timeout, Millis interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (child.WaitExit(Millis(0))) return std::string("exited before it was ready");
    if (ready()) return std::nullopt;
    // The server gives no event to wait on: probing at a fixed interval
    // until the deadline is all there is.
    if (child.WaitExit(interval)) return std::string("exited before it was ready");
  }
  return "was not ready within " + std::to_string(timeout.count()) + " ms";
}

}  // namespace

Result<PickedPortsServer> StartOnPickedPorts(const PickedPortsOptions& options) {
  std::string last_failure = "no attempt was made";
  for (int attempt = 1; attempt <= options.attempts; ++attempt) {
    std::vector<int> ports;
    for (int i = 0; i < options.port_count; ++i) {
      auto port = PickFreeLoopbackPort();
      if (!port.ok()) return port.error();
      ports.push_back(*port);
    }
    auto command = options.command(ports);
    if (!command.ok()) return command.error();
    auto child = ChildProcess::Start(std::move(*command));
    if (!child.ok()) return child.error();
    auto not_ready = ProbeUntilReady(
        **child, [&] { return options.ready(ports); }, options.ready_timeout,
        options.probe_interval);
    if (!not_ready) return PickedPortsServer{std::move(*child), ports};
    (*child)->Kill();
    std::string port_list;
    for (int p : ports) port_list += (port_list.empty() ? "" : "/") + std::to_string(p);
    last_failure = options.name + " on port " + port_list + " " + *not_ready +
                   "; its last output:\n" + (*child)->OutputTail();
    log::Warn("server_start_failed", {{"server", options.name},
                                      {"attempt", attempt},
                                      {"ports", ports},
                                      {"reason", *not_ready}});
  }
  return MakeError("unavailable", "could not start " + options.name + " after " +
                                      std::to_string(options.attempts) +
                                      " attempts: " + last_failure);
}

std::string CommandResult::Output() const {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

Result<CommandResult> RunToCompletion(ChildProcess::Options options, Millis timeout) {
  auto child = ChildProcess::Start(std::move(options));
  if (!child.ok()) return child.error();
  CommandResult result;
  if (auto status = (*child)->WaitExit(timeout)) {
    if (WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  } else {
    (*child)->Kill();
  }
  result.lines = (*child)->Lines();
  return result;
}

}  // namespace fence
