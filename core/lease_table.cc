#include "core/lease_table.h"

#include <algorithm>
#include <cstdio>

namespace fence {

std::string LeaseId::ToString() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(value_));
  return std::string(buf, 16);
}

Result<LeaseId> ParseLeaseId(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return MakeError("bad_lease_id",
                     "the lease id " + why +
                         "; expected the 16 hex digits returned by acquire");
  };
  if (text.size() != 16) {
    return bad("has " + std::to_string(text.size()) + " characters");
  }
  std::uint64_t value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return bad("contains a character that is not a hex digit");
    }
    value = (value << 4) | static_cast<std::uint64_t>(digit);
  }
  if (value == 0) return bad("is zero, which is never issued");
  return LeaseId(value);
}

std::vector<Lease> LeaseTable::ExpireDue() {
  std::vector<Lease> expired;
  const Millis now = clock_.Now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::uint64_t id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = leases_.find(id);
    expired.push_back(std::move(it->second));
    leases_.erase(it);
    const Lease& lease = expired.back();
    LockState& state = locks_.find(lease.name)->second;
    state.holder.reset();
    if (lease.lock_delay > Millis(0)) {
      // Counted from the expiry instant, not from when it was noticed: the
      // old holder's own view of its lease ran out at expires_at at best.
      const Millis until = lease.expires_at + lease.lock_delay;
      state.delay = LockDelay{lease, until};
      delay_ends_.emplace(until, lease.name);
    }
    Forget(lease.name);
  }
  return expired;
}

std::vector<LockDelay> LeaseTable::EndDueDelays() {
  std::vector<LockDelay> ended;
  const Millis now = clock_.Now();
  while (!delay_ends_.empty() && delay_ends_.begin()->first <= now) {
    auto node = delay_ends_.extract(delay_ends_.begin());
    const std::string& name = node.value().second;
    auto it = locks_.find(name);
    ended.push_back(std::move(*it->second.delay));
    it->second.delay.reset();
    Forget(name);
  }
  return ended;
}

std::optional<Millis> LeaseTable::NextExpiry() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

std::optional<Millis> LeaseTable::NextDeadline() const {
  std::optional<Millis> next = NextExpiry();
  if (!delay_ends_.empty() && (!next || delay_ends_.begin()->first < *next)) {
    next = delay_ends_.begin()->first;
  }
  return next;
}

Millis LeaseTable::LockDelayRemaining(std::string_view name) const {
  auto it = locks_.find(name);
  if (it == locks_.end() || !Delayed(it->second)) return Millis(0);
  return it->second.delay->until - clock_.Now();
}

const Lease* LeaseTable::Holder(std::string_view name) const {
  auto it = locks_.find(name);
  if (it == locks_.end() || !it->second.holder) return nullptr;
  return &leases_.at(it->second.holder->value());
}

std::size_t LeaseTable::WaiterCount(std::string_view name) const {
  auto it = locks_.find(name);
  return it == locks_.end() ? 0 : it->second.waiters.size();
}

bool LeaseTable::IsFree(std::string_view name) const {
  auto it = locks_.find(name);
  return it == locks_.end() || (!it->second.holder && !Delayed(it->second) &&
                                it->second.waiters.empty());
}

bool LeaseTable::HasReadyWaiter(std::string_view name) const {
  auto it = locks_.find(name);
  return it != locks_.end() && !it->second.holder && !Delayed(it->second) &&
         !it->second.waiters.empty();
}

std::vector<std::string> LeaseTable::LocksWithWaiters() const {
  std::vector<std::string> names;
  for (const auto& [name, state] : locks_) {
    if (!state.waiters.empty()) names.push_back(name);
  }
  return names;
}

const Waiter* LeaseTable::FirstWaiter(std::string_view name) const {
  auto it = locks_.find(name);
  if (it == locks_.end() || it->second.waiters.empty()) return nullptr;
  return &it->second.waiters.front();
}

Result<Lease> LeaseTable::Install(std::string_view name, std::string owner,
                                  Millis ttl, LeaseId id, Token token,
                                  Millis lock_delay) {
  if (leases_.contains(id.value())) {
    return MakeError("duplicate_lease",
                     "lease id " + id.ToString() + " is already in use");
  }
  Lease lease{std::string(name), std::move(owner), token, id, ttl, EndOfTtlFromNow(ttl),
              lock_delay};
  auto it = locks_.find(name);
  if (it == locks_.end()) it = locks_.emplace(std::string(name), LockState{}).first;
  if (auto& delay = it->second.delay) {
    // Over (callers check Delayed) but not yet reported by EndDueDelays:
    // drop it, or its end would later cut short a delay of this lease.
    delay_ends_.erase({delay->until, std::string(name)});
    delay.reset();
  }
  it->second.holder = id;
  deadlines_.emplace(lease.expires_at, id.value());
  leases_.emplace(id.value(), lease);
  return lease;
}

Result<Lease> LeaseTable::Grant(std::string_view name, std::string owner,
                                Millis ttl, LeaseId id, Token token,
                                Millis lock_delay) {
  if (const Millis delay = LockDelayRemaining(name); delay > Millis(0)) {
    return MakeError("held",
                     "lock '" + std::string(name) +
                         "' is in its lock-delay after its last lease expired",
                     {{"lock_delay_remaining_ms", delay.count()}});
  }
  if (!IsFree(name)) {
    return MakeError("held", "lock '" + std::string(name) +
                                 "' is held or has waiters queued");
  }
  return Install(name, std::move(owner), ttl, id, token, lock_delay);
}

Result<Handoff> LeaseTable::GrantToHead(std::string_view name, LeaseId id,
                                        Token token) {
  if (!HasReadyWaiter(name)) {
    return MakeError("held", "lock '" + std::string(name) +
                                 "' is held or has no waiter");
  }
  if (leases_.contains(id.value())) {
    return MakeError("duplicate_lease",
                     "lease id " + id.ToString() + " is already in use");
  }
  auto& waiters = locks_.find(name)->second.waiters;
  Waiter waiter = std::move(waiters.front());
  waiters.pop_front();
  --total_waiters_;
  auto lease = Install(name, waiter.owner, waiter.ttl, id, token, waiter.lock_delay);
  return Handoff{std::move(waiter), std::move(*lease)};
}

Error LeaseTable::Broken(LeaseId id, nlohmann::json details) const {
  details["lease_id"] = id.ToString();
  return MakeError("lease_broken",
                   "lease " + id.ToString() +
                       " was broken by an operator (POST .../break): you no "
                       "longer hold the lock; stop acting as its holder and "
                       "acquire it again",
                   std::move(details));
}

Result<Lease> LeaseTable::KeepAlive(LeaseId id) {
  if (broken_.contains(id.value())) return Broken(id, nlohmann::json::object());
  auto it = leases_.find(id.value());
  if (it == leases_.end() || Dead(it->second)) {
    return MakeError("unknown_lease",
                     "lease " + id.ToString() +
                         " is not live: it expired, was released, or was "
                         "never granted by this lockd (leases do not survive "
                         "a restart); acquire the lock again",
                     {{"lease_id", id.ToString()}});
  }
  Lease& lease = it->second;
  deadlines_.erase({lease.expires_at, id.value()});
  lease.expires_at = EndOfTtlFromNow(lease.ttl);
  deadlines_.emplace(lease.expires_at, id.value());
  return lease;
}

Error LeaseTable::NotHolder(std::string_view name, const Lease& holder) const {
  return MakeError("not_holder",
                   "lock '" + std::string(name) +
                       "' is held by another lease; only its holder may "
                       "release it",
                   {{"name", std::string(name)},
                    {"holder", holder.owner},
                    {"token", holder.token.value()},
                    {"expires_in_ms", ExpiresIn(holder).count()}});
}

Result<Lease> LeaseTable::Release(std::string_view name, LeaseId id) {
  const Lease* holder = Holder(name);
  if (holder != nullptr && holder->id != id) return NotHolder(name, *holder);
  if (broken_.contains(id.value())) return Broken(id, {{"name", std::string(name)}});
  auto it = leases_.find(id.value());
  if (it == leases_.end() || Dead(it->second)) {
    return MakeError("unknown_lease",
                     "lease " + id.ToString() +
                         " is not live: it expired, was released, or was "
                         "never granted by this lockd",
                     {{"name", std::string(name)}, {"lease_id", id.ToString()}});
  }
  if (holder == nullptr) {
    return MakeError("not_holder",
                     "lease " + id.ToString() + " holds lock '" +
                         it->second.name + "', not '" + std::string(name) + "'",
                     {{"name", std::string(name)},
                      {"lease_name", it->second.name}});
  }
  return Remove(it);
}

Lease LeaseTable::Remove(std::unordered_map<std::uint64_t, Lease>::iterator it) {
  Lease removed = std::move(it->second);
  leases_.erase(it);
  deadlines_.erase({removed.expires_at, removed.id.value()});
  locks_.find(removed.name)->second.holder.reset();
  Forget(removed.name);
  return removed;
}

Result<Lease> LeaseTable::Break(std::string_view name) {
  const Lease* holder = Holder(name);
  // A lease past its deadline is not live even before ExpireDue reports it;
  // breaking it would skip the lock-delay its expiry owes.
  if (holder == nullptr || Dead(*holder)) {
    return MakeError("not_held",
                     "lock '" + std::string(name) +
                         "' has no live lease to break",
                     {{"name", std::string(name)},
                      {"lock_delay_remaining_ms", LockDelayRemaining(name).count()}});
  }
  Lease broken = Remove(leases_.find(holder->id.value()));
  broken_.insert(broken.id.value());
  broken_order_.push_back(broken.id.value());
  if (broken_order_.size() > kBrokenRemembered) {
    broken_.erase(broken_order_.front());
    broken_order_.pop_front();
  }
  return broken;
}

void LeaseTable::Enqueue(std::string_view name, Waiter waiter) {
  auto it = locks_.find(name);
  if (it == locks_.end()) it = locks_.emplace(std::string(name), LockState{}).first;
  it->second.waiters.push_back(std::move(waiter));
  ++total_waiters_;
}

bool LeaseTable::RemoveWaiter(std::string_view name, WaiterId id) {
  auto it = locks_.find(name);
  if (it == locks_.end()) return false;
  auto& waiters = it->second.waiters;
  auto w = std::find_if(waiters.begin(), waiters.end(),
                        [&](const Waiter& x) { return x.id == id; });
  if (w == waiters.end()) return false;
  waiters.erase(w);
  --total_waiters_;
  Forget(name);
  return true;
}

Millis LeaseTable::ExpiresIn(const Lease& lease) const {
  return std::max(Millis(0), lease.expires_at - clock_.Now());
}

void LeaseTable::Forget(std::string_view name) {
  auto it = locks_.find(name);
  if (it != locks_.end() && !it->second.holder && !it->second.delay &&
      it->second.waiters.empty()) {
    locks_.erase(it);
  }
}

}  // namespace fence
