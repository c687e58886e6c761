// PLACEHOLDER until the zookeeper backend lands: replace this whole file.
#include "client/zookeeper_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeZooKeeperBackend(
    const std::vector<std::string>&) {
  return MakeError("unavailable", "the zookeeper backend is not built yet");
}

}  // namespace fence::client
