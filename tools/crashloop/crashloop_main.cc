// fence-crashloop: SIGKILL a real fence-store or fence-lockd at seeded
// random moments under load, restart it on the same data directory, and
// check everything it acknowledged before. Exit 0 only with no violation.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "common/cli.h"
#include "common/logging.h"
#include "tools/crashloop/crashloop.h"

namespace {

namespace fs = std::filesystem;
using fence::crashloop::Options;
using fence::crashloop::Summary;

constexpr const char* kProgram = "fence-crashloop";

// A fresh scratch folder, or the given one if its data/ is new or empty:
// the checks assume the daemon starts with no history.
fence::Result<std::string> PrepareWorkDir(const std::string& requested) {
  std::error_code ec;
  if (requested.empty()) {
    std::string pattern = (fs::temp_directory_path() / "fence-crashloop-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return fence::MakeError("io", "cannot create a scratch folder under " +
                                        fs::temp_directory_path().string());
    }
    return pattern;
  }
  const fs::path data = fs::path(requested) / "data";
  if (fs::exists(data, ec) && !fs::is_empty(data, ec)) {
    return fence::MakeError("bad_dir", "expected --dir to hold no data/ folder, or an empty "
                                       "one, but " + data.string() + " has files in it");
  }
  fs::create_directories(requested, ec);
  if (ec) return fence::MakeError("io", "cannot create " + requested + ": " + ec.message());
  return requested;
}

void PrintSummary(const Summary& s, const std::string& work_dir) {
  nlohmann::json violations = nlohmann::json::array();
  for (const auto& v : s.violations) violations.push_back(v.ToJson());
  fence::log::Info("crashloop_summary",
                   {{"target", s.target}, {"seed", s.seed}, {"kills", s.kills},
                    {"ops_acknowledged", s.acknowledged},
                    {"ops_indeterminate", s.indeterminate},
                    {"indeterminate_applied", s.indeterminate_applied}, {"verified", s.verified},
                    {"violations", s.violations.size()}, {"violation_list", violations},
                    {"wall_seconds", s.wall_seconds}, {"dir", work_dir}});
  std::printf("%s --target %s --seed %llu: %d kills, %ld ops acknowledged, %ld "
              "indeterminate, %ld %s verified, %zu violations, %.1f s\n",
              kProgram, s.target.c_str(), static_cast<unsigned long long>(s.seed), s.kills,
              s.acknowledged, s.indeterminate, s.verified,
              s.target == "store" ? "key checks" : "grants", s.violations.size(),
              s.wall_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fence-crashloop: SIGKILL a real fence-store or fence-lockd at seeded random "
               "moments under load, restart it on the same data directory, and verify every "
               "answer it gave before (store: acknowledged objects, tokens, etags, fences, "
               "stale writes refused; lockd: tokens strictly increase across restarts, no "
               "grant inside the restart grace). Exit 0 only if no violation.",
               kProgram};
  Options options;
  bool seed_given = false;
  app.add_option("--target", options.target, "the daemon to crash: store or lockd")
      ->required()->check(CLI::IsMember({"store", "lockd"}));
  app.add_option("--kills", options.kills, "SIGKILLs (and restarts) to run")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--seed", options.seed, "seed of the kill moments and the operations "
                 "(default: random, printed)")->each([&](const std::string&) { seed_given = true; });
  app.add_option("--writers", options.writers, "writer threads (store) or lock clients (lockd)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  int keys = 0;  // 0: the target's default
  app.add_option("--keys", keys, "keys (store, default 16) or locks (lockd, default 3)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--dir", options.work_dir, "folder for the daemon's data/ and daemon.log "
                 "(default: a new temporary folder, removed after a clean run)");
  app.add_option("--max-seconds", options.max_seconds,
                 "stop after this long even if fewer kills were done")
      ->check(CLI::Range(1.0, 86400.0))->capture_default_str();
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  options.keys = keys != 0 ? keys : options.target == "store" ? 16 : 3;
  if (options.target == "store" && options.writers > options.keys) {
    return fence::FailStartup(kProgram, "expected --writers <= --keys for the store target, "
                                        "so that every writer owns at least one key");
  }
  if (!seed_given) options.seed = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  const bool own_dir = options.work_dir.empty();
  auto dir = PrepareWorkDir(options.work_dir);
  if (!dir.ok()) return fence::FailStartup(kProgram, dir.error().message);
  options.work_dir = *dir;

  fence::log::Init("crashloop");
  std::printf("%s --target %s --seed %llu --kills %d (dir %s)\n", kProgram,
              options.target.c_str(), static_cast<unsigned long long>(options.seed),
              options.kills, options.work_dir.c_str());
  std::fflush(stdout);
  fence::log::Info("crashloop_started",
                   {{"target", options.target}, {"seed", options.seed}, {"kills", options.kills},
                    {"writers", options.writers}, {"keys", options.keys},
                    {"max_seconds", options.max_seconds}, {"dir", options.work_dir}});
  auto summary = options.target == "store" ? fence::crashloop::RunStoreLoop(options)
                                           : fence::crashloop::RunLockdLoop(options);
  if (!summary.ok()) return fence::FailStartup(kProgram, summary.error().message);
  PrintSummary(*summary, options.work_dir);
  const bool clean = summary->violations.empty();
  if (clean && own_dir) fs::remove_all(options.work_dir);
  return clean ? 0 : 1;
}
