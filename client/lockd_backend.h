// LockBackend over fence-lockd's HTTP API (DESIGN.md, "fence-lockd HTTP
// API"). Acquire long-polls with wait_ms; a keep-alive answered 404 means the
// lease is gone ("lease_lost").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

// `endpoints` are base URLs (http://HOST:PORT). They are tried in order when
// one cannot be reached; lockd itself is one node, so normally there is one.
Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>& endpoints);

// Maps one answer of POST /v1/locks/{name}/acquire to a LockGrant or an Error
// with the LockBackend error codes. Pure, for unit tests.
Result<LockGrant> InterpretAcquireResponse(int http_status, const std::string& body,
                                       const std::string& lock,
                                       const std::string& owner);

}  // namespace fence::client
