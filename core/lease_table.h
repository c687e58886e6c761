// The lock/lease state machine of fence-lockd, on an injected clock: grant,
// keep-alive, release, expiry at exactly the TTL, and FIFO waiters. No I/O,
// no threads: tokens and lease ids are chosen by the caller (the token
// journal and a random source), and the caller serializes every call.
#pragma once

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/token.h"

namespace fence {

// The capability to renew and release one lease. Whoever knows it may act
// as the holder, so lockd draws it at random and never shows it to others.
class LeaseId {
 public:
  constexpr explicit LeaseId(std::uint64_t value) : value_(value) {}
  constexpr std::uint64_t value() const { return value_; }
  friend constexpr auto operator<=>(LeaseId, LeaseId) = default;
  // Exactly 16 lowercase hex digits, so every id has one spelling.
  std::string ToString() const;

 private:
  std::uint64_t value_;
};

// Accepts exactly 16 hex digits (either case), not all zero. Errors have
// code "bad_lease_id".
Result<LeaseId> ParseLeaseId(std::string_view text);

struct Lease {
  std::string name;   // the lock
  std::string owner;  // who asked, as they named themselves
  Token token;
  LeaseId id;
  Millis ttl;
  // On the table's clock. The lease is dead from this instant on: a lease of
  // ttl T granted at t0 holds during [t0, t0+T) and not at t0+T.
  Millis expires_at;
};

using WaiterId = std::uint64_t;

// An acquirer queued behind a holder; the caller keeps whatever it needs to
// answer it (e.g. the pending HTTP response) under the same id.
struct Waiter {
  WaiterId id;
  std::string owner;
  Millis ttl;
};

// A grant made to the head of a lock's queue.
struct Handoff {
  Waiter waiter;
  Lease lease;
};

class LeaseTable {
 public:
  explicit LeaseTable(const Clock& clock) : clock_(clock) {}

  // Removes every lease whose deadline is at or before now and returns them,
  // earliest deadline first. A lock freed here with waiters queued is ready
  // for GrantToHead at once. Leases past their deadline stay recorded until
  // this reports them (KeepAlive and Release already refuse them), so the
  // caller calls this before acting on the table and when NextExpiry passes.
  std::vector<Lease> ExpireDue();

  // The earliest deadline of any lease, for arming a timer.
  std::optional<Millis> NextExpiry() const;

  // The recorded holder of `name`, or nullptr.
  const Lease* Holder(std::string_view name) const;
  std::size_t WaiterCount(std::string_view name) const;
  std::size_t HeldCount() const { return leases_.size(); }
  std::size_t TotalWaiters() const { return total_waiters_; }

  // True when a newcomer may take `name` now: no holder and nobody queued
  // ahead of it (waiters are served first come, first served).
  bool IsFree(std::string_view name) const;
  // True when `name` has no holder but has waiters: GrantToHead applies.
  bool HasReadyWaiter(std::string_view name) const;
  // Every lock that has waiters, e.g. to serve them when a grace period ends.
  std::vector<std::string> LocksWithWaiters() const;
  // The waiter GrantToHead would serve next, or nullptr.
  const Waiter* FirstWaiter(std::string_view name) const;
  bool HasLease(LeaseId id) const { return leases_.contains(id.value()); }

  // Grants `name` to a newcomer. Errors: "held" unless IsFree(name);
  // "duplicate_lease" if `id` is in use.
  Result<Lease> Grant(std::string_view name, std::string owner, Millis ttl,
                      LeaseId id, Token token);
  // Grants `name` to the first waiter in its queue and removes it from the
  // queue. Errors: "held" unless HasReadyWaiter(name); "duplicate_lease".
  Result<Handoff> GrantToHead(std::string_view name, LeaseId id, Token token);

  // Extends the lease to now + its ttl. Error "unknown_lease" when the lease
  // was never granted, was released, or has reached its deadline.
  Result<Lease> KeepAlive(LeaseId id);

  // Frees `name` if `id` is its live lease. Errors: "not_holder" when the
  // lock is held by another lease (details: holder, token, expires_in_ms);
  // "unknown_lease" when the lock is not held and `id` holds nothing else
  // either; "not_holder" when `id` is live but holds a different lock.
  Result<Lease> Release(std::string_view name, LeaseId id);

  void Enqueue(std::string_view name, Waiter waiter);
  // Returns false if the waiter is not queued (already granted or removed).
  bool RemoveWaiter(std::string_view name, WaiterId id);

  Millis ExpiresIn(const Lease& lease) const;

 private:
  struct LockState {
    std::optional<LeaseId> holder;
    std::deque<Waiter> waiters;
  };

  bool Dead(const Lease& lease) const { return clock_.Now() >= lease.expires_at; }
  Result<Lease> Install(std::string_view name, std::string owner, Millis ttl,
                        LeaseId id, Token token);
  // Drops the lock's entry once it is neither held nor awaited, so memory is
  // bounded by live leases and waiters.
  void Forget(std::string_view name);
  Error NotHolder(std::string_view name, const Lease& holder) const;

  const Clock& clock_;
  std::map<std::string, LockState, std::less<>> locks_;
  std::unordered_map<std::uint64_t, Lease> leases_;  // by LeaseId value
  std::set<std::pair<Millis, std::uint64_t>> deadlines_;  // (expires_at, id)
  std::size_t total_waiters_ = 0;
};

}  // namespace fence
