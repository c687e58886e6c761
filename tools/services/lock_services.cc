#include "tools/services/lock_services.h"

#include <stdlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/http_client.h"
#include "common/logging.h"

namespace fence::tools {
namespace {

namespace fs = std::filesystem;

constexpr Millis kReadyTimeout{30000};

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

bool EtcdIsHealthy(const std::string& client_url) {
  net::HttpCall call{net::http::verb::get, client_url + "/health", {}, "", Millis(500)};
  auto answer = net::Call(call);
  return answer.ok() && answer->result() == net::http::status::ok &&
         answer->body().find("\"true\"") != std::string::npos;
}

std::string LoopbackUrl(int port) { return "http://127.0.0.1:" + std::to_string(port); }

LaunchedLockService Launched(std::string kind, std::string endpoint,
                             std::unique_ptr<ChildProcess> process) {
  log::Info("lock_service_started",
            {{"backend", kind}, {"endpoint", endpoint}, {"pid", process->pid()}});
  LaunchedLockService service;
  service.kind = std::move(kind);
  service.endpoints = {std::move(endpoint)};
  service.processes.push_back(std::move(process));
  return service;
}

Result<LaunchedLockService> StartLockd(const LaunchOptions& options) {
  auto dir = MakeRunDir(options.dir, "lockd");
  if (!dir.ok()) return dir.error();
  std::vector<std::string> argv = {SiblingBinary("fence-lockd"), "--data-dir", *dir,
                                   "--max-ttl-ms", std::to_string(options.lockd_max_ttl.count())};
  if (!options.lockd_token_key_file.empty()) {
    argv.insert(argv.end(), {"--token-key-file", options.lockd_token_key_file});
  }
  auto lockd = StartListeningDaemon({argv, options.log_path, {}});
  if (!lockd.ok()) return MakeError("unavailable", lockd.error().message);
  return Launched("lockd", lockd->Url(), std::move(lockd->process));
}

Result<LaunchedLockService> StartEtcd(const LaunchOptions& options) {
  const auto etcd = FindProgram("etcd");
  if (!etcd) {
    return MakeError("unavailable",
                     "etcd is not on PATH; install etcd-server (deploy/install-deps.sh)");
  }
  PickedPortsOptions start;
  start.name = "etcd";
  start.port_count = 2;  // client, peer
  start.ready_timeout = kReadyTimeout;
  start.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    auto dir = MakeRunDir(options.dir, "etcd");
    if (!dir.ok()) return dir.error();
    const std::string client_url = LoopbackUrl(ports[0]);
    const std::string peer_url = LoopbackUrl(ports[1]);
    // A 500 ms election timeout lowers etcd's minimum lease TTL to 1 s
    // (1.5 election timeouts, rounded up to whole seconds) from 2 s, so
    // short test and demo TTLs are honoured; one member never re-elects.
    return ChildProcess::Options{
        {*etcd, "--name", "n1", "--data-dir", *dir + "/data", "--listen-client-urls",
         client_url, "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url,
         "--initial-advertise-peer-urls", peer_url, "--initial-cluster", "n1=" + peer_url,
         "--heartbeat-interval", "100", "--election-timeout", "500", "--logger", "zap",
         "--log-outputs", "stderr"},
        options.log_path,
        {}};
  };
  start.ready = [](const std::vector<int>& ports) { return EtcdIsHealthy(LoopbackUrl(ports[0])); };
  auto server = StartOnPickedPorts(start);
  if (!server.ok()) return server.error();
  return Launched("etcd", LoopbackUrl(server->ports[0]), std::move(server->process));
}

// tickTime 200 ms puts the smallest session timeout (2 ticks) at 400 ms; the
// largest is widened to 60 s so long TTLs are honoured instead of being cut
// to the default 20 ticks.
Status WriteZooKeeperConfig(const std::string& dir, int port) {
  const std::string config = dir + "/zoo.cfg";
  std::ofstream out(config);
  out << "tickTime=200\n"
      << "initLimit=10\nsyncLimit=5\n"
      << "dataDir=" << dir << "/data\n"
      << "clientPort=" << port << "\n"
      << "clientPortAddress=127.0.0.1\n"
      << "minSessionTimeout=400\nmaxSessionTimeout=60000\n"
      << "admin.enableServer=false\n"
      << "4lw.commands.whitelist=ruok\n";
  out.close();
  if (!out) return MakeError("spawn_failed", "cannot write " + config);
  return OkStatus();
}

Result<LaunchedLockService> StartZooKeeper(const LaunchOptions& options) {
  const auto java = FindProgram("java");
  if (!java) {
    return MakeError("unavailable",
                     "java is not on PATH; install zookeeper (deploy/install-deps.sh)");
  }
  if (!fs::exists("/usr/share/java/zookeeper.jar")) {
    return MakeError("unavailable", "/usr/share/java/zookeeper.jar is missing; install "
                                    "zookeeper (deploy/install-deps.sh)");
  }
  PickedPortsOptions start;
  start.name = "ZooKeeper";
  start.ready_timeout = kReadyTimeout;
  start.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    auto dir = MakeRunDir(options.dir, "zookeeper");
    if (!dir.ok()) return dir.error();
    if (auto written = WriteZooKeeperConfig(*dir, ports[0]); !written.ok()) {
      return written.error();
    }
    return ChildProcess::Options{
        {*java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp",
         "/etc/zookeeper/conf:/usr/share/java/*",
         "org.apache.zookeeper.server.quorum.QuorumPeerMain", *dir + "/zoo.cfg"},
        options.log_path,
        {}};
  };
  start.ready = [](const std::vector<int>& ports) { return AnswersImok(ports[0], Millis(500)); };
  auto server = StartOnPickedPorts(start);
  if (!server.ok()) return server.error();
  return Launched("zookeeper", "127.0.0.1:" + std::to_string(server->ports[0]),
                  std::move(server->process));
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
