// Starts a real highly available PostgreSQL 15 pair under Patroni on etcd,
// on free loopback ports in a directory of its own, for the failover test
// and for trying the topology by hand: one etcd (LaunchLockService), a
// primary and a synchronous standby (Patroni's synchronous_mode_strict: a
// commit is acknowledged only once both nodes have it). Patroni and
// PostgreSQL run as the unprivileged `postgres` user when we are root
// (PostgreSQL refuses root). Everything stops when the object is destroyed.
//
// Clients find the primary without asking Patroni: LibpqUri() lists both
// nodes with target_session_attrs=read-write, so libpq connects to whichever
// node accepts writes, and a client that reconnects after a failover lands
// on the promoted standby.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"
#include "core/clock.h"
#include "core/result.h"
#include "tools/services/lock_services.h"

namespace fence::tools {

// Patroni's timing, in whole seconds as Patroni takes them. Patroni's rule:
// loop_wait + 2 * retry_timeout <= ttl. Patroni 3.0.2 (Debian bookworm)
// accepts a ttl below 20 s; later releases document 20 s as the minimum.
struct PatroniTiming {
  int ttl_s = 8;            // the leader key's TTL in etcd
  int loop_wait_s = 1;      // seconds between two HA cycles
  int retry_timeout_s = 3;  // etcd and PostgreSQL retries before demoting
};

struct PatroniOptions {
  std::string dir;  // the cluster's folder is made in here (kept after Stop)
  PatroniTiming timing;
  // How commits are replicated (Patroni's synchronous_mode settings).
  enum class Replication {
    // synchronous_mode and synchronous_mode_strict: a commit is acknowledged
    // only once both nodes have it, always. After a failover nothing is
    // acknowledged until the old primary is back as the standby.
    kStrict,
    // synchronous_mode only: the same while both nodes run, and Patroni
    // promotes only the synchronous standby; with the standby gone, the
    // primary acknowledges commits it alone holds.
    kSynchronous,
    // Patroni's default asynchronous replication, which may lose
    // acknowledged commits at a failover: a control run only, to show the
    // checker catches that.
    kAsynchronous,
  };
  Replication replication = Replication::kStrict;
  Millis ready_timeout{90000};  // per node: bootstrap, or base backup and sync
};

// "strict", "synchronous", "asynchronous", for logs and reports.
std::string_view ReplicationName(PatroniOptions::Replication replication);

struct PatroniNode {
  std::string name;      // "pg0", "pg1"
  std::string dir;       // the node's folder (config, log, data/)
  std::string data_dir;  // PostgreSQL's PGDATA
  int pg_port = 0;
  int rest_port = 0;     // Patroni's REST API
  std::unique_ptr<ChildProcess> patroni;
};

class PatroniCluster {
 public:
  // Returns once node 0 leads and node 1 is its synchronous standby (in
  // asynchronous mode: a streaming replica). Errors say which node did not get there,
  // with the end of its Patroni log.
  static Result<std::unique_ptr<PatroniCluster>> Launch(const PatroniOptions& options);
  ~PatroniCluster();  // Stop()
  PatroniCluster(const PatroniCluster&) = delete;
  PatroniCluster& operator=(const PatroniCluster&) = delete;

  // postgresql://postgres@127.0.0.1:P0,127.0.0.1:P1/postgres?target_session_attrs=read-write&...
  std::string LibpqUri() const;
  const std::vector<PatroniNode>& nodes() const { return nodes_; }
  const std::string& etcd_endpoint() const { return etcd_.endpoints.front(); }
  const PatroniOptions& options() const { return options_; }

  // The node whose Patroni answers GET /primary with 200, or an error
  // ("unavailable") when none does right now.
  Result<int> LeaderIndex() const;
  // Whether node `index`'s Patroni answers 200 to GET `path` (/primary,
  // /sync, /replica, /health): Patroni's own view of the node's role.
  bool NodeAnswers(int index, std::string_view path) const;
  // Waits until some node other than `old_leader` is the leader.
  Result<int> WaitForNewLeader(int old_leader, Millis timeout) const;
  // The running postmaster of node `index`, from its postmaster.pid, checked
  // against /proc (a stale file's pid may belong to another process by now).
  Result<pid_t> PostmasterPid(int index) const;

  // Kills every process of the cluster (Patroni's process groups, then every
  // postmaster with its children: Patroni starts the postmaster in a session
  // of its own) and stops etcd. Idempotent.
  void Stop();

 private:
  PatroniCluster() = default;
  Status StartNode(int index);
  void KillNode(PatroniNode& node);

  PatroniOptions options_;
  std::string root_;  // the cluster's folder, owned by the postgres user
  LaunchedLockService etcd_;
  std::vector<PatroniNode> nodes_;
  std::vector<std::string> data_dirs_;  // of every start attempt, for Stop
  std::string scope_;                   // Patroni's cluster name in etcd
  int bootstrap_attempts_ = 0;
};

}  // namespace fence::tools
