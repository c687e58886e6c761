// What the peer bench prints and writes: one row per measurement, the ratio
// lines of issue 16's table each with its target, the CSV, the plot and the
// machine's facts. Formatting and ratio evaluation are pure and unit-tested.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "tools/bench/load.h"

namespace fence::tools::bench {

struct Row {
  std::string workload;  // "fenced PUT", "stale PUT", "GET", "hot-key PUT", ...
  std::string peer;      // "fence-store", "redis-lua-aof-always", ...
  int connections = 0;
  std::size_t body = 0;  // 0 where the workload has no body (lock cycles)
  Result<Measured> measured = MakeError("not_run", "not run");
  std::string note;                       // how the figure differs from the others
  std::optional<double> writes_per_sync;  // fence-store writes only, from /metrics
};

// "256B", "4KiB", "1MiB".
std::string SizeLabel(std::size_t bytes);

// One figure line: workload, peer, connections, size, rate, p50, p99,
// answers outside 2xx, socket errors, writes per sync, note; or why the
// figure is missing.
std::string FormatRow(const Row& row);

// A ratio fence-store / peer that the performance issue tracks. Without a
// target the line is context ("no target").
struct RatioSpec {
  std::string label;  // "store_put/redis_lua"
  std::string ours_workload, ours_peer;
  std::string theirs_workload, theirs_peer;
  std::optional<double> target;  // the ratio must be >= target
  bool p99_not_above = false;    // also: our p99 <= theirs
};
const std::vector<RatioSpec>& IssueRatios();

// Every ratio line for every (connections, body) measured, including those
// whose figures are missing ("n/a: ... not measured"), then the writes per
// WAL sync of every fence-store write measurement.
std::vector<std::string> RatioLines(const std::vector<Row>& rows,
                                    const std::vector<int>& connections,
                                    const std::vector<std::size_t>& bodies);
std::vector<std::string> WritesPerSyncLines(const std::vector<Row>& rows);

// The memory line: RSS after loading `keys` keys of `body` bytes.
struct MemoryFigure {
  long keys_loaded = 0;
  long keys_wanted = 0;
  std::size_t body = 0;
  double rss_mib = 0;
  double hwm_mib = 0;
  double load_seconds = 0;
};
constexpr double kMemoryTargetMib = 512;
std::string MemoryLine(const Result<MemoryFigure>& memory);

// workload,peer,connections,body_bytes,rate_per_s,p50_ms,p99_ms,mean_ms,
// non_2xx,errors,writes_per_sync,note
Status WriteCsv(const std::vector<Row>& rows, const std::string& path);

// bench.png in `dir` (via gnuplot): requests/s against connections, one
// panel per body size, one line per workload and peer.
Status WritePlot(const std::vector<Row>& rows, const std::vector<std::size_t>& bodies,
                 const std::string& dir);

// CPU model, cores, kernel, and the device and file system holding `dir`.
std::string MachineFacts(const std::string& dir);

}  // namespace fence::tools::bench
