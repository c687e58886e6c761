#include "client/etcd_backend.h"
#include "client/lock_backend.h"
#include "client/lockd_backend.h"
#include "client/zookeeper_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeLockBackend(
    std::string_view kind, const std::vector<std::string>& endpoints) {
  if (endpoints.empty()) {
    return MakeError("bad_request",
                     "no lock endpoints given; expected at least one, e.g. "
                     "http://127.0.0.1:8081");
  }
  if (kind == "lockd") return MakeLockdBackend(endpoints);
  if (kind == "etcd") return MakeEtcdBackend(endpoints);
  if (kind == "zookeeper") return MakeZooKeeperBackend(endpoints);
  return MakeError("bad_request", "unknown lock backend '" + std::string(kind) +
                                      "'; expected lockd, etcd or zookeeper");
}

Result<std::unique_ptr<LockBackend>> MakeLockBackend(
    std::string_view kind, const std::vector<std::string>& endpoints,
    const LockdOptions& lockd) {
  if (kind == "lockd" && !endpoints.empty()) return MakeLockdBackend(endpoints, lockd);
  if (lockd.lock_delay > Millis(0) && (kind == "etcd" || kind == "zookeeper")) {
    return MakeError("bad_request",
                     "a lock-delay (" + std::to_string(lockd.lock_delay.count()) +
                         " ms) is a fence-lockd feature; the " + std::string(kind) +
                         " backend has no lock-delay and cannot keep the lock from everyone "
                         "after an expiry: use --backend lockd, or no lock-delay",
                     {{"backend", std::string(kind)}, {"lock_delay_ms", lockd.lock_delay.count()}});
  }
  return MakeLockBackend(kind, endpoints);
}

}  // namespace fence::client
