#include "server/pg_flags.h"

namespace fence::store {

void AddPgFlags(CLI::App& app, PgFlags& f) {
  app.add_option("--storage", f.storage,
                 "'rocksdb' keeps the data in --data-dir, for one fence-store process; "
                 "'postgresql' keeps it in the database at --pg-uri, which enforces the "
                 "fence rule itself, so any number of fence-store processes may serve "
                 "the same keys (docs/scale-out.md)")
      ->check(CLI::IsMember({"rocksdb", "postgresql"}))
      ->capture_default_str();
  app.add_option("--pg-uri", f.uri,
                 "with --storage postgresql: the libpq connection URI or string, e.g. "
                 "postgresql://fence@127.0.0.1:5432/fence (list every host of a "
                 "failover pair with target_session_attrs=read-write); the tables are "
                 "created if missing");
  app.add_option("--pg-pool-size", f.pool_size,
                 "with --storage postgresql: connections open at once, at most; also "
                 "the number of writes in flight at once")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}))
      ->capture_default_str();
  app.add_option("--pg-connect-timeout-ms", f.connect_timeout_ms,
                 "with --storage postgresql: time allowed to connect (libpq counts whole "
                 "seconds, at least 2); also the longest wait for a free connection")
      ->check(CLI::Range(100u, 600000u))
      ->capture_default_str();
  app.add_option("--pg-statement-timeout-ms", f.statement_timeout_ms,
                 "with --storage postgresql: the longest a statement may run (the server "
                 "cancels it: 503, nothing written) or the server may leave the connection "
                 "unanswered (then 503 commit_unknown)")
      ->check(CLI::Range(100u, 600000u))
      ->capture_default_str();
}

Status CheckStorageFlags(const PgFlags& f, const OtherStorageFlags& other) {
  if (f.storage == "rocksdb") {
    if (!other.data_dir_set) return MakeError("bad_flag", "--data-dir is required");
    if (!f.uri.empty()) {
      return MakeError("bad_flag", "--pg-uri is used only with --storage postgresql");
    }
    return OkStatus();
  }
  if (f.uri.empty()) return MakeError("bad_flag", "--storage postgresql needs --pg-uri");
  if (other.data_dir_set) {
    return MakeError("bad_flag",
                     "--data-dir is used only with --storage rocksdb (PostgreSQL keeps the "
                     "data at --pg-uri)");
  }
  if (other.fencing_off) {
    return MakeError("bad_flag",
                     "--fencing off exists only to stage the unfenced demo on RocksDB; "
                     "--storage postgresql always fences");
  }
  return OkStatus();
}

PgStoreOptions PgStoreOptionsFor(const PgFlags& f, std::size_t max_queued_writes) {
  PgStoreOptions options;
  options.pool.uri = f.uri;
  options.pool.size = f.pool_size;
  options.pool.connect_timeout = std::chrono::milliseconds(f.connect_timeout_ms);
  options.pool.acquire_timeout = std::chrono::milliseconds(f.connect_timeout_ms);
  options.pool.statement_timeout = std::chrono::milliseconds(f.statement_timeout_ms);
  options.max_queued_writes = max_queued_writes;
  return options;
}

nlohmann::json PgListeningFields(const PgFlags& f) {
  return {{"pg_uri", RedactUri(f.uri)},
          {"pg_pool_size", f.pool_size},
          {"pg_connect_timeout_ms", f.connect_timeout_ms},
          {"pg_statement_timeout_ms", f.statement_timeout_ms}};
}

}  // namespace fence::store
