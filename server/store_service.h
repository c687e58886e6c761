// The store's state machine: the fence rule applied per key, atomically,
// over a Storage. No HTTP here; handlers map its results to responses.
#pragma once

#include <array>
#include <mutex>
#include <optional>
#include <string>

#include "core/fence_rule.h"
#include "core/token.h"
#include "server/storage.h"

namespace fence::store {

enum class FencingMode { kOn, kOff };

struct WriteReceipt {
  std::string key;
  std::optional<Token> token;          // the token the write carried
  std::optional<Token> highest_token;  // the fence after the write
  std::uint64_t size = 0;
  std::string etag;
  std::uint64_t version = 0;  // the write's place in the key's commit order
};

struct FenceState {
  std::string key;
  Token highest_token;
  std::uint64_t version = 0;  // the key's version (see KeyRecord::version)
};

// Error codes returned by the service (the HTTP layer maps them to status):
//   missing_token (428), bad_token/bad_key (400), stale_token (409, with
//   "key", "token" and "highest_token"), not_found (404),
//   storage_error (507: nothing was acknowledged).
class StoreService {
 public:
  StoreService(Storage& storage, FencingMode mode);

  // Checks a write from its header alone, before its body is read, so that
  // a stale writer is refused without sending its bytes. Advisory only: Put
  // checks again under the key's lock.
  Status Precheck(const std::string& key, std::optional<Token> token);

  Result<WriteReceipt> Put(const std::string& key, std::optional<Token> token,
                           std::string body, std::string content_type);
  Result<WriteReceipt> Delete(const std::string& key, std::optional<Token> token);
  // Raises the fence without writing the object: a new leader fences first.
  Result<WriteReceipt> RaiseFence(const std::string& key,
                                  std::optional<Token> token);

  Result<StoredObject> Get(const std::string& key);
  Result<FenceState> GetFence(const std::string& key);
  bool Healthy() const { return storage_.Healthy(); }

 private:
  // Per-key atomicity without a global lock: keys hash onto a fixed set of
  // mutexes; writers of different keys rarely contend, and their fsyncs are
  // grouped by the storage engine.
  static constexpr std::size_t kStripes = 1024;
  std::mutex& StripeFor(const std::string& key);

  // Loads the key's record, applies the fence rule to `token` and, if the
  // write may proceed, returns the record to build on.
  Result<KeyRecord> Admit(const std::string& key, std::optional<Token> token);
  Result<WriteReceipt> Apply(const std::string& key, std::optional<Token> token,
                             Mutation mutation);

  Storage& storage_;
  const FencingMode mode_;
  std::array<std::mutex, kStripes> stripes_;
};

}  // namespace fence::store
