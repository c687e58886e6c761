// In-memory Storage for unit tests of the store service, with fault
// injection. Not durable; never used by the daemon.
#pragma once

#include <map>
#include <mutex>

#include "server/storage.h"

namespace fence::store {

class MemoryStorage final : public Storage {
 public:
  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key,
                                              ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(std::string(key));
    if (it == records_.end()) return std::optional<KeyRecord>();
    return std::optional<KeyRecord>(it->second);
  }

  Result<std::optional<KeyRecord>> LoadScope(std::string_view name,
                                             ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    auto it = scopes_.find(std::string(name));
    if (it == scopes_.end()) return std::optional<KeyRecord>();
    return std::optional<KeyRecord>(it->second);
  }

  Result<std::optional<StoredObject>> LoadObject(
      std::string_view key, ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(std::string(key));
    if (it == records_.end() || !it->second.has_object) {
      return std::optional<StoredObject>();
    }
    return std::optional<StoredObject>(
        StoredObject{it->second, bodies_[std::string(key)]});
  }

  Status CommitGroup(const std::vector<KeyMutation>& group) override {
    std::lock_guard lock(mu_);
    ++commits_;
    if (fail_writes_) {
      healthy_ = false;
      return MakeError("storage_error", "injected write failure");
    }
    healthy_ = true;
    for (const auto& [key, mutation, space] : group) {
      if (space == RecordSpace::kScope) {
        scopes_[key] = mutation.record;
        continue;
      }
      records_[key] = mutation.record;
      if (mutation.body_change == BodyChange::kSet) {
        bodies_[key] = mutation.body;
      } else if (mutation.body_change == BodyChange::kErase) {
        bodies_.erase(key);
      }
    }
    return OkStatus();
  }

  bool Healthy() const override {
    std::lock_guard lock(mu_);
    return healthy_;
  }

  void FailWritesForTest(bool fail) {
    std::lock_guard lock(mu_);
    fail_writes_ = fail;
  }
  // Groups committed (each one sync in a real storage).
  int CommitCountForTest() const {
    std::lock_guard lock(mu_);
    return commits_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, KeyRecord> records_;  // GUARDED_BY(mu_)
  std::map<std::string, std::string> bodies_;  // GUARDED_BY(mu_)
  std::map<std::string, KeyRecord> scopes_;    // GUARDED_BY(mu_)
  bool fail_writes_ = false;                   // GUARDED_BY(mu_)
  bool healthy_ = true;                        // GUARDED_BY(mu_)
  int commits_ = 0;                            // GUARDED_BY(mu_)
};

}  // namespace fence::store
