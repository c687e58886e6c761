// The one lock interface the worker and the demo use. Three implementations:
// fence-lockd, etcd (v3 JSON gateway) and ZooKeeper. The fencing path (the
// token sent to the store) is the same whichever backend issued the token.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/token.h"

namespace fence::client {

struct LockGrant {
  std::string lock;      // lock name
  std::string owner;     // who holds it
  Token token;           // the fencing token issued with this grant
  std::string lease_id;  // backend's lease/session id, as text
  Millis ttl{0};
  // fence-lockd's "token_signature" over (lock, token) when it signs its
  // grants (docs/signed-tokens.md); empty from etcd and ZooKeeper.
  std::string token_signature;
};

// Error codes shared by every backend:
//   "held"         the lock is held by someone else after waiting (details:
//                  "holder", "expires_in_ms" when the backend knows them)
//   "lease_lost"   the lease expired or the session ended: stop leading now
//   "unavailable"  the lock service could not be reached or answered 5xx
//   "bad_request"  the service refused our request as invalid
// Implementations are thread-safe: the worker renews from its own thread.
class LockBackend {
 public:
  virtual ~LockBackend() = default;

  // "lockd", "etcd" or "zookeeper": names the token source in logs, so
  // tokens from different sources are never compared by accident.
  virtual std::string_view kind() const = 0;

  // Acquires `lock` for `owner` with a lease of `ttl`, waiting up to `wait`
  // while it is held. On success the backend holds the lease until Release,
  // expiry, or a failed KeepAlive.
  virtual Result<LockGrant> Acquire(const std::string& lock, const std::string& owner,
                                Millis ttl, Millis wait) = 0;
  // Renews the current lease; "lease_lost" when it is gone. Returns within
  // about `timeout` (the caller passes the time left on the lease: an answer
  // after that proves nothing); "unavailable" when no answer came in time.
  virtual Status KeepAlive(Millis timeout) = 0;
  // Releases the lock if still held; releasing a lost lease is not an error.
  virtual Status Release() = 0;
};

// Creates a backend by kind ("lockd", "etcd", "zookeeper") for the given
// endpoints (URLs for lockd and etcd, host:port for ZooKeeper).
Result<std::unique_ptr<LockBackend>> MakeLockBackend(
    std::string_view kind, const std::vector<std::string>& endpoints);

}  // namespace fence::client
