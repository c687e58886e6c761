// PLACEHOLDER until the backends work lands: replace this whole file.
#include "client/lock_service.h"

namespace fence::client {

Result<LockService> StartLockService(std::string_view kind,
                                     const LockServiceOptions&) {
  return MakeError("unavailable",
                   "starting " + std::string(kind) + " is not built yet");
}

}  // namespace fence::client
