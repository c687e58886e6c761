#include "core/scope_rule.h"

#include <gtest/gtest.h>

#include <string>

namespace fence {
namespace {

constexpr std::uint64_t kNone = 0;  // the fence was never raised

std::optional<Token> Opt(std::uint64_t v) {
  return v == kNone ? std::nullopt : std::optional<Token>(Token(v));
}

TEST(ScopeRuleTest, TableOfDecisions) {
  struct Row {
    bool has_key;
    std::uint64_t key_highest;
    bool has_scope;
    std::uint64_t scope_highest;
    std::uint64_t token;
    ScopedDecision decision;
    std::uint64_t key_after, scope_after;
    bool scope_raised;
  };
  using D = ScopedDecision;
  const Row kRows[] = {
      // No scope: exactly the per-key rule.
      {true, 7, false, kNone, 8, D::kAccept, 8, kNone, false},
      {true, 7, false, kNone, 6, D::kStaleKey, 7, kNone, false},
      {true, kNone, false, 9, 3, D::kAccept, 3, 9, false},  // unscoped write ignores it
      // Scoped: both fences must admit the token; both rise.
      {true, kNone, true, kNone, 5, D::kAccept, 5, 5, true},
      {true, 4, true, 5, 5, D::kAccept, 5, 5, false},  // same leader again
      {true, 4, true, 5, 6, D::kAccept, 6, 6, true},
      // The case scope fencing exists for: the key never saw the new leader.
      {true, 4, true, 9, 5, D::kStaleScope, 4, 9, false},
      {true, kNone, true, 9, 5, D::kStaleScope, kNone, 9, false},
      // Both refuse: the key's fence is named.
      {true, 8, true, 9, 5, D::kStaleKey, 8, 9, false},
      // Only the key refuses.
      {true, 8, true, 3, 5, D::kStaleKey, 8, 3, false},
      // A scope-only raise ignores keys.
      {false, 99, true, 4, 6, D::kAccept, 99, 6, true},
      {false, 99, true, 6, 6, D::kAccept, 99, 6, false},
      {false, kNone, true, 7, 6, D::kStaleScope, kNone, 7, false},
  };
  for (const Row& row : kRows) {
    const auto out = DecideScopedFence({Opt(row.key_highest), row.has_key,
                                        Opt(row.scope_highest), row.has_scope,
                                        Token(row.token)});
    const std::string where = "key " + std::to_string(row.key_highest) + " scope " +
                              std::to_string(row.scope_highest) + " token " +
                              std::to_string(row.token);
    EXPECT_EQ(out.decision, row.decision) << where;
    EXPECT_EQ(out.key_highest_after, Opt(row.key_after)) << where;
    EXPECT_EQ(out.scope_highest_after, Opt(row.scope_after)) << where;
    EXPECT_EQ(out.scope_raised, row.scope_raised) << where;
  }
}

TEST(ScopeRuleTest, ParsesNamesLikeKeys) {
  struct Row {
    std::string input;
    bool ok;
    std::string parsed;
  };
  const Row kRows[] = {
      {"jobs/etl", true, "jobs/etl"},
      {"jobs%2Fetl", true, "jobs/etl"},
      {"a", true, "a"},
      {std::string(kMaxScopeBytes, 'x'), true, std::string(kMaxScopeBytes, 'x')},
      {std::string(kMaxScopeBytes + 1, 'x'), false, ""},
      {"", false, ""},
      {"a//b", false, ""},
      {"../x", false, ""},
      {"a%0Ab", false, ""},
      {"bad%zz", false, ""},
  };
  for (const Row& row : kRows) {
    auto parsed = ParseScope(row.input);
    ASSERT_EQ(parsed.ok(), row.ok) << row.input;
    if (row.ok) {
      EXPECT_EQ(*parsed, row.parsed);
    } else {
      EXPECT_EQ(parsed.error().code, "bad_scope") << row.input;
      EXPECT_NE(parsed.error().message.find("expected the lock's name"), std::string::npos)
          << parsed.error().message;
    }
  }
}

}  // namespace
}  // namespace fence
