#include "tools/demo/demo_logs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "tools/logscan/timestamp.h"

namespace fence::tools::demo {

std::string FormatClockMs(std::int64_t epoch_ms) {
  const std::int64_t day_ms = ((epoch_ms % 86400000) + 86400000) % 86400000;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", static_cast<int>(day_ms / 3600000),
                static_cast<int>(day_ms / 60000 % 60), static_cast<int>(day_ms / 1000 % 60),
                static_cast<int>(day_ms % 1000));
  return buf;
}

std::string LogLine::Str(const char* field) const {
  if (!json.is_object() || !json.contains(field) || !json[field].is_string()) return "";
  return json[field].get<std::string>();
}

std::optional<std::int64_t> LogLine::Int(const char* field) const {
  if (!json.is_object() || !json.contains(field)) return std::nullopt;
  const auto& v = json[field];
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return std::nullopt;
}

LogLine ParseLogLine(std::string text, std::string source) {
  LogLine line;
  line.source = std::move(source);
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_discarded() && json.is_object()) {
    line.json = std::move(json);
    if (line.json.contains("ts") && line.json["ts"].is_string()) {
      auto ts = logscan::ParseTimestamp(line.json["ts"].get<std::string>());
      if (ts.ok()) line.ts_ms = *ts;
    }
  }
  line.text = std::move(text);
  return line;
}

std::vector<LogLine> ParseLines(const std::vector<std::string>& lines,
                                const std::string& source) {
  std::vector<LogLine> out;
  out.reserve(lines.size());
  for (const auto& l : lines) out.push_back(ParseLogLine(l, source));
  return out;
}

std::vector<logscan::LogEvent> ToLogEvents(const std::vector<LogLine>& lines) {
  std::vector<logscan::LogEvent> events;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto parsed = logscan::ParseLine(lines[i].text, lines[i].source, i + 1);
    if (parsed.event) events.push_back(std::move(*parsed.event));
  }
  return events;
}

std::vector<LogLine> MergeByTime(const std::vector<std::vector<LogLine>>& inputs) {
  // Each line sorts by (ts of itself or of its process's last stamped line,
  // input index, position), so a process's own order is never changed.
  struct Entry {
    std::int64_t ts;
    std::size_t input;
    std::size_t index;
  };
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::int64_t last = 0;
    for (std::size_t j = 0; j < inputs[i].size(); ++j) {
      if (inputs[i][j].ts_ms) last = std::max(last, *inputs[i][j].ts_ms);
      entries.push_back({last, i, j});
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.ts < b.ts;
  });
  std::vector<LogLine> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(inputs[e.input][e.index]);
  return out;
}

const LogLine* FindEvent(const std::vector<LogLine>& lines, std::string_view component,
                         std::string_view event,
                         const std::function<bool(const LogLine&)>& also) {
  for (const auto& line : lines) {
    if (line.Str("component") != component || line.Event() != event) continue;
    if (also && !also(line)) continue;
    return &line;
  }
  return nullptr;
}

Stats Summarize(std::vector<std::int64_t> values) {
  Stats s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  const std::size_t mid = values.size() / 2;
  s.median = values.size() % 2 == 1
                 ? static_cast<double>(values[mid])
                 : (static_cast<double>(values[mid - 1]) + static_cast<double>(values[mid])) / 2;
  return s;
}

std::vector<std::int64_t> DrawStalls(const StallDistribution& dist, int count) {
  std::mt19937_64 rng(dist.seed);
  std::lognormal_distribution<double> lognormal(std::log(dist.median_ms), dist.sigma);
  std::vector<std::int64_t> out;
  for (int i = 0; i < count; ++i) {
    const auto v = static_cast<std::int64_t>(std::llround(lognormal(rng)));
    out.push_back(std::clamp(v, dist.min_ms, dist.max_ms));
  }
  return out;
}

std::vector<std::int64_t> DrawPhases(const StallDistribution& dist, int count,
                                     std::int64_t range_ms) {
  std::mt19937_64 rng(dist.seed);
  // Skip the draws used by the stalls so phases are independent of them.
  std::lognormal_distribution<double> lognormal(std::log(dist.median_ms), dist.sigma);
  for (int i = 0; i < count; ++i) (void)lognormal(rng);
  std::vector<std::int64_t> out;
  if (range_ms <= 0) return std::vector<std::int64_t>(static_cast<std::size_t>(count), 0);
  std::uniform_int_distribution<std::int64_t> uniform(0, range_ms - 1);
  for (int i = 0; i < count; ++i) out.push_back(uniform(rng));
  return out;
}

std::string ShellQuote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

}  // namespace fence::tools::demo
