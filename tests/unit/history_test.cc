// The history checker on hand-made histories: a clean one passes, and each
// kind of violation a fenced system must never show is flagged by name.
#include "core/history.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace fence::history {
namespace {

using Json = nlohmann::json;
constexpr std::int64_t kMs = 1'000'000;

// Builds a history line by line; times are in milliseconds.
class Recorder {
 public:
  // One operation: its invoke at `from` and its completion (`type`) at `to`.
  void Op(const std::string& process, std::string_view op, Json invoke, std::string_view type,
          std::int64_t from, std::int64_t to, Json completion = Json::object()) {
    const std::uint64_t id = ++next_id_;
    invoke.update({{"type", kInvoke}, {"process", process}, {"pid", 1}, {"id", id},
                   {"op", op}, {"t_ns", from * kMs}});
    Add(invoke);
    if (type.empty()) return;  // never completed
    completion.update({{"type", type}, {"process", process}, {"pid", 1}, {"id", id},
                       {"t_ns", to * kMs}});
    Add(completion);
  }
  void Write(const std::string& p, const std::string& key, std::uint64_t token,
             std::string_view type, std::int64_t from, std::int64_t to, Json done = Json::object()) {
    Op(p, kWrite, {{"key", key}, {"token", token}, {"value", p + std::to_string(token)}}, type,
       from, to, std::move(done));
  }
  void Grant(const std::string& p, std::uint64_t token, std::int64_t from, std::int64_t to,
             std::int64_t ttl_ms) {
    Op(p, kAcquire, {{"lock", "L"}}, kOk, from, to, {{"token", token}, {"ttl_ms", ttl_ms}});
  }
  void Final(const std::string& key, const std::string& value, std::uint64_t token,
             std::uint64_t fence) {
    Add({{"type", kFinal}, {"key", key}, {"exists", true}, {"value", value}, {"token", token},
         {"highest_token", fence}, {"version", 99}});
  }
  CheckReport Check() {
    History h = builder_.Finish();
    return CheckHistory(h);
  }

 private:
  void Add(const Json& line) {
    const Status added = builder_.AddLine(line.dump(), ++line_number_);
    ASSERT_TRUE(added.ok()) << added.error().message;
  }
  HistoryBuilder builder_;
  std::uint64_t next_id_ = 0;
  std::size_t line_number_ = 0;
};

std::vector<std::string> Checks(const CheckReport& report) {
  std::vector<std::string> names;
  for (const Violation& v : report.violations) names.push_back(v.check + ": " + v.message);
  return names;
}

bool Flags(const CheckReport& report, const std::string& check) {
  for (const Violation& v : report.violations) {
    if (v.check == check) return true;
  }
  return false;
}

// Two leaders one after the other, the second fencing the first: clean.
void CleanFailover(Recorder& r) {
  r.Grant("A", 5, 0, 1, 100);
  r.Op("A", kRenew, {{"lock", "L"}, {"token", 5}}, kOk, 30, 31);
  r.Write("A", "k", 5, kOk, 40, 41, {{"version", 1}});
  r.Grant("B", 9, 50, 140, 100);  // A's lease certainly ran until 130
  r.Op("B", kFence, {{"key", "k"}, {"token", 9}}, kOk, 141, 142, {{"version", 2}});
  r.Write("A", "k", 5, kFail, 150, 151, {{"highest_token", 9}});
  r.Write("B", "k", 9, kOk, 152, 153, {{"version", 3}});
}

TEST(HistoryCheckTest, CleanFailoverPasses) {
  Recorder r;
  CleanFailover(r);
  r.Final("k", "B9", 9, 9);
  const CheckReport report = r.Check();
  EXPECT_TRUE(report.violations.empty()) << testing::PrintToString(Checks(report));
  EXPECT_EQ(report.writes_accepted, 2u);
  EXPECT_EQ(report.writes_fenced, 1u);
  EXPECT_EQ(report.fences_raised, 1u);
  EXPECT_EQ(report.grants, 2u);
}

TEST(HistoryCheckTest, StaleWriteThatLandedBreaksTheCommitOrder) {
  Recorder r;
  r.Grant("A", 5, 0, 1, 100);
  r.Grant("B", 9, 50, 140, 100);
  r.Write("B", "k", 9, kOk, 141, 142, {{"version", 1}});
  r.Write("A", "k", 5, kOk, 150, 151, {{"version", 2}});  // the unfenced store took it
  r.Final("k", "A5", 5, 9);
  const CheckReport report = r.Check();
  EXPECT_TRUE(Flags(report, "commit_order")) << testing::PrintToString(Checks(report));
  EXPECT_TRUE(Flags(report, "lost_write"));
}

TEST(HistoryCheckTest, FinalObjectOlderThanAnAcknowledgedWriteIsALostWrite) {
  Recorder r;
  CleanFailover(r);
  r.Final("k", "A5", 5, 9);
  EXPECT_TRUE(Flags(r.Check(), "lost_write"));
}

TEST(HistoryCheckTest, MissingObjectOrFinalReadIsALostWrite) {
  Recorder r;
  CleanFailover(r);
  EXPECT_TRUE(Flags(r.Check(), "lost_write"));  // no final read at all
}

TEST(HistoryCheckTest, WriteOfUnknownOutcomeMayBeTheFinalObject) {
  Recorder r;
  CleanFailover(r);
  r.Write("B", "k", 9, "", 160, 0);  // B paused or killed: no answer
  r.Op("B", kWrite, {{"key", "k"}, {"token", 9}, {"value", "late"}}, kInfo, 170, 180);
  r.Final("k", "late", 9, 9);
  const CheckReport report = r.Check();
  EXPECT_TRUE(report.violations.empty()) << testing::PrintToString(Checks(report));
  EXPECT_EQ(report.writes_unknown, 2u);
}

TEST(HistoryCheckTest, LoweredFenceIsFlagged) {
  Recorder r;
  CleanFailover(r);
  r.Final("k", "B9", 9, 5);
  EXPECT_TRUE(Flags(r.Check(), "fence_lowered"));
}

TEST(HistoryCheckTest, TwoWritesAtOneVersionAreFlagged) {
  Recorder r;
  r.Write("A", "k", 5, kOk, 0, 1, {{"version", 1}});
  r.Write("B", "k", 6, kOk, 2, 3, {{"version", 1}});
  r.Final("k", "B6", 6, 6);
  EXPECT_TRUE(Flags(r.Check(), "commit_order"));
}

TEST(HistoryCheckTest, RefusalMustNameAHigherFenceSomeoneWrote) {
  Recorder not_higher;
  not_higher.Write("A", "k", 5, kFail, 0, 1, {{"highest_token", 5}});
  EXPECT_TRUE(Flags(not_higher.Check(), "stale_answer"));
  Recorder made_up;
  made_up.Write("A", "k", 5, kFail, 0, 1, {{"highest_token", 7}});
  EXPECT_TRUE(Flags(made_up.Check(), "stale_answer"));
  Recorder real;
  real.Op("B", kFence, {{"key", "k"}, {"token", 7}}, kInfo, 0, 1);
  real.Write("A", "k", 5, kFail, 2, 3, {{"highest_token", 7}});
  EXPECT_FALSE(Flags(real.Check(), "stale_answer"));
}

TEST(HistoryCheckTest, RepeatedOrOutOfOrderGrantTokensAreFlagged) {
  Recorder repeated;
  repeated.Grant("A", 5, 0, 1, 10);
  repeated.Grant("B", 5, 100, 101, 10);
  EXPECT_TRUE(Flags(repeated.Check(), "token_repeated"));
  Recorder lower;
  lower.Grant("A", 5, 0, 1, 10);
  lower.Grant("B", 4, 100, 101, 10);  // asked for after A's grant completed
  EXPECT_TRUE(Flags(lower.Check(), "grant_order"));
  Recorder concurrent;  // overlapping asks may complete in either order
  concurrent.Grant("A", 5, 0, 50, 10);
  concurrent.Grant("B", 4, 10, 20, 10);
  EXPECT_FALSE(Flags(concurrent.Check(), "grant_order"));
}

TEST(HistoryCheckTest, GrantWhileAnotherLeaseWasCertainlyValidIsTwoHolders) {
  Recorder r;
  r.Grant("A", 5, 0, 1, 100);
  r.Op("A", kRenew, {{"lock", "L"}, {"token", 5}}, kOk, 60, 61);  // valid until >= 160
  r.Grant("B", 6, 70, 120, 100);  // granted by 120 at the latest
  EXPECT_TRUE(Flags(r.Check(), "two_holders"));
}

TEST(HistoryCheckTest, ReleaseOrASlowAnswerEndsWhatIsCertain) {
  Recorder released;
  released.Grant("A", 5, 0, 1, 100);
  released.Op("A", kRelease, {{"lock", "L"}, {"token", 5}}, kOk, 40, 41);
  released.Grant("B", 6, 40, 45, 100);
  EXPECT_FALSE(Flags(released.Check(), "two_holders"));
  Recorder slow;  // the renewal may have been served at 10: valid until 110 only
  slow.Grant("A", 5, 0, 1, 100);
  slow.Op("A", kRenew, {{"lock", "L"}, {"token", 5}}, kOk, 10, 90);
  slow.Grant("B", 6, 95, 115, 100);
  EXPECT_FALSE(Flags(slow.Check(), "two_holders"));
}

TEST(HistoryBuilderTest, BadLinesSayWhichAndWhy) {
  HistoryBuilder b;
  auto garbage = b.AddLine("{nope", 3);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().code, "bad_history");
  EXPECT_NE(garbage.error().message.find("line 3"), std::string::npos);
  EXPECT_FALSE(b.AddLine(R"({"type":"ok","process":"A","pid":1,"id":1,"t_ns":5})", 4).ok());
  EXPECT_FALSE(b.AddLine(R"({"type":"invoke","process":"A"})", 5).ok());
  EXPECT_FALSE(b.AddLine(R"({"type":"later","process":"A","pid":1,"id":1,"t_ns":5})", 6).ok());
  EXPECT_TRUE(b.AddLine("", 7).ok());
}

}  // namespace
}  // namespace fence::history
