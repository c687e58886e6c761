// LockBackend over fence-lockd's HTTP API (DESIGN.md, "fence-lockd HTTP
// API"). Acquire long-polls with wait_ms; a keep-alive answered 404 means the
// lease is gone ("lease_lost").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

// What only fence-lockd offers on an acquire.
struct LockdOptions {
  // Sent as lock_delay_ms with every acquire (0: not sent). If the lease
  // then ends by expiry, lockd grants the lock to nobody for this long
  // (docs/lockd.md, "Lock-delay"); lockd refuses more than its
  // --max-lock-delay-ms with 400 bad_request.
  Millis lock_delay{0};
  // Sent as `Authorization: Bearer ...` with every call (a lockd started
  // with --auth-file: a token of role client); empty sends none.
  std::string bearer_token;
};

// The largest lock_delay any lockd accepts (its --max-lock-delay-ms is at
// most 1 hour); fence-worker refuses more before starting.
inline constexpr Millis kMaxLockDelay{3600000};

// `endpoints` must be exactly one base URL (http://HOST:PORT). More than one
// is refused: two lockds are two independent counters, never a failover pair
// (DESIGN.md); high availability comes from the etcd and ZooKeeper backends.
// A lock_delay outside [0, kMaxLockDelay] is refused as bad_request.
Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>& endpoints, const LockdOptions& options = {});

// MakeLockBackend (lock_backend.h) with lockd's options. A lock-delay is a
// fence-lockd feature: etcd and ZooKeeper have none, so for those kinds a
// lock_delay > 0 is refused as bad_request with a sentence saying so, rather
// than silently dropped (a job that relies on a delay must not run without).
Result<std::unique_ptr<LockBackend>> MakeLockBackend(
    std::string_view kind, const std::vector<std::string>& endpoints,
    const LockdOptions& lockd);

// Maps one answer of POST /v1/locks/{name}/acquire to a LockGrant or an Error
// with the LockBackend error codes. Pure, for unit tests.
Result<LockGrant> InterpretAcquireResponse(int http_status, const std::string& body,
                                       const std::string& lock,
                                       const std::string& owner);

}  // namespace fence::client
