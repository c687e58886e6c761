// Fence repair: an admin lowers a key's fence that was set by mistake (a
// forged or mistyped token), with the fence's current value as a
// precondition. Pure: the request body's validation and the decision.
//
// The precondition is what makes it safe against a real leader: the repair
// names the exact value it lowers. If any write moved the fence after the
// admin looked (a leader raising it to its own token), the repair is refused
// and the leader's fence stays.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/token.h"

namespace fence {

struct RepairRequest {
  Token expected;    // the fence the admin saw and means to lower
  Token lowered_to;  // the fence after the repair ("new" on the wire)
  std::string reason;  // why, for the audit log
};

inline constexpr std::size_t kMaxRepairReasonBytes = 256;

// Parses {"expected": N, "new": M, "reason": "..."}: N and M tokens
// (1..2^64-1), M < N, the reason 1..256 bytes without control characters.
// Errors have code "bad_repair" and say what was expected.
Result<RepairRequest> ParseRepairBody(std::string_view body);

enum class RepairDecision {
  kRepair,     // the fence is `expected`: lower it
  kNotFenced,  // the key has no fence (404)
  kMoved,      // the fence is not `expected` any more (412)
};

RepairDecision DecideRepair(std::optional<Token> current, const RepairRequest& request);

}  // namespace fence
