// fence-lockd: a small HTTP lock/lease daemon issuing strictly increasing,
// durable fencing tokens.
#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <thread>

#include "common/auth_guard.h"
#include "common/cli.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/tls.h"
#include "common/monotonic_clock.h"
#include "common/token_key_file.h"
#include "lockd/async_lock_service.h"
#include "lockd/http_api.h"
#include "lockd/metrics.h"
#include "lockd/token_journal.h"

namespace {

namespace lockd = fence::lockd;

constexpr const char* kProgram = "fence-lockd";

struct Flags {
  std::string listen = "127.0.0.1:8081";
  std::string data_dir;
  std::int64_t max_ttl_ms = 60000;
  std::int64_t max_wait_ms = 30000;
  std::int64_t max_lock_delay_ms = 60000;
  std::uint64_t token_block = 1000;
  std::size_t max_locks = 100000;
  std::size_t max_waiters = 10000;
  std::size_t max_connections = 1024;
  std::uint32_t idle_timeout_ms = 15000;
  std::uint32_t request_timeout_ms = 30000;
  std::uint32_t drain_timeout_ms = 10000;
  std::string token_floor;  // empty: not given
  fence::net::AuthFlags auth;
  std::string token_key_file;  // empty: grants are unsigned
  fence::net::TlsServerFlags tls;
};

// The same deadlines, with the same names and defaults, as fence-store's.
void AddTimeoutFlags(CLI::App& app, Flags& f) {
  app.add_option("--idle-timeout-ms", f.idle_timeout_ms,
                 "time allowed for a request header to arrive on a connection "
                 "(a header trickled in more slowly is dropped unanswered)")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--request-timeout-ms", f.request_timeout_ms,
                 "time allowed to receive a request body and to send a response "
                 "(a client that stops reading is dropped after it)")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", f.drain_timeout_ms,
                 "after SIGTERM, time requests in flight get to finish; then every "
                 "connection still open is closed and lockd exits 0. Keep it below "
                 "the service manager's stop timeout")
      ->check(CLI::Range(0u, 3600000u))
      ->capture_default_str();
  fence::net::AddTlsServerFlags(app, f.tls);
}

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--listen", f.listen, "HOST:PORT to listen on; port 0 binds a free port")
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir,
                 "directory of the token counter file 'tokens' and the lock file 'LOCK' "
                 "(created if missing); one fence-lockd per directory")
      ->required();
  app.add_option("--max-ttl-ms", f.max_ttl_ms,
                 "largest ttl_ms an acquire may ask for. The grace period after "
                 "a restart is the largest TTL ever granted (recorded in the "
                 "token file), whatever this flag says now")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{86400000}))
      ->capture_default_str();
  app.add_option("--max-wait-ms", f.max_wait_ms, "largest wait_ms an acquire may ask for")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--max-lock-delay-ms", f.max_lock_delay_ms,
                 "largest lock_delay_ms an acquire may ask for: after a lease "
                 "with a lock-delay expires, nobody gets the lock for that long")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--token-block", f.token_block,
                 "tokens reserved per fdatasync of the counter; a crash skips the "
                 "unused rest of a block")
      ->check(CLI::Range(std::uint64_t{1}, lockd::kMaxTokenBlock))
      ->capture_default_str();
  app.add_option("--token-floor", f.token_floor,
                 "recovery: every token issued from now on is above N (written to "
                 "the token file at once); never lowers the file. After a corrupt "
                 "token file, move it aside and restart with N at least the highest "
                 "fencing token any store reports")
      ->type_name("N")
      ->check(CLI::Validator(
          [](std::string& value) {
            auto floor = lockd::ParseTokenFloor(value);
            return floor.ok() ? std::string() : floor.error().message;
          },
          "TOKEN"));
  app.add_option("--max-locks", f.max_locks, "locks held or in a lock-delay at once (503 above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  app.add_option("--max-waiters", f.max_waiters, "acquires waiting at once (503 above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  app.add_option("--max-connections", f.max_connections,
                 "connections served at once (503 above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--token-key-file", f.token_key_file,
                 "sign every grant: keys shared with fence-store, one '<key id> "
                 "<secret as hex>' a line (at least 32 bytes each, e.g. 'openssl rand "
                 "-hex 32'); the FIRST key signs, the others are only listed for the "
                 "store. Grants then carry \"token_signature\" (docs/signed-tokens.md)");
  AddTimeoutFlags(app, f);
  fence::net::AddAuthFlags(app, f.auth);
}

void LogTokenFloor(const lockd::FloorApplied& floor) {
  if (floor.raised) {
    fence::log::Info("token_floor_raised", {{"token_floor", floor.requested},
                                            {"journal_floor", floor.journal_floor},
                                            {"next_token", floor.requested + 1}});
    return;
  }
  fence::log::Warn("token_floor_below_journal",
                   {{"token_floor", floor.requested},
                    {"journal_floor", floor.journal_floor},
                    {"next_token", floor.journal_floor + 1},
                    {"message", "the token file already holds a floor at or above "
                                "--token-floor; continuing from the file (tokens are "
                                "never lowered), the flag changed nothing"}});
}

// Opens (creating if needed) the data directory and its token journal.
fence::Result<std::unique_ptr<lockd::TokenJournal>> OpenJournal(lockd::Env& env,
                                                                 const Flags& f) {
  lockd::JournalOptions options{.block = f.token_block,
                                .assumed_max_ttl = fence::Millis(f.max_ttl_ms)};
  if (!f.token_floor.empty()) options.token_floor = *lockd::ParseTokenFloor(f.token_floor);
  auto journal = lockd::TokenJournal::Open(env, f.data_dir, options);
  if (!journal.ok()) return journal;
  if (const auto& floor = (*journal)->floor_applied()) LogTokenFloor(*floor);
  if ((*journal)->grace().source == "max_ttl_flag_version1_file") {
    fence::log::Warn("token_file_version1",
                     {{"path", (*journal)->path()},
                      {"grace_ms", f.max_ttl_ms},
                      {"message", "the token file is version 1, which did not "
                                  "record the largest TTL granted; the grace "
                                  "period is the current --max-ttl-ms, which is "
                                  "too short if an earlier run allowed longer "
                                  "leases (the file is version 2 from the next "
                                  "grant on)"}});
  }
  if ((*journal)->one_slot_unreadable()) {
    fence::log::Warn("token_slot_unreadable",
                     {{"path", (*journal)->path()},
                      {"token_floor", (*journal)->floor()},
                      {"message", "one slot of the token file was unreadable "
                                  "(a write torn by a crash, or damage); "
                                  "continuing from the other, skipping one "
                                  "maximum block of tokens; the grace period "
                                  "is the larger of its recorded max TTL and "
                                  "--max-ttl-ms"}});
  }
  return journal;
}

lockd::LockServiceOptions ServiceOptions(const Flags& f,
                                         const lockd::TokenJournal& journal) {
  lockd::LockServiceOptions options;
  options.max_ttl = fence::Millis(f.max_ttl_ms);
  options.max_wait = fence::Millis(f.max_wait_ms);
  options.grace = journal.grace().duration;
  options.grace_source = journal.grace().source;
  options.max_locks = f.max_locks;
  options.max_waiters = f.max_waiters;
  return options;
}

fence::net::DaemonOptions DaemonOptionsFor(const Flags& f,
                                           const lockd::TokenJournal& journal,
                                           const lockd::LockServiceOptions& service) {
  fence::net::DaemonOptions daemon;
  daemon.listen = f.listen;
  daemon.drain_timeout = std::chrono::milliseconds(f.drain_timeout_ms);
  daemon.listening_fields = {{"data_dir", f.data_dir},
                             {"max_ttl_ms", f.max_ttl_ms},
                             {"max_wait_ms", f.max_wait_ms},
                             {"max_lock_delay_ms", f.max_lock_delay_ms},
                             {"token_floor", journal.floor()},
                             {"grace_ms", service.grace.count()},
                             {"grace_source", service.grace_source},
                             {"auth", !f.auth.auth_file.empty()}};
  return daemon;
}

// Runs the lease service and the HTTP daemon until SIGTERM/SIGINT.
int Serve(const Flags& f, lockd::TokenJournal& journal,
          const fence::TokenKeyRing* token_keys) {
  const lockd::LockServiceOptions options = ServiceOptions(f, journal);
  // The lease table, its timers and the token journal's fsyncs live on their
  // own thread, so a sync never stalls an HTTP I/O thread.
  boost::asio::io_context lease_ioc(1);
  auto work = boost::asio::make_work_guard(lease_ioc);
  auto registry = std::make_shared<prometheus::Registry>();
  lockd::LockdMetrics metrics(*registry);
  fence::MonotonicClock clock;
  lockd::AsyncLockService service(lease_ioc, clock, journal, metrics, options);
  lockd::LockdApi api(service, metrics, registry,
                      {.max_ttl = options.max_ttl,
                       .max_wait = options.max_wait,
                       .max_lock_delay = fence::Millis(f.max_lock_delay_ms),
                       .token_keys = token_keys});
  auto routes = api.Routes();
  auto guard = fence::net::GuardRoutes(f.auth, fence::auth::Daemon::kLockd, *registry,
                                       "fence_lockd", routes);  // outlives the server
  if (!guard.ok()) return fence::FailStartup(kProgram, guard.error().message);
  // RunDaemon drains on the same signals; this second set answers the long
  // polls at once so the drain does not wait them out.
  boost::asio::signal_set signals(lease_ioc, SIGTERM, SIGINT);
  signals.async_wait([&service](const boost::system::error_code& error, int) {
    if (!error) service.Shutdown();
  });
  std::thread lease_thread([&lease_ioc] { lease_ioc.run(); });

  fence::net::ServerOptions server_options;
  server_options.metrics_prefix = "fence_lockd";
  server_options.max_connections = f.max_connections;
  server_options.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  server_options.request_timeout = std::chrono::milliseconds(f.request_timeout_ms);
  fence::net::ApplyTlsServerFlags(f.tls, server_options);
  const int code = fence::net::RunDaemon(kProgram, DaemonOptionsFor(f, journal, options),
                                         std::move(server_options), std::move(routes),
                                         *registry);
  service.Shutdown();
  work.reset();
  signals.cancel();
  lease_ioc.stop();
  lease_thread.join();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fence-lockd: an HTTP lock/lease daemon. Each grant carries a fencing "
      "token that is strictly higher than every token issued before, across "
      "all locks and restarts (kill -9 and power loss included). After a restart it grants "
      "nothing for the largest TTL it ever granted.",
      kProgram};
  Flags flags;
  AddFlags(app, flags);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  if (auto exposed = fence::net::CheckExposure(flags.listen, !flags.auth.auth_file.empty(),
                                               flags.auth.allow_unauthenticated);
      !exposed.ok()) {
    return fence::FailStartup(kProgram, exposed.error().message);
  }

  signal(SIGPIPE, SIG_IGN);
  fence::log::Init("lockd", fence::log::Writes::kBatched);
  if (auto tls = fence::net::LoadTlsServerFlags(flags.tls); !tls.ok()) {
    return fence::FailStartup(kProgram, tls.error().message);
  }
  std::optional<fence::TokenKeyRing> token_keys;
  if (!flags.token_key_file.empty()) {
    auto ring = fence::LoadTokenKeyFile(flags.token_key_file);
    if (!ring.ok()) return fence::FailStartup(kProgram, ring.error().message);
    fence::LogTokenKeys(flags.token_key_file, *ring, "sign");
    token_keys.emplace(std::move(*ring));
  }
  lockd::PosixEnv env;
  auto journal = OpenJournal(env, flags);
  if (!journal.ok()) return fence::FailStartup(kProgram, journal.error().message);
  return Serve(flags, **journal, token_keys ? &*token_keys : nullptr);
}
