// fence-bench-peers: fence-store next to what a user already runs for a
// fenced write or a fast read, all started here on free loopback ports and
// measured in one run, interleaved, each with its own best client: a fenced
// durable PUT against a Redis Lua compare-and-set with appendfsync always, a
// PostgreSQL conditional upsert, etcd's put and txn; a stale PUT and a GET
// against nginx's static GET; nginx's WebDAV PUT; the disk's fsync rate
// (fio). Prints each figure and the ratios, and writes a CSV.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/store_client.h"
#include "common/cli.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "core/base64.h"
#include "tools/bench/load.h"
#include "tools/bench/peers.h"

namespace {

namespace bench = fence::tools::bench;
namespace fs = std::filesystem;
using fence::Millis;

constexpr const char* kProgram = "fence-bench-peers";

struct Settings {
  std::vector<int> connections = {1, 32, 128};
  std::vector<std::size_t> bodies = {256, 4096, 1 << 20};
  Millis duration{10000};
  std::string dir;
  std::string csv;
};

struct Row {
  std::string workload;
  std::string peer;
  int connections = 0;
  std::size_t body = 0;
  fence::Result<bench::Measured> measured = fence::MakeError("not_run", "");
};

// Keys per run: enough to spread writes, few enough for 1 MiB bodies.
int KeysFor(std::size_t body) { return body >= (1 << 20) ? 64 : 1000; }

// A wrk script sending `method` to PATH_PREFIX + a random key in [1, keys]
// (or key 1 when `hot`), with `headers` and a body of `body` bytes.
std::string KeyedLua(const std::string& method, const std::string& path_prefix, int keys,
                     std::size_t body, const std::string& headers, bool hot = false) {
  return "local body = string.rep('x', " + std::to_string(body) + ")\n" +
         "request = function()\n  local k = " + (hot ? "1" : "math.random(1, " + std::to_string(keys) + ")") +
         "\n  return wrk.format('" + method + "', '" + path_prefix + "' .. k, {" + headers +
         "}, " + (method == "GET" ? "nil" : "body") + ")\nend\n";
}

// etcd's JSON gateway wants base64 keys and values: the keys are listed,
// the value is 'x' * body ("xxx" is "eHh4").
std::string EtcdLua(int keys, std::size_t body, const std::string& txn_compare) {
  std::string lua = "local keys = {";
  for (int k = 1; k <= keys; ++k) lua += "'" + fence::Base64Encode("bench/" + std::to_string(k)) + "',";
  lua += "}\nlocal value = string.rep('eHh4', " + std::to_string((body + 2) / 3) + ")\n";
  lua += "request = function()\n  local key = keys[math.random(1, #keys)]\n";
  if (txn_compare.empty()) {
    lua += "  local b = '{\"key\":\"' .. key .. '\",\"value\":\"' .. value .. '\"}'\n"
           "  return wrk.format('POST', '/v3/kv/put', {['Content-Type']='application/json'}, b)\n";
  } else {
    lua += "  local b = '{\"compare\":[" + txn_compare +
           "],\"success\":[{\"requestPut\":{\"key\":\"' .. key .. '\",\"value\":\"' .. value .. "
           "'\"}}]}'\n  return wrk.format('POST', '/v3/kv/txn', "
           "{['Content-Type']='application/json'}, b)\nend\n";
    return lua;
  }
  return lua + "end\n";
}

struct Peers {
  std::optional<bench::Peer> store, redis, postgres, etcd, nginx;
  std::string redis_sha;     // the fenced-set script, loaded once
  std::string etcd_compare;  // the txn's guard on the lock key's creation
};

// Compares the token with the key's fence and sets both, as a fence-store
// PUT does: refuses a lower token, accepts an equal or higher one.
constexpr const char* kRedisFencedSet =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local t = tonumber(ARGV[1]) "
    "if t < f then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[2]) return 1";

fence::Result<std::string> Run(std::vector<std::string> argv, Millis timeout) {
  auto ran = fence::RunToCompletion({std::move(argv), "", {}}, timeout);
  if (!ran.ok()) return ran.error();
  if (ran->exit_code != 0) {
    return fence::MakeError("command_failed", ran->Output().substr(0, 600));
  }
  return ran->Output();
}

fence::Status PrepareRedis(Peers& p) {
  auto sha = Run({fence::FindProgram("redis-cli").value_or("redis-cli"), "-p",
                  std::to_string(p.redis->port), "SCRIPT", "LOAD", kRedisFencedSet},
                 Millis(10000));
  if (!sha.ok()) return sha.error();
  p.redis_sha = sha->substr(0, sha->find('\n'));
  return fence::OkStatus();
}

constexpr const char* kCreateObjects =
    "CREATE TABLE objects (key int PRIMARY KEY, token bigint NOT NULL, body text NOT NULL)";

fence::Status PreparePostgres(const Peers& p) {
  auto made = Run({fence::FindProgram("psql").value_or("psql"), "-h", "127.0.0.1", "-p",
                   std::to_string(p.postgres->port), "-U", "postgres", "-c", kCreateObjects},
                  Millis(30000));
  return made.ok() ? fence::OkStatus() : fence::Status(made.error());
}

fence::Status PrepareEtcd(Peers& p) {
  const nlohmann::json put = {{"key", fence::Base64Encode("bench-lock")}, {"value", fence::Base64Encode("holder")}};
  fence::net::HttpCall call{fence::net::http::verb::post, p.etcd->url + "/v3/kv/put",
                            {}, put.dump(), Millis(5000)};
  auto answer = fence::net::Call(call);
  if (!answer.ok()) return answer.error();
  const auto j = nlohmann::json::parse(answer->body(), nullptr, false);
  if (j.is_discarded() || !j.contains("header")) {
    return fence::MakeError("bad_output", "etcd put answered " + answer->body());
  }
  const std::string revision = j["header"].value("revision", "0");
  p.etcd_compare = R"({"key":")" + fence::Base64Encode("bench-lock") +
                   R"(","result":"EQUAL","target":"CREATE","create_revision":")" + revision +
                   R"("})";
  return fence::OkStatus();
}

// The stale PUTs go to keys fenced at 2 and carry token 1.
fence::Status FenceStaleKeys(const Peers& p, int keys) {
  fence::client::StoreClient store(p.store->url);
  for (int k = 1; k <= keys; ++k) {
    auto raised = store.RaiseFence("stale/" + std::to_string(k), fence::Token(2));
    if (!raised.ok()) return raised.error();
  }
  return fence::OkStatus();
}

fence::Result<bench::Measured> RedisFencedSet(const Peers& p, int c, std::size_t body,
                                              Millis duration, bool hot) {
  // redis-benchmark runs a request count, not a time: a count the disk can
  // do in about `duration` (argv limits a value to 128 KiB).
  if (body > std::size_t{64} * 1024) return fence::MakeError("skipped", "value too large for argv");
  const long requests = std::max<long>(200, duration.count() * 5);
  auto out = Run({fence::FindProgram("redis-benchmark").value_or("redis-benchmark"), "-h",
                  "127.0.0.1", "-p", std::to_string(p.redis->port), "-c", std::to_string(c),
                  "-n", std::to_string(requests), "-r", "1000", "--csv", "EVALSHA", p.redis_sha,
                  "2", hot ? "fence:hot" : "fence:__rand_int__",
                  hot ? "obj:hot" : "obj:__rand_int__", "1", std::string(body, 'x')},
                 duration * 20 + Millis(60000));
  if (!out.ok()) return out.error();
  return bench::ParseRedisBenchmarkCsv(*out);
}

fence::Result<bench::Measured> PostgresUpsert(const Peers& p, int c, std::size_t body,
                                              Millis duration) {
  const std::string script = p.postgres->dir + "/upsert.sql";
  std::ofstream(script)
      << "\\set k random(1, " << KeysFor(body) << ")\n"
      << "INSERT INTO objects (key, token, body) VALUES (:k, 1, repeat('x', " << body
      << ")) ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, body = EXCLUDED.body "
         "WHERE objects.token <= EXCLUDED.token;\n";
  auto out = Run({fence::FindProgram("pgbench").value_or("pgbench"), "-h", "127.0.0.1", "-p",
                  std::to_string(p.postgres->port), "-U", "postgres", "-n", "-M", "prepared",
                  "-c", std::to_string(c), "-j", c < 2 ? "1" : "2", "-T",
                  std::to_string(std::max<long>(1, duration.count() / 1000)), "-f", script,
                  "postgres"},
                 duration + Millis(60000));
  if (!out.ok()) return out.error();
  return bench::ParsePgbench(*out);
}

fence::Result<bench::Measured> FioFsync(const std::string& dir, Millis duration) {
  auto out = Run({fence::FindProgram("fio").value_or("fio"), "--name=fsync",
                  "--directory=" + dir, "--rw=write", "--bs=256", "--size=64m",
                  "--fdatasync=1", "--time_based",
                  "--runtime=" + std::to_string(std::max<long>(1, duration.count() / 1000)),
                  "--output-format=json"},
                 duration + Millis(60000));
  if (!out.ok()) return out.error();
  return bench::ParseFioJson(*out);
}

void PrintRow(const Row& r) {
  std::printf("%-12s %-22s c=%-4d %8zu B  ", r.workload.c_str(), r.peer.c_str(),
              r.connections, r.body);
  if (!r.measured.ok()) {
    std::printf("-- %s\n", r.measured.error().message.substr(0, 120).c_str());
  } else {
    const bench::Measured& m = *r.measured;
    std::printf("%10.0f/s  p99 %s  non-2xx %ld  errors %ld\n", m.rate,
                m.p99_ms ? (std::to_string(*m.p99_ms).substr(0, 7) + " ms").c_str() : "   n/a   ",
                m.non_2xx, m.errors);
  }
  std::fflush(stdout);
}

class Runner {
 public:
  Runner(const Settings& s, Peers& p) : s_(s), p_(p) {}

  // One round of every workload at `c` connections and `body` bytes,
  // peers interleaved so that a slow minute of the machine hits them all.
  void Round(int c, std::size_t body) {
    const int keys = KeysFor(body);
    const std::string token = "['Fencing-Token']='1'";
    Http("fenced PUT", "fence-store", p_.store, KeyedLua("PUT", "/v1/objects/bench/", keys, body, token), c, body);
    Add("fenced PUT", "redis-lua-aof-always", c, body,
        p_.redis ? RedisFencedSet(p_, c, body, s_.duration, false) : Missing("redis"));
    Add("fenced PUT", "postgresql-upsert", c, body,
        p_.postgres ? PostgresUpsert(p_, c, body, s_.duration) : Missing("postgresql"));
    Http("fenced PUT", "etcd-put", p_.etcd, EtcdLua(keys, body, ""), c, body);
    Http("fenced PUT", "etcd-txn", p_.etcd, EtcdLua(keys, body, p_.etcd_compare), c, body);
    Http("PUT", "nginx-webdav", p_.nginx, KeyedLua("PUT", "/bench/", keys, body, ""), c, body);
    Http("stale PUT", "fence-store", p_.store, KeyedLua("PUT", "/v1/objects/stale/", 1000, body, token), c, body);
    Http("GET", "fence-store", p_.store, KeyedLua("GET", "/v1/objects/bench/", keys, 0, ""), c, body);
    Http("GET", "nginx-static", p_.nginx, KeyedLua("GET", "/bench/", keys, 0, ""), c, body);
    if (body <= 4096) {
      Http("hot-key PUT", "fence-store", p_.store, KeyedLua("PUT", "/v1/objects/hot/", 1, body, token, true), c, body);
      Add("hot-key PUT", "redis-lua-aof-always", c, body,
          p_.redis ? RedisFencedSet(p_, c, body, s_.duration, true) : Missing("redis"));
    }
  }

  // Every key a GET asks for exists, on both peers.
  void Prefill(std::size_t body) {
    const std::string bytes(body, 'x');
    fence::client::StoreClient store(p_.store ? p_.store->url : "");
    for (int k = 1; k <= KeysFor(body); ++k) {
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
    Add("fsync", "fio-256B-fdatasync", 1, 256, FioFsync(s_.dir, s_.duration));
  }

  const std::vector<Row>& rows() const { return rows_; }

 private:
  static fence::Result<bench::Measured> Missing(const std::string& peer) {
    return fence::MakeError("peer_unavailable", peer + " did not start");
  }
  void Http(const std::string& workload, const std::string& peer,
            const std::optional<bench::Peer>& server, const std::string& lua, int c,
            std::size_t body) {
    if (!server) return Add(workload, peer, c, body, Missing(peer));
    Add(workload, peer, c, body,
        bench::RunWrk(server->url, lua, s_.dir + "/script.lua", c, s_.duration));
  }
  void Add(const std::string& workload, const std::string& peer, int c, std::size_t body,
           fence::Result<bench::Measured> measured) {
    rows_.push_back({workload, peer, c, body, std::move(measured)});
    PrintRow(rows_.back());
  }

  const Settings& s_;
  Peers& p_;
  std::vector<Row> rows_;
};

const Row* Find(const std::vector<Row>& rows, const std::string& workload,
                const std::string& peer, int c, std::size_t body) {
  for (const Row& r : rows) {
    if (r.workload == workload && r.peer == peer && r.connections == c && r.body == body &&
        r.measured.ok()) {
      return &r;
    }
  }
  return nullptr;
}

// The ratios the performance issue tracks, where both sides were measured.
void PrintRatios(const std::vector<Row>& rows, const Settings& s) {
  struct Pair {
    const char* ours_workload;
    const char* theirs_workload;
    const char* theirs;
  };
  const Pair pairs[] = {
      {"fenced PUT", "fenced PUT", "redis-lua-aof-always"},
      {"fenced PUT", "fenced PUT", "postgresql-upsert"},
      {"fenced PUT", "fenced PUT", "etcd-txn"},
      {"fenced PUT", "fenced PUT", "etcd-put"},
      {"stale PUT", "GET", "nginx-static"},
      {"GET", "GET", "nginx-static"},
      {"hot-key PUT", "hot-key PUT", "redis-lua-aof-always"},
  };
  std::printf("\nratios (fence-store / peer, same run):\n");
  for (int c : s.connections) {
    for (std::size_t body : s.bodies) {
      for (const Pair& pair : pairs) {
        const Row* ours = Find(rows, pair.ours_workload, "fence-store", c, body);
        const Row* theirs = Find(rows, pair.theirs_workload, pair.theirs, c, body);
        if (ours == nullptr || theirs == nullptr || theirs->measured->rate <= 0) continue;
        std::printf("  c=%-4d %8zu B  %-12s / %-12s %-22s %6.2fx\n", c, body,
                    pair.ours_workload, pair.theirs_workload, pair.theirs,
                    ours->measured->rate / theirs->measured->rate);
      }
    }
  }
}

bool WriteCsv(const std::vector<Row>& rows, const std::string& path) {
  std::ofstream out(path);
  out << "workload,peer,connections,body_bytes,rate_per_s,p99_ms,mean_ms,non_2xx,errors,note\n";
  for (const Row& r : rows) {
    out << '"' << r.workload << "\"," << r.peer << ',' << r.connections << ',' << r.body << ',';
    if (r.measured.ok()) {
      const bench::Measured& m = *r.measured;
      out << m.rate << ',' << (m.p99_ms ? std::to_string(*m.p99_ms) : "") << ','
          << (m.mean_ms ? std::to_string(*m.mean_ms) : "") << ',' << m.non_2xx << ','
          << m.errors << ",\n";
    } else {
      out << ",,,,,\"" << r.measured.error().code << "\"\n";
    }
  }
  return static_cast<bool>(out);
}

// Starts every peer; one that cannot start is reported and its rows say so.
Peers StartPeers(const Settings& s) {
  Peers p;
  auto keep = [](const char* name, fence::Result<bench::Peer> started,
                 std::optional<bench::Peer>& slot) {
    if (started.ok()) {
      slot = std::move(*started);
    } else {
      std::printf("%s: not measured: %s\n", name, started.error().message.c_str());
    }
  };
  keep("fence-store", bench::StartFenceStore(s.dir + "/store"), p.store);
  keep("redis", bench::StartRedis(s.dir + "/redis"), p.redis);
  keep("postgresql", bench::StartPostgres(s.dir + "/postgres"), p.postgres);
  keep("etcd", bench::StartEtcd(s.dir + "/etcd"), p.etcd);
  keep("nginx", bench::StartNginx(s.dir + "/nginx"), p.nginx);
  auto prepared = [](const char* name, const fence::Status& status, std::optional<bench::Peer>& slot) {
    if (status.ok()) return;
    std::printf("%s: not measured: %s\n", name, status.error().message.c_str());
    slot.reset();
  };
  if (p.redis) prepared("redis", PrepareRedis(p), p.redis);
  if (p.postgres) prepared("postgresql", PreparePostgres(p), p.postgres);
  if (p.etcd) prepared("etcd", PrepareEtcd(p), p.etcd);
  if (p.store) prepared("fence-store", FenceStaleKeys(p, 1000), p.store);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fence-bench-peers: fence-store's fenced durable PUT, stale PUT and GET next "
               "to Redis (Lua compare-and-set, appendfsync always), PostgreSQL (conditional "
               "upsert), etcd (put, txn) and nginx (WebDAV PUT, static GET), all started here "
               "and measured in one run with their own clients (wrk, redis-benchmark, "
               "pgbench), plus the disk's fsync rate (fio). Prints figures and ratios; "
               "writes a CSV. Asserts nothing: speed lives here, not in tests.",
               kProgram};
  Settings s;
  long seconds = 10;
  bool smoke = false;
  app.add_option("--seconds", seconds, "length of each measurement")
      ->check(CLI::Range(1L, 600L))
      ->capture_default_str();
  app.add_option("--connections", s.connections, "client connections (repeat or comma list)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000));
  app.add_option("--bodies", s.bodies, "body sizes in bytes (repeat or comma list)")
      ->delimiter(',')
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--dir", s.dir,
                 "scratch directory (default: a new one in /tmp); PostgreSQL (run as the "
                 "postgres user) and nginx's workers must be able to reach it");
  app.add_option("--csv", s.csv, "write the figures here (default: DIR/bench.csv)");
  app.add_flag("--smoke", smoke, "one second per figure at 32 connections and 256 B: "
                                 "checks that every peer and client still runs");
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;
  if (smoke) {
    seconds = 1;
    s.connections = {32};
    s.bodies = {256};
  }
  s.duration = Millis(seconds * 1000);
  if (s.dir.empty()) {
    std::string pattern = "/tmp/fence-bench.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return fence::FailStartup(kProgram, "mkdtemp failed");
    s.dir = pattern;
  }
  std::error_code ec;
  fs::create_directories(s.dir, ec);
  fs::permissions(s.dir, fs::perms::all, ec);  // PostgreSQL runs as its own user below it
  if (ec) return fence::FailStartup(kProgram, "--dir " + s.dir + ": " + ec.message());
  if (s.csv.empty()) s.csv = s.dir + "/bench.csv";
  fence::log::Init("bench");

  Peers peers = StartPeers(s);
  Runner runner(s, peers);
  runner.Disk();
  for (std::size_t body : s.bodies) {
    runner.Prefill(body);
    for (int c : s.connections) runner.Round(c, body);
  }
  PrintRatios(runner.rows(), s);
  if (!WriteCsv(runner.rows(), s.csv)) return fence::FailStartup(kProgram, "cannot write " + s.csv);
  std::printf("\nfigures: %s\n", s.csv.c_str());
  for (const Row& r : runner.rows()) {
    if (!r.measured.ok() && r.measured.error().code != "skipped") return 1;
  }
  return 0;
}
