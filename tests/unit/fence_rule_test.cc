#include "core/fence_rule.h"

#include <gtest/gtest.h>

#include <random>

namespace fence {
namespace {

TEST(FenceRuleTest, FirstWriteIsAccepted) {
  auto outcome = DecideFence(std::nullopt, Token(5));
  EXPECT_EQ(outcome.decision, FenceDecision::kAccept);
  EXPECT_EQ(outcome.highest_after, Token(5));
}

TEST(FenceRuleTest, TableOfDecisions) {
  struct Row {
    std::uint64_t highest, token;
    FenceDecision decision;
    std::uint64_t highest_after;
  };
  const Row kRows[] = {
      {7, 8, FenceDecision::kAccept, 8},
      {7, 7, FenceDecision::kAccept, 7},  // same leader writing again
      {7, 6, FenceDecision::kStale, 7},
      {7, 1, FenceDecision::kStale, 7},
      {1, 18446744073709551615ULL, FenceDecision::kAccept, 18446744073709551615ULL},
      {18446744073709551615ULL, 18446744073709551614ULL, FenceDecision::kStale,
       18446744073709551615ULL},
  };
  for (const Row& row : kRows) {
    auto outcome = DecideFence(Token(row.highest), Token(row.token));
    EXPECT_EQ(outcome.decision, row.decision) << row.highest << " " << row.token;
    EXPECT_EQ(outcome.highest_after, Token(row.highest_after));
  }
}

// Whatever the order of writes, the fence never goes down and every accepted
// token is at least every token accepted before it.
TEST(FenceRuleTest, FenceIsMonotonicUnderRandomWrites) {
  std::mt19937_64 rng(12345);
  for (int run = 0; run < 200; ++run) {
    std::optional<Token> highest;
    std::uint64_t last_accepted = 0;
    for (int i = 0; i < 200; ++i) {
      const Token t(1 + rng() % 50);
      auto outcome = DecideFence(highest, t);
      ASSERT_TRUE(outcome.highest_after.has_value());
      if (highest) {
        ASSERT_GE(*outcome.highest_after, *highest);
      }
      if (outcome.decision == FenceDecision::kAccept) {
        ASSERT_GE(t.value(), last_accepted);
        last_accepted = t.value();
      } else {
        ASSERT_LT(t, *highest);
      }
      highest = outcome.highest_after;
    }
  }
}

TEST(FenceRuleTest, UnfencedModeRemembersTheLargestToken) {
  EXPECT_EQ(RememberUnfenced(std::nullopt, std::nullopt), std::nullopt);
  EXPECT_EQ(RememberUnfenced(std::nullopt, Token(3)), Token(3));
  EXPECT_EQ(RememberUnfenced(Token(9), Token(3)), Token(9));
  EXPECT_EQ(RememberUnfenced(Token(9), std::nullopt), Token(9));
  EXPECT_EQ(RememberUnfenced(Token(9), Token(12)), Token(12));
}

}  // namespace
}  // namespace fence
