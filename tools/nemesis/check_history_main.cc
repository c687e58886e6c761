// fence-check-history: reads the history files of one run (worker histories,
// the nemesis's faults and final reads; core/history.h has the format) and
// checks them. It sees nothing else: not the logs, not the servers.
// Exit status: 0 no violation, 1 violations found, 2 bad flags or input.
#include <fstream>
#include <nlohmann/json.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "core/history.h"

namespace {

constexpr const char* kProgram = "fence-check-history";
constexpr std::size_t kMaxShown = 20;  // violations printed in full

fence::Status ReadFile(const std::string& path, fence::history::HistoryBuilder& builder,
                       std::size_t& lines) {
  std::ifstream in(path);
  if (!in) return fence::MakeError("bad_history", "cannot read '" + path + "'");
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++lines;
    const fence::Status added = builder.AddLine(line, ++number);
    if (!added.ok()) return fence::MakeError("bad_history", path + ": " + added.error().message);
  }
  return fence::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fence-check-history: checks a recorded history of lock grants and store writes "
      "(fence-worker --history, fence-nemesis) for lost acknowledged writes, stale "
      "writes that landed, lowered fences, repeated or reordered tokens and two "
      "lock holders at once. Exit 0: no violation; 1: violations; 2: bad input.",
      kProgram};
  std::vector<std::string> files;
  app.add_option("files", files, "history files (JSON lines), merged in any order")
      ->required()
      ->check(CLI::ExistingFile);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;

  fence::history::HistoryBuilder builder;
  std::size_t lines = 0;
  for (const std::string& file : files) {
    if (const fence::Status read = ReadFile(file, builder, lines); !read.ok()) {
      std::cerr << kProgram << ": " << read.error().message << "\n";
      return 2;
    }
  }
  const fence::history::History history = builder.Finish();
  const fence::history::CheckReport r = fence::history::CheckHistory(history);
  for (std::size_t i = 0; i < r.violations.size() && i < kMaxShown; ++i) {
    std::cout << "VIOLATION " << r.violations[i].check << ": " << r.violations[i].message << "\n";
  }
  if (r.violations.size() > kMaxShown) {
    std::cout << "... and " << r.violations.size() - kMaxShown << " more violations\n";
  }
  nlohmann::json by_check = nlohmann::json::object();
  for (const auto& v : r.violations) {
    by_check[v.check] = by_check.value(v.check, 0) + 1;
  }
  const int lost = by_check.value("lost_write", 0);
  const nlohmann::json summary = {
      {"event", "history_checked"},   {"history_lines", lines},
      {"operations", r.operations},   {"writes_lost", lost},
      {"keys", r.keys},               {"grants", r.grants},
      {"writes_accepted", r.writes_accepted}, {"writes_fenced", r.writes_fenced},
      {"writes_unknown", r.writes_unknown},   {"fences_raised", r.fences_raised},
      {"faults", r.faults},           {"violations", r.violations.size()},
      {"violations_by_check", by_check}};
  std::cout << summary.dump() << "\n";
  std::cout << "history: " << lines << " lines, " << r.operations << " operations, "
            << r.grants << " grants, " << r.writes_accepted << " writes accepted, "
            << r.writes_fenced << " fenced, " << r.writes_unknown << " unknown, " << lost
            << " lost, " << r.faults << " faults; "
            << r.violations.size() << " violations\n";
  return r.violations.empty() ? 0 : 1;
}
