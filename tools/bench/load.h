// The load generators the peer bench drives, each the peer's own best client
// (wrk for every HTTP peer, redis-benchmark, pgbench) or fio for the disk,
// and the parsing of what they print. Parsing is pure and unit-tested.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace fence::tools::bench {

struct Measured {
  double rate = 0;                  // completed requests per second
  std::optional<double> p99_ms;     // none when the client does not report it
  std::optional<double> mean_ms;
  long non_2xx = 0;                 // wrk: answers outside 2xx/3xx (409s, 404s)
  long errors = 0;                  // connect/read/write/timeout errors
};

// wrk's text output (--latency). Error "bad_output" if it has no rate.
Result<Measured> ParseWrk(std::string_view output);
// redis-benchmark --csv output: the first data row.
Result<Measured> ParseRedisBenchmarkCsv(std::string_view output);
// pgbench's summary: "tps = ... (without initial connection time)".
Result<Measured> ParsePgbench(std::string_view output);
// fio --output-format=json: the first job's write IOPS.
Result<Measured> ParseFioJson(std::string_view output);

// Runs wrk with a Lua script (written to `script_path`) for `seconds`.
Result<Measured> RunWrk(const std::string& url, const std::string& lua,
                        const std::string& script_path, int connections, Millis duration);

}  // namespace fence::tools::bench
