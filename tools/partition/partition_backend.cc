#include "tools/partition/partition_backend.h"

#include "common/logging.h"

namespace fence::tools::partition {

FallbackLockBackend::FallbackLockBackend(std::unique_ptr<client::LockBackend> primary,
                                         std::string primary_name,
                                         std::unique_ptr<client::LockBackend> standby,
                                         std::string standby_name)
    : primary_(std::move(primary)),
      standby_(std::move(standby)),
      primary_name_(std::move(primary_name)),
      standby_name_(std::move(standby_name)) {}

client::LockBackend* FallbackLockBackend::Active() const {
  std::lock_guard guard(mu_);
  return active_;
}

Result<client::LockGrant> FallbackLockBackend::Acquire(const std::string& lock, const std::string& owner,
                                           Millis ttl, Millis wait) {
  auto granted = primary_->Acquire(lock, owner, ttl, wait);
  if (granted.ok()) {
    std::lock_guard guard(mu_);
    active_ = primary_.get();
    return granted;
  }
  if (granted.error().code != "unavailable") return granted;
  // The primary may be down, or only unreachable from here while it still
  // serves others: the client cannot tell, and the naive design assumes down.
  log::Warn("lock_fallback", {{"owner", owner},
                              {"lock", lock},
                              {"from", primary_name_},
                              {"to", standby_name_},
                              {"reason", granted.error().message}});
  auto fallback = standby_->Acquire(lock, owner, ttl, wait);
  if (fallback.ok()) {
    std::lock_guard guard(mu_);
    active_ = standby_.get();
    log::Info("lock_granted_by_standby", {{"owner", owner},
                                          {"lock", lock},
                                          {"server", standby_name_},
                                          {"token", fallback->token.value()}});
  }
  return fallback;
}

Status FallbackLockBackend::KeepAlive(Millis timeout) {
  client::LockBackend* active = Active();
  if (active == nullptr) return MakeError("lease_lost", "no lease is held; acquire first");
  return active->KeepAlive(timeout);
}

Status FallbackLockBackend::Release() {
  client::LockBackend* active = Active();
  if (active == nullptr) return OkStatus();
  Status released = active->Release();
  if (released.ok()) {
    std::lock_guard guard(mu_);
    if (active_ == active) active_ = nullptr;
  }
  return released;
}

std::string FallbackLockBackend::granted_by() const {
  client::LockBackend* active = Active();
  if (active == nullptr) return "";
  return active == primary_.get() ? primary_name_ : standby_name_;
}

}  // namespace fence::tools::partition
