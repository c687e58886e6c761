// The naive arrangement of the partition experiment, and only of it: a
// primary lock server and a standby the client falls back to when the
// primary cannot be reached, each with its own token counter. Many teams run
// this; the experiment shows why it is unsafe (two leaders at once, tokens
// the store cannot order). It is deliberately not part of the lockd backend.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "client/lock_backend.h"

namespace fence::tools::partition {

class FallbackLockBackend final : public client::LockBackend {
 public:
  FallbackLockBackend(std::unique_ptr<client::LockBackend> primary, std::string primary_name,
                      std::unique_ptr<client::LockBackend> standby, std::string standby_name);

  // The arrangement presents itself as one lock service of the primary's
  // kind; that is exactly the illusion that makes it unsafe.
  std::string_view kind() const override { return primary_->kind(); }

  // Asks the primary; only when it is unavailable (not when it answers
  // "held") asks the standby, and logs `lock_fallback`.
  Result<client::LockGrant> Acquire(const std::string& lock, const std::string& owner, Millis ttl,
                        Millis wait) override;
  // Renewal and release go to the server that granted the lease.
  Status KeepAlive(Millis timeout) override;
  Status Release() override;

  // "primary", "standby" or "" (nothing held): which server granted.
  std::string granted_by() const;

 private:
  client::LockBackend* Active() const;

  std::unique_ptr<client::LockBackend> primary_;
  std::unique_ptr<client::LockBackend> standby_;
  const std::string primary_name_;
  const std::string standby_name_;
  mutable std::mutex mu_;
  client::LockBackend* active_ = nullptr;  // GUARDED_BY(mu_)
};

}  // namespace fence::tools::partition
