// Starts a real, single-node lock service (fence-lockd, etcd or ZooKeeper)
// on free loopback ports, for the demo and the tests. The service stops when
// the returned object is destroyed.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"
#include "core/clock.h"
#include "core/result.h"

namespace fence::tools {

struct LaunchOptions {
  std::string dir;        // data and config live here (created if missing)
  std::string log_path;   // the service's output is appended here if set
  Millis lockd_max_ttl{60000};  // fence-lockd --max-ttl-ms
  // A directory and lockd's TTL cap, the rest left as above: callers stay
  // the same as options are added.
  static LaunchOptions In(std::string dir, Millis max_ttl) {
    LaunchOptions options;
    options.dir = std::move(dir);
    options.lockd_max_ttl = max_ttl;
    return options;
  }
};

struct LaunchedLockService {
  std::string kind;                    // "lockd", "etcd", "zookeeper"
  std::vector<std::string> endpoints;  // what --lock-endpoints takes
  std::vector<std::unique_ptr<ChildProcess>> processes;
};

// kind is "lockd", "etcd" or "zookeeper". Returns once the service answers
// requests; errors say which binary failed and include its output.
// `lockd_args` are added to fence-lockd's command line (e.g. --auth-file
// PATH); the other kinds ignore them.
Result<LaunchedLockService> LaunchLockService(std::string_view kind,
                                     const LaunchOptions& options,
                                     const std::vector<std::string>& lockd_args = {});

}  // namespace fence::tools
