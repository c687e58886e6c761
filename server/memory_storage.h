// In-memory Storage for unit tests of the store service and the fuzz
// targets, with fault injection. Not durable; never used by the daemon.
// Records are kept encoded, as the bytes RocksDB would hold, so that a
// record the encoder cannot write or read back fails here as on disk.
#pragma once

#include <map>
#include <mutex>

#include "core/key_record.h"
#include "server/storage.h"

namespace fence::store {

class MemoryStorage final : public Storage {
 public:
  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key,
                                              ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    return Decoded(records_, key);
  }

  Result<std::optional<KeyRecord>> LoadScope(std::string_view name,
                                             ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    return Decoded(scopes_, name);
  }

  Result<std::optional<StoredObject>> LoadObject(
      std::string_view key, ReadFrom /*from*/) override {
    std::lock_guard lock(mu_);
    auto record = Decoded(records_, key);
    if (!record.ok()) return record.error();
    if (!*record || !(*record)->has_object) return std::optional<StoredObject>();
    return std::optional<StoredObject>(StoredObject{**record, bodies_[std::string(key)]});
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
        scopes_[key] = EncodeKeyRecord(mutation.record);
        continue;
      }
      records_[key] = EncodeKeyRecord(mutation.record);
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
  static Result<std::optional<KeyRecord>> Decoded(const std::map<std::string, std::string>& in,
                                                  std::string_view key) {
    auto it = in.find(std::string(key));
    if (it == in.end()) return std::optional<KeyRecord>();
    auto record = DecodeKeyRecord(it->second);
    if (!record.ok()) return record.error();
    return std::optional<KeyRecord>(std::move(*record));
  }

  mutable std::mutex mu_;
  std::map<std::string, std::string> records_;  // GUARDED_BY(mu_), encoded
  std::map<std::string, std::string> bodies_;   // GUARDED_BY(mu_)
  std::map<std::string, std::string> scopes_;   // GUARDED_BY(mu_), encoded
  bool fail_writes_ = false;                   // GUARDED_BY(mu_)
  bool healthy_ = true;                        // GUARDED_BY(mu_)
  int commits_ = 0;                            // GUARDED_BY(mu_)
};

}  // namespace fence::store
