// fence-with-postgres: runs a command next to a fresh PostgreSQL 15, so a
// test binary can run its whole suite against one server (one initdb per
// suite, a fresh database per test): the server's base URI is exported as
// FENCE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:PORT. The server is
// stopped and its directory removed when the command ends; SIGTERM and
// SIGINT are passed on to the command.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/services/postgres.h"

namespace {

constexpr char kProgram[] = "fence-with-postgres";
volatile sig_atomic_t g_child = 0;

void Forward(int signal) {
  if (g_child > 0) kill(g_child, signal);
}

int Usage(FILE* out, int code) {
  std::fprintf(out,
               "usage: %s -- COMMAND [ARGS...]\n"
               "Starts PostgreSQL 15 in a scratch directory on a free loopback port (as the\n"
               "'postgres' user when run as root), runs COMMAND with\n"
               "FENCE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:PORT in its environment,\n"
               "stops the server, and exits with COMMAND's exit code.\n",
               kProgram);
  return code;
}

// Runs argv with our stdio; returns its exit code (128+N if killed by N).
int RunCommand(std::vector<char*> argv) {
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "%s: cannot run %s: %s\n", kProgram, argv[0], std::strerror(errno));
    _exit(127);
  }
  g_child = pid;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    return Usage(stdout, 0);
  }
  if (argc < 3 || std::strcmp(argv[1], "--") != 0) return Usage(stderr, 2);
  char pattern[] = "/tmp/fence-pg-XXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    std::fprintf(stderr, "%s: cannot create a scratch directory in /tmp\n", kProgram);
    return 1;
  }
  int code = 1;
  {
    auto server = fence::tools::LaunchPostgres({.dir = pattern, .settings = {}});
    if (!server.ok()) {
      std::fprintf(stderr, "%s: %s\n", kProgram, server.error().message.c_str());
    } else {
      const std::string base = "postgresql://postgres@127.0.0.1:" + std::to_string((*server)->port());
      setenv("FENCE_TEST_POSTGRES", base.c_str(), 1);
      signal(SIGTERM, Forward);
      signal(SIGINT, Forward);
      code = RunCommand(std::vector<char*>(argv + 2, argv + argc));
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(pattern, ec);
  return code;
}
