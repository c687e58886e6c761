#include "tools/nemesis/nemesis.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "client/store_client.h"
#include "common/logging.h"
#include "common/monotonic_clock.h"
#include "common/process.h"
#include "core/history.h"
#include "core/log_event.h"
#include "tools/partition/partition_net.h"
#include "tools/services/lock_services.h"

namespace fence::tools::nemesis {
namespace {

namespace fs = std::filesystem;
namespace partition = fence::tools::partition;
using Json = nlohmann::json;
namespace ev = fence::events;

Error Failed(const std::string& why) { return MakeError("nemesis_failed", why); }

void SleepFor(Millis duration) { std::this_thread::sleep_for(duration); }

// One of our daemons kept on one port across kills, so that the workers'
// flags stay right: the first start binds a free port, restarts bind it again
// (the server sets SO_REUSEADDR).
class RestartableDaemon {
 public:
  RestartableDaemon(std::string name, ChildProcess::Options options, std::string host)
      : name_(std::move(name)), options_(std::move(options)), host_(std::move(host)) {}

  Status Start() {
    const std::string listen = host_ + ":" + std::to_string(port_);
    auto started = StartListeningDaemon(options_, listen);
    if (!started.ok()) return Failed(name_ + " did not start: " + started.error().message);
    port_ = started->port;
    url_ = started->Url();
    process_ = std::move(started->process);
    return OkStatus();
  }
  // SIGKILL, `downtime` with nothing listening, then the same command again.
  Status KillAndRestart(Millis downtime) {
    process_->Kill();
    SleepFor(downtime);
    return Start();
  }
  ChildProcess& process() { return *process_; }
  const std::string& url() const { return url_; }

 private:
  std::string name_;
  ChildProcess::Options options_;
  std::string host_;
  int port_ = 0;
  std::string url_;
  std::unique_ptr<ChildProcess> process_;
};

// With --partitions every process runs in a namespace of ours under a role:
// the listeners get addresses of their own, the workers group ids, so that
// a cut can separate a worker from the lock service, the store, or both.
constexpr unsigned kWorkerGid = 62000;
const partition::Role kLockRole{"lockd", 62100, "127.0.0.2"};
const partition::Role kStoreRole{"store", 62101, "127.0.0.3"};
const partition::Role kReaderRole{"reader", 62102, ""};  // final reads, on no side

std::string WorkerName(int index) { return "w" + std::to_string(index); }

// The nemesis's own history lines: its faults and the final reads.
class NemesisHistory {
 public:
  explicit NemesisHistory(const std::string& path) : out_(path, std::ios::app) {}
  bool ok() const { return out_.good(); }
  void Fault(const std::string& kind, const std::string& target, Millis duration) {
    Write({{"type", history::kFault}, {"kind", kind}, {"target", target},
           {"duration_ms", duration.count()}, {"t_ns", MonotonicNanos()}});
    log::Info("fault_injected", {{"kind", kind}, {"target", target},
                                 {"duration_ms", duration.count()}});
  }
  void Write(const Json& line) { WriteLine(line.dump()); }
  void WriteLine(const std::string& line) { out_ << line << "\n" << std::flush; }

 private:
  std::ofstream out_;
};

class Run {
 public:
  explicit Run(const NemesisOptions& options) : o_(options), rng_(options.seed) {}
  Result<NemesisRun> Go();

 private:
  Status CreateNamespace();
  // The command line of `argv` run as `role`: inside the namespace when
  // there is one, else as is.
  Result<ChildProcess::Options> Command(const std::string& role, std::vector<std::string> argv,
                                        const std::string& log_path);
  std::string HostFor(const partition::Role& role) const {
    return ns_ ? role.address : "127.0.0.1";
  }
  Status StartLockService();
  Status StartStore();
  Status StartWorker(int index);
  void InjectFaults();
  void InjectOne();
  std::string PauseWorker();
  std::string KillStore();
  std::string KillLockd();
  std::string FreezeLockService();
  std::string PartitionWorker();
  void RestartExitedWorkers();
  int LeaderIndex();
  int PickWorker();
  Status StopAndReadFinal();
  Millis Between(Millis low, Millis high) {
    return Millis(std::uniform_int_distribution<std::int64_t>(low.count(), high.count())(rng_));
  }
  std::string Key(int i) const { return "nemesis/k" + std::to_string(i); }
  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (int k = 0; k < o_.keys; ++k) keys.push_back(Key(k));
    return keys;
  }

  const NemesisOptions& o_;
  std::mt19937_64 rng_;
  NemesisRun result_;
  std::unique_ptr<NemesisHistory> history_;
  std::unique_ptr<partition::Namespace> ns_;  // with --partitions
  std::optional<RestartableDaemon> lockd_;
  std::optional<LaunchedLockService> service_;  // etcd or ZooKeeper
  std::string lock_endpoints_;
  std::optional<RestartableDaemon> store_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
};

Status Run::StartLockService() {
  if (o_.backend == "lockd") {
    const std::string data = o_.dir + "/data/lockd";
    fs::create_directories(data);
    auto command = Command(kLockRole.name, {SiblingBinary("fence-lockd"), "--data-dir", data},
                           o_.dir + "/logs/lockd.log");
    if (!command.ok()) return command.error();
    lockd_.emplace("fence-lockd", std::move(*command), HostFor(kLockRole));
    if (auto started = lockd_->Start(); !started.ok()) return started;
    lock_endpoints_ = lockd_->url();
    return OkStatus();
  }
  LaunchOptions launch;
  launch.dir = o_.dir + "/data";
  launch.log_path = o_.dir + "/logs/" + o_.backend + ".log";
  auto launched = LaunchLockService(o_.backend, launch);
  if (!launched.ok()) return Failed(o_.backend + ": " + launched.error().message);
  service_ = std::move(*launched);
  for (const std::string& e : service_->endpoints) {
    lock_endpoints_ += (lock_endpoints_.empty() ? "" : ",") + e;
  }
  return OkStatus();
}

Status Run::StartStore() {
  const std::string data = o_.dir + "/data/store";
  auto command = Command(kStoreRole.name,
                         {SiblingBinary("fence-store"), "--data-dir", data, "--fencing",
                          o_.fencing ? "on" : "off"},
                         o_.dir + "/logs/store.log");
  if (!command.ok()) return command.error();
  store_.emplace("fence-store", std::move(*command), HostFor(kStoreRole));
  return store_->Start();
}

Status Run::StartWorker(int index) {
  const std::string id = WorkerName(index);
  std::vector<std::string> argv = {SiblingBinary("fence-worker"),
                                   "--id", id,
                                   "--backend", o_.backend,
                                   "--lock-endpoints", lock_endpoints_,
                                   "--lock", "nemesis",
                                   "--ttl-ms", std::to_string(o_.ttl.count()),
                                   "--store", store_->url(),
                                   "--write-delay-ms", std::to_string(o_.write_delay.count()),
                                   "--hold-renewals", "1",
                                   "--acquire-timeout-ms", "0",
                                   "--history", result_.history_dir + "/" + id + ".jsonl"};
  for (int k = 0; k < o_.keys; ++k) {
    argv.push_back("--key");
    argv.push_back(Key(k));
  }
  auto command = Command(id, std::move(argv), o_.dir + "/logs/" + id + ".log");
  if (!command.ok()) return command.error();
  auto started = ChildProcess::Start(std::move(*command));
  if (!started.ok()) return Failed(id + " did not start: " + started.error().message);
  if (index < static_cast<int>(workers_.size())) {
    workers_[index] = std::move(*started);
  } else {
    workers_.push_back(std::move(*started));
  }
  return OkStatus();
}

// The worker that last logged `elected` and has not left its term since, by
// its own log; -1 if none is leading.
int Run::LeaderIndex() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const std::vector<std::string> lines = workers_[i]->Lines();
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      const Json j = Json::parse(*it, nullptr, false);
      if (!j.is_object() || !j.contains("event")) continue;
      const std::string event = j["event"].get<std::string>();
      if (event == ev::kElected) return static_cast<int>(i);
      if (event == ev::kResigned || event == ev::kLeaseLost || event == ev::kFenced ||
          event == ev::kSteppedDown) {
        break;
      }
    }
  }
  return -1;
}

// Most often the leader, so that a fault lands between its lease check and
// its write as often as it can; else any worker.
int Run::PickWorker() {
  const int leader = LeaderIndex();
  if (leader >= 0 && std::bernoulli_distribution(0.75)(rng_)) return leader;
  return std::uniform_int_distribution<int>(0, static_cast<int>(workers_.size()) - 1)(rng_);
}

// Stops a worker for about a TTL.
std::string Run::PauseWorker() {
  const int index = PickWorker();
  const Millis length = Between(o_.ttl / 2, o_.ttl * 5 / 2);
  ChildProcess& worker = *workers_[index];
  history_->Fault(std::string(kPause), WorkerName(index), length);
  worker.Signal(SIGSTOP);
  SleepFor(length);
  worker.Signal(SIGCONT);
  return std::string(kPause);
}

std::string Run::KillStore() {
  const Millis down = Between(Millis(0), Millis(500));
  history_->Fault(std::string(kKillStore), "fence-store", down);
  if (const Status restarted = store_->KillAndRestart(down); !restarted.ok()) {
    log::Error("restart_failed", {{"target", "fence-store"}, {"message", restarted.error().message}});
  }
  return std::string(kKillStore);
}

std::string Run::KillLockd() {
  const Millis down = Between(Millis(0), Millis(500));
  history_->Fault(std::string(kKillLockd), "fence-lockd", down);
  if (const Status restarted = lockd_->KillAndRestart(down); !restarted.ok()) {
    log::Error("restart_failed", {{"target", "fence-lockd"}, {"message", restarted.error().message}});
  }
  return std::string(kKillLockd);
}

// A frozen lock server (a long GC or VM pause of etcd or ZooKeeper itself):
// nothing is granted, renewed or expired until it runs again.
std::string Run::FreezeLockService() {
  const Millis length = Between(o_.ttl / 2, o_.ttl * 2);
  history_->Fault(std::string(kFreeze), o_.backend, length);
  ChildProcess& server = *service_->processes.front();
  server.Signal(SIGSTOP);
  SleepFor(length);
  server.Signal(SIGCONT);
  return std::string(kFreeze);
}

// Cuts a worker off from the lock service, the store, or both, for about a
// TTL: a leader cut from the lock service keeps running and may write until
// its own clock says its lease is over.
std::string Run::PartitionWorker() {
  const int index = PickWorker();
  const Millis length = Between(o_.ttl / 2, o_.ttl * 5 / 2);
  static const std::vector<std::vector<std::string>> kFarSides = {
      {kLockRole.name}, {kStoreRole.name}, {kLockRole.name, kStoreRole.name}};
  const auto& far = kFarSides[std::uniform_int_distribution<std::size_t>(0, 2)(rng_)];
  partition::Cut cut;
  cut.name = WorkerName(index) + "|" + far.front() + (far.size() > 1 ? "+" + far.back() : "");
  cut.sides = {{WorkerName(index)}, far};
  history_->Fault(std::string(kPartition), cut.name, length);
  const Status applied = ns_->Apply(cut, o_.dir + "/logs/cut.rules");
  if (!applied.ok()) {
    log::Error("partition_failed", {{"cut", cut.name}, {"message", applied.error().message}});
    return std::string(kPartition);
  }
  SleepFor(length);
  if (const Status healed = ns_->Heal(); !healed.ok()) {
    log::Error("heal_failed", {{"message", healed.error().message}});
  }
  return std::string(kPartition);
}

Status Run::CreateNamespace() {
  std::vector<partition::Role> roles = {kLockRole, kStoreRole, kReaderRole};
  for (int i = 0; i < o_.workers; ++i) {
    roles.push_back({WorkerName(i), kWorkerGid + static_cast<unsigned>(i), ""});
  }
  partition::RemoveStaleNamespaces();
  auto ns = partition::Namespace::Create(partition::NamespaceName(getpid()), std::move(roles),
                                         o_.dir + "/logs/namespace.log");
  if (!ns.ok()) return Failed("network namespace: " + ns.error().message);
  ns_ = std::move(*ns);
  return OkStatus();
}

Result<ChildProcess::Options> Run::Command(const std::string& role, std::vector<std::string> argv,
                                           const std::string& log_path) {
  if (!ns_) return ChildProcess::Options{std::move(argv), log_path, {}};
  return ns_->Command(role, std::move(argv), log_path);
}

void Run::InjectOne() {
  // Weights: worker pauses are the attack fencing exists for; crashes and
  // freezes of the servers test durability and recovery under it. A fault
  // the run cannot make (a partition without a namespace, a lockd kill on
  // etcd) or was not asked for is never drawn.
  struct Choice {
    std::string_view kind;
    int weight;
    bool possible;
    std::string (Run::*inject)();
  };
  const Choice choices[] = {
      {kPause, 9, true, &Run::PauseWorker},
      {kPartition, 3, ns_ != nullptr, &Run::PartitionWorker},
      {kKillStore, 4, true, &Run::KillStore},
      {kKillLockd, 4, lockd_.has_value(), &Run::KillLockd},
      {kFreeze, 4, service_.has_value(), &Run::FreezeLockService},
  };
  std::vector<const Choice*> drawable;
  std::vector<int> weights;
  for (const Choice& c : choices) {
    if (!c.possible || o_.faults.count(std::string(c.kind)) == 0) continue;
    drawable.push_back(&c);
    weights.push_back(c.weight);
  }
  if (drawable.empty()) return;
  const Choice& chosen =
      *drawable[std::discrete_distribution<std::size_t>(weights.begin(), weights.end())(rng_)];
  ++result_.faults[(this->*chosen.inject)()];
}

void Run::RestartExitedWorkers() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i]->WaitExit(Millis(0))) continue;
    log::Warn("worker_exited", {{"worker", WorkerName(static_cast<int>(i))},
                                {"output", workers_[i]->OutputTail(5)}});
    if (StartWorker(static_cast<int>(i)).ok()) ++result_.worker_restarts;
  }
}

void Run::InjectFaults() {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < o_.duration) {
    SleepFor(Between(o_.fault_gap / 2, o_.fault_gap * 3 / 2));
    if (std::chrono::steady_clock::now() - start >= o_.duration) break;
    InjectOne();
    RestartExitedWorkers();
  }
}

// Stops the workers (no write is in flight after), then reads every key,
// from inside the namespace when there is one.
Status Run::StopAndReadFinal() {
  for (auto& worker : workers_) {
    worker->Signal(SIGCONT);
    worker->Stop(o_.ttl * 4);
  }
  Result<std::vector<std::string>> lines = std::vector<std::string>();
  if (!ns_) {
    lines = ReadFinalLines(store_->url(), Keys());
  } else {
    std::vector<std::string> argv = {SiblingBinary("fence-nemesis"), "final-read", "--store",
                                     store_->url()};
    for (const std::string& key : Keys()) {
      argv.push_back("--key");
      argv.push_back(key);
    }
    auto command = Command(kReaderRole.name, std::move(argv), "");
    if (!command.ok()) return command.error();
    auto read = RunToCompletion(std::move(*command), Millis(60000));
    if (!read.ok()) return read.error();
    if (read->exit_code != 0) return Failed("final read failed:\n" + read->Output());
    lines = std::vector<std::string>();
    for (const std::string& line : read->lines) {
      if (line.find(R"("type":"final")") != std::string::npos) lines->push_back(line);
    }
  }
  if (!lines.ok()) return lines.error();
  for (const std::string& line : *lines) history_->WriteLine(line);
  return OkStatus();
}

Result<NemesisRun> Run::Go() {
  result_.history_dir = o_.dir + "/history";
  std::error_code ec;
  fs::create_directories(result_.history_dir, ec);
  fs::create_directories(o_.dir + "/logs", ec);
  if (ec) return Failed("cannot create '" + o_.dir + "': " + ec.message());
  history_ = std::make_unique<NemesisHistory>(result_.history_dir + "/nemesis.jsonl");
  if (!history_->ok()) return Failed("cannot write the history in '" + result_.history_dir + "'");
  if (o_.partitions) {
    if (o_.backend != "lockd") {
      return Failed("partitions need --backend lockd: etcd and ZooKeeper run outside any "
                    "namespace");
    }
    if (auto s = CreateNamespace(); !s.ok()) return s.error();
  }
  if (auto s = StartLockService(); !s.ok()) return s.error();
  if (auto s = StartStore(); !s.ok()) return s.error();
  for (int i = 0; i < o_.workers; ++i) {
    if (auto s = StartWorker(i); !s.ok()) return s.error();
  }
  log::Info("nemesis_started", {{"backend", o_.backend}, {"seed", o_.seed},
                                {"partitions", ns_ != nullptr},
                                {"workers", o_.workers}, {"store", store_->url()},
                                {"lock_endpoints", lock_endpoints_}});
  InjectFaults();
  if (auto s = StopAndReadFinal(); !s.ok()) return s.error();
  return result_;
}

}  // namespace

Result<std::vector<std::string>> ReadFinalLines(const std::string& store_url,
                                                const std::vector<std::string>& keys) {
  client::StoreClient store(store_url);
  std::vector<std::string> lines;
  for (const std::string& key : keys) {
    Json line = {{"type", history::kFinal}, {"key", key}, {"exists", false}};
    auto object = store.Get(key);
    if (object.ok()) {
      line["exists"] = true;
      line["value"] = object->body;
      line["token"] = object->token ? Json(object->token->value()) : Json();
    } else if (object.error().code != "not_found") {
      return Failed("final read of '" + key + "': " + object.error().message);
    }
    auto fence = store.GetFence(key);
    if (fence.ok()) {
      line["highest_token"] = fence->highest_token.value();
      line["version"] = fence->version;
    } else if (fence.error().code != "not_found") {
      return Failed("final fence read of '" + key + "': " + fence.error().message);
    }
    lines.push_back(line.dump());
  }
  return lines;
}

Result<NemesisRun> RunNemesis(const NemesisOptions& options) {
  Run run(options);
  return run.Go();
}

}  // namespace fence::tools::nemesis
