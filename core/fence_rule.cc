#include "core/fence_rule.h"

namespace fence {

FenceOutcome DecideFence(std::optional<Token> highest, Token token) {
  if (highest.has_value() && token < *highest) {
    return {FenceDecision::kStale, highest};
  }
  return {FenceDecision::kAccept, token};
}

std::optional<Token> RememberUnfenced(std::optional<Token> highest,
                                      std::optional<Token> token) {
  if (!token.has_value()) return highest;
  if (!highest.has_value() || *highest < *token) return token;
  return highest;
}

}  // namespace fence
