// The peers of one bench run, started and prepared (Redis's scripts loaded,
// PostgreSQL's table made, etcd's lock key written, fence-store's stale keys
// fenced), and the drivers of the clients that are not wrk: redis-benchmark,
// pgbench, fio; plus the wrk scripts of the HTTP workloads.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "tools/bench/load.h"
#include "tools/bench/peers.h"

namespace fence::tools::bench {

struct Peers {
  std::optional<Peer> store, redis, postgres, etcd, nginx, lockd;
  // Three fence-store processes on the PostgreSQL peer's server.
  std::optional<Peer> store_pg;
  std::string redis_sha;        // the fenced set, value from the client
  std::string redis_built_sha;  // the fenced set, value built by the script
  std::string etcd_compare;     // the txn's guard on the lock key's creation
};

// Keys fenced at 2 that the stale PUTs (token 1) go to.
constexpr int kStaleKeys = 1000;

// Starts and prepares every peer under `dir`; one that cannot start or be
// prepared is reported on stdout ("NAME: not measured: why") and left empty.
Peers StartPeers(const std::string& dir);

// Keys per workload: enough to spread writes, few enough for 1 MiB bodies.
int KeysFor(std::size_t body);

// A wrk script sending `method` to PATH_PREFIX + a random key in [1, keys]
// (key 1 when `hot`), with `headers` (Lua table fields) and a `body`-byte
// body.
std::string KeyedLua(const std::string& method, const std::string& path_prefix, int keys,
                     std::size_t body, const std::string& headers, bool hot = false);
// A wrk script of etcd puts (empty `txn_compare`) or txns guarded by it.
std::string EtcdLua(int keys, std::size_t body, const std::string& txn_compare);

// Values redis-benchmark can pass on its command line (Linux limits one
// argument to 128 KiB); larger ones are built by the script.
constexpr std::size_t kRedisArgvLimit = 64 * 1024;
// redis-benchmark EVALSHA of the fenced set at `c` connections: a short
// probe finds the rate, then a request count that lasts about `duration`.
Result<Measured> RedisFencedSet(const Peers& p, int c, std::size_t body, Millis duration,
                                bool hot);
// pgbench -M prepared of the conditional upsert; p50/p99 from its --log.
Result<Measured> PostgresUpsert(const Peers& p, int c, std::size_t body, Millis duration);
// fio: 256-byte writes each followed by fdatasync, one job, in `dir`.
Result<Measured> FioFsync(const std::string& dir, Millis duration);

}  // namespace fence::tools::bench
