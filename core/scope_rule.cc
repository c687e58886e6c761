#include "core/scope_rule.h"

#include "core/fence_rule.h"
#include "core/key.h"

namespace fence {

Result<std::string> ParseScope(std::string_view encoded) {
  const std::string expected =
      "; expected the lock's name: 1-" + std::to_string(kMaxScopeBytes) +
      " bytes of UTF-8 in '/'-separated segments, none empty, '.' or '..', "
      "with no control characters (percent-encoding allowed)";
  auto parsed = ParseKey(encoded);
  if (!parsed.ok()) {
    // ParseKey's sentence names the defect; the bounds are the scope's own.
    std::string why = parsed.error().message;
    why = why.substr(0, why.find("; expected"));
    if (why.rfind("the key", 0) == 0) why.replace(0, 7, "the name");
    return MakeError("bad_scope", "bad scope name '" + std::string(encoded) +
                                      "': " + why + expected);
  }
  if (parsed->size() > kMaxScopeBytes) {
    return MakeError("bad_scope", "scope name is " + std::to_string(parsed->size()) +
                                      " bytes long" + expected);
  }
  return parsed;
}

ScopedFenceOutcome DecideScopedFence(const ScopedFenceInput& in) {
  ScopedFenceOutcome out{ScopedDecision::kAccept, in.key_highest, in.scope_highest, false};
  const FenceOutcome key = DecideFence(in.key_highest, in.token);
  if (in.has_key && key.decision == FenceDecision::kStale) {
    out.decision = ScopedDecision::kStaleKey;
    return out;
  }
  const FenceOutcome scope = DecideFence(in.scope_highest, in.token);
  if (in.has_scope && scope.decision == FenceDecision::kStale) {
    out.decision = ScopedDecision::kStaleScope;
    return out;
  }
  if (in.has_key) out.key_highest_after = key.highest_after;
  if (in.has_scope) {
    out.scope_highest_after = scope.highest_after;
    out.scope_raised = in.scope_highest != scope.highest_after;
  }
  return out;
}

}  // namespace fence
