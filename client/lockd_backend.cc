// PLACEHOLDER until the lockd backend lands: replace this whole file.
#include "client/lockd_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>&) {
  return MakeError("unavailable", "the lockd backend is not built yet");
}

}  // namespace fence::client
