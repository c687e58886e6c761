// fence-bench-peers: fence-store next to what a user already runs for a
// fenced write or a fast read, all started here on free loopback ports and
// measured in one run, interleaved, each with its own best client: a fenced
// durable PUT against a Redis Lua compare-and-set with appendfsync always, a
// PostgreSQL conditional upsert, etcd's put and txn; a stale PUT and a GET
// against nginx's static GET; nginx's WebDAV PUT; a hot key; fence-lockd's
// acquire+release against etcd's lease+lock; the disk's fsync rate (fio);
// and the store's memory with a million small keys. Prints each figure and
// the ratios of issue 16 with their targets, writes a CSV and a plot.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/store_client.h"
#include "common/cli.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "tools/bench/drivers.h"
#include "tools/bench/loops.h"
#include "tools/bench/report.h"

namespace {

namespace bench = fence::tools::bench;
namespace fs = std::filesystem;
using bench::Row;
using fence::Millis;

constexpr const char* kProgram = "fence-bench-peers";
constexpr const char* kSyncs = "fence_store_wal_syncs_total";
constexpr const char* kSyncedWrites = "fence_store_synced_writes_total";
constexpr double kRedisHistogramTopMs = 3000;

struct Settings {
  std::vector<int> connections = {1, 32, 128};
  std::vector<std::size_t> bodies = {256, 4096, 1 << 20};
  Millis duration{10000};
  std::string out;
  long memory_keys = 1000000;
  Millis memory_limit{300000};
  long max_lock_cycles = 200000;
};

class Runner {
 public:
  Runner(const Settings& s, bench::Peers& p) : s_(s), p_(p) {}

  // One round of every workload at `c` connections and `body` bytes,
  // peers interleaved so that a slow minute of the machine hits them all.
  void Round(int c, std::size_t body) {
    const int keys = bench::KeysFor(body);
    const std::string token = "['Fencing-Token']='1'";
    StoreWrite("fenced PUT", bench::KeyedLua("PUT", "/v1/objects/bench/", keys, body, token), c,
               body);
    Redis("fenced PUT", c, body, false);
    Add("fenced PUT", "postgresql-upsert", c, body,
        p_.postgres ? bench::PostgresUpsert(p_, c, body, s_.duration) : Missing("postgresql"),
        "body built server-side by repeat(), stored uncompressed; pgbench -M prepared");
    Etcd("fenced PUT", "etcd-put", bench::EtcdLua(keys, body, ""), c, body);
    Etcd("fenced PUT", "etcd-txn", bench::EtcdLua(keys, body, p_.etcd_compare), c, body);
    const std::string pg_lua = bench::KeyedLua("PUT", "/v1/objects/bench/", keys, body, token);
    StoreOnPostgres(pg_lua, c, body, 1);
    StoreOnPostgres(pg_lua, c, body, 3);
    Http("PUT", "nginx-webdav", p_.nginx, bench::KeyedLua("PUT", "/bench/", keys, body, ""), c,
         body, "not durable: nginx does not fsync");
    Http("stale PUT", "fence-store", p_.store,
         bench::KeyedLua("PUT", "/v1/objects/stale/", bench::kStaleKeys, body, token), c, body,
         "every answer 409");
    Http("GET", "fence-store", p_.store, bench::KeyedLua("GET", "/v1/objects/bench/", keys, 0, ""),
         c, body);
    Http("GET", "nginx-static", p_.nginx, bench::KeyedLua("GET", "/bench/", keys, 0, ""), c, body);
    StoreWrite("hot-key PUT", bench::KeyedLua("PUT", "/v1/objects/hot/", 1, body, token, true), c,
               body);
    Redis("hot-key PUT", c, body, true);
  }

  // lockd's acquire+release next to etcd's lease grant + lock + unlock +
  // revoke, `c` clients each looping on its own lock.
  void Locks(int c) {
    const std::string lockd = p_.lockd ? p_.lockd->url : "";
    const std::string etcd = p_.etcd ? p_.etcd->url : "";
    Add("lock cycle", "fence-lockd", c, 0,
        p_.lockd ? bench::RunCycles(c, s_.duration, s_.max_lock_cycles,
                                    [&](int i) { return bench::LockdCycle(lockd, i); })
                 : Missing("fence-lockd"),
        "acquire+release, a new connection per call");
    Add("lock cycle", "etcd-lease-lock", c, 0,
        p_.etcd ? bench::RunCycles(c, s_.duration, s_.max_lock_cycles,
                                   [&](int i) { return bench::EtcdLockCycle(etcd, i); })
                : Missing("etcd"),
        "lease grant+lock+unlock+revoke, a new connection per call");
  }

  // Every key a GET asks for exists, on both peers.
  void Prefill(std::size_t body) {
    const std::string bytes(body, 'x');
    fence::client::StoreClient store(p_.store ? p_.store->url : "");
    for (int k = 1; k <= bench::KeysFor(body); ++k) {
      const std::string key = std::to_string(k);
      if (p_.store) (void)store.Put("bench/" + key, bytes, fence::Token(1));
      if (p_.nginx) {
        fence::net::HttpCall put{fence::net::http::verb::put, p_.nginx->url + "/bench/" + key,
                                 {}, bytes, Millis(5000)};
        (void)fence::net::Call(put);
      }
    }
  }

  void Disk() {
    fs::create_directories(s_.out + "/fio");
    Add("fsync", "fio-256B-fdatasync", 1, 256, bench::FioFsync(s_.out + "/fio", s_.duration),
        "the disk's sync writes/s: the ceiling of one writer without group commit");
  }

  const std::vector<Row>& rows() const { return rows_; }

 private:
  static fence::Result<bench::Measured> Missing(const std::string& peer) {
    return fence::MakeError("peer_unavailable", peer + " did not start");
  }
  void Redis(const std::string& workload, int c, std::size_t body, bool hot) {
    if (!p_.redis) return Add(workload, "redis-lua-aof-always", c, body, Missing("redis"));
    auto measured = bench::RedisFencedSet(p_, c, body, s_.duration, hot);
    std::string note;
    if (body > bench::kRedisArgvLimit) {
      note = "value built by the script: redis-benchmark passes values on its command line, "
             "which Linux limits to 128 KiB an argument";
    }
    if (measured.ok() && measured->p99_ms.value_or(0) >= kRedisHistogramTopMs) {
      note += std::string(note.empty() ? "" : "; ") +
              "latencies above 3 s show as 3 s (redis-benchmark's histogram ends there)";
    }
    Add(workload, "redis-lua-aof-always", c, body, std::move(measured), note);
  }
  void Etcd(const std::string& workload, const std::string& peer, const std::string& lua, int c,
            std::size_t body) {
    // etcd keeps every revision until compaction and refuses requests above
    // 1.5 MiB: it is built for small values.
    if (body > (std::size_t{1} << 19)) {
      return Add(workload, peer, c, body,
                 fence::MakeError("skipped",
                                  "etcd is built for small values: a 1 MiB value is 1.4 MB of "
                                  "base64 against its 1.5 MiB request limit, and every "
                                  "revision is kept until compaction"));
    }
    Http(workload, peer, p_.etcd, lua, c, body);
  }
  void Http(const std::string& workload, const std::string& peer,
            const std::optional<bench::Peer>& server, const std::string& lua, int c,
            std::size_t body, std::string note = "") {
    if (!server) return Add(workload, peer, c, body, Missing(peer));
    Add(workload, peer, c, body,
        bench::RunWrk(server->url, lua, s_.out + "/script.lua", c, s_.duration), std::move(note));
  }
  // A fence-store write measurement, with the writes per WAL sync it made
  // (from /metrics before and after; n/a where the store does not count).
  void StoreWrite(const std::string& workload, const std::string& lua, int c, std::size_t body) {
    if (!p_.store) return Add(workload, "fence-store", c, body, Missing("fence-store"));
    const auto syncs = bench::ScrapeMetric(p_.store->url, kSyncs);
    const auto writes = bench::ScrapeMetric(p_.store->url, kSyncedWrites);
    Row row{workload, "fence-store", c, body,
            bench::RunWrk(p_.store->url, lua, s_.out + "/script.lua", c, s_.duration), "",
            std::nullopt};
    const auto syncs_after = bench::ScrapeMetric(p_.store->url, kSyncs);
    const auto writes_after = bench::ScrapeMetric(p_.store->url, kSyncedWrites);
    if (syncs && writes && syncs_after && writes_after && *syncs_after > *syncs) {
      row.writes_per_sync = (*writes_after - *writes) / (*syncs_after - *syncs);
    }
    rows_.push_back(std::move(row));
    std::printf("%s\n", bench::FormatRow(rows_.back()).c_str());
    std::fflush(stdout);
  }
  // fence-store on PostgreSQL through `processes` of its processes: one wrk
  // per process, the connections split among them (at least one each), all
  // at once; the rate is their sum, the latencies the worst wrk's.
  void StoreOnPostgres(const std::string& lua, int c, std::size_t body, int processes) {
    const std::string peer = "fence-store-pg-x" + std::to_string(processes);
    if (!p_.store_pg) return Add("fenced PUT", peer, c, body, Missing("fence-store-pg"));
    const int each = std::max(1, c / processes);
    std::vector<fence::Result<bench::Measured>> runs(processes, Missing(peer));
    std::vector<std::thread> clients;
    for (int i = 0; i < processes; ++i) {
      clients.emplace_back([&, i] {
        runs[i] = bench::RunWrk(p_.store_pg->urls[i], lua,
                                s_.out + "/script-pg-" + std::to_string(i) + ".lua", each,
                                s_.duration);
      });
    }
    for (auto& t : clients) t.join();
    Add("fenced PUT", peer, c, body, bench::SumOfClients(runs),
        std::to_string(processes) + " store process(es) on one PostgreSQL 15 (fsync and "
        "synchronous_commit on), " + std::to_string(each) + " connection(s) each");
  }
  void Add(const std::string& workload, const std::string& peer, int c, std::size_t body,
           fence::Result<bench::Measured> measured, std::string note = "") {
    rows_.push_back({workload, peer, c, body, std::move(measured), std::move(note), std::nullopt});
    std::printf("%s\n", bench::FormatRow(rows_.back()).c_str());
    std::fflush(stdout);
  }

  const Settings& s_;
  bench::Peers& p_;
  std::vector<Row> rows_;
};

// A fresh fence-store loaded with `memory_keys` keys of 256 B.
fence::Result<bench::MemoryFigure> Memory(const Settings& s) {
  auto store = bench::StartFenceStore(s.out + "/memory-store");
  if (!store.ok()) return store.error();
  bench::MemoryLoad load;
  load.url = store->url;
  load.pid = store->processes.front()->pid();
  load.keys = s.memory_keys;
  load.limit = s.memory_limit;
  load.dir = s.out + "/memory-store";
  return bench::LoadAndMeasureMemory(load);
}

void PrintSection(const char* title, const std::vector<std::string>& lines, std::ostream& also) {
  std::printf("\n%s\n", title);
  also << '\n' << title << '\n';
  for (const std::string& line : lines) {
    std::printf("%s\n", line.c_str());
    also << line << '\n';
  }
}

}  // namespace

namespace {

void AddFlags(CLI::App& app, Settings& s, long& seconds, bool& smoke) {
  app.add_option("--seconds", seconds, "length of each measurement")
      ->check(CLI::Range(1L, 600L))
      ->capture_default_str();
  app.add_option("--conns,--connections", s.connections,
                 "client connections (comma list; default 1,32,128)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000));
  app.add_option("--sizes,--bodies", s.bodies,
                 "body sizes in bytes (comma list; default 256,4096,1048576)")
      ->delimiter(',')
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--out,--dir", s.out,
                 "output and scratch directory (default: a new one in /tmp, printed at the "
                 "end); PostgreSQL (run as the postgres user) and nginx's workers must be able "
                 "to reach it");
  app.add_option("--memory-keys", s.memory_keys,
                 "keys of 256 B loaded into a fresh fence-store before its RSS is read "
                 "(0: skip)")
      ->check(CLI::Range(0L, 10000000L))
      ->capture_default_str();
  app.add_option_function<long>(
         "--memory-seconds", [&s](long v) { s.memory_limit = Millis(v * 1000); },
         "time bound of the memory load (default 300)")
      ->check(CLI::Range(1L, 3600L));
  app.add_flag("--smoke", smoke,
               "seconds long: one second per figure at 32 connections and 256 B, 2000 keys "
               "for the memory figure; checks that every peer and client still runs");
}

std::string PrepareOut(Settings& s) {
  if (s.out.empty()) {
    std::string pattern = "/tmp/fence-bench.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return "mkdtemp failed";
    s.out = pattern;
  }
  std::error_code ec;
  fs::create_directories(s.out, ec);
  fs::permissions(s.out, fs::perms::all, ec);  // PostgreSQL runs as its own user below it
  return ec ? "--out " + s.out + ": " + ec.message() : "";
}

std::string FsyncFact(const std::vector<Row>& rows) {
  for (const Row& r : rows) {
    if (r.workload != "fsync" || !r.measured.ok()) continue;
    char line[128];
    std::snprintf(line, sizeof line,
                  "fsync ceiling: %.0f sync writes/s (fio, 256 B writes, fdatasync each)\n",
                  r.measured->rate);
    return line;
  }
  return "fsync ceiling: not measured\n";
}

void Measure(const Settings& s, Runner& runner) {
  runner.Disk();
  for (std::size_t b = 0; b < s.bodies.size(); ++b) {
    runner.Prefill(s.bodies[b]);
    for (int c : s.connections) {
      runner.Round(c, s.bodies[b]);
      if (b == 0) runner.Locks(c);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fence-bench-peers: fence-store's fenced durable PUT, stale PUT, GET and hot "
               "key next to Redis (Lua compare-and-set, appendfsync always), PostgreSQL "
               "(conditional upsert), etcd (put, txn) and nginx (WebDAV PUT, static GET); "
               "fence-lockd's acquire+release next to etcd's lease+lock; the disk's fsync "
               "rate (fio); the store's RSS with 1,000,000 keys of 256 B. Everything is "
               "started here and measured in one run, interleaved, HTTP peers with wrk. "
               "Prints figures and the ratios of issue 16 with their targets; writes "
               "bench.csv, bench.png and summary.txt. Asserts nothing.",
               kProgram};
  Settings s;
  long seconds = 10;
  bool smoke = false;
  AddFlags(app, s, seconds, smoke);
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  if (smoke) {
    seconds = 1;
    s.connections = {32};
    s.bodies = {256};
    s.memory_keys = std::min<long>(s.memory_keys, 2000);
    s.memory_limit = Millis(30000);
    s.max_lock_cycles = 2000;
  }
  s.duration = Millis(seconds * 1000);
  if (auto failed = PrepareOut(s); !failed.empty()) return fence::FailStartup(kProgram, failed);
  fence::log::Init("bench");

  std::string facts = bench::MachineFacts(s.out);
  std::printf("%s\n", facts.c_str());
  auto peers = std::make_unique<bench::Peers>(bench::StartPeers(s.out));
  Runner runner(s, *peers);
  Measure(s, runner);
  facts += FsyncFact(runner.rows());
  peers.reset();  // the memory figure gets the machine to itself
  const auto memory = s.memory_keys > 0 ? Memory(s)
                                        : fence::MakeError("skipped", "--memory-keys 0");

  std::ofstream summary(s.out + "/summary.txt");
  std::printf("\n%s", facts.c_str());
  summary << facts;
  for (const Row& r : runner.rows()) summary << bench::FormatRow(r) << '\n';
  PrintSection("ratios (fence-store / peer, same run):",
               bench::RatioLines(runner.rows(), s.connections, s.bodies), summary);
  PrintSection("group commit (fence-store writes per WAL sync):",
               bench::WritesPerSyncLines(runner.rows()), summary);
  PrintSection("memory:", {bench::MemoryLine(memory)}, summary);
  const std::string csv = s.out + "/bench.csv";
  if (auto written = bench::WriteCsv(runner.rows(), csv); !written.ok()) {
    return fence::FailStartup(kProgram, written.error().message);
  }
  const auto plot = bench::WritePlot(runner.rows(), s.bodies, s.out);
  std::printf("\nplot: %s\n", plot.ok() ? (s.out + "/bench.png").c_str()
                                        : ("not drawn: " + plot.error().message).c_str());
  std::printf("output: %s (bench.csv, bench.png, summary.txt)\n", s.out.c_str());
  for (const Row& r : runner.rows()) {
    if (!r.measured.ok() && r.measured.error().code != "skipped") return 1;
  }
  return memory.ok() || memory.error().code == "skipped" ? 0 : 1;
}
