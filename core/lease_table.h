// The lock/lease state machine of fence-lockd, on an injected clock: grant,
// keep-alive, release, expiry at exactly the TTL, lock-delay after an
// expiry, an operator's break, and FIFO waiters. No I/O, no threads: tokens
// and lease ids are chosen by the caller (the token journal and a random
// source), and the caller serializes every call.
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
  // When the lease ends by expiry (not release, not break), nobody gets the
  // lock during [expires_at, expires_at + lock_delay): a holder that lost
  // its lease without knowing (paused, partitioned) may still be acting on a
  // resource that cannot check fencing tokens; the delay gives it time to
  // notice and stop. Chubby's and Consul's lock-delay.
  Millis lock_delay{0};
};

// A lock kept from everyone after its lease expired.
struct LockDelay {
  Lease expired;  // the lease whose expiry started the delay
  Millis until;   // expired.expires_at + expired.lock_delay
};

using WaiterId = std::uint64_t;

// An acquirer queued behind a holder; the caller keeps whatever it needs to
// answer it (e.g. the pending HTTP response) under the same id.
struct Waiter {
  WaiterId id;
  std::string owner;
  Millis ttl;
  Millis lock_delay{0};  // for the lease it will be granted
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

  // Ends every lock-delay whose end is at or before now and returns them,
  // earliest first. Call right after ExpireDue, so a delay already over when
  // its lease's expiry is noticed starts and ends in the same call.
  std::vector<LockDelay> EndDueDelays();

  // The earliest deadline of any lease, for arming a timer.
  std::optional<Millis> NextExpiry() const;
  // The earliest lease deadline or lock-delay end.
  std::optional<Millis> NextDeadline() const;
  // Time left in `name`'s lock-delay; zero when it has none.
  Millis LockDelayRemaining(std::string_view name) const;

  // The recorded holder of `name`, or nullptr.
  const Lease* Holder(std::string_view name) const;
  std::size_t WaiterCount(std::string_view name) const;
  std::size_t HeldCount() const { return leases_.size(); }
  // Locks in a lock-delay (not yet reported ended by EndDueDelays).
  std::size_t DelayedCount() const { return delay_ends_.size(); }
  std::size_t TotalWaiters() const { return total_waiters_; }

  // True when a newcomer may take `name` now: no holder, no lock-delay and
  // nobody queued ahead of it (waiters are served first come, first served).
  bool IsFree(std::string_view name) const;
  // True when `name` has no holder and no lock-delay but has waiters:
  // GrantToHead applies.
  bool HasReadyWaiter(std::string_view name) const;
  // Every lock that has waiters, e.g. to serve them when a grace period ends.
  std::vector<std::string> LocksWithWaiters() const;
  // The waiter GrantToHead would serve next, or nullptr.
  const Waiter* FirstWaiter(std::string_view name) const;
  bool HasLease(LeaseId id) const { return leases_.contains(id.value()); }

  // Grants `name` to a newcomer. Errors: "held" unless IsFree(name) (with
  // detail lock_delay_remaining_ms during a lock-delay); "duplicate_lease"
  // if `id` is in use.
  Result<Lease> Grant(std::string_view name, std::string owner, Millis ttl,
                      LeaseId id, Token token, Millis lock_delay = Millis(0));
  // Grants `name` to the first waiter in its queue and removes it from the
  // queue. Errors: "held" unless HasReadyWaiter(name); "duplicate_lease".
  Result<Handoff> GrantToHead(std::string_view name, LeaseId id, Token token);

  // Extends the lease to now + its ttl. Errors: "lease_broken" when an
  // operator broke it (remembered for the last kBrokenRemembered breaks);
  // "unknown_lease" when the lease was never granted, was released, or has
  // reached its deadline.
  Result<Lease> KeepAlive(LeaseId id);

  // Frees `name` if `id` is its live lease. Errors: "not_holder" when the
  // lock is held by another lease (details: holder, token, expires_in_ms);
  // "unknown_lease" when the lock is not held and `id` holds nothing else
  // either; "not_holder" when `id` is live but holds a different lock.
  Result<Lease> Release(std::string_view name, LeaseId id);

  // Ends `name`'s live lease at once, with no lock-delay: the operator
  // decided the holder is gone. Its id is refused "lease_broken" from now
  // on. Error "not_held" when `name` has no live lease.
  Result<Lease> Break(std::string_view name);
  static constexpr std::size_t kBrokenRemembered = 1024;

  void Enqueue(std::string_view name, Waiter waiter);
  // Returns false if the waiter is not queued (already granted or removed).
  bool RemoveWaiter(std::string_view name, WaiterId id);

  Millis ExpiresIn(const Lease& lease) const;

 private:
  struct LockState {
    std::optional<LeaseId> holder;
    std::deque<Waiter> waiters;
    std::optional<LockDelay> delay;  // set only while there is no holder
  };

  bool Dead(const Lease& lease) const { return clock_.Now() >= lease.expires_at; }
  // A grant or renewal now ends no earlier than `ttl` after the true time:
  // its holder counts from when it sent the request, which may be within
  // the clock's resolution before the instant Now() reads.
  Millis EndOfTtlFromNow(Millis ttl) const { return clock_.Now() + ttl + clock_.Resolution(); }
  Result<Lease> Install(std::string_view name, std::string owner, Millis ttl,
                        LeaseId id, Token token, Millis lock_delay);
  // Removes a live lease (release or break): no lock-delay follows.
  Lease Remove(std::unordered_map<std::uint64_t, Lease>::iterator it);
  Error Broken(LeaseId id, nlohmann::json details) const;
  bool Delayed(const LockState& state) const {
    return state.delay && clock_.Now() < state.delay->until;
  }
  // Drops the lock's entry once it is neither held, delayed nor awaited, so
  // memory is bounded by live leases, lock-delays and waiters.
  void Forget(std::string_view name);
  Error NotHolder(std::string_view name, const Lease& holder) const;

  const Clock& clock_;
  std::map<std::string, LockState, std::less<>> locks_;
  std::unordered_map<std::uint64_t, Lease> leases_;  // by LeaseId value
  std::set<std::pair<Millis, std::uint64_t>> deadlines_;  // (expires_at, id)
  std::set<std::pair<Millis, std::string>, std::less<>> delay_ends_;  // (until, name)
  // Ids of the last kBrokenRemembered broken leases, oldest first, so their
  // holders learn why their keep-alive fails.
  std::deque<std::uint64_t> broken_order_;
  std::set<std::uint64_t> broken_;
  std::size_t total_waiters_ = 0;
};

}  // namespace fence
