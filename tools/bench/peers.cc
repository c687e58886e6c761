#include "tools/bench/peers.h"

#include <filesystem>
#include <fstream>

#include "common/http_client.h"
#include "tools/services/lock_services.h"
#include "tools/services/postgres.h"

namespace fence::tools::bench {
namespace {

namespace fs = std::filesystem;

Error Unavailable(const std::string& what) { return MakeError("peer_unavailable", what); }

// One bounded probe: `argv` exits 0 within a second.
bool Answers(std::vector<std::string> argv) {
  auto ran = RunToCompletion({std::move(argv), "", {}}, Millis(1000));
  return ran.ok() && ran->exit_code == 0;
}

Result<std::string> Program(std::string_view name, std::string_view package) {
  auto path = FindProgram(name);
  if (!path) {
    return Unavailable(std::string(name) + " is not installed (Debian package " +
                       std::string(package) + ", deploy/install-deps.sh)");
  }
  return *path;
}

Peer Started(std::string name, PickedPortsServer server, std::string dir) {
  Peer peer;
  peer.name = std::move(name);
  peer.port = server.ports.front();
  peer.url = "http://127.0.0.1:" + std::to_string(peer.port);
  peer.dir = std::move(dir);
  peer.processes.push_back(std::move(server.process));
  return peer;
}

}  // namespace

Peer::~Peer() {
  for (auto& process : processes) {
    if (process && !process->exited()) process->Stop(std::chrono::seconds(10));
  }
}

Result<Peer> StartFenceStore(const std::string& dir) {
  auto store = StartListeningDaemon(
      {{SiblingBinary("fence-store"), "--data-dir", dir + "/data"}, dir + "/store.log", {}});
  if (!store.ok()) return Unavailable("fence-store: " + store.error().message);
  Peer peer;
  peer.name = "fence-store";
  peer.port = store->port;
  peer.url = store->Url();
  peer.dir = dir;
  peer.processes.push_back(std::move(store->process));
  return peer;
}

Result<Peer> StartFenceStoresOnPostgres(const LaunchedPostgres& pg, const std::string& dir,
                                        int processes) {
  if (Status made = pg.CreateDatabase("fence_store"); !made.ok()) {
    return Unavailable("fence-store on postgresql: " + made.error().message);
  }
  fs::create_directories(dir);
  Peer peer;
  peer.name = "fence-store-pg";
  peer.dir = dir;
  for (int i = 0; i < processes; ++i) {
    auto store = StartListeningDaemon({{SiblingBinary("fence-store"), "--storage", "postgresql",
                                        "--pg-uri", pg.Uri("fence_store"), "--pg-pool-size",
                                        "16"},
                                       dir + "/store-" + std::to_string(i) + ".log",
                                       {}});
    if (!store.ok()) return Unavailable("fence-store on postgresql: " + store.error().message);
    peer.urls.push_back(store->Url());
    peer.processes.push_back(std::move(store->process));
  }
  peer.url = peer.urls.front();
  return peer;
}

Result<Peer> StartRedis(const std::string& dir) {
  auto server = Program("redis-server", "redis-server");
  auto cli = Program("redis-cli", "redis-tools");
  if (!server.ok()) return server.error();
  if (!cli.ok()) return cli.error();
  fs::create_directories(dir);
  PickedPortsOptions start;
  start.name = "redis";
  // Every write is fsynced before it is answered, as fence-store's are.
  start.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    return ChildProcess::Options{{*server, "--port", std::to_string(ports[0]), "--bind",
                                  "127.0.0.1", "--dir", dir, "--appendonly", "yes",
                                  "--appendfsync", "always", "--save", "", "--protected-mode",
                                  "no", "--daemonize", "no"},
                                 dir + "/redis.log",
                                 {}};
  };
  start.ready = [&](const std::vector<int>& ports) {
    return Answers({*cli, "-p", std::to_string(ports[0]), "ping"});
  };
  auto started = StartOnPickedPorts(start);
  if (!started.ok()) return Unavailable("redis: " + started.error().message);
  return Started("redis", std::move(*started), dir);
}

Result<Peer> StartPostgres(const std::string& dir) {
  auto server = LaunchPostgres(
      {.dir = dir, .settings = {"fsync=on", "synchronous_commit=on", "max_connections=200"}});
  if (!server.ok()) return Unavailable("postgresql: " + server.error().message);
  Peer peer;
  peer.name = "postgresql";
  peer.port = (*server)->port();
  peer.url = "http://127.0.0.1:" + std::to_string(peer.port);
  peer.dir = dir;
  peer.postgres = std::move(*server);
  return peer;
}

namespace {

// etcd or fence-lockd, through the launcher the demo and tests use.
Result<Peer> StartLockService(const std::string& kind, const std::string& dir) {
  LaunchOptions launch;
  launch.dir = dir;
  launch.log_path = dir + "/" + kind + ".log";
  auto service = LaunchLockService(kind, launch);
  if (!service.ok()) return Unavailable(kind + ": " + service.error().message);
  Peer peer;
  peer.name = kind;
  peer.url = service->endpoints.front();
  peer.port = std::stoi(peer.url.substr(peer.url.rfind(':') + 1));
  peer.dir = dir;
  peer.processes = std::move(service->processes);
  return peer;
}

}  // namespace

Result<Peer> StartEtcd(const std::string& dir) { return StartLockService("etcd", dir); }

Result<Peer> StartFenceLockd(const std::string& dir) { return StartLockService("lockd", dir); }

Result<Peer> StartNginx(const std::string& dir) {
  auto nginx = Program("nginx", "nginx");
  if (!nginx.ok()) return nginx.error();
  fs::create_directories(dir + "/www/bench");
  fs::create_directories(dir + "/tmp");
  // The workers may run as nobody: they must be able to write the tree.
  fs::permissions(dir + "/www/bench", fs::perms::all);
  fs::permissions(dir + "/tmp", fs::perms::all);
  fs::permissions(dir + "/www", fs::perms::all);
  PickedPortsOptions start;
  start.name = "nginx";
  start.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    const std::string conf = dir + "/nginx.conf";
    std::ofstream out(conf);
    out << "daemon off;\nworker_processes 2;\npid " << dir << "/nginx.pid;\nerror_log " << dir
        << "/error.log;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n"
        << "  client_body_temp_path " << dir << "/tmp;\n  client_max_body_size 2m;\n"
        << "  server {\n    listen 127.0.0.1:" << ports[0] << ";\n    root " << dir
        << "/www;\n    location / { dav_methods PUT; create_full_put_path on; }\n  }\n}\n";
    if (!out) return Unavailable("cannot write " + conf);
    return ChildProcess::Options{{*nginx, "-c", conf, "-e", dir + "/error.log"},
                                 dir + "/nginx.log",
                                 {}};
  };
  start.ready = [&](const std::vector<int>& ports) {
    net::HttpCall probe{net::http::verb::get,
                        "http://127.0.0.1:" + std::to_string(ports[0]) + "/",
                        {},
                        "",
                        Millis(500)};
    return net::Call(probe).ok();
  };
  auto started = StartOnPickedPorts(start);
  if (!started.ok()) return Unavailable("nginx: " + started.error().message);
  return Started("nginx", std::move(*started), dir);
}

}  // namespace fence::tools::bench
