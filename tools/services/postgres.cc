#include "tools/services/postgres.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace fence::tools {
namespace {

namespace fs = std::filesystem;

Error Failed(const std::string& what) { return MakeError("postgres_unavailable", what); }

// The server runs as `postgres` and must reach its directory: every
// ancestor we own gets o+x (search only, no listing), and `dir` itself is
// given to it.
Status GiveToPostgres(const std::string& dir) {
  const passwd* pg = getpwnam("postgres");
  if (pg == nullptr) {
    return Failed("running as root, PostgreSQL needs an unprivileged 'postgres' user "
                  "(created by the Debian package postgresql-15)");
  }
  for (fs::path p = fs::absolute(dir).parent_path(); p != p.root_path(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0 && st.st_uid == geteuid() && (st.st_mode & S_IXOTH) == 0) {
      chmod(p.c_str(), (st.st_mode & 07777) | S_IXOTH);
    }
  }
  if (chown(dir.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
    return Failed("cannot give " + dir + " to the postgres user");
  }
  return OkStatus();
}

bool Ready(int port) {
  auto ran = RunToCompletion(
      {{std::string(kPostgresBin) + "pg_isready", "-h", "127.0.0.1", "-p", std::to_string(port)},
       "",
       {}},
      Millis(2000));
  return ran.ok() && ran->exit_code == 0;
}

}  // namespace

std::vector<std::string> AsPostgresUser(std::vector<std::string> argv) {
  if (geteuid() != 0) return argv;
  // setpriv execs the command itself (runuser would fork and wait), so a
  // signal to the child reaches the server. Changing the user clears the
  // parent-death signal our launcher set, so setpriv sets it again: SIGQUIT
  // is the server's immediate shutdown.
  std::vector<std::string> wrapped = {FindProgram("setpriv").value_or("/usr/bin/setpriv"),
                                      "--reuid=postgres", "--regid=postgres", "--init-groups",
                                      "--pdeathsig=QUIT", "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

LaunchedPostgres::LaunchedPostgres(PostgresOptions options, int port)
    : options_(std::move(options)), port_(port) {}

// Immediate shutdown (SIGQUIT): a scratch server's data goes with its
// directory, and a fast shutdown's checkpoint of every database the tests
// made can take a minute on a busy disk.
LaunchedPostgres::~LaunchedPostgres() {
  if (!running()) return;
  process_->Signal(SIGQUIT);
  if (!process_->WaitExit(std::chrono::seconds(30))) process_->Kill();
}

std::string LaunchedPostgres::Uri(std::string_view database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" +
         std::string(database);
}

Status LaunchedPostgres::Start() {
  if (running()) return OkStatus();
  std::vector<std::string> argv = {std::string(kPostgresBin) + "postgres", "-D",
                                   options_.dir + "/data", "-p", std::to_string(port_),
                                   "-k", options_.dir, "-c", "listen_addresses=127.0.0.1"};
  for (const std::string& setting : options_.settings) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  auto started = ChildProcess::Start({AsPostgresUser(argv), options_.dir + "/postgres.log", {}});
  if (!started.ok()) return started.error();
  process_ = std::move(*started);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Ready(port_)) return OkStatus();
    if (process_->WaitExit(std::chrono::milliseconds(50))) {
      return Failed("postgres exited before it was ready on port " + std::to_string(port_) +
                    ":\n" + process_->OutputTail());
    }
  }
  process_->Kill();
  return Failed("postgres was not ready within 30 s:\n" + process_->OutputTail());
}

void LaunchedPostgres::Stop() {
  if (!running()) return;
  process_->Signal(SIGINT);
  if (!process_->WaitExit(std::chrono::seconds(30))) process_->Kill();
}

Result<std::string> LaunchedPostgres::Psql(std::string_view database,
                                           std::string_view sql) const {
  auto ran = RunToCompletion({{std::string(kPostgresBin) + "psql", "-h", "127.0.0.1", "-p",
                               std::to_string(port_), "-U", "postgres", "-d",
                               std::string(database), "-v", "ON_ERROR_STOP=1", "-Atc",
                               std::string(sql)},
                              "",
                              {}},
                             Millis(30000));
  if (!ran.ok()) return ran.error();
  if (ran->exit_code != 0) return Failed("psql '" + std::string(sql) + "': " + ran->Output());
  return ran->Output();
}

Status LaunchedPostgres::CreateDatabase(std::string_view name) const {
  auto made = Psql("postgres", "CREATE DATABASE \"" + std::string(name) + "\"");
  if (!made.ok() && made.error().message.find("already exists") == std::string::npos) {
    return made.error();
  }
  return OkStatus();
}

Result<std::unique_ptr<LaunchedPostgres>> LaunchPostgres(PostgresOptions options) {
  if (!fs::exists(std::string(kPostgresBin) + "postgres")) {
    return Failed("PostgreSQL 15 is not installed (Debian package postgresql-15)");
  }
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Failed("cannot create " + options.dir + ": " + ec.message());
  if (geteuid() == 0) {
    if (Status given = GiveToPostgres(options.dir); !given.ok()) return given.error();
  }
  auto init = RunToCompletion(
      {AsPostgresUser({std::string(kPostgresBin) + "initdb", "-D", options.dir + "/data",
                       "--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8",
                       "--locale=C"}),
       options.dir + "/initdb.log",
       {}},
      Millis(120000));
  if (!init.ok() || init->exit_code != 0) {
    return Failed("initdb failed: " + (init.ok() ? init->Output() : init.error().message));
  }
  // A port picked free can be taken before the server binds it: try again.
  Error last = Failed("no attempt");
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = PickFreeLoopbackPort();
    if (!port.ok()) return port.error();
    auto server = std::make_unique<LaunchedPostgres>(options, *port);
    Status started = server->Start();
    if (started.ok()) return server;
    last = started.error();
  }
  return last;
}

}  // namespace fence::tools
