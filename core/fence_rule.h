// The fence rule, the one invariant the whole product exists to enforce:
// a write with token t to key k is accepted iff t >= highest(k), and then
// highest(k) := t. Equal tokens are the same leader writing again.
#pragma once

#include <optional>

#include "core/token.h"

namespace fence {

enum class FenceDecision {
  kAccept,  // t >= highest(k), or k was never fenced
  kStale,   // t < highest(k): a newer leader has written or fenced k
};

struct FenceOutcome {
  FenceDecision decision;
  // highest(k) after the decision; unchanged on kStale, never lower than
  // before on any path.
  std::optional<Token> highest_after;
};

FenceOutcome DecideFence(std::optional<Token> highest, Token token);

// When fencing is switched off (only to stage the unfenced demo), every write
// is accepted; the store still remembers the largest token it has seen so
// that switching fencing back on never lowers a fence.
std::optional<Token> RememberUnfenced(std::optional<Token> highest,
                                      std::optional<Token> token);

}  // namespace fence
