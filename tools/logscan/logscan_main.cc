// fence-logscan: reads the JSON-lines logs of workers, store and lockd and
// reports split-brain evidence (core/logscan.h says what counts).
// Exit status: 0 clean, 1 evidence found, 2 bad flags, unusable input or an
// --html file that cannot be written.
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
#include "tools/timeline/timeline_html.h"

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

// --html FILE: the timeline of every input as one self-contained page, with
// the findings under it. False, with the reason logged, if it cannot be
// written.
bool WriteHtml(const std::string& path, const std::vector<fence::tools::logscan::LogEvent>& events,
               const fence::tools::logscan::Findings& findings) {
  namespace tl = fence::tools::timeline;
  // File names in the heading; the findings below give the full paths.
  std::string sources;
  for (const auto& s : findings.input.sources) {
    sources += (sources.empty() ? "" : ", ") + s.substr(s.find_last_of('/') + 1);
  }
  const std::string body =
      "<h1>fence-logscan: " +
      std::string(findings.SplitBrainEvidence() ? "split-brain evidence" : "no split-brain evidence") +
      "</h1>\n" +
      tl::TimelineSection("logs", "Timeline of " + sources,
                          "One lane per process. Bars in lockd's lane are leases by lockd's "
                          "clock; the band at the top of a worker's lane is the term it believed "
                          "it led; hover a mark for its log line.",
                          tl::LayOut(events)) +
      "<h2>Findings</h2>\n<pre>" + tl::HtmlEscape(fence::tools::logscan::FormatReport(findings)) +
      "</pre>\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << tl::HtmlPage("fence-logscan: " + sources, body);
  out.close();
  if (!out) {
    fence::log::Error("output_unwritable",
                      {{"path", path},
                       {"message", "cannot write the --html file: " + std::string(std::strerror(errno)) +
                                       "; expected a writable file path"}});
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
      "found, 2 bad flags or unusable input (unreadable file, no log events) or an --html "
      "file that cannot be written.",
      program};
  std::vector<std::string> inputs;
  bool json = false;
  std::size_t max_items = 20;
  std::string html;
  app.add_option("logs", inputs, "log files to read; '-' or none reads stdin");
  app.add_flag("--json", json, "print the findings as one JSON document for machines");
  app.add_option("--max-items", max_items, "entries listed per section of the human report")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  app.add_option("--html", html,
                 "also write the timeline of the logs (one lane per process: leases, pauses, "
                 "writes accepted or refused 409, fence raises, both-led windows) as one "
                 "self-contained HTML file here");
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  fence::log::Init("logscan");

  if (inputs.empty()) inputs.push_back("-");
  std::vector<fence::tools::logscan::LogEvent> events;
  fence::tools::logscan::InputStats stats;
  if (!ReadInputs(inputs, events, stats)) return 2;

  std::vector<fence::tools::logscan::LogEvent> drawn;
  if (!html.empty()) drawn = events;
  const auto findings = fence::tools::logscan::Analyze(std::move(events), std::move(stats));
  if (!html.empty() && !WriteHtml(html, drawn, findings)) return 2;
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
