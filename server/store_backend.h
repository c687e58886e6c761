// The seam between the HTTP edge and where the fence rule runs. StoreApi
// talks only to a StoreBackend: StoreService applies the rule itself on one
// committer thread over RocksDB (one process owns the keys), PgStore hands
// each write to PostgreSQL, which applies the rule in the statement that
// commits it (any number of processes may serve the same keys).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/result.h"
#include "core/token.h"
#include "server/storage.h"

namespace fence::store {

enum class FencingMode { kOn, kOff };

// kRaiseScope raises a scope's fence alone: it has a scope and no key.
// kRepairFence lowers a key's fence from `expected` to `token` (an admin's
// repair, core/fence_repair.h); it bypasses the fence rule by design.
enum class WriteKind { kPut, kDelete, kRaiseFence, kRaiseScope, kRepairFence };

struct WriteRequest {
  WriteKind kind = WriteKind::kPut;
  std::string key;
  std::optional<Token> token;
  std::string body;          // kPut only
  std::string content_type;  // kPut only; empty means application/octet-stream
  // The Fencing-Scope (a validated name): the write must also pass the
  // scope's fence, and raises it (core/scope_rule.h).
  std::optional<std::string> scope = std::nullopt;
  std::optional<Token> expected = std::nullopt;  // kRepairFence only
};

struct WriteReceipt {
  std::string key;
  std::optional<Token> token;          // the token the write carried
  std::optional<Token> highest_token;  // the fence after the write
  std::uint64_t size = 0;
  std::string etag;
  std::uint64_t version = 0;  // the write's place in the key's commit order
  // Scoped writes: the scope's fence and version after the write.
  std::optional<std::string> scope = std::nullopt;
  std::optional<Token> scope_highest_token = std::nullopt;
  std::uint64_t scope_version = 0;
  bool scope_raised = false;  // the write moved the scope's fence up
};

struct FenceState {
  std::string key;
  Token highest_token;
  std::uint64_t version = 0;  // the key's version (see KeyRecord::version)
};

struct ScopeState {
  std::string scope;
  Token highest_token;
  std::uint64_t version = 0;  // how many times the scope's fence was written
};

// Runs exactly once per write: on the committer thread once the write's
// group is durable (or refused), or at once on the submitting thread when
// the queue is full or closed.
using WriteDone = std::function<void(Result<WriteReceipt>)>;

// Error codes every backend returns (the HTTP layer maps them to status):
//   missing_token (428), bad_token/bad_key (400), stale_token (409, with
//   "key", "token", "highest_token" and "refused_by": "key"; or, when a
//   scope's fence refused it, "refused_by": "scope", "scope" and
//   "scope_highest_token"), not_found (404), fence_moved (412: a repair's
//   expected fence is not the key's, with "key", "expected",
//   "highest_token"), storage_error (507: nothing was
//   acknowledged), overloaded and shutting_down (503: not attempted),
//   storage_unavailable (503: the database could not be reached; nothing was
//   committed), commit_unknown (503: the connection broke after the write
//   was sent, so it may or may not be committed), not_in_memory (only from
//   reads asked to stay in memory: retry with ReadFrom::kAnywhere).
class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  // Checks a write from its header alone, before its body is read, so that
  // a stale writer is refused without sending its bytes. Advisory only: the
  // write itself is checked again where it commits. An empty key with a
  // scope prechecks a scope raise.
  virtual Status Precheck(const std::string& key, std::optional<Token> token,
                          const std::optional<std::string>& scope, ReadFrom from) = 0;
  // Applies a write under the fence rule and commits it; `done` gets its
  // outcome, exactly once, on whatever thread finished it.
  virtual void Write(WriteRequest request, WriteDone done) = 0;
  virtual Result<StoredObject> Get(const std::string& key, ReadFrom from) = 0;
  virtual Result<FenceState> GetFence(const std::string& key, ReadFrom from) = 0;
  virtual Result<ScopeState> GetScope(const std::string& scope, ReadFrom from) = 0;
  // False while storage refuses writes; /readyz reports it with this reason.
  virtual bool Healthy() const = 0;
  virtual std::string UnhealthyReason() const = 0;
  // Called after each commit with the number of writes it made durable.
  virtual void SetGroupObserver(std::function<void(std::size_t writes)> observer) = 0;
  // Refuses new writes ("shutting_down"), then waits until every write taken
  // on is committed and answered. Idempotent.
  virtual void Close() = 0;
};

}  // namespace fence::store
