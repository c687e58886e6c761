// Pure helpers of fence-demo: reading JSON log lines, merging the outputs of
// several processes into one timeline, statistics, and the seeded stall
// distribution of the TTL trade-off. No I/O here; unit-tested.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tools/logscan/logscan.h"

namespace fence::tools::demo {

// Formats epoch milliseconds as "HH:MM:SS.mmm" (UTC), for report tables.
std::string FormatClockMs(std::int64_t epoch_ms);

struct LogLine {
  std::string text;                     // the line exactly as printed
  nlohmann::json json;                  // the parsed object, or null
  std::optional<std::int64_t> ts_ms;    // from json["ts"] (logscan::ParseTimestamp)
  std::string source;                   // who printed it, e.g. "worker A"

  std::string Str(const char* field) const;  // "" if absent or not a string
  std::string Event() const { return Str("event"); }
  // A numeric field (tokens, ms), or nullopt.
  std::optional<std::int64_t> Int(const char* field) const;
};

LogLine ParseLogLine(std::string text, std::string source);
std::vector<LogLine> ParseLines(const std::vector<std::string>& lines,
                                const std::string& source);

// The JSON log events among `lines`, parsed by fence-logscan's parser (the
// one the timeline reads); lines that are not log events are left out.
std::vector<logscan::LogEvent> ToLogEvents(const std::vector<LogLine>& lines);

// Merges several processes' outputs into one timeline ordered by ts. Each
// input keeps its own order; a line without a ts stays right after the line
// printed before it by the same process.
std::vector<LogLine> MergeByTime(const std::vector<std::vector<LogLine>>& inputs);

// The first line (at index >= from) whose component and event match, and
// that satisfies `also` if given.
const LogLine* FindEvent(const std::vector<LogLine>& lines, std::string_view component,
                         std::string_view event,
                         const std::function<bool(const LogLine&)>& also = nullptr);

struct Stats {
  std::int64_t min = 0;
  std::int64_t max = 0;
  double median = 0;
  std::size_t count = 0;
};
// Stats of `values`; count 0 when empty. The median of an even count is the
// mean of the two middle values.
Stats Summarize(std::vector<std::int64_t> values);

// The stall durations of the TTL trade-off: log-normal with the given median
// and sigma (of the underlying normal), clamped to [min_ms, max_ms], drawn
// from std::mt19937_64 seeded with `seed`: the same seed gives the same
// stalls, so every TTL faces identical stalls.
struct StallDistribution {
  double median_ms = 300;
  double sigma = 1.0;
  std::int64_t min_ms = 10;
  std::int64_t max_ms = 4000;
  std::uint64_t seed = 7;
};
std::vector<std::int64_t> DrawStalls(const StallDistribution& dist, int count);
// Uniform offsets in [0, range_ms): where in the renewal cycle each stall
// begins, drawn from the same seed (after the stalls).
std::vector<std::int64_t> DrawPhases(const StallDistribution& dist, int count,
                                     std::int64_t range_ms);

// A shell-quoted argument for the curl line in bypass.log.
std::string ShellQuote(std::string_view text);

}  // namespace fence::tools::demo
