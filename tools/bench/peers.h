// The peers a user would compare fence-store with, each started by the
// bench on free loopback ports in its own scratch directory and stopped
// when the returned object goes away: Redis (AOF, appendfsync always),
// PostgreSQL 15 (fsync on, synchronous_commit on), etcd, nginx (WebDAV PUT
// and static GET), and fence-store and fence-lockd themselves.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/process.h"
#include "core/result.h"
#include "tools/services/postgres.h"

namespace fence::tools::bench {

struct Peer {
  Peer() = default;
  Peer(Peer&&) = default;
  Peer& operator=(Peer&&) = default;
  // SIGTERM, not SIGKILL: nginx's master then stops its workers, which
  // would otherwise outlive it holding our output pipe.
  ~Peer();

  std::string name;
  std::string url;  // http://127.0.0.1:PORT for HTTP peers
  std::vector<std::string> urls;  // every process's URL, when it runs several
  int port = 0;
  std::string dir;
  std::vector<std::unique_ptr<ChildProcess>> processes;
  std::unique_ptr<LaunchedPostgres> postgres;  // the PostgreSQL peer's server
};

Result<Peer> StartFenceStore(const std::string& dir);
// `processes` fence-store processes sharing one database of `pg`
// (--storage postgresql), each on its own port: Peer::urls.
Result<Peer> StartFenceStoresOnPostgres(const LaunchedPostgres& pg, const std::string& dir,
                                        int processes);
Result<Peer> StartRedis(const std::string& dir);
// Runs as the `postgres` user (the server refuses root): `dir` is chowned.
Result<Peer> StartPostgres(const std::string& dir);
Result<Peer> StartEtcd(const std::string& dir);
Result<Peer> StartNginx(const std::string& dir);
Result<Peer> StartFenceLockd(const std::string& dir);

}  // namespace fence::tools::bench
