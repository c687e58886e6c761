#include "tools/bench/load.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "common/process.h"

namespace fence::tools::bench {
namespace {

Error BadOutput(std::string_view tool, std::string_view output) {
  return MakeError("bad_output", std::string(tool) + " printed no figure: " +
                                     std::string(output.substr(0, 400)));
}

// "4.00ms", "456.00us", "1.20s" in milliseconds.
std::optional<double> WrkDurationMs(const std::string& value, const std::string& unit) {
  const double v = std::stod(value);
  if (unit == "us") return v / 1000;
  if (unit == "ms") return v;
  if (unit == "s") return v * 1000;
  if (unit == "m") return v * 60000;
  return std::nullopt;
}

}  // namespace

Result<Measured> ParseWrk(std::string_view output) {
  const std::string text(output);
  std::smatch m;
  Measured out;
  if (!std::regex_search(text, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    return BadOutput("wrk", output);
  }
  out.rate = std::stod(m[1]);
  if (std::regex_search(text, m, std::regex(R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m)\b)"))) {
    out.p50_ms = WrkDurationMs(m[1], m[2]);
  }
  if (std::regex_search(text, m, std::regex(R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b)"))) {
    out.p99_ms = WrkDurationMs(m[1], m[2]);
  }
  if (std::regex_search(text, m, std::regex(R"(Latency\s+([0-9.]+)(us|ms|s|m)\s)"))) {
    out.mean_ms = WrkDurationMs(m[1], m[2]);
  }
  if (std::regex_search(text, m, std::regex(R"(Non-2xx or 3xx responses:\s+([0-9]+))"))) {
    out.non_2xx = std::stol(m[1]);
  }
  if (std::regex_search(
          text, m,
          std::regex(R"(connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+))"))) {
    out.errors = std::stol(m[1]) + std::stol(m[2]) + std::stol(m[3]) + std::stol(m[4]);
  }
  return out;
}

Result<Measured> ParseRedisBenchmarkCsv(std::string_view output) {
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
  // "p95_latency_ms","p99_latency_ms","max_latency_ms", then one row.
  const std::string text(output);
  std::smatch m;
  const std::regex row(
      R"re("[^"]*","([0-9.]+)","([0-9.]+)","[0-9.]+","([0-9.]+)","[0-9.]+","([0-9.]+)")re");
  if (!std::regex_search(text, m, row)) return BadOutput("redis-benchmark", output);
  Measured out;
  out.rate = std::stod(m[1]);
  out.mean_ms = std::stod(m[2]);
  out.p50_ms = std::stod(m[3]);
  out.p99_ms = std::stod(m[4]);
  return out;
}

Result<Measured> ParsePgbench(std::string_view output) {
  const std::string text(output);
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(R"(tps = ([0-9.]+) \(without initial)"))) {
    return BadOutput("pgbench", output);
  }
  Measured out;
  out.rate = std::stod(m[1]);
  if (std::regex_search(text, m, std::regex(R"(latency average = ([0-9.]+) ms)"))) {
    out.mean_ms = std::stod(m[1]);
  }
  if (std::regex_search(text, m, std::regex(R"(number of failed transactions: ([0-9]+))"))) {
    out.errors = std::stol(m[1]);
  }
  return out;
}

Result<Measured> ParseFioJson(std::string_view output) {
  // fio may print notes before its JSON.
  const auto start = output.find('{');
  if (start == std::string_view::npos) return BadOutput("fio", output);
  const auto json = nlohmann::json::parse(output.substr(start), nullptr, false);
  try {
    const auto& write = json.at("jobs").at(0).at("write");
    Measured out;
    out.rate = write.at("iops").get<double>();
    // With --fdatasync the latency that matters is the sync's; fio reports
    // it apart from the write's.
    const auto& job = json["jobs"][0];
    const bool synced = job.contains("sync") && job["sync"].contains("lat_ns");
    const auto& lat = synced ? job["sync"]["lat_ns"] : write.at("clat_ns");
    out.mean_ms = lat.at("mean").get<double>() / 1e6;
    if (lat.contains("percentile")) {
      out.p50_ms = lat["percentile"].value("50.000000", 0.0) / 1e6;
      out.p99_ms = lat["percentile"].value("99.000000", 0.0) / 1e6;
    }
    return out;
  } catch (const nlohmann::json::exception&) {
    return BadOutput("fio", output);
  }
}

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100 * samples.size()));
  return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
}

Result<Percentiles> ParsePgbenchLog(std::string_view log) {
  std::vector<double> latencies_ms;
  std::istringstream lines{std::string(log)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string client, transaction, latency;
    if (!(fields >> client >> transaction >> latency)) continue;
    if (latency.empty() || latency.find_first_not_of("0123456789") != std::string::npos) continue;
    latencies_ms.push_back(std::stod(latency) / 1000);
  }
  if (latencies_ms.empty()) return BadOutput("pgbench --log", log);
  Percentiles out;
  out.p50_ms = Percentile(latencies_ms, 50);
  out.p99_ms = Percentile(latencies_ms, 99);
  return out;
}

std::optional<double> ScrapeCounter(std::string_view exposition, std::string_view name) {
  std::optional<double> sum;
  std::istringstream lines{std::string(exposition)};
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;  // another metric sharing the prefix
    const auto space = line.rfind(' ');
    try {
      sum = sum.value_or(0) + std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
      continue;  // not a sample line
    }
  }
  return sum;
}

Result<Measured> RunWrk(const std::string& url, const std::string& lua,
                        const std::string& script_path, int connections, Millis duration) {
  const auto wrk = FindProgram("wrk");
  if (!wrk) return MakeError("peer_unavailable", "wrk is not installed (Debian package wrk)");
  std::ofstream(script_path) << lua;
  const int threads = connections < 2 ? 1 : 2;
  auto ran = RunToCompletion(
      {{*wrk, "-t", std::to_string(threads), "-c", std::to_string(connections), "-d",
        std::to_string(std::max<long>(1, duration.count() / 1000)) + "s", "--latency",
        "--timeout", "10s", "-s", script_path, url},
       "",
       {}},
      duration + Millis(60000));
  if (!ran.ok()) return ran.error();
  return ParseWrk(ran->Output());
}

Result<Measured> SumOfClients(const std::vector<Result<Measured>>& runs) {
  Measured sum;
  auto worst = [](std::optional<double>& into, std::optional<double> v) {
    if (v && (!into || *v > *into)) into = v;
  };
  for (const auto& run : runs) {
    if (!run.ok()) return run.error();
    sum.rate += run->rate;
    sum.non_2xx += run->non_2xx;
    sum.errors += run->errors;
    worst(sum.p50_ms, run->p50_ms);
    worst(sum.p99_ms, run->p99_ms);
    worst(sum.mean_ms, run->mean_ms);
  }
  return sum;
}

}  // namespace fence::tools::bench
