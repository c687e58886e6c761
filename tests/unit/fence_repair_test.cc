#include "core/fence_repair.h"

#include <gtest/gtest.h>

namespace fence {
namespace {

TEST(FenceRepairTest, BodyTable) {
  struct Row {
    std::string body;
    std::string error;  // "" = parses; else part of the message
  };
  const Row kRows[] = {
      {R"({"expected":18446744073709551615,"new":7,"reason":"forged token"})", ""},
      {R"({"expected":8,"new":7,"reason":"typo 70 for 7"})", ""},
      {R"({"expected":8,"new":8,"reason":"x"})", "is not below 'expected'"},
      {R"({"expected":8,"new":9,"reason":"x"})", "a repair only lowers"},
      {R"({"expected":0,"new":0,"reason":"x"})", "field 'expected' is not a token"},
      {R"({"expected":-3,"new":1,"reason":"x"})", "field 'expected' is not a token"},
      {R"({"expected":"9","new":1,"reason":"x"})", "field 'expected' is not a token"},
      {R"({"expected":9.5,"new":1,"reason":"x"})", "field 'expected' is not a token"},
      {R"({"expected":9,"new":0,"reason":"x"})", "field 'new' is not a token"},
      {R"({"expected":18446744073709551616,"new":1,"reason":"x"})", "not a token"},
      {R"({"new":1,"reason":"x"})", "field 'expected' is missing"},
      {R"({"expected":9,"reason":"x"})", "field 'new' is missing"},
      {R"({"expected":9,"new":1})", "field 'reason' must be"},
      {R"({"expected":9,"new":1,"reason":""})", "field 'reason' must be"},
      {R"({"expected":9,"new":1,"reason":7})", "field 'reason' must be"},
      {R"({"expected":9,"new":1,"reason":")" + std::string(257, 'r') + "\"}",
       "field 'reason' must be"},
      {R"({"expected":9,"new":1,"reason":"a\nb"})", "control character"},
      {R"({"expected":9,"new":1,"reason":"x","force":true})", "unknown field 'force'"},
      {R"([9,1])", "not a JSON object"},
      {"", "not a JSON object"},
      {"{", "not a JSON object"},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.body);
    auto parsed = ParseRepairBody(row.body);
    if (row.error.empty()) {
      EXPECT_TRUE(parsed.ok()) << parsed.error().message;
    } else {
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.error().code, "bad_repair");
      EXPECT_NE(parsed.error().message.find(row.error), std::string::npos)
          << parsed.error().message;
    }
  }
}

TEST(FenceRepairTest, DecisionTable) {
  const RepairRequest r{Token(70), Token(7), "typo"};
  EXPECT_EQ(DecideRepair(std::nullopt, r), RepairDecision::kNotFenced);
  EXPECT_EQ(DecideRepair(Token(70), r), RepairDecision::kRepair);
  // A leader raised the fence after the admin looked: its fence stays.
  EXPECT_EQ(DecideRepair(Token(71), r), RepairDecision::kMoved);
  EXPECT_EQ(DecideRepair(Token(69), r), RepairDecision::kMoved);
  EXPECT_EQ(DecideRepair(Token(7), r), RepairDecision::kMoved);
}

}  // namespace
}  // namespace fence
