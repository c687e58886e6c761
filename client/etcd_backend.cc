// PLACEHOLDER until the etcd backend lands: replace this whole file.
#include "client/etcd_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeEtcdBackend(
    const std::vector<std::string>&) {
  return MakeError("unavailable", "the etcd backend is not built yet");
}

}  // namespace fence::client
