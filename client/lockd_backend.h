// LockBackend over fence-lockd's HTTP API (DESIGN.md, "fence-lockd HTTP
// API"). Acquire long-polls with wait_ms; a keep-alive answered 404 means the
// lease is gone ("lease_lost").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

// `endpoints` must be exactly one base URL (http://HOST:PORT). More than one
// is refused: two lockds are two independent counters, never a failover pair
// (DESIGN.md); high availability comes from the etcd and ZooKeeper backends.
Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>& endpoints);

// Maps one answer of POST /v1/locks/{name}/acquire to a LockGrant or an Error
// with the LockBackend error codes. Pure, for unit tests.
Result<LockGrant> InterpretAcquireResponse(int http_status, const std::string& body,
                                       const std::string& lock,
                                       const std::string& owner);

}  // namespace fence::client
