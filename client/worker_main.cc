// fence-worker: a leader-elected worker. It elects itself through a lock
// backend, renews its lease on its own thread, does some work and writes the
// result to fence-store with its term's fencing token. Logs are JSON lines
// on stderr (component "worker").
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/history_recorder.h"
#include "client/lock_backend.h"
#include "client/lockd_backend.h"
#include "client/worker.h"
#include "client/worker_process.h"
#include "common/auth_guard.h"
#include "common/cli.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "common/tls.h"
#include "core/key.h"
#include "core/scope_rule.h"

namespace {

constexpr const char* kProgram = "fence-worker";
constexpr const char* kDescription =
    "fence-worker: elects itself through a lock backend, renews its lease on "
    "its own thread, does some work and writes the result to fence-store "
    "with its fencing token. A 409 stale_token from the store makes it stop "
    "leading at once (no retry), release, and go back to acquiring.";

// The command line as given; BuildConfig checks what CLI11 cannot.
struct Flags {
  fence::client::WorkerConfig config;
  std::string backend_kind = "lockd";
  std::string endpoints_text;
  std::string store_url;
  std::string fencing = "on";
  std::string scope_fencing = "on";
  std::string pause_spec;
  std::int64_t ttl_ms = 2000;
  std::int64_t renew_ms = 0;
  std::int64_t wait_ms = 5000;
  std::int64_t acquire_timeout_ms = 60000;
  std::int64_t lock_delay_ms = 0;
  std::int64_t work_ms = 0;
  std::int64_t write_delay_ms = 0;
  std::string history_path;
  std::string auth_token_file;
  fence::net::TlsClientFiles tls;  // for https:// store and lockd URLs
};

// Who elects, through which lock service, for how long.
void AddElectionOptions(CLI::App& app, Flags& f) {
  f.config.lock = "leader";
  app.add_option("--id", f.config.id, "this worker's owner name, e.g. A")->required();
  app.add_option("--backend", f.backend_kind, "lock service kind")
      ->check(CLI::IsMember({"lockd", "etcd", "zookeeper"}))
      ->capture_default_str();
  app.add_option("--lock-endpoints", f.endpoints_text,
                 "comma-separated lock service endpoints: URLs for lockd and etcd "
                 "(http://127.0.0.1:8081), host:port for ZooKeeper")
      ->required();
  app.add_option("--lock", f.config.lock, "name of the lock to elect on")->capture_default_str();
  app.add_option("--ttl-ms", f.ttl_ms, "lease TTL in milliseconds")
      ->check(CLI::Range(std::int64_t{50}, std::int64_t{600000}))
      ->capture_default_str();
  app.add_option("--renew-interval-ms", f.renew_ms,
                 "keep-alive interval; 0 means a third of the TTL")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{600000}))
      ->capture_default_str();
  app.add_option("--wait-ms", f.wait_ms,
                 "how long one acquire request waits while the lock is held")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{600000}))
      ->capture_default_str();
  app.add_option("--acquire-timeout-ms", f.acquire_timeout_ms,
                 "give up (exit 1) after trying this long to become leader; 0 waits forever")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}))
      ->capture_default_str();
  app.add_option("--lock-delay-ms", f.lock_delay_ms,
                 "lockd only: ask for a lock-delay with every acquire; if our lease "
                 "then expires, lockd grants the lock to nobody for this long "
                 "(failover = TTL + lock-delay; lockd caps it with its "
                 "--max-lock-delay-ms). etcd and zookeeper have no lock-delay and "
                 "refuse a value above 0")
      ->check(CLI::Range(std::int64_t{0}, fence::client::kMaxLockDelay.count()))
      ->capture_default_str();
  app.add_option("--terms", f.config.terms,
                 "leader terms to serve, then exit; 0 serves until SIGTERM")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
}

// What a leader does with its term: work, then write to the store.
void AddWorkOptions(CLI::App& app, Flags& f) {
  app.add_option("--store", f.store_url, "fence-store base URL, e.g. http://127.0.0.1:8080 (https:// with --tls-ca)")
      ->required();
  app.add_option("--auth-token-file", f.auth_token_file,
                 "file holding the bearer token (one line) sent to the store and, with "
                 "--backend lockd, to lockd, when they run with --auth-file: a token of "
                 "role writer in the store's file and client in lockd's. Keep it "
                 "readable by this worker only");
  app.add_option("--key", f.config.keys,
                 "store key the leader writes its result to; give it again for more "
                 "keys. Right after its election, before any work, the leader raises "
                 "the fence of every key to its token (POST /v1/fences/KEY)")
      ->required()
      ->allow_extra_args(false);
  app.add_option("--fencing", f.fencing,
                 "'on' sends the term's token with every write; 'off' sends none "
                 "(only to stage the unfenced demo)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--scope-fencing", f.scope_fencing,
                 "'on' (with --fencing on) uses the lock's name as the store scope: "
                 "on election the leader raises the scope's fence (POST "
                 "/v1/scopes/LOCK/fence) and sends 'Fencing-Scope: LOCK' with every "
                 "write, so an old leader is fenced on every key of the job; 'off' "
                 "fences per key only")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--inject-pause", f.pause_spec,
                 "before-write:DURATION (e.g. 3000ms or 3s): in the first term, stop "
                 "the whole process with SIGSTOP just before the write; a helper "
                 "process sends SIGCONT after DURATION");
  app.add_option("--work-ms", f.work_ms, "time spent working (lease renewed) before the write")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--write-delay-ms", f.write_delay_ms,
                 "time from the last lease check to each write (the job's last step, "
                 "not cut short by a lost lease): a pause that lands in it makes the "
                 "write stale, as fence-nemesis stages")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{600000}))
      ->capture_default_str();
  app.add_option("--history", f.history_path,
                 "append every lock and store call (invoke and completion) to this file "
                 "as JSON lines, for fence-check-history");
  app.add_option("--hold-renewals", f.config.hold_renewals,
                 "after the write, stay leader until this many more renewals succeed, "
                 "then resign")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--payload", f.config.payload, "the work result written to the store")
      ->capture_default_str();
}

// Each --key must be a store key as the store reads it back (ParseKey of
// its encoding), given once.
fence::Status CheckKeys(const std::vector<std::string>& keys) {
  std::set<std::string> seen;
  for (const std::string& key : keys) {
    auto parsed = fence::ParseKey(fence::EncodeKeyForPath(key));
    if (!parsed.ok() || *parsed != key) {
      return fence::MakeError(
          "bad_flag", "--key '" + key + "' is not a store key: " +
                          (parsed.ok() ? "it names '" + *parsed + "'" : parsed.error().message));
    }
    if (!seen.insert(key).second) {
      return fence::MakeError("bad_flag", "--key '" + key + "' is given twice");
    }
  }
  return fence::OkStatus();
}

// The worker's configuration from the flags, or the one line that says
// which flag is wrong.
fence::Result<fence::client::WorkerConfig> BuildConfig(const Flags& f) {
  fence::client::WorkerConfig config = f.config;
  config.ttl = fence::Millis(f.ttl_ms);
  config.renew_interval = fence::Millis(f.renew_ms);
  config.acquire_wait = fence::Millis(f.wait_ms);
  config.acquire_timeout = fence::Millis(f.acquire_timeout_ms);
  config.work = fence::Millis(f.work_ms);
  config.write_delay = fence::Millis(f.write_delay_ms);
  config.fencing = f.fencing == "on";
  config.scope_fencing = f.scope_fencing == "on";
  if (config.fencing && config.scope_fencing) {
    auto scope = fence::ParseScope(fence::EncodeKeyForPath(config.lock));
    if (!scope.ok() || *scope != config.lock) {
      return fence::MakeError(
          "bad_flag", "--lock '" + config.lock + "' cannot be a store scope (--scope-fencing on): " +
                          (scope.ok() ? "it names '" + *scope + "'" : scope.error().message));
    }
  }
  if (config.payload.empty()) config.payload = "result computed by " + config.id;
  if (config.renew_interval >= config.ttl) {
    return fence::MakeError("bad_flag", "--renew-interval-ms must be shorter than --ttl-ms (" +
                                            std::to_string(f.ttl_ms) +
                                            "), or 0 for a third of it");
  }
  if (!f.pause_spec.empty()) {
    auto pause = fence::client::ParsePauseSpec(f.pause_spec);
    if (!pause.ok()) return pause.error();
    config.pause_before_write = *pause;
  }
  if (auto store = fence::net::ParseUrl(f.store_url); !store.ok()) {
    return fence::MakeError("bad_flag", "--store: " + store.error().message);
  }
  if (auto keys = CheckKeys(config.keys); !keys.ok()) return keys.error();
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, kProgram};
  Flags flags;
  AddElectionOptions(app, flags);
  AddWorkOptions(app, flags);
  fence::net::AddTlsClientFlags(app, flags.tls);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  auto config = BuildConfig(flags);
  if (!config.ok()) return fence::FailStartup(kProgram, config.error().message);
  if (auto tls = fence::net::ConfigureClientTls(flags.tls); !tls.ok()) {
    return fence::FailStartup(kProgram, tls.error().message);
  }
  std::string token;
  if (!flags.auth_token_file.empty()) {
    auto read = fence::net::ReadTokenFile(flags.auth_token_file);
    if (!read.ok()) return fence::FailStartup(kProgram, "--auth-token-file: " + read.error().message);
    token = std::move(*read);
  }
  auto backend = fence::client::MakeLockBackend(
      flags.backend_kind, fence::SplitCommaList(flags.endpoints_text),
      fence::client::LockdOptions{fence::Millis(flags.lock_delay_ms), token});
  if (!backend.ok()) {
    const bool delay = backend.error().details.contains("lock_delay_ms");
    return fence::FailStartup(kProgram, (delay ? "--lock-delay-ms: " : "--backend/--lock-endpoints: ") +
                                            backend.error().message);
  }
  std::unique_ptr<fence::client::HistoryFile> history;
  if (!flags.history_path.empty()) {
    auto opened = fence::client::HistoryFile::Open(flags.history_path, config->id);
    if (!opened.ok()) return fence::FailStartup(kProgram, "--history: " + opened.error().message);
    history = std::move(*opened);
  }
  fence::log::Init("worker");
  return fence::client::RunWorkerProcess(*config, **backend, flags.store_url, history.get(),
                                         token);
}
