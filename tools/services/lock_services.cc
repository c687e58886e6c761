#include "tools/services/lock_services.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/http_client.h"
#include "common/logging.h"

namespace fence::tools {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// etcd and ZooKeeper cannot bind port 0 and report the port they got, so we
// pick a free one and pass it; another process may take it first, which
// shows as the server exiting, and then we try again with a new one.
constexpr int kMaxPortAttempts = 5;
constexpr Millis kReadyTimeout{30000};
// Between two readiness probes of a server that is still starting.
constexpr Millis kProbeInterval{50};

Result<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError("spawn_failed", std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    return MakeError("spawn_failed", "cannot find a free loopback port: " + why);
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

Result<std::string> MakeRunDir(const std::string& base, const std::string& prefix) {
  std::error_code ec;
  fs::create_directories(base, ec);
  std::string pattern = (fs::path(base) / (prefix + ".XXXXXX")).string();
  if (ec || mkdtemp(pattern.data()) == nullptr) {
    return MakeError("spawn_failed", "cannot create a data directory under '" + base +
                                         "': " + (ec ? ec.message() : std::strerror(errno)));
  }
  return pattern;
}

std::string OutputTail(const ChildProcess& child, std::size_t lines = 20) {
  const auto all = child.Lines();
  std::string tail;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    tail += all[i] + "\n";
  }
  return tail;
}

bool Exited(ChildProcess& child) { return child.WaitExit(Millis(0)).has_value(); }

// ZooKeeper's four-letter word: "ruok" is answered "imok" once it serves.
bool AnswersImok(int port, Millis timeout) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                                         static_cast<unsigned short>(port));
  std::string answer;
  char buffer[16];
  bool ok = false;
  socket.async_connect(endpoint, [&](boost::system::error_code ec) {
    if (ec) return;
    asio::async_write(socket, asio::buffer("ruok", 4),
                      [&](boost::system::error_code wec, std::size_t) {
                        if (wec) return;
                        asio::async_read(socket, asio::buffer(buffer),
                                         [&](boost::system::error_code, std::size_t n) {
                                           answer.assign(buffer, n);
                                           ok = answer == "imok";
                                         });
                      });
  });
  ioc.run_for(timeout);
  return ok;
}

// Probes `ready` until it answers true, the child exits, or kReadyTimeout.
// Returns nullopt when ready, else why not.
std::optional<std::string> WaitReady(ChildProcess& child,
                                     const std::function<bool()>& ready) {
  const auto deadline = SteadyClock::now() + kReadyTimeout;
  while (SteadyClock::now() < deadline) {
    if (Exited(child)) return "exited";
    if (ready()) return std::nullopt;
    std::this_thread::sleep_for(kProbeInterval);
  }
  return "did not answer within " + std::to_string(kReadyTimeout.count()) + " ms";
}

Result<LaunchedLockService> StartLockd(const LaunchOptions& options) {
  auto dir = MakeRunDir(options.dir, "lockd");
  if (!dir.ok()) return dir.error();
  const std::string binary = SiblingBinary("fence-lockd");
  auto child = ChildProcess::Start(
      {{binary, "--listen", "127.0.0.1:0", "--data-dir", *dir, "--max-ttl-ms",
        std::to_string(options.lockd_max_ttl.count())},
       options.log_path,
       {}});
  if (!child.ok()) return child.error();
  auto port = (*child)->WaitForListeningPort();
  if (!port.ok()) {
    return MakeError("unavailable", binary + " did not start: " + port.error().message);
  }
  LaunchedLockService service;
  service.kind = "lockd";
  service.endpoints = {"http://127.0.0.1:" + std::to_string(*port)};
  service.processes.push_back(std::move(*child));
  return service;
}

Result<LaunchedLockService> StartEtcd(const LaunchOptions& options) {
  const std::string binary = FindOnPath("etcd");
  if (binary.empty()) {
    return MakeError("unavailable",
                     "etcd is not on PATH; install etcd-server (deploy/install-deps.sh)");
  }
  std::string last_failure;
  for (int attempt = 1; attempt <= kMaxPortAttempts; ++attempt) {
    auto dir = MakeRunDir(options.dir, "etcd");
    if (!dir.ok()) return dir.error();
    auto client_port = FreeLoopbackPort();
    auto peer_port = FreeLoopbackPort();
    if (!client_port.ok()) return client_port.error();
    if (!peer_port.ok()) return peer_port.error();
    const std::string client_url = "http://127.0.0.1:" + std::to_string(*client_port);
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(*peer_port);
    // A 500 ms election timeout lowers etcd's minimum lease TTL to 1 s
    // (1.5 election timeouts, rounded up to whole seconds) from 2 s, so
    // short test and demo TTLs are honoured; one member never re-elects.
    auto child = ChildProcess::Start(
        {{binary, "--name", "n1", "--data-dir", *dir + "/data",
          "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
          "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
          "--initial-cluster", "n1=" + peer_url, "--heartbeat-interval", "100",
          "--election-timeout", "500", "--logger", "zap", "--log-outputs", "stderr"},
         options.log_path,
         {}});
    if (!child.ok()) return child.error();
    auto not_ready = WaitReady(**child, [&] {
      net::HttpCall call{net::http::verb::get, client_url + "/health", {}, "", Millis(500)};
      auto answer = net::Call(call);
      return answer.ok() && answer->result() == net::http::status::ok &&
             answer->body().find("\"true\"") != std::string::npos;
    });
    if (!not_ready) {
      log::Info("lock_service_started", {{"backend", "etcd"},
                                         {"endpoint", client_url},
                                         {"pid", (*child)->pid()},
                                         {"data_dir", *dir}});
      LaunchedLockService service;
      service.kind = "etcd";
      service.endpoints = {client_url};
      service.processes.push_back(std::move(*child));
      return service;
    }
    (*child)->Kill();
    last_failure = "etcd on ports " + std::to_string(*client_port) + "/" +
                   std::to_string(*peer_port) + " " + *not_ready + "; its output:\n" +
                   OutputTail(**child);
    log::Warn("lock_service_start_failed",
              {{"backend", "etcd"}, {"attempt", attempt}, {"reason", *not_ready}});
  }
  return MakeError("unavailable", "could not start etcd after " +
                                      std::to_string(kMaxPortAttempts) +
                                      " attempts: " + last_failure);
}

Result<LaunchedLockService> StartZooKeeper(const LaunchOptions& options) {
  const std::string java = FindOnPath("java");
  if (java.empty()) {
    return MakeError("unavailable",
                     "java is not on PATH; install zookeeper (deploy/install-deps.sh)");
  }
  if (!fs::exists("/usr/share/java/zookeeper.jar")) {
    return MakeError("unavailable", "/usr/share/java/zookeeper.jar is missing; install "
                                    "zookeeper (deploy/install-deps.sh)");
  }
  std::string last_failure;
  for (int attempt = 1; attempt <= kMaxPortAttempts; ++attempt) {
    auto dir = MakeRunDir(options.dir, "zookeeper");
    if (!dir.ok()) return dir.error();
    auto port = FreeLoopbackPort();
    if (!port.ok()) return port.error();
    const std::string config = *dir + "/zoo.cfg";
    {
      // tickTime 200 ms puts the smallest session timeout (2 ticks) at
      // 400 ms; the largest is widened to 60 s so long TTLs are honoured
      // instead of being cut to the default 20 ticks.
      std::ofstream out(config);
      out << "tickTime=200\n"
          << "initLimit=10\nsyncLimit=5\n"
          << "dataDir=" << *dir << "/data\n"
          << "clientPort=" << *port << "\n"
          << "clientPortAddress=127.0.0.1\n"
          << "minSessionTimeout=400\nmaxSessionTimeout=60000\n"
          << "admin.enableServer=false\n"
          << "4lw.commands.whitelist=ruok\n";
      if (!out) {
        return MakeError("spawn_failed", "cannot write " + config);
      }
    }
    auto child = ChildProcess::Start(
        {{java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
          "-cp", "/etc/zookeeper/conf:/usr/share/java/*",
          "org.apache.zookeeper.server.quorum.QuorumPeerMain", config},
         options.log_path,
         {}});
    if (!child.ok()) return child.error();
    auto not_ready = WaitReady(**child, [&] { return AnswersImok(*port, Millis(500)); });
    if (!not_ready) {
      const std::string endpoint = "127.0.0.1:" + std::to_string(*port);
      log::Info("lock_service_started", {{"backend", "zookeeper"},
                                         {"endpoint", endpoint},
                                         {"pid", (*child)->pid()},
                                         {"data_dir", *dir}});
      LaunchedLockService service;
      service.kind = "zookeeper";
      service.endpoints = {endpoint};
      service.processes.push_back(std::move(*child));
      return service;
    }
    (*child)->Kill();
    last_failure = "ZooKeeper on port " + std::to_string(*port) + " " + *not_ready +
                   "; its output:\n" + OutputTail(**child);
    log::Warn("lock_service_start_failed",
              {{"backend", "zookeeper"}, {"attempt", attempt}, {"reason", *not_ready}});
  }
  return MakeError("unavailable", "could not start ZooKeeper after " +
                                      std::to_string(kMaxPortAttempts) +
                                      " attempts: " + last_failure);
}

}  // namespace

Result<LaunchedLockService> LaunchLockService(std::string_view kind,
                                     const LaunchOptions& options) {
  if (options.dir.empty()) {
    return MakeError("bad_request", "LaunchOptions.dir is empty; expected a "
                                    "directory for the service's data");
  }
  if (kind == "lockd") return StartLockd(options);
  if (kind == "etcd") return StartEtcd(options);
  if (kind == "zookeeper") return StartZooKeeper(options);
  return MakeError("bad_request", "unknown lock service '" + std::string(kind) +
                                      "'; expected lockd, etcd or zookeeper");
}

}  // namespace fence::tools
