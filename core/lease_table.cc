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
    const std::string& name = expired.back().name;
    locks_.find(name)->second.holder.reset();
    Forget(name);
  }
  return expired;
}

std::optional<Millis> LeaseTable::NextExpiry() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
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
  return it == locks_.end() ||
         (!it->second.holder && it->second.waiters.empty());
}

bool LeaseTable::HasReadyWaiter(std::string_view name) const {
  auto it = locks_.find(name);
  return it != locks_.end() && !it->second.holder &&
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
                                  Millis ttl, LeaseId id, Token token) {
  if (leases_.contains(id.value())) {
    return MakeError("duplicate_lease",
                     "lease id " + id.ToString() + " is already in use");
  }
  Lease lease{std::string(name), std::move(owner), token, id, ttl,
              clock_.Now() + ttl};
  auto it = locks_.find(name);
  if (it == locks_.end()) it = locks_.emplace(std::string(name), LockState{}).first;
  it->second.holder = id;
  deadlines_.emplace(lease.expires_at, id.value());
  leases_.emplace(id.value(), lease);
  return lease;
}

Result<Lease> LeaseTable::Grant(std::string_view name, std::string owner,
                                Millis ttl, LeaseId id, Token token) {
  if (!IsFree(name)) {
    return MakeError("held", "lock '" + std::string(name) +
                                 "' is held or has waiters queued");
  }
  return Install(name, std::move(owner), ttl, id, token);
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
  auto lease = Install(name, waiter.owner, waiter.ttl, id, token);
  return Handoff{std::move(waiter), std::move(*lease)};
}

Result<Lease> LeaseTable::KeepAlive(LeaseId id) {
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
  lease.expires_at = clock_.Now() + lease.ttl;
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
  Lease released = std::move(it->second);
  leases_.erase(it);
  deadlines_.erase({released.expires_at, id.value()});
  locks_.find(name)->second.holder.reset();
  Forget(name);
  return released;
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
  if (it != locks_.end() && !it->second.holder && it->second.waiters.empty()) {
    locks_.erase(it);
  }
}

}  // namespace fence
