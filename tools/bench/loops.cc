#include "tools/bench/loops.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "common/monotonic_clock.h"
#include "common/process.h"
#include "core/base64.h"

namespace fence::tools::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One JSON POST that must answer 200; its parsed body.
Result<nlohmann::json> Post(const std::string& url, const nlohmann::json& body) {
  auto answer = net::Call(net::JsonCall(net::http::verb::post, url, body));
  if (!answer.ok()) return answer.error();
  if (answer->result_int() != 200) {
    return MakeError("bad_answer", url + " answered " + std::to_string(answer->result_int()) +
                                       ": " + answer->body().substr(0, 200));
  }
  auto json = nlohmann::json::parse(answer->body(), nullptr, false);
  if (json.is_discarded()) return MakeError("bad_answer", url + " answered no JSON");
  return json;
}

// The VmRSS or VmHWM of process `pid` in MiB; 0 if unreadable.
double StatusMib(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024;
  }
  return 0;
}

// Each wrk thread PUTs its share of distinct keys, then overwrites its last
// key until every thread has had its share answered and said so; the bench
// then stops wrk (which otherwise runs for its whole -d).
std::string LoaderLua(long keys_per_thread, std::size_t body) {
  return "local quota = " + std::to_string(keys_per_thread) + "\nlocal body = string.rep('x', " +
         std::to_string(body) +
         ")\nlocal threads = {}\nlocal id, sent, answered, said = 0, 0, 0, false\n"
         "function setup(thread) thread:set('id', #threads) table.insert(threads, thread) end\n"
         "function init(args) id = tonumber(wrk.thread:get('id')) end\n"
         "request = function()\n  if sent < quota then sent = sent + 1 end\n"
         "  return wrk.format('PUT', '/v1/objects/mem/' .. id .. '/' .. sent, "
         "{['Fencing-Token']='1'}, body)\nend\n"
         "response = function(status)\n  if status == 200 then answered = answered + 1 end\n"
         "  if answered >= quota and not said then said = true io.write('loader thread done\\n') "
         "io.flush() end\nend\n";
}

// Waits until `threads` "loader thread done" lines are out, or `limit`.
bool WaitForLoaders(ChildProcess& wrk, int threads, Millis limit) {
  const auto deadline = Clock::now() + limit;
  auto is_done = [](std::string_view line) {
    return line.find("loader thread done") != std::string_view::npos;
  };
  for (;;) {
    const auto lines = wrk.Lines();
    if (std::count_if(lines.begin(), lines.end(), is_done) >= threads) return true;
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (!wrk.WaitForLine(is_done, left, lines.size())) return false;
  }
}

}  // namespace

Result<Measured> RunCycles(int clients, Millis duration, long max_cycles,
                           const std::function<Status(int client)>& cycle) {
  std::atomic<long> started{0};
  std::atomic<long> errors{0};
  std::mutex mu;
  std::vector<double> latencies_ms;  // GUARDED_BY(mu)
  std::string first_error;           // GUARDED_BY(mu)
  const auto begin = Clock::now();
  const auto deadline = begin + duration;
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      std::vector<double> mine;
      while (Clock::now() < deadline && started.fetch_add(1) < max_cycles) {
        const auto t0 = Clock::now();
        Status done = cycle(client);
        if (!done.ok()) {
          errors.fetch_add(1);
          std::lock_guard guard(mu);
          if (first_error.empty()) first_error = done.error().message;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      std::lock_guard guard(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  if (latencies_ms.empty()) return MakeError("no_cycle", "no cycle completed: " + first_error);
  Measured out;
  out.rate = static_cast<double>(latencies_ms.size()) / seconds;
  out.errors = errors.load();
  out.p50_ms = Percentile(latencies_ms, 50);
  out.p99_ms = Percentile(latencies_ms, 99);
  return out;
}

Status LockdCycle(const std::string& url, int client) {
  const std::string lock = url + "/v1/locks/bench-" + std::to_string(client);
  auto grant = Post(lock + "/acquire",
                    {{"owner", "bench-" + std::to_string(client)}, {"ttl_ms", 10000}, {"wait_ms", 0}});
  if (!grant.ok()) return grant.error();
  auto released = Post(lock + "/release", {{"lease_id", (*grant)["lease_id"]}});
  if (!released.ok()) return released.error();
  return OkStatus();
}

Status EtcdLockCycle(const std::string& url, int client) {
  auto lease = Post(url + "/v3/lease/grant", {{"TTL", 10}});
  if (!lease.ok()) return lease.error();
  const auto id = (*lease)["ID"];
  auto locked =
      Post(url + "/v3/lock/lock", {{"name", Base64Encode("bench-" + std::to_string(client))},
                                   {"lease", id}});
  if (!locked.ok()) return locked.error();
  auto unlocked = Post(url + "/v3/lock/unlock", {{"key", (*locked)["key"]}});
  if (!unlocked.ok()) return unlocked.error();
  auto revoked = Post(url + "/v3/lease/revoke", {{"ID", id}});
  if (!revoked.ok()) return revoked.error();
  return OkStatus();
}

std::optional<double> ScrapeMetric(const std::string& url, const std::string& name) {
  auto answer = net::Call({net::http::verb::get, url + "/metrics", {}, "", Millis(5000)});
  if (!answer.ok() || answer->result_int() != 200) return std::nullopt;
  return ScrapeCounter(answer->body(), name);
}

Result<MemoryFigure> LoadAndMeasureMemory(const MemoryLoad& load) {
  const auto wrk_path = FindProgram("wrk");
  if (!wrk_path) return MakeError("peer_unavailable", "wrk is not installed (Debian package wrk)");
  constexpr int kThreads = 2;
  const std::string script = load.dir + "/memory-load.lua";
  std::ofstream(script) << LoaderLua((load.keys + kThreads - 1) / kThreads, load.body);
  const auto accepted = [&] {
    return ScrapeMetric(load.url, R"(fence_store_writes_total{result="accepted"})").value_or(0);
  };
  const double before = accepted();
  const auto begin = Clock::now();
  const long seconds = std::max<long>(1, load.limit.count() / 1000) + 5;
  auto wrk = ChildProcess::Start({{*wrk_path, "-t", std::to_string(kThreads), "-c",
                                   std::to_string(load.connections), "-d",
                                   std::to_string(seconds) + "s", "--timeout", "10s", "-s",
                                   script, load.url},
                                  load.dir + "/memory-load.log",
                                  {}});
  if (!wrk.ok()) return wrk.error();
  WaitForLoaders(**wrk, kThreads, load.limit);
  (*wrk)->Signal(SIGINT);  // wrk then prints its summary and exits
  (*wrk)->WaitExit(Millis(15000));
  MemoryFigure figure;
  figure.load_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  figure.keys_wanted = load.keys;
  figure.keys_loaded = std::min<long>(load.keys, static_cast<long>(accepted() - before));
  figure.body = load.body;
  figure.rss_mib = StatusMib(load.pid, "VmRSS");
  figure.hwm_mib = StatusMib(load.pid, "VmHWM");
  if (figure.rss_mib <= 0) return MakeError("no_figure", "cannot read /proc of fence-store");
  return figure;
}

}  // namespace fence::tools::bench
