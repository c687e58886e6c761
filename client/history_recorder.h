// Records a process's lock and store operations as a history for
// fence-check-history (format in core/history.h): decorators around the real
// LockBackend and ObjectStore, so the worker's code is the same with or
// without a history, and every call it makes is recorded as made.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "client/lock_backend.h"
#include "client/store_client.h"
#include "core/result.h"

namespace fence::client {

// Appends history lines to a file. Each line goes out in one write(2) on an
// O_APPEND descriptor, so several processes may share one file and a line is
// on disk (in the page cache) before the operation's next step: a process
// stopped or killed right after loses nothing it recorded.
class HistoryFile {
 public:
  // Errors have code "history_unavailable" and say why the file cannot open.
  static Result<std::unique_ptr<HistoryFile>> Open(const std::string& path, std::string process);
  ~HistoryFile();
  HistoryFile(const HistoryFile&) = delete;
  HistoryFile& operator=(const HistoryFile&) = delete;

  // Records the invoke of `op` now and returns its id for Complete.
  std::uint64_t Invoke(std::string_view op, nlohmann::json fields);
  // `type` is history::kOk, kFail or kInfo.
  void Complete(std::uint64_t id, std::string_view type, nlohmann::json fields);

 private:
  HistoryFile(int fd, std::string process);
  void Append(nlohmann::json line);

  const int fd_;
  const std::string process_;
  const std::int64_t pid_;
  std::mutex mu_;
  std::uint64_t next_id_ = 0;  // GUARDED_BY(mu_)
  bool warned_ = false;        // GUARDED_BY(mu_): one log line for failed appends
};

class RecordingLockBackend final : public LockBackend {
 public:
  RecordingLockBackend(LockBackend& inner, HistoryFile& history)
      : inner_(inner), history_(history) {}
  std::string_view kind() const override { return inner_.kind(); }
  Result<LockGrant> Acquire(const std::string& lock, const std::string& owner, Millis ttl,
                            Millis wait) override;
  Status KeepAlive(Millis timeout) override;
  Status Release() override;

 private:
  LockBackend& inner_;
  HistoryFile& history_;
  std::mutex mu_;
  std::string lock_;                 // GUARDED_BY(mu_): of the current grant
  std::optional<std::uint64_t> grant_;  // GUARDED_BY(mu_): its token
};

class RecordingObjectStore final : public ObjectStore {
 public:
  RecordingObjectStore(ObjectStore& inner, HistoryFile& history)
      : inner_(inner), history_(history) {}
  Result<PutResult> Put(const std::string& key, const std::string& body,
                        std::optional<Token> token) override;
  Result<PutResult> RaiseFence(const std::string& key, Token token) override;
  // Passed through unrecorded: the history and its checker are per key.
  // The worker raises its keys' fences before its scope's, so a 409 naming
  // a scope's fence names a token some fence of that key carried.
  Result<PutResult> RaiseScope(const std::string& scope, Token token) override {
    return inner_.RaiseScope(scope, token);
  }
  void UseSignedToken(std::optional<SignedToken> signed_token) override {
    inner_.UseSignedToken(std::move(signed_token));
  }

 private:
  Result<PutResult> Record(std::uint64_t id, Result<PutResult> answer);
  ObjectStore& inner_;
  HistoryFile& history_;
};

}  // namespace fence::client
