// LockBackend over etcd's v3 JSON gateway (POST /v3/..., keys and values
// base64), through the one HTTP client; no gRPC.
//
//   lock key    /fence-locks/<lock>, value = owner, attached to our lease
//   acquire     txn: if create_revision(key) == 0 then put(key, lease) and
//               range(key) else range(key); waits by watching the key for its
//               DELETE event (from the revision after the failed txn, so no
//               deletion is missed), never by polling
//   token       the lock key's create_revision: a revision of the Raft log,
//               so every later creation of the key has a higher one
//   TTL         etcd leases are whole seconds with a server minimum (about
//               1.5 election timeouts, rounded up: 2 s on a default etcd); the
//               requested TTL is rounded up and the LockGrant reports what etcd
//               granted
//   endpoints   base URLs (http://HOST:PORT); a transport failure or 5xx moves
//               to the next one, with bounded retries and capped backoff
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeEtcdBackend(
    const std::vector<std::string>& endpoints);

// The key etcd stores lock `lock` under.
std::string EtcdLockKey(const std::string& lock);

}  // namespace fence::client
