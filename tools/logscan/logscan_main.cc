// fence-logscan: reads the JSON-lines logs of workers, store and lockd and
// reports split-brain evidence (core/logscan.h says what counts).
// Exit status: 0 clean, 1 evidence found, 2 bad flags or unusable input.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/logging.h"
#include "tools/logscan/logscan.h"

namespace {

// A log line longer than this is not one of ours; it is skipped as not JSON
// without being held in memory whole.
constexpr std::size_t kMaxLineBytes = 1 << 20;

void ScanStream(std::istream& in, const std::string& source,
                std::vector<fence::tools::logscan::LogEvent>& events,
                fence::tools::logscan::InputStats& stats) {
  std::string line;
  bool oversized = false;
  std::size_t number = 0;
  auto finish_line = [&] {
    ++number;
    ++stats.lines;
    if (oversized) {
      ++stats.not_json;
    } else {
      auto parsed = fence::tools::logscan::ParseLine(line, source, number);
      switch (parsed.kind) {
        case fence::tools::logscan::LineKind::kEvent:
          ++stats.events;
          events.push_back(std::move(*parsed.event));
          break;
        case fence::tools::logscan::LineKind::kNotJson:
          ++stats.not_json;
          break;
        case fence::tools::logscan::LineKind::kNotEvent:
          ++stats.not_event;
          break;
      }
    }
    line.clear();
    oversized = false;
  };
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    const std::size_t n = static_cast<std::size_t>(in.gcount());
    std::size_t start = 0;
    while (start < n) {
      const char* nl = static_cast<const char*>(std::memchr(buf + start, '\n', n - start));
      const std::size_t end = nl ? static_cast<std::size_t>(nl - buf) : n;
      if (!oversized) {
        if (line.size() + (end - start) > kMaxLineBytes) {
          oversized = true;
          line.clear();
        } else {
          line.append(buf + start, end - start);
        }
      }
      if (!nl) break;
      finish_line();
      start = end + 1;
    }
  }
  if (!line.empty() || oversized) finish_line();
}

// Reads every input ("-" is stdin). False, with the reason logged, when a
// file cannot be read or the whole input holds no log event of ours.
bool ReadInputs(const std::vector<std::string>& inputs,
                std::vector<fence::tools::logscan::LogEvent>& events,
                fence::tools::logscan::InputStats& stats) {
  for (const auto& input : inputs) {
    stats.sources.push_back(input);
    if (input == "-") {
      ScanStream(std::cin, "-", events, stats);
      continue;
    }
    std::ifstream file(input, std::ios::binary);
    if (!file) {
      fence::log::Error("input_unreadable",
                        {{"path", input},
                         {"message", std::string("cannot read the log file: ") +
                                         std::strerror(errno)}});
      return false;
    }
    ScanStream(file, input, events, stats);
    if (file.bad()) {
      fence::log::Error("input_unreadable",
                        {{"path", input}, {"message", "read error in the log file"}});
      return false;
    }
  }
  if (events.empty()) {
    // "Clean" would be a lie about logs that are not ours (a wrong file, an
    // empty pipe): nothing was checked.
    fence::log::Error("no_events",
                      {{"lines", stats.lines},
                       {"message", "no JSON log events (objects with ts, component and "
                                   "event) in the input; expected the JSON-lines logs of "
                                   "fence-worker, fence-store or fence-lockd"}});
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "fence-logscan";
  CLI::App app{
      "fence-logscan: reads the JSON-lines logs of fence-worker, fence-store and "
      "fence-lockd (files, or stdin when none or '-') and reports split-brain "
      "evidence: overlapping leader terms with their interval, stale writes that "
      "landed or were rejected, fenced writes and their rate, token regressions. "
      "Lines that are not JSON are ignored. Exit status: 0 no evidence, 1 evidence "
      "found, 2 bad flags or unusable input (unreadable file, no log events).",
      program};
  std::vector<std::string> inputs;
  bool json = false;
  std::size_t max_items = 20;
  app.add_option("logs", inputs, "log files to read; '-' or none reads stdin");
  app.add_flag("--json", json, "print the findings as one JSON document for machines");
  app.add_option("--max-items", max_items, "entries listed per section of the human report")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  fence::log::Init("logscan");

  if (inputs.empty()) inputs.push_back("-");
  std::vector<fence::tools::logscan::LogEvent> events;
  fence::tools::logscan::InputStats stats;
  if (!ReadInputs(inputs, events, stats)) return 2;

  const auto findings = fence::tools::logscan::Analyze(std::move(events), std::move(stats));
  if (json) {
    std::cout << fence::tools::logscan::ToJson(findings).dump(
                     2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << fence::tools::logscan::FormatReport(findings, max_items);
  }
  std::cout.flush();
  return findings.SplitBrainEvidence() ? 1 : 0;
}
