// fence-bench-store: what a durable, fenced write costs, and what group
// commit buys. Starts a real fence-store, then measures side by side:
//   1. the disk's own rate of small append+fdatasync (the floor of any
//      durable write, the peer every other figure is compared with),
//   2. PUTs from 1 client, then from N concurrent clients (group commit),
//   3. the same N clients against a store with fencing off (the check's cost).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/cli.h"
#include "common/http_client.h"
#include "common/process.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double ops_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  long ops = 0;
  long errors = 0;
};

Figures Summarize(std::vector<double> latencies_ms, double seconds, long errors) {
  Figures f;
  f.ops = static_cast<long>(latencies_ms.size());
  f.errors = errors;
  f.ops_per_second = seconds > 0 ? f.ops / seconds : 0;
  if (!latencies_ms.empty()) {
    std::sort(latencies_ms.begin(), latencies_ms.end());
    f.p50_ms = latencies_ms[latencies_ms.size() / 2];
    f.p99_ms = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
  }
  return f;
}

Figures MeasureFsync(const std::string& dir, long max_ops, Clock::duration max_time) {
  const std::string path = dir + "/fsync-probe";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return {};
  const std::string record(100, 'r');
  std::vector<double> latencies;
  const auto start = Clock::now();
  while (static_cast<long>(latencies.size()) < max_ops && Clock::now() - start < max_time) {
    const auto t0 = Clock::now();
    if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size())) break;
    fdatasync(fd);
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  std::filesystem::remove(path);
  return Summarize(std::move(latencies), seconds, 0);
}

// `clients` threads each PUT distinct keys with increasing tokens until the
// shared op budget or the time budget is spent.
Figures MeasurePuts(const std::string& run, int port, int clients, long max_ops,
                    Clock::duration max_time, std::size_t object_bytes, bool with_token) {
  std::atomic<long> budget{max_ops};
  std::atomic<long> errors{0};
  std::vector<std::vector<double>> per_client(static_cast<std::size_t>(clients));
  const std::string body(object_bytes, 'x');
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (long i = 0; budget.fetch_sub(1) > 0 && Clock::now() - start < max_time; ++i) {
        fence::net::HttpCall call;
        call.method = fence::net::http::verb::put;
        call.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/objects/" + run + "/" +
                   std::to_string(c) + "/" + std::to_string(i % 64);
        if (with_token) call.headers = {{"Fencing-Token", std::to_string(i + 1)}};
        call.body = body;
        const auto t0 = Clock::now();
        auto res = fence::net::Call(call);
        if (!res.ok() || res->result() != fence::net::http::status::ok) {
          ++errors;
          continue;
        }
        per_client[static_cast<std::size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : per_client) all.insert(all.end(), v.begin(), v.end());
  return Summarize(std::move(all), seconds, errors.load());
}

fence::Result<fence::ListeningDaemon> StartStore(const std::string& data_dir,
                                                const std::string& fencing) {
  return fence::StartListeningDaemon(
      {{fence::SiblingBinary("fence-store"), "--data-dir", data_dir, "--fencing", fencing},
       "",
       {}});
}

void PrintRow(const char* name, const Figures& f, double peer) {
  std::printf("%-34s %9.0f/s %8.2f ms %8.2f ms %7ld %6ld %8.2fx\n", name, f.ops_per_second,
              f.p50_ms, f.p99_ms, f.ops, f.errors, peer > 0 ? f.ops_per_second / peer : 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fence-bench-store: durable fenced writes vs the disk's fsync rate, "
               "1 vs N clients (group commit), fencing on vs off.",
               "fence-bench-store"};
  int clients = 16;
  long max_ops = 3000;
  int seconds = 5;
  std::size_t object_bytes = 1024;
  std::string dir = std::filesystem::temp_directory_path().string() + "/fence-bench";
  app.add_option("--clients", clients, "concurrent clients in the N-client runs")
      ->check(CLI::Range(2, 256))->capture_default_str();
  app.add_option("--max-ops", max_ops, "operations per run at most")
      ->check(CLI::Range(10L, 1000000L))->capture_default_str();
  app.add_option("--seconds", seconds, "seconds per run at most")
      ->check(CLI::Range(1, 600))->capture_default_str();
  app.add_option("--object-bytes", object_bytes, "size of each object written")
      ->check(CLI::Range(std::size_t{1}, std::size_t{16} << 20))->capture_default_str();
  app.add_option("--dir", dir, "scratch directory (removed afterwards)")->capture_default_str();
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto limit = std::chrono::seconds(seconds);

  const Figures fsync = MeasureFsync(dir, max_ops, limit);
  auto fenced = StartStore(dir + "/fenced", "on");
  auto unfenced = StartStore(dir + "/unfenced", "off");
  for (const auto* store : {&fenced, &unfenced}) {
    if (!store->ok()) {
      std::fprintf(stderr, "fence-bench-store: %s\n", store->error().message.c_str());
      return 1;
    }
  }
  const Figures one = MeasurePuts("one", fenced->port, 1, max_ops, limit, object_bytes, true);
  const Figures many =
      MeasurePuts("many", fenced->port, clients, max_ops, limit, object_bytes, true);
  const Figures many_off =
      MeasurePuts("many", unfenced->port, clients, max_ops, limit, object_bytes, false);
  fenced->process->Stop();
  unfenced->process->Stop();
  std::filesystem::remove_all(dir);

  std::printf("object %zu bytes, %d clients in the concurrent runs, each run <= %ld ops / %d s\n",
              object_bytes, clients, max_ops, seconds);
  std::printf("%-34s %11s %11s %11s %7s %6s %9s\n", "run", "rate", "p50", "p99", "ops",
              "errors", "vs fsync");
  PrintRow("append+fdatasync, 1 thread (peer)", fsync, fsync.ops_per_second);
  PrintRow("PUT fenced, 1 client", one, fsync.ops_per_second);
  PrintRow("PUT fenced, N clients", many, fsync.ops_per_second);
  PrintRow("PUT fencing off, N clients", many_off, fsync.ops_per_second);
  std::printf("group commit: N clients / 1 client = %.2fx\n",
              one.ops_per_second > 0 ? many.ops_per_second / one.ops_per_second : 0);
  std::printf("fence check: fenced / unfenced at N clients = %.2fx\n",
              many_off.ops_per_second > 0 ? many.ops_per_second / many_off.ops_per_second : 0);
  return (one.errors + many.errors + many_off.errors) == 0 ? 0 : 1;
}
