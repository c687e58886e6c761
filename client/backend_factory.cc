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

}  // namespace fence::client
