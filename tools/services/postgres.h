// Starts a real PostgreSQL 15 (Debian postgresql-15) in a scratch directory
// on a free loopback port, for the tests, the bench and the failover
// harness. The server refuses to run as root: when we are root it runs as
// the `postgres` system user (setpriv, which execs it, so our signals reach
// the postmaster, and which gives it a parent-death signal, so a crashed
// test leaves no server behind). Stopped (immediate shutdown) when the
// object goes away.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"
#include "core/result.h"

namespace fence::tools {

inline constexpr char kPostgresBin[] = "/usr/lib/postgresql/15/bin/";

struct PostgresOptions {
  std::string dir;  // data in dir/data, log in dir/postgres.log; created if missing
  // Extra server settings, each "name=value" (passed as -c name=value).
  std::vector<std::string> settings;
};

class LaunchedPostgres {
 public:
  LaunchedPostgres(PostgresOptions options, int port);
  ~LaunchedPostgres();  // immediate shutdown: the data is scratch
  LaunchedPostgres(const LaunchedPostgres&) = delete;
  LaunchedPostgres& operator=(const LaunchedPostgres&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return options_.dir; }
  // postgresql://postgres@127.0.0.1:PORT/DATABASE (trust authentication).
  std::string Uri(std::string_view database = "postgres") const;

  // Starts the server on port() (again, after Stop) and waits until it
  // accepts connections.
  Status Start();
  // Fast shutdown (SIGINT: open sessions are ended, what they committed is
  // kept); waits for the server to exit. Idempotent.
  void Stop();
  bool running() const { return process_ != nullptr && !process_->exited(); }

  // CREATE DATABASE name (psql); "already exists" is not an error.
  Status CreateDatabase(std::string_view name) const;
  // Runs one SQL command with psql against `database`; returns its output.
  Result<std::string> Psql(std::string_view database, std::string_view sql) const;

 private:
  PostgresOptions options_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

// initdb in options.dir and a start on a free loopback port. Errors say
// which step failed, with its output.
Result<std::unique_ptr<LaunchedPostgres>> LaunchPostgres(PostgresOptions options);

// The command line that runs argv as the `postgres` user when we are root.
std::vector<std::string> AsPostgresUser(std::vector<std::string> argv);

}  // namespace fence::tools
