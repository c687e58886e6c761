// The load generators the peer bench drives, each the peer's own best client
// (wrk for every HTTP peer, redis-benchmark, pgbench) or fio for the disk,
// and the parsing of what they print. Parsing is pure and unit-tested.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace fence::tools::bench {

struct Measured {
  double rate = 0;                  // completed requests per second
  std::optional<double> p50_ms;     // none when the client does not report it
  std::optional<double> p99_ms;
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
// fio --output-format=json: the first job's write IOPS, and the latency
// percentiles of its syncs (of its writes when it made no sync).
Result<Measured> ParseFioJson(std::string_view output);

// pgbench --log lines ("client_id transaction_no time_us script_no epoch
// epoch_us ..."): the 50th and 99th percentile of the latencies, in
// milliseconds; lines whose latency is not a number (failed, skipped) are
// left out. Error "bad_output" if no line has a latency.
struct Percentiles {
  double p50_ms = 0;
  double p99_ms = 0;
};
Result<Percentiles> ParsePgbenchLog(std::string_view log);

// The nearest-rank percentile `p` (0..100] of `samples`, which it sorts.
double Percentile(std::vector<double>& samples, double p);

// The sum of every series of counter `name` in a Prometheus text
// exposition (one series if `name` carries its labels); nullopt if the
// exposition has none.
std::optional<double> ScrapeCounter(std::string_view exposition, std::string_view name);

// Clients that ran at once against several servers as one figure: the
// rates, non-2xx answers and errors summed, the latencies the worst
// client's (a percentile of the union is not known from theirs). The first
// error if any client failed.
Result<Measured> SumOfClients(const std::vector<Result<Measured>>& runs);

// Runs wrk with a Lua script (written to `script_path`) for `seconds`.
Result<Measured> RunWrk(const std::string& url, const std::string& lua,
                        const std::string& script_path, int connections, Millis duration);

}  // namespace fence::tools::bench
