// fence-store: an HTTP object store that keeps the highest fencing token per
// key, durably, and refuses writes that carry a lower one.
#include <signal.h>

#include <cstdio>
#include <filesystem>

#include "common/auth_guard.h"
#include "common/cli.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/token_key_file.h"
#include "common/tls.h"
#include "core/log_event.h"
#include "server/http_api.h"
#include "server/pg_flags.h"
#include "server/pg_store.h"
#include "server/storage_queue.h"
#include "server/store_service.h"
#include "server/token_signature_check.h"

namespace {

constexpr char kProgram[] = "fence-store";

struct StoreFlags {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir;
  std::string fencing = "on";
  std::string wal_recovery = "strict";
  std::uint64_t max_object_bytes = 16ull * 1024 * 1024;
  std::size_t max_connections = 1024;
  std::uint32_t idle_timeout_ms = 15000;
  std::uint32_t request_timeout_ms = 30000;
  std::uint32_t drain_timeout_ms = 10000;
  std::uint64_t max_inflight_bytes = 256ull * 1024 * 1024;
  std::size_t max_storage_queue = 512;
  int storage_threads = 4;
  std::size_t max_queued_writes = 4096;
  std::uint64_t cache_bytes = 64ull * 1024 * 1024;
  fence::store::PgFlags pg;  // --storage and the --pg-* flags
  fence::net::AuthFlags auth;
  std::string token_key_file;
  bool require_signed_tokens = false;
  fence::net::TlsServerFlags tls;
};

void AddSigningFlags(CLI::App& app, StoreFlags& f) {
  app.add_option("--token-key-file", f.token_key_file,
                 "keys shared with fence-lockd, one '<key id> <secret as hex>' a line "
                 "(at least 32 bytes each, e.g. 'openssl rand -hex 32'); a token "
                 "signed with any listed key id is accepted (docs/signed-tokens.md)");
  app.add_flag("--require-signed-tokens", f.require_signed_tokens,
               "refuse (403 bad_token_signature) every write whose Fencing-Token is "
               "not signed by fence-lockd for its lock (Fencing-Token-Signature, "
               "Fencing-Lock or Fencing-Scope), before the fence rule; needs "
               "--token-key-file");
}

void AddStorageFlags(CLI::App& app, StoreFlags& f) {
  app.add_option("--data-dir", f.data_dir,
                 "directory of the RocksDB database (created if missing); required with "
                 "--storage rocksdb");
  app.add_option("--fencing", f.fencing,
                 "'on' enforces tokens; 'off' accepts every write (only to stage the "
                 "unfenced demo; every response then carries 'Fencing: off')")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--wal-recovery", f.wal_recovery,
                 "'strict' replays every write-ahead log record and drops only an "
                 "incomplete last one (a write torn by a crash, never acknowledged); "
                 "damage anywhere else stops the start. 'skip-corrupted' skips damaged "
                 "records, losing the acknowledged writes in them, and logs each "
                 "skipped range (wal_records_dropped): use it once, by choice, after "
                 "keeping a copy of the data directory")
      ->check(CLI::IsMember({"strict", "skip-corrupted"}))
      ->capture_default_str();
  app.add_option("--storage-threads", f.storage_threads,
                 "threads for reads that miss memory and must wait for the disk "
                 "(writes go through one committer thread that groups them into "
                 "one fsync)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--max-storage-queue", f.max_storage_queue,
                 "disk reads queued or running at once (503 overloaded with "
                 "Retry-After above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  app.add_option("--cache-bytes", f.cache_bytes,
                 "memory for the committed state of recently written keys (records, and "
                 "objects up to 64 KiB), so that reads and fence checks skip the "
                 "database; 0 disables it")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--max-queued-writes", f.max_queued_writes,
                 "writes waiting for the committer at once (503 overloaded with "
                 "Retry-After above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
}

void AddServerFlags(CLI::App& app, StoreFlags& f) {
  app.add_option("--listen", f.listen, "HOST:PORT to listen on; port 0 binds a free port")
      ->capture_default_str();
  app.add_option("--max-object-bytes", f.max_object_bytes,
                 "largest object accepted (413 above)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--max-connections", f.max_connections,
                 "connections served at once (503 above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", f.idle_timeout_ms,
                 "time allowed for a request header to arrive on a connection")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--request-timeout-ms", f.request_timeout_ms,
                 "time allowed to receive a request body and send a response")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--max-inflight-bytes", f.max_inflight_bytes,
                 "bytes of request bodies held in memory at once, over all "
                 "connections, until answered (large object reads count while "
                 "sent); a request that does not fit gets 503 memory_budget with "
                 "Retry-After. At least twice --max-object-bytes")
      ->check(CLI::Range(std::uint64_t{2}, std::uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", f.drain_timeout_ms,
                 "after SIGTERM, time requests in flight get to finish; then every "
                 "connection still open is closed (a body still arriving is not "
                 "applied), writes already handed to storage complete, and the "
                 "store exits 0. Keep it below the service manager's stop timeout")
      ->check(CLI::Range(0u, 3600000u))
      ->capture_default_str();
}

// Returns the exit code if the program must stop now (--help, bad flag).
std::optional<int> ParseFlags(int argc, char** argv, StoreFlags& flags) {
  CLI::App app{
      "fence-store: an HTTP object store that persists the highest fencing "
      "token per key and rejects writes with a lower one (409 stale_token).",
      kProgram};
  AddServerFlags(app, flags);
  AddStorageFlags(app, flags);
  fence::store::AddPgFlags(app, flags.pg);
  fence::net::AddAuthFlags(app, flags.auth);
  AddSigningFlags(app, flags);
  fence::net::AddTlsServerFlags(app, flags.tls);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return code;
  const fence::Status storage = fence::store::CheckStorageFlags(
      flags.pg, {.data_dir_set = !flags.data_dir.empty(), .fencing_off = flags.fencing == "off"});
  if (!storage.ok()) {
    std::fprintf(stderr, "%s: %s (see --help)\n", kProgram, storage.error().message.c_str());
    return 2;
  }
  // A key file the store would not use is a mistake, not a setting.
  if (flags.require_signed_tokens != !flags.token_key_file.empty()) {
    std::fprintf(stderr,
                 "%s: --require-signed-tokens and --token-key-file go together: the "
                 "keys are only used to refuse unsigned tokens (see --help)\n",
                 kProgram);
    return 2;
  }
  // Joining a body's pieces briefly holds it twice: the largest object must
  // fit twice, or it could never be accepted.
  if (flags.max_inflight_bytes / 2 < flags.max_object_bytes) {
    std::fprintf(stderr,
                 "%s: --max-inflight-bytes (%llu) must be at least twice "
                 "--max-object-bytes (%llu) (see --help)\n",
                 kProgram, static_cast<unsigned long long>(flags.max_inflight_bytes),
                 static_cast<unsigned long long>(flags.max_object_bytes));
    return 2;
  }
  return std::nullopt;
}

// Says what was lost when recovery skipped damaged WAL records by choice.
void LogWalDrops(const std::vector<fence::store::WalDrop>& drops) {
  for (const auto& drop : drops) {
    fence::log::Warn(
        fence::events::kWalRecordsDropped,
        {{"file", drop.file},
         {"bytes", drop.bytes},
         {"reason", drop.reason},
         {"message", "--wal-recovery=skip-corrupted skipped a damaged range of the "
                     "write-ahead log: acknowledged writes in it are lost, and their "
                     "keys' fences may now be below tokens already issued"}});
  }
}

fence::Result<std::unique_ptr<fence::store::Storage>> OpenStorage(
    const StoreFlags& flags) {
  std::error_code ec;
  std::filesystem::create_directories(flags.data_dir, ec);
  if (ec) {
    return fence::MakeError("storage_unavailable", "cannot create data directory " +
                                                       flags.data_dir + ": " +
                                                       ec.message());
  }
  fence::store::RocksOptions options;
  options.wal_recovery = flags.wal_recovery == "strict"
                             ? fence::store::WalRecovery::kStrict
                             : fence::store::WalRecovery::kSkipCorrupted;
  std::vector<fence::store::WalDrop> drops;
  auto storage = fence::store::OpenRocksStorage(flags.data_dir, options, &drops);
  LogWalDrops(drops);
  if (!storage.ok() && storage.error().code == "wal_corrupt") {
    fence::Error e = storage.error();
    e.message += "; fence-store will not start without them (that would silently "
                 "lower fences). Keep a copy of " + flags.data_dir +
                 ", then restore it from a backup, or start once with "
                 "--wal-recovery=skip-corrupted to drop the damaged records (see "
                 "docs/runbook.md)";
    return e;
  }
  return storage;
}

fence::net::ServerOptions ServerOptionsFor(const StoreFlags& flags) {
  fence::net::ServerOptions options;
  options.metrics_prefix = "fence_store";
  options.max_connections = flags.max_connections;
  options.idle_timeout = std::chrono::milliseconds(flags.idle_timeout_ms);
  options.request_timeout = std::chrono::milliseconds(flags.request_timeout_ms);
  options.max_inflight_body_bytes = flags.max_inflight_bytes;
  if (flags.fencing == "off") options.response_headers.emplace_back("Fencing", "off");
  fence::net::ApplyTlsServerFlags(flags.tls, options);
  return options;
}

// Serves until SIGTERM/SIGINT; returns the exit code.
int Serve(const StoreFlags& flags, fence::store::StoreBackend& service,
          std::optional<fence::TokenKeyRing> token_keys) {
  fence::store::StorageQueue storage_queue(static_cast<std::size_t>(flags.storage_threads),
                                           flags.max_storage_queue);
  auto registry = std::make_shared<prometheus::Registry>();
  std::optional<fence::store::TokenSignatureCheck> signatures;
  if (token_keys) signatures.emplace(std::move(*token_keys), *registry);
  std::unique_ptr<fence::net::AuthGuard> guard;  // outlives the server
  fence::store::StoreApi api(service, storage_queue, registry,
                             {.max_object_bytes = flags.max_object_bytes,
                              .who = [&guard](const fence::net::RequestHeader& header) {
                                return guard ? guard->Who(header) : std::string();
                              },
                              .token_signatures = signatures ? &*signatures : nullptr});
  auto routes = api.Routes();
  auto guarded = fence::net::GuardRoutes(flags.auth, fence::auth::Daemon::kStore, *registry,
                                         "fence_store", routes);
  if (!guarded.ok()) return fence::FailStartup(kProgram, guarded.error().message);
  guard = std::move(*guarded);
  fence::net::DaemonOptions daemon;
  daemon.listen = flags.listen;
  daemon.drain_timeout = std::chrono::milliseconds(flags.drain_timeout_ms);
  // Storage work taken on before the connections closed finishes (an
  // acknowledged write stays acknowledged); later work is refused with 503.
  daemon.quiesce = [&storage_queue, &service] {
    storage_queue.Close();
    service.Close();
  };
  daemon.listening_fields = {{"storage", flags.pg.storage},
                             {"data_dir", flags.data_dir},
                             {"fencing", flags.fencing},
                             {"wal_recovery", flags.wal_recovery},
                             {"max_object_bytes", flags.max_object_bytes},
                             {"max_inflight_bytes", flags.max_inflight_bytes},
                             {"max_storage_queue", flags.max_storage_queue},
                             {"max_queued_writes", flags.max_queued_writes},
                             {"cache_bytes", flags.cache_bytes},
                             {"auth", guard != nullptr},
                             {"require_signed_tokens", flags.require_signed_tokens}};
  if (flags.pg.storage == "postgresql") {
    daemon.listening_fields.update(fence::store::PgListeningFields(flags.pg));
  }
  return fence::net::RunDaemon(kProgram, daemon, ServerOptionsFor(flags), std::move(routes),
                               *registry);
}

}  // namespace

int main(int argc, char** argv) {
  StoreFlags flags;
  if (auto code = ParseFlags(argc, argv, flags)) return *code;
  if (auto exposed = fence::net::CheckExposure(flags.listen, !flags.auth.auth_file.empty(),
                                               flags.auth.allow_unauthenticated);
      !exposed.ok()) {
    return fence::FailStartup(kProgram, exposed.error().message);
  }
  // A write that hits a file-size limit must fail as an error (507), not
  // kill the server; a client that hangs up must not either.
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  fence::log::Init("store", fence::log::Writes::kBatched);
  if (auto tls = fence::net::LoadTlsServerFlags(flags.tls); !tls.ok()) {
    return fence::FailStartup(kProgram, tls.error().message);
  }
  std::optional<fence::TokenKeyRing> token_keys;
  if (flags.require_signed_tokens) {
    auto ring = fence::LoadTokenKeyFile(flags.token_key_file);
    if (!ring.ok()) return fence::FailStartup(kProgram, ring.error().message);
    fence::LogTokenKeys(flags.token_key_file, *ring, "verify");
    token_keys.emplace(std::move(*ring));
  }
  if (flags.pg.storage == "postgresql") {
    fence::store::PgStore store(fence::store::PgStoreOptionsFor(flags.pg, flags.max_queued_writes));
    // Listening only after the first probe (bounded) makes a healthy start
    // ready at once; an unreachable database still lets the store start,
    // not ready, and it connects when the database comes.
    store.WaitReady(std::chrono::milliseconds(flags.pg.connect_timeout_ms));
    return Serve(flags, store, std::move(token_keys));
  }
  auto storage = OpenStorage(flags);
  if (!storage.ok()) return fence::FailStartup(kProgram, storage.error().message);
  const auto mode = flags.fencing == "on" ? fence::store::FencingMode::kOn
                                          : fence::store::FencingMode::kOff;
  if (mode == fence::store::FencingMode::kOff) {
    fence::log::Warn("fencing_disabled",
                     {{"message", "every write is accepted whatever its token; use only "
                                  "to demonstrate the unfenced failure"}});
  }
  fence::store::StoreService service(**storage, mode,
                                     {.max_queued_writes = flags.max_queued_writes,
                                      .cache_bytes = flags.cache_bytes});
  return Serve(flags, service, std::move(token_keys));
}
