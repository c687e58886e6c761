#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>& endpoints);

}  // namespace fence::client
