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
#include "common/process.h"
#include "core/history.h"
#include "core/log_event.h"
#include "tools/services/lock_services.h"

namespace fence::tools::nemesis {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
namespace ev = fence::events;

Error Failed(const std::string& why) { return MakeError("nemesis_failed", why); }

std::int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepFor(Millis duration) { std::this_thread::sleep_for(duration); }

// One of our daemons kept on one port across kills, so that the workers'
// flags stay right: the first start binds a free port, restarts bind it again
// (the server sets SO_REUSEADDR).
class RestartableDaemon {
 public:
  RestartableDaemon(std::string name, ChildProcess::Options options)
      : name_(std::move(name)), options_(std::move(options)) {}

  Status Start() {
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
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
  int port_ = 0;
  std::string url_;
  std::unique_ptr<ChildProcess> process_;
};

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
  void Write(const Json& line) { out_ << line.dump() << "\n" << std::flush; }

 private:
  std::ofstream out_;
};

class Run {
 public:
  explicit Run(const NemesisOptions& options) : o_(options), rng_(options.seed) {}
  Result<NemesisRun> Go();

 private:
  Status StartLockService();
  Status StartStore();
  Status StartWorker(int index);
  void InjectFaults();
  void InjectOne();
  std::string PauseWorker();
  std::string KillStore();
  std::string KillLockd();
  std::string FreezeLockService();
  void RestartExitedWorkers();
  int LeaderIndex();
  Status StopAndReadFinal();
  Millis Between(Millis low, Millis high) {
    return Millis(std::uniform_int_distribution<std::int64_t>(low.count(), high.count())(rng_));
  }
  std::string Key(int i) const { return "nemesis/k" + std::to_string(i); }

  const NemesisOptions& o_;
  std::mt19937_64 rng_;
  NemesisRun result_;
  std::unique_ptr<NemesisHistory> history_;
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
    lockd_.emplace("fence-lockd",
                   ChildProcess::Options{{SiblingBinary("fence-lockd"), "--data-dir", data},
                                         o_.dir + "/logs/lockd.log",
                                         {}});
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
  store_.emplace("fence-store",
                 ChildProcess::Options{{SiblingBinary("fence-store"), "--data-dir", data,
                                        "--fencing", o_.fencing ? "on" : "off"},
                                       o_.dir + "/logs/store.log",
                                       {}});
  return store_->Start();
}

Status Run::StartWorker(int index) {
  const std::string id = "w" + std::to_string(index);
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
  auto started = ChildProcess::Start({argv, o_.dir + "/logs/" + id + ".log", {}});
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

// Stops a worker for about a TTL: most often the leader, so that the pause
// lands between its lease check and its write as often as it can.
std::string Run::PauseWorker() {
  const int leader = LeaderIndex();
  const bool at_leader = leader >= 0 && std::bernoulli_distribution(0.75)(rng_);
  const int index = at_leader ? leader
                              : std::uniform_int_distribution<int>(
                                    0, static_cast<int>(workers_.size()) - 1)(rng_);
  const Millis length = Between(o_.ttl / 2, o_.ttl * 5 / 2);
  ChildProcess& worker = *workers_[index];
  history_->Fault("pause_worker", "w" + std::to_string(index), length);
  worker.Signal(SIGSTOP);
  SleepFor(length);
  worker.Signal(SIGCONT);
  return "pause_worker";
}

std::string Run::KillStore() {
  const Millis down = Between(Millis(0), Millis(500));
  history_->Fault("kill_store", "fence-store", down);
  if (const Status restarted = store_->KillAndRestart(down); !restarted.ok()) {
    log::Error("restart_failed", {{"target", "fence-store"}, {"message", restarted.error().message}});
  }
  return "kill_store";
}

std::string Run::KillLockd() {
  const Millis down = Between(Millis(0), Millis(500));
  history_->Fault("kill_lockd", "fence-lockd", down);
  if (const Status restarted = lockd_->KillAndRestart(down); !restarted.ok()) {
    log::Error("restart_failed", {{"target", "fence-lockd"}, {"message", restarted.error().message}});
  }
  return "kill_lockd";
}

// A frozen lock server (a long GC or VM pause of etcd or ZooKeeper itself):
// nothing is granted, renewed or expired until it runs again.
std::string Run::FreezeLockService() {
  const Millis length = Between(o_.ttl / 2, o_.ttl * 2);
  history_->Fault("freeze_lock_service", o_.backend, length);
  ChildProcess& server = *service_->processes.front();
  server.Signal(SIGSTOP);
  SleepFor(length);
  server.Signal(SIGCONT);
  return "freeze_lock_service";
}

void Run::InjectOne() {
  // Weights: worker pauses are the attack fencing exists for; crashes of
  // the servers test durability and recovery under it.
  const int roll = std::uniform_int_distribution<int>(0, 9)(rng_);
  const std::string kind = roll < 6   ? PauseWorker()
                           : roll < 8 ? KillStore()
                           : lockd_   ? KillLockd()
                                      : FreezeLockService();
  ++result_.faults[kind];
}

void Run::RestartExitedWorkers() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i]->WaitExit(Millis(0))) continue;
    log::Warn("worker_exited", {{"worker", "w" + std::to_string(i)},
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

// Stops the workers (no write is in flight after), then reads every key.
Status Run::StopAndReadFinal() {
  for (auto& worker : workers_) {
    worker->Signal(SIGCONT);
    worker->Stop(o_.ttl * 4);
  }
  client::StoreClient store(store_->url());
  for (int k = 0; k < o_.keys; ++k) {
    Json line = {{"type", history::kFinal}, {"key", Key(k)}, {"exists", false}};
    auto object = store.Get(Key(k));
    if (object.ok()) {
      line["exists"] = true;
      line["value"] = object->body;
      line["token"] = object->token ? Json(object->token->value()) : Json();
    } else if (object.error().code != "not_found") {
      return Failed("final read of '" + Key(k) + "': " + object.error().message);
    }
    auto fence = store.GetFence(Key(k));
    if (fence.ok()) {
      line["highest_token"] = fence->highest_token.value();
      line["version"] = fence->version;
    } else if (fence.error().code != "not_found") {
      return Failed("final fence read of '" + Key(k) + "': " + fence.error().message);
    }
    history_->Write(line);
  }
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
  if (auto s = StartLockService(); !s.ok()) return s.error();
  if (auto s = StartStore(); !s.ok()) return s.error();
  for (int i = 0; i < o_.workers; ++i) {
    if (auto s = StartWorker(i); !s.ok()) return s.error();
  }
  log::Info("nemesis_started", {{"backend", o_.backend}, {"seed", o_.seed},
                                {"workers", o_.workers}, {"store", store_->url()},
                                {"lock_endpoints", lock_endpoints_}});
  InjectFaults();
  if (auto s = StopAndReadFinal(); !s.ok()) return s.error();
  return result_;
}

}  // namespace

Result<NemesisRun> RunNemesis(const NemesisOptions& options) {
  Run run(options);
  return run.Go();
}

}  // namespace fence::tools::nemesis
