#include "tools/bench/load.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
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
      R"re("[^"]*","([0-9.]+)","([0-9.]+)","[0-9.]+","[0-9.]+","[0-9.]+","([0-9.]+)")re");
  if (!std::regex_search(text, m, row)) return BadOutput("redis-benchmark", output);
  Measured out;
  out.rate = std::stod(m[1]);
  out.mean_ms = std::stod(m[2]);
  out.p99_ms = std::stod(m[3]);
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
    out.mean_ms = write.at("clat_ns").at("mean").get<double>() / 1e6;
    return out;
  } catch (const nlohmann::json::exception&) {
    return BadOutput("fio", output);
  }
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

}  // namespace fence::tools::bench
