// Scope fencing: one fence for a whole job (a lock's name), on top of the
// per-key fence. A write with token t to key k in scope s is accepted iff
// t >= highest(k) and t >= highest(s); then both become t. So a new leader
// that raises its scope once fences the old leader on every key of the job,
// including keys the new leader never writes (HDFS fences its whole journal
// with one epoch; Kafka fences every partition with one producer epoch).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/token.h"

namespace fence {

inline constexpr std::size_t kMaxScopeBytes = 256;
inline constexpr std::string_view kFencingScopeHeader = "Fencing-Scope";

// Validates a scope name as a key is validated (core/key.h: percent-decoded,
// UTF-8, '/'-separated segments, no control characters), but at most
// kMaxScopeBytes long. Errors have code "bad_scope" and say what was expected.
Result<std::string> ParseScope(std::string_view encoded);

enum class ScopedDecision {
  kAccept,      // t >= highest(k) and (no scope, or t >= highest(s))
  kStaleKey,    // t < highest(k) (reported first when both refuse)
  kStaleScope,  // t >= highest(k) but t < highest(s): the scope fence refused
};

struct ScopedFenceInput {
  std::optional<Token> key_highest;  // ignored when !has_key (a scope-only raise)
  bool has_key = true;
  std::optional<Token> scope_highest;  // ignored when !has_scope
  bool has_scope = false;
  Token token;
};

struct ScopedFenceOutcome {
  ScopedDecision decision;
  // The fences after the decision: unchanged on a refusal, never lower than
  // before on any path.
  std::optional<Token> key_highest_after;
  std::optional<Token> scope_highest_after;
  // True when the scope's fence moved up (its record must be written).
  bool scope_raised = false;
};

ScopedFenceOutcome DecideScopedFence(const ScopedFenceInput& in);

}  // namespace fence
