#include "tools/bench/drivers.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client/store_client.h"
#include "common/http_client.h"
#include "common/process.h"
#include "core/base64.h"

namespace fence::tools::bench {
namespace {

namespace fs = std::filesystem;

Result<std::string> Run(std::vector<std::string> argv, Millis timeout) {
  auto ran = RunToCompletion({std::move(argv), "", {}}, timeout);
  if (!ran.ok()) return ran.error();
  if (ran->exit_code != 0) return MakeError("command_failed", ran->Output().substr(0, 600));
  return ran->Output();
}

std::string Tool(const char* name) { return FindProgram(name).value_or(name); }

// Compares the token with the key's fence and sets both, as a fence-store
// PUT does: refuses a lower token, accepts an equal or higher one.
constexpr const char* kRedisFencedSet =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local t = tonumber(ARGV[1]) "
    "if t < f then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[2]) return 1";
// The same with a value of ARGV[2] bytes built here: Redis replicates a
// script by its effects, so the AOF still gets (and fsyncs) every byte.
constexpr const char* kRedisFencedSetBuilt =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local t = tonumber(ARGV[1]) "
    "if t < f then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1]) "
    "redis.call('SET', KEYS[2], string.rep('x', tonumber(ARGV[2]))) return 1";

Result<std::string> LoadRedisScript(const Peers& p, const char* script) {
  auto sha = Run({Tool("redis-cli"), "-p", std::to_string(p.redis->port), "SCRIPT", "LOAD",
                  script},
                 Millis(10000));
  if (!sha.ok()) return sha.error();
  return sha->substr(0, sha->find('\n'));
}

Status PrepareRedis(Peers& p) {
  auto sha = LoadRedisScript(p, kRedisFencedSet);
  if (!sha.ok()) return sha.error();
  auto built = LoadRedisScript(p, kRedisFencedSetBuilt);
  if (!built.ok()) return built.error();
  p.redis_sha = *sha;
  p.redis_built_sha = *built;
  return OkStatus();
}

// STORAGE EXTERNAL: large bodies go out of line uncompressed, so that the
// server-built body (repeat) costs its full size on disk as a client's would.
constexpr const char* kCreateObjects =
    "CREATE TABLE objects (key int PRIMARY KEY, token bigint NOT NULL, body text NOT NULL); "
    "ALTER TABLE objects ALTER COLUMN body SET STORAGE EXTERNAL";

Status PreparePostgres(const Peers& p) {
  auto made = Run({Tool("psql"), "-h", "127.0.0.1", "-p", std::to_string(p.postgres->port), "-U",
                   "postgres", "-c", kCreateObjects},
                  Millis(30000));
  return made.ok() ? OkStatus() : Status(made.error());
}

Status PrepareEtcd(Peers& p) {
  const nlohmann::json put = {{"key", Base64Encode("bench-lock")},
                              {"value", Base64Encode("holder")}};
  auto answer = net::Call(net::JsonCall(net::http::verb::post, p.etcd->url + "/v3/kv/put", put));
  if (!answer.ok()) return answer.error();
  const auto j = nlohmann::json::parse(answer->body(), nullptr, false);
  if (j.is_discarded() || !j.contains("header")) {
    return MakeError("bad_output", "etcd put answered " + answer->body());
  }
  const std::string revision = j["header"].value("revision", "0");
  p.etcd_compare = R"({"key":")" + Base64Encode("bench-lock") +
                   R"(","result":"EQUAL","target":"CREATE","create_revision":")" + revision +
                   R"("})";
  return OkStatus();
}

Status FenceStaleKeys(const Peers& p) {
  client::StoreClient store(p.store->url);
  for (int k = 1; k <= kStaleKeys; ++k) {
    auto raised = store.RaiseFence("stale/" + std::to_string(k), Token(2));
    if (!raised.ok()) return raised.error();
  }
  return OkStatus();
}

void Keep(const char* name, Result<Peer> started, std::optional<Peer>& slot) {
  if (started.ok()) {
    slot = std::move(*started);
  } else {
    std::printf("%s: not measured: %s\n", name, started.error().message.c_str());
  }
}

void Prepared(const char* name, const Status& status, std::optional<Peer>& slot) {
  if (status.ok()) return;
  std::printf("%s: not measured: %s\n", name, status.error().message.c_str());
  slot.reset();
}

// The p50 and p99 of every pgbench log file starting with `prefix`, which
// are removed after reading.
void AddPgbenchPercentiles(const std::string& prefix, Measured& measured) {
  const fs::path base(prefix);
  std::string log;
  for (const auto& entry : fs::directory_iterator(base.parent_path())) {
    if (entry.path().filename().string().rfind(base.filename().string() + ".", 0) != 0) continue;
    std::ifstream in(entry.path());
    log += std::string(std::istreambuf_iterator<char>(in), {});
    fs::remove(entry.path());
  }
  auto percentiles = ParsePgbenchLog(log);
  if (!percentiles.ok()) return;
  measured.p50_ms = percentiles->p50_ms;
  measured.p99_ms = percentiles->p99_ms;
}

}  // namespace

Peers StartPeers(const std::string& dir) {
  Peers p;
  Keep("fence-store", StartFenceStore(dir + "/store"), p.store);
  Keep("redis", StartRedis(dir + "/redis"), p.redis);
  Keep("postgresql", StartPostgres(dir + "/postgres"), p.postgres);
  Keep("etcd", StartEtcd(dir + "/etcd"), p.etcd);
  Keep("nginx", StartNginx(dir + "/nginx"), p.nginx);
  Keep("fence-lockd", StartFenceLockd(dir + "/lockd"), p.lockd);
  if (p.redis) Prepared("redis", PrepareRedis(p), p.redis);
  if (p.postgres) Prepared("postgresql", PreparePostgres(p), p.postgres);
  if (p.etcd) Prepared("etcd", PrepareEtcd(p), p.etcd);
  if (p.store) Prepared("fence-store", FenceStaleKeys(p), p.store);
  if (p.postgres) {
    Keep("fence-store-pg", StartFenceStoresOnPostgres(*p.postgres->postgres, dir + "/store-pg", 3),
         p.store_pg);
  }
  return p;
}

int KeysFor(std::size_t body) { return body >= (1u << 20) ? 64 : 1000; }

std::string KeyedLua(const std::string& method, const std::string& path_prefix, int keys,
                     std::size_t body, const std::string& headers, bool hot) {
  const std::string key = hot ? "1" : "math.random(1, " + std::to_string(keys) + ")";
  return "local body = string.rep('x', " + std::to_string(body) + ")\n" +
         "request = function()\n  local k = " + key + "\n  return wrk.format('" + method +
         "', '" + path_prefix + "' .. k, {" + headers + "}, " +
         (method == "GET" ? "nil" : "body") + ")\nend\n";
}

std::string EtcdLua(int keys, std::size_t body, const std::string& txn_compare) {
  // The gateway wants base64 keys and values: the keys are listed, the
  // value is 'x' * body ("xxx" is "eHh4").
  std::string lua = "local keys = {";
  for (int k = 1; k <= keys; ++k) lua += "'" + Base64Encode("bench/" + std::to_string(k)) + "',";
  lua += "}\nlocal value = string.rep('eHh4', " + std::to_string((body + 2) / 3) + ")\n";
  lua += "request = function()\n  local key = keys[math.random(1, #keys)]\n";
  const std::string put = "'\"key\":\"' .. key .. '\",\"value\":\"' .. value .. '\"'";
  if (txn_compare.empty()) {
    lua += "  local b = '{' .. " + put + " .. '}'\n" +
           "  return wrk.format('POST', '/v3/kv/put', {['Content-Type']='application/json'}, b)\n";
  } else {
    lua += "  local b = '{\"compare\":[" + txn_compare + "],\"success\":[{\"requestPut\":{' .. " +
           put + " .. '}}]}'\n" +
           "  return wrk.format('POST', '/v3/kv/txn', {['Content-Type']='application/json'}, b)\n";
  }
  return lua + "end\n";
}

Result<Measured> RedisFencedSet(const Peers& p, int c, std::size_t body, Millis duration,
                                bool hot) {
  const bool built = body > kRedisArgvLimit;
  auto run = [&](long requests) -> Result<Measured> {
    auto out = Run({Tool("redis-benchmark"), "-h", "127.0.0.1", "-p", std::to_string(p.redis->port),
                    "-c", std::to_string(c), "-n", std::to_string(requests), "-r", "1000", "--csv",
                    "EVALSHA", built ? p.redis_built_sha : p.redis_sha, "2",
                    hot ? "fence:hot" : "fence:__rand_int__", hot ? "obj:hot" : "obj:__rand_int__",
                    "1", built ? std::to_string(body) : std::string(body, 'x')},
                   duration * 10 + Millis(120000));
    if (!out.ok()) return out.error();
    return ParseRedisBenchmarkCsv(*out);
  };
  // redis-benchmark runs a count, not a time.
  auto probe = run(std::max(50, 2 * c));
  if (!probe.ok()) return probe.error();
  const double seconds = static_cast<double>(duration.count()) / 1000;
  return run(std::clamp<long>(static_cast<long>(probe->rate * seconds), std::max(100, 2 * c), 20000000));
}

Result<Measured> PostgresUpsert(const Peers& p, int c, std::size_t body, Millis duration) {
  const std::string script = p.postgres->dir + "/upsert.sql";
  std::ofstream(script)
      << "\\set k random(1, " << KeysFor(body) << ")\n"
      << "INSERT INTO objects (key, token, body) VALUES (:k, 1, repeat('x', " << body
      << ")) ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, body = EXCLUDED.body "
         "WHERE objects.token <= EXCLUDED.token;\n";
  const std::string log_prefix =
      p.postgres->dir + "/pglog-" + std::to_string(c) + "-" + std::to_string(body);
  auto out = Run({Tool("pgbench"), "-h", "127.0.0.1", "-p", std::to_string(p.postgres->port),
                  "-U", "postgres", "-n", "-M", "prepared", "-c", std::to_string(c), "-j",
                  c < 2 ? "1" : "2", "-T", std::to_string(std::max<long>(1, duration.count() / 1000)),
                  "--log", "--log-prefix=" + log_prefix, "-f", script, "postgres"},
                 duration + Millis(60000));
  if (!out.ok()) return out.error();
  auto measured = ParsePgbench(*out);
  if (measured.ok()) AddPgbenchPercentiles(log_prefix, *measured);
  return measured;
}

Result<Measured> FioFsync(const std::string& dir, Millis duration) {
  auto out = Run({Tool("fio"), "--name=fsync", "--directory=" + dir, "--rw=write", "--bs=256",
                  "--size=64m", "--fdatasync=1", "--time_based",
                  "--runtime=" + std::to_string(std::max<long>(1, duration.count() / 1000)),
                  "--output-format=json"},
                 duration + Millis(60000));
  if (!out.ok()) return out.error();
  return ParseFioJson(*out);
}

}  // namespace fence::tools::bench
