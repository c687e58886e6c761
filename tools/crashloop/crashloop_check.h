// The decisions of fence-crashloop, as pure functions over what the writers
// and clients recorded and what a restarted daemon shows: no sockets, files,
// threads or clocks, so every decision is unit-tested with tables,
// including the histories that MUST be flagged.
//
// Store model, per key: `settled` is the state the key must at least be in
// (the last acknowledged write, or what the store showed at the last
// verification), and `pending` the one write sent after it that got no
// answer (the store was killed, or it answered something other than 200 or
// 409). A writer stops writing for the rest of a round after its first
// unanswered write, so at most one write per key is pending, and nothing is
// acknowledged after it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fence::crashloop {

// One thing a daemon did that it must never do.
struct Violation {
  std::string kind;  // stable: "lost_acknowledged_write", "fence_lowered", ...
  std::string key;   // store key or lock name
  std::string expected;
  std::string seen;
  int kill = 0;  // the kill after which it was seen (0: before any kill)
  nlohmann::json ToJson() const;
};

enum class OpKind { kPut, kDelete, kFence };
const char* OpKindName(OpKind kind);

struct KeyOp {
  OpKind kind = OpKind::kPut;
  std::uint64_t token = 0;
  std::string body;  // PUT only
  std::string etag;  // PUT only, from the 200 answer; empty if unanswered
};

// A key's object as the store should show it.
struct ObjectState {
  bool exists = false;  // false: never written, or deleted (404)
  std::string body;
  std::uint64_t token = 0;
  std::string etag;  // empty: not known (a PUT that got no answer)
  std::string Describe() const;
};

struct KeyModel {
  ObjectState settled;
  std::uint64_t fence_floor = 0;     // the fence may never be seen below this
  std::uint64_t max_token_sent = 0;  // the fence may never be seen above this
  std::optional<KeyOp> pending;
};

// The state after `op` is applied to `state`.
ObjectState Apply(const ObjectState& state, const KeyOp& op);

// A 200 for `op`: the store said the key's fence is now `highest_token`.
// Since every write carries a token above every token sent to the key
// before, the fence must be the write's own token; a higher one means the
// store accepted a write below its fence.
std::optional<Violation> CheckAcknowledged(const std::string& key, const KeyOp& op,
                                           std::uint64_t highest_token);
void RecordAcknowledged(KeyModel& model, const KeyOp& op);

// A 409 stale_token for a write whose token is above every token ever sent
// to the key: the store's fence came from nowhere (always a violation).
Violation RefusedFreshToken(const std::string& key, std::uint64_t max_token_sent_before,
                            std::uint64_t token, std::uint64_t highest_token);

// What a restarted store shows for a key.
struct Observed {
  ObjectState object;                  // GET /v1/objects/{key}
  std::optional<std::uint64_t> fence;  // GET /v1/fences/{key}; nullopt: 404
};

// After a restart: the object is the settled state or the pending write's
// result (body, token and etag where known all equal), the fence is at
// least the settled floor, at most the highest token sent, not below the
// object's own token, and not raised by a PUT or DELETE whose object change
// is missing (the two are one batch).
std::vector<Violation> CheckAfterRestart(const std::string& key, const KeyModel& model,
                                         const Observed& observed);

// Whether the pending write took effect (nullopt: none was pending). Every
// write raises the fence to its token, which is above every token sent
// before, so the fence tells. A figure for the report, not a check.
std::optional<bool> PendingApplied(const KeyModel& model, const Observed& observed);

// A PUT with token `probe_token` below the observed fence was answered with
// `status` (and the fence it named): anything but 409 naming that fence is a
// stale write accepted or a fence misreported.
std::optional<Violation> CheckStaleProbe(const std::string& key, std::uint64_t fence,
                                         std::uint64_t probe_token, int status,
                                         std::optional<std::uint64_t> highest_token);

// What was observed becomes the settled state for the next round.
void Settle(KeyModel& model, const Observed& observed);

// --- lockd ---------------------------------------------------------------

// One acquire answered 200. `epoch` is the lockd instance that granted it:
// 0 before any kill, e after kill e. Times are on the machine's monotonic
// clock.
struct Grant {
  int epoch = 0;
  std::string lock;
  std::uint64_t token = 0;
  std::int64_t ttl_ms = 0;
  std::chrono::nanoseconds completed_at{0};
};

// What earlier epochs leave for the next one to be checked against.
struct GrantHistory {
  std::uint64_t max_token = 0;
  std::int64_t max_ttl_ms = 0;
};
void AddToHistory(GrantHistory& history, const std::vector<Grant>& grants);

// The grants of one epoch (every one has `epoch` e), against the history of
// the epochs before it: each token is above every earlier token and unique
// within the epoch; for e >= 1, no grant completed before the new lockd was
// spawned (`spawned_at`) + the largest TTL granted before, less `tolerance`
// (lockd reads its clock in whole milliseconds, so its grace may end up to
// 1 ms before the instant we compute).
std::vector<Violation> CheckEpochGrants(const GrantHistory& history, int epoch,
                                        std::chrono::nanoseconds spawned_at,
                                        const std::vector<Grant>& grants,
                                        std::chrono::nanoseconds tolerance);

}  // namespace fence::crashloop
