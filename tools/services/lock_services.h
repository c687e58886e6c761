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
  std::string lockd_token_key_file;  // fence-lockd --token-key-file; empty: unsigned
};

struct LaunchedLockService {
  std::string kind;                    // "lockd", "etcd", "zookeeper"
  std::vector<std::string> endpoints;  // what --lock-endpoints takes
  std::vector<std::unique_ptr<ChildProcess>> processes;
};

// kind is "lockd", "etcd" or "zookeeper". Returns once the service answers
// requests; errors say which binary failed and include its output.
Result<LaunchedLockService> LaunchLockService(std::string_view kind,
                                     const LaunchOptions& options);

}  // namespace fence::tools
