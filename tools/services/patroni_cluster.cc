#include "tools/services/patroni_cluster.h"

#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/http_client.h"
#include "common/logging.h"
#include "tools/services/postgres.h"

namespace fence::tools {
namespace {

namespace fs = std::filesystem;

constexpr int kNodes = 2;
constexpr Millis kProbeInterval{100};

Error Unavailable(const std::string& what) { return MakeError("unavailable", what); }

// When we are root, PostgreSQL and Patroni run as `postgres`: its ids, or
// nullopt when we are not root (everything then runs as ourselves).
std::optional<std::pair<uid_t, gid_t>> ServiceUser() {
  if (geteuid() != 0) return std::nullopt;
  const passwd* pg = getpwnam("postgres");
  if (pg == nullptr) return std::nullopt;
  return std::make_pair(pg->pw_uid, pg->pw_gid);
}

// A folder the service user owns, under `base`, which it must be able to
// traverse: mkdtemp's 0700 parents (a test's TempDir) get o+x, no more.
Result<std::string> MakeOwnedDir(const std::string& base, const std::string& prefix) {
  std::error_code ec;
  fs::create_directories(base, ec);
  std::string pattern = (fs::path(base) / (prefix + ".XXXXXX")).string();
  if (ec || mkdtemp(pattern.data()) == nullptr) {
    return Unavailable("cannot create a folder under '" + base +
                       "': " + (ec ? ec.message() : std::strerror(errno)));
  }
  if (auto user = ServiceUser()) {
    fs::permissions(base, fs::perms::others_exec, fs::perm_options::add, ec);
    if (ec || chown(pattern.c_str(), user->first, user->second) != 0) {
      return Unavailable("cannot give '" + pattern + "' to the postgres user");
    }
  }
  return pattern;
}

// setsid: Patroni leads a process group of its own, so Stop kills it with
// its helpers (pg_basebackup, pg_rewind) at once; setsid execs in place (a
// fresh child is no group leader), so the pid stays Patroni's, as do sh's
// exec and AsPostgresUser's setpriv. The output
// goes to a file, not to our pipe: the postmaster inherits Patroni's
// stdout, lives in a session of its own and may outlive Patroni, and a pipe
// it held open would keep ChildProcess waiting for the end of the output.
std::vector<std::string> PatroniCommand(const std::string& patroni, const std::string& config,
                                        const std::string& log) {
  std::vector<std::string> argv = {FindProgram("setsid").value_or("/usr/bin/setsid"),
                                   "/bin/sh", "-c", "exec \"$@\" >>\"$0\" 2>&1", log};
  const std::vector<std::string> patroni_argv = AsPostgresUser({patroni, config});
  argv.insert(argv.end(), patroni_argv.begin(), patroni_argv.end());
  return argv;
}

std::string LogTail(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string tail;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    tail += all[i] + "\n";
  }
  return tail;
}

// The dynamic settings (bootstrap.dcs) decide failover: with
// primary_start_timeout 0 a Patroni whose postmaster died hands the leader
// key over at its next cycle instead of restarting PostgreSQL as primary;
// maximum_lag_on_failover 0 and synchronous mode promote only a
// standby that holds every acknowledged commit.
std::string DcsSettings(const PatroniOptions& o) {
  using Replication = PatroniOptions::Replication;
  const bool synchronous = o.replication != Replication::kAsynchronous;
  const bool strict = o.replication == Replication::kStrict;
  std::ostringstream y;
  y << "    ttl: " << o.timing.ttl_s << "\n"
    << "    loop_wait: " << o.timing.loop_wait_s << "\n"
    << "    retry_timeout: " << o.timing.retry_timeout_s << "\n"
    << "    primary_start_timeout: 0\n"
    << "    maximum_lag_on_failover: " << (synchronous ? 0 : 1048576) << "\n"
    << "    synchronous_mode: " << (synchronous ? "true" : "false") << "\n"
    << "    synchronous_mode_strict: " << (strict ? "true" : "false") << "\n"
    << "    postgresql:\n"
    << "      use_pg_rewind: true\n"
    << "      parameters:\n"
    << "        synchronous_commit: \"on\"\n"
    << "        wal_log_hints: \"on\"\n"
    << "        fsync: \"on\"\n"
    << "        max_connections: 200\n";
  return y.str();
}

// Trust on loopback only: the cluster listens on 127.0.0.1 and lives for
// one run. A real install uses scram-sha-256 (docs/scale-out.md).
std::string NodeConfig(const PatroniOptions& o, const std::string& etcd,
                       const std::string& scope, const PatroniNode& node) {
  std::ostringstream y;
  y << "scope: " << scope << "\n"
    << "name: " << node.name << "\n"
    << "log:\n  level: INFO\n"
    << "restapi:\n  listen: 127.0.0.1:" << node.rest_port
    << "\n  connect_address: 127.0.0.1:" << node.rest_port << "\n"
    << "etcd3:\n  hosts: " << etcd.substr(etcd.find("//") + 2) << "\n"
    << "bootstrap:\n  dcs:\n" << DcsSettings(o)
    << "  initdb:\n  - encoding: UTF8\n  - auth: trust\n"
    << "  pg_hba:\n  - host replication replicator 127.0.0.1/32 trust\n"
    << "  - host all all 127.0.0.1/32 trust\n"
    << "postgresql:\n  listen: 127.0.0.1:" << node.pg_port
    << "\n  connect_address: 127.0.0.1:" << node.pg_port << "\n"
    << "  data_dir: " << node.data_dir << "\n"
    << "  bin_dir: " << kPostgresBin << "\n"
    << "  pgpass: " << node.dir << "/pgpass\n"
    << "  authentication:\n"
    << "    replication: {username: replicator, password: replicator}\n"
    << "    superuser: {username: postgres, password: postgres}\n"
    << "    rewind: {username: postgres, password: postgres}\n"
    // The socket folder's path would have to fit in 107 bytes; TCP on
    // loopback needs no socket.
    << "  parameters:\n    unix_socket_directories: \"\"\n";
  return y.str();
}

std::string RestUrl(const PatroniNode& node, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(node.rest_port) + std::string(path);
}

// The pids whose parent is `parent` (a postmaster's backends and workers).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid: comm may hold spaces, so parse after the ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    long ppid = 0;
    if (rest >> state >> ppid && ppid == parent) children.push_back(std::stoi(name));
  }
  return children;
}

// The postmaster running on `data_dir`, from its postmaster.pid, checked
// against /proc: a stale file's pid may belong to another process by now.
Result<pid_t> RunningPostmaster(const std::string& data_dir) {
  std::ifstream pidfile(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(pidfile >> pid) || pid <= 0) {
    return Unavailable("no postmaster.pid in " + data_dir + ": PostgreSQL is not running");
  }
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  if (args.find(data_dir) == std::string::npos) {
    return Unavailable("postmaster.pid in " + data_dir + " names pid " + std::to_string(pid) +
                       ", which is not its postmaster (stale file)");
  }
  return static_cast<pid_t>(pid);
}

void KillPostmaster(const std::string& data_dir) {
  // A postmaster Patroni's starter (a session of its own, out of reach of
  // killpg) was spawning as Patroni died shows up a moment later: look again.
  for (int round = 0; round < 3; ++round) {
    auto postmaster = RunningPostmaster(data_dir);
    if (!postmaster.ok()) return;
    // Read before the kill: once the postmaster is gone its children belong
    // to init and cannot be found by their parent any more.
    const std::vector<pid_t> children = ChildrenOf(*postmaster);
    kill(*postmaster, SIGKILL);
    for (pid_t child : children) kill(child, SIGKILL);
    std::this_thread::sleep_for(kProbeInterval);
  }
}

}  // namespace

std::string_view ReplicationName(PatroniOptions::Replication replication) {
  switch (replication) {
    case PatroniOptions::Replication::kStrict: return "strict";
    case PatroniOptions::Replication::kSynchronous: return "synchronous";
    case PatroniOptions::Replication::kAsynchronous: return "asynchronous";
  }
  return "unknown";
}

Result<std::unique_ptr<PatroniCluster>> PatroniCluster::Launch(const PatroniOptions& options) {
  if (options.dir.empty()) {
    return MakeError("bad_request", "PatroniOptions.dir is empty; expected a folder for "
                                    "the cluster's data");
  }
  const PatroniTiming& t = options.timing;
  if (t.loop_wait_s < 1 || t.retry_timeout_s < 1 ||
      t.loop_wait_s + 2 * t.retry_timeout_s > t.ttl_s) {
    return MakeError("bad_request", "Patroni needs loop_wait >= 1 s and loop_wait + 2 * "
                                    "retry_timeout <= ttl; got loop_wait " +
                                        std::to_string(t.loop_wait_s) + ", retry_timeout " +
                                        std::to_string(t.retry_timeout_s) + ", ttl " +
                                        std::to_string(t.ttl_s));
  }
  if (!FindProgram("patroni")) {
    return Unavailable("patroni is not on PATH; install patroni (deploy/install-deps.sh)");
  }
  if (!fs::exists(std::string(kPostgresBin) + "postgres")) {
    return Unavailable("PostgreSQL 15 is not installed (postgresql-15, deploy/install-deps.sh)");
  }
  std::unique_ptr<PatroniCluster> cluster(new PatroniCluster());
  cluster->options_ = options;
  auto root = MakeOwnedDir(options.dir, "patroni");
  if (!root.ok()) return root.error();
  cluster->root_ = *root;
  LaunchOptions etcd;
  etcd.dir = *root;
  etcd.log_path = *root + "/etcd.log";
  auto launched = LaunchLockService("etcd", etcd);
  if (!launched.ok()) return Unavailable("etcd for Patroni: " + launched.error().message);
  cluster->etcd_ = std::move(*launched);
  cluster->nodes_.resize(kNodes);
  // One node at a time: the first bootstraps the cluster and takes the
  // leader key; the second copies it (pg_basebackup) and becomes its
  // synchronous standby. Started together, either could bootstrap.
  for (int i = 0; i < kNodes; ++i) {
    if (auto started = cluster->StartNode(i); !started.ok()) return started.error();
  }
  log::Info("patroni_cluster_started",
            {{"uri", cluster->LibpqUri()},
             {"etcd", cluster->etcd_endpoint()},
             {"scope", cluster->scope_},
             {"ttl_s", t.ttl_s},
             {"loop_wait_s", t.loop_wait_s},
             {"retry_timeout_s", t.retry_timeout_s},
             {"replication", ReplicationName(options.replication)}});
  return cluster;
}

Status PatroniCluster::StartNode(int index) {
  PatroniNode& node = nodes_[index];
  node.name = "pg" + std::to_string(index);
  PickedPortsOptions start;
  start.name = "patroni " + node.name;
  start.port_count = 2;  // PostgreSQL, REST API
  start.ready_timeout = options_.ready_timeout;
  start.probe_interval = kProbeInterval;
  start.attempts = 3;
  start.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    // A given-up attempt's Patroni is killed, its postmaster is not (a
    // session of its own): it must not serve next to the new attempt.
    if (!node.data_dir.empty()) KillPostmaster(node.data_dir);
    // An attempt that died mid-bootstrap left its cluster's initialize key
    // in etcd, and a new node of that scope would wait for it forever: each
    // bootstrap attempt gets a scope of its own, which the standby joins.
    if (index == 0) scope_ = "fence-" + std::to_string(++bootstrap_attempts_);
    auto dir = MakeOwnedDir(root_, node.name);
    if (!dir.ok()) return dir.error();
    node.dir = *dir;
    node.data_dir = *dir + "/data";
    data_dirs_.push_back(node.data_dir);
    node.pg_port = ports[0];
    node.rest_port = ports[1];
    const std::string config = *dir + "/patroni.yml";
    std::ofstream out(config);
    out << NodeConfig(options_, etcd_endpoint(), scope_, node);
    out.close();
    if (!out) return Unavailable("cannot write " + config);
    return ChildProcess::Options{
        PatroniCommand(*FindProgram("patroni"), config, *dir + "/patroni.log"), "", {}};
  };
  // The first node is ready as the leader; the second once Patroni has made
  // it the synchronous standby (Patroni's /sync answers 200 then).
  const bool synchronous = options_.replication != PatroniOptions::Replication::kAsynchronous;
  const std::string role = index == 0 ? "/primary" : synchronous ? "/sync" : "/replica";
  start.ready = [&](const std::vector<int>&) { return NodeAnswers(index, role); };
  auto server = StartOnPickedPorts(start);
  if (!server.ok()) {
    return Unavailable("patroni " + node.name + " never answered " + role + ": " +
                       server.error().message + "; the end of " + node.dir +
                       "/patroni.log:\n" + LogTail(node.dir + "/patroni.log", 20));
  }
  node.patroni = std::move(server->process);
  log::Info("patroni_node_started", {{"node", node.name}, {"pg_port", node.pg_port},
                                     {"rest_port", node.rest_port}, {"role", role},
                                     {"pid", node.patroni->pid()}});
  return OkStatus();
}

PatroniCluster::~PatroniCluster() { Stop(); }

std::string PatroniCluster::LibpqUri() const {
  std::string hosts;
  for (const PatroniNode& node : nodes_) {
    if (!hosts.empty()) hosts += ",";
    hosts += "127.0.0.1:" + std::to_string(node.pg_port);
  }
  // connect_timeout bounds each host's attempt, so a dead primary's address
  // costs a reconnect at most that long before libpq tries the next host.
  return "postgresql://postgres@" + hosts +
         "/postgres?target_session_attrs=read-write&connect_timeout=2";
}

bool PatroniCluster::NodeAnswers(int index, std::string_view path) const {
  const PatroniNode& node = nodes_.at(index);
  if (node.rest_port == 0) return false;
  net::HttpCall call{net::http::verb::get, RestUrl(node, path), {}, "", Millis(1000)};
  auto answer = net::Call(call);
  return answer.ok() && answer->result() == net::http::status::ok;
}

Result<int> PatroniCluster::LeaderIndex() const {
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    if (NodeAnswers(i, "/primary")) return i;
  }
  return Unavailable("no Patroni node answers GET /primary with 200");
}

Result<int> PatroniCluster::WaitForNewLeader(int old_leader, Millis timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
      if (i != old_leader && NodeAnswers(i, "/primary")) return i;
    }
    std::this_thread::sleep_for(kProbeInterval);  // a poll: Patroni has no push API
  }
  return Unavailable("no node other than pg" + std::to_string(old_leader) +
                     " became the leader within " + std::to_string(timeout.count()) + " ms");
}

Result<pid_t> PatroniCluster::PostmasterPid(int index) const {
  const PatroniNode& node = nodes_.at(index);
  auto pid = RunningPostmaster(node.data_dir);
  if (!pid.ok()) return Unavailable(node.name + ": " + pid.error().message);
  return pid;
}

void PatroniCluster::KillNode(PatroniNode& node) {
  // Patroni first, so it cannot start a new postmaster after we looked.
  if (node.patroni && !node.patroni->exited()) {
    killpg(node.patroni->pid(), SIGKILL);
    node.patroni->Kill();
  }
}

void PatroniCluster::Stop() {
  for (PatroniNode& node : nodes_) KillNode(node);
  // Every data folder ever made, not just the nodes' current ones: a start
  // attempt that was given up (StartOnPickedPorts kills only its Patroni)
  // may have left its postmaster running.
  for (const std::string& data_dir : data_dirs_) KillPostmaster(data_dir);

  for (auto& process : etcd_.processes) {
    if (process && !process->exited()) process->Kill();
  }
}

}  // namespace fence::tools
