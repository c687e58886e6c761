// LockBackend over ZooKeeper with the C client (zookeeper_mt), following the
// lock recipe of the ZooKeeper documentation:
//
//   session     one ZooKeeper session per backend, session timeout = the
//               lease TTL (the server clamps it to [2, 20] x tickTime unless
//               its config widens the range; the LockGrant reports the negotiated
//               timeout)
//   acquire     an ephemeral sequential znode /fence-locks/<lock>/lock-<session>-N
//               holding the owner; the lowest sequence holds the lock; a
//               waiter watches only its predecessor (no herd effect)
//   token       the lock znode's czxid: the zxid of the transaction that
//               created it, assigned by the leader in Zab order, so a later
//               holder's znode always has a higher one
//   lost        session expiry is the loss of the lock ("lease_lost"); after
//               a connection loss the session may still be alive, so
//               KeepAlive answers "unavailable" until either the connection
//               is back or the session timeout has passed since it was lost
//   endpoints   host:port strings (a leading zk:// or tcp:// is accepted)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/lock_backend.h"

namespace fence::client {

Result<std::unique_ptr<LockBackend>> MakeZooKeeperBackend(
    const std::vector<std::string>& endpoints);

}  // namespace fence::client
