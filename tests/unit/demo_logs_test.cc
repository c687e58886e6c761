// fence-demo's pure parts: merging logs, statistics, the seeded stall
// distribution, and how a schedule's logs are judged. (The timestamps are
// logscan::ParseTimestamp's, tested in logscan_test.)
#include "tools/demo/demo_logs.h"

#include <gtest/gtest.h>

#include "tools/demo/demo.h"

namespace fence::tools::demo {
namespace {

TEST(FormatClockMsTest, PrintsUtcTimeOfDay) {
  EXPECT_EQ(FormatClockMs(1795718768123), "18:46:08.123");
}

TEST(MergeByTimeTest, OrdersByTsAndKeepsEachProcessOrder) {
  auto line = [](const std::string& ts, const std::string& e) {
    return ParseLogLine(R"({"ts":")" + ts + R"(","event":")" + e + R"("})", "x");
  };
  std::vector<LogLine> a = {line("2026-01-01T00:00:00.100Z", "a1"),
                            ParseLogLine("not json", "x"),
                            line("2026-01-01T00:00:00.300Z", "a2")};
  std::vector<LogLine> b = {line("2026-01-01T00:00:00.200Z", "b1"),
                            line("2026-01-01T00:00:00.300Z", "b2")};
  const auto merged = MergeByTime({a, b});
  std::vector<std::string> order;
  for (const auto& l : merged) order.push_back(l.json.is_object() ? l.Event() : l.text);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "not json", "b1", "a2", "b2"}));
}

TEST(SummarizeTest, MedianMinMax) {
  auto s = Summarize({5, 1, 3});
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(Summarize({4, 1, 3, 2}).median, 2.5);
  EXPECT_EQ(Summarize({}).count, 0u);
}

TEST(DrawStallsTest, SeededClampedAndReproducible) {
  StallDistribution d;
  d.seed = 42;
  d.min_ms = 20;
  d.max_ms = 900;
  const auto first = DrawStalls(d, 200);
  EXPECT_EQ(first, DrawStalls(d, 200));
  for (auto v : first) {
    EXPECT_GE(v, 20);
    EXPECT_LE(v, 900);
  }
  d.seed = 43;
  EXPECT_NE(first, DrawStalls(d, 200));
  const auto phases = DrawPhases(d, 50, 100);
  for (auto p : phases) {
    EXPECT_GE(p, 0);
    EXPECT_LT(p, 100);
  }
}

TEST(ShellQuoteTest, QuotesSingleQuotes) {
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

// A synthetic schedule log, as the processes would print it.
std::vector<LogLine> Schedule(bool fencing, bool b_before_resume, const std::string& final_owner,
                              ScheduleOutcome* o) {
  auto L = [](const std::string& ms, const std::string& body) {
    return ParseLogLine(R"({"ts":"2026-01-01T00:00:)" + ms + R"(Z",)" + body + "}", "t");
  };
  std::vector<LogLine> lines = {
      L("01.000", R"("component":"worker","event":"elected","owner":"A","token":1,"term":1)"),
      L("01.010", R"("component":"worker","event":"elected","owner":"B","token":2,"term":2)"),
      L("01.005", R"("component":"worker","event":"pause_injected","owner":"A","term":1,"lease_remaining_ms":990)"),
  };
  if (fencing) {
    lines.push_back(L("01.020", R"("component":"worker","event":"fence_raised","owner":"B","key":"k","token":2,"highest_token":2,"term":2)"));
  }
  const std::string b_write = b_before_resume ? "02.500" : "03.500";
  lines.push_back(L(b_write, fencing ? R"("component":"store","event":"write_accepted","key":"k","token":2)"
                                     : R"("component":"store","event":"write_accepted","key":"k","token":null)"));
  lines.push_back(L(b_write, R"("component":"worker","event":"write_done","owner":"B","key":"k","token":2,"term":2)"));
  lines.push_back(L("03.000", R"("component":"worker","event":"resumed","owner":"A","term":1,"paused_ms":1995)"));
  if (fencing) {
    lines.push_back(L("03.001", R"("component":"store","event":"write_fenced","key":"k","token":1,"highest_token":2)"));
    lines.push_back(L("03.002", R"("component":"worker","event":"fenced","owner":"A","key":"k","token":1,"highest_token":2,"term":1)"));
  } else {
    lines.push_back(L("03.002", R"("component":"worker","event":"write_done","owner":"A","key":"k","token":null,"term":1)"));
    lines.push_back(L("03.003", R"("component":"worker","event":"lease_lost","owner":"A","term":1)"));
  }
  o->name = fencing ? "fenced" : "unfenced";
  o->fencing = fencing;
  o->final_owner = final_owner;
  if (final_owner == "B" && fencing) o->final_token = 2;
  return MergeByTime({lines});
}

TEST(AnalyzeScheduleTest, FencedRunThatWentAsExpectedHasNoProblems) {
  ScheduleOutcome o;
  o.lines = Schedule(true, true, "B", &o);
  AnalyzeSchedule(o);
  EXPECT_TRUE(o.problems.empty()) << o.problems.front();
  EXPECT_EQ(o.a_token, 1u);
  EXPECT_EQ(o.b_token, 2u);
  EXPECT_EQ(o.a_result, "fenced");
  EXPECT_EQ(o.failover_ms, 1495);
}

TEST(AnalyzeScheduleTest, ReportsANewLeaderThatDidNotFenceFirst) {
  ScheduleOutcome o;
  o.lines = Schedule(true, true, "B", &o);
  std::erase_if(o.lines, [](const LogLine& l) { return l.Event() == "fence_raised"; });
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("fence_raised"), std::string::npos) << o.problems[0];
}

TEST(AnalyzeScheduleTest, ReportsAFenceRaisedOnlyAfterTheWrite) {
  ScheduleOutcome o;
  o.lines = Schedule(true, true, "B", &o);
  for (auto& l : o.lines) {
    if (l.Event() == "fence_raised") l.ts_ms = *l.ts_ms + 5000;
  }
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("after its write"), std::string::npos) << o.problems[0];
}

TEST(AnalyzeScheduleTest, UnfencedRunShowsTwoLeadersAndAsStaleFinalObject) {
  ScheduleOutcome o;
  o.lines = Schedule(false, true, "A", &o);
  AnalyzeSchedule(o);
  EXPECT_TRUE(o.problems.empty()) << o.problems.front();
  EXPECT_EQ(o.a_result, "write_done");
  EXPECT_EQ(o.a_term_end_event, "lease_lost");
}

// etcd and ZooKeeper may grant more than asked: a lease longer than the one
// A's pause was planned for is named, not left to show up as a broken order.
TEST(AnalyzeScheduleTest, ReportsALeaseLongerThanPlanned) {
  ScheduleOutcome o;
  o.lines = Schedule(true, true, "B", &o);
  o.ttl_ms = 250;
  o.lines.insert(o.lines.begin(),
                 ParseLogLine(R"({"ts":"2026-01-01T00:00:00.900Z","component":"worker",)"
                              R"("event":"elected","owner":"A","token":1,"term":1,"ttl_ms":1000})",
                              "t"));
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("granted A a 1000 ms lease, not the 250 ms"), std::string::npos)
      << o.problems[0];
  EXPECT_EQ(o.a_granted_ttl_ms, 1000);
}

TEST(AnalyzeScheduleTest, ReportsABrokenOrder) {
  ScheduleOutcome o;
  o.lines = Schedule(true, false, "B", &o);
  AnalyzeSchedule(o);
  ASSERT_FALSE(o.problems.empty());
  EXPECT_NE(o.problems.front().find("ordering"), std::string::npos);
}

TEST(AnalyzeScheduleTest, ReportsTheWrongFinalObject) {
  ScheduleOutcome o;
  o.lines = Schedule(false, true, "B", &o);
  AnalyzeSchedule(o);
  EXPECT_EQ(o.problems.size(), 1u);
}

TEST(AnalyzeScheduleTest, ReportsAFailoverFasterThanTheLease) {
  ScheduleOutcome o;
  o.lines = Schedule(true, true, "B", &o);
  for (auto& l : o.lines) {
    if (l.Event() == "pause_injected") l.json["lease_remaining_ms"] = 5000;
  }
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("shorter than"), std::string::npos);
}

LogLine At(const std::string& ms, const std::string& body) {
  return ParseLogLine(R"({"ts":"2026-01-01T00:00:)" + ms + R"(Z",)" + body + "}", "t");
}

// The fenced schedule with a lock-delay of 1000 ms at lockd (TTL 1000 ms);
// B is granted at `b_granted`.
ScheduleOutcome LockDelaySchedule(const std::string& b_granted) {
  ScheduleOutcome o;
  auto lines = Schedule(true, true, "B", &o);
  o.name = "lock-delay";
  o.ttl_ms = 1000;
  o.lock_delay_ms = 1000;
  const std::string a = R"("component":"lockd","lease_id":"a","name":"L","owner":"A","token":1)";
  lines.push_back(At("01.000", a + R"(,"event":"granted","lock_delay_ms":1000)"));
  lines.push_back(At("02.000", a + R"(,"event":"expired")"));
  lines.push_back(At("02.000", a + R"(,"event":"lock_delay_started","lock_delay_ms":1000)"));
  lines.push_back(At("03.000", a + R"(,"event":"lock_delay_ended","lock_delay_ms":1000,"since_expiry_ms":1000)"));
  lines.push_back(At(b_granted, R"("component":"lockd","event":"granted","lease_id":"b","owner":"B","token":2)"));
  o.lines = MergeByTime({lines});
  return o;
}

TEST(AnalyzeScheduleTest, LockDelayRunGrantedAfterTtlPlusDelayHasNoProblems) {
  ScheduleOutcome o = LockDelaySchedule("03.000");
  AnalyzeSchedule(o);
  EXPECT_TRUE(o.problems.empty()) << o.problems.front();
  EXPECT_EQ(o.renewal_to_grant_ms, 2000);
  EXPECT_EQ(o.end_to_grant_ms, 1000);
  EXPECT_EQ(o.delay_since_expiry_ms, 1000);
}

TEST(AnalyzeScheduleTest, ReportsAGrantInsideTheLockDelay) {
  ScheduleOutcome o = LockDelaySchedule("02.500");
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 2u);
  EXPECT_NE(o.problems[0].find("before the lock-delay ended"), std::string::npos) << o.problems[0];
  EXPECT_NE(o.problems[1].find("less than TTL + lock-delay = 2000 ms"), std::string::npos)
      << o.problems[1];
}

// The break run: A's lease broken at lockd during its pause (990 ms left),
// B granted 2 ms later, A's keep-alive refused when it wakes.
ScheduleOutcome BreakSchedule(bool keepalive_refused) {
  ScheduleOutcome o;
  auto lines = Schedule(true, true, "B", &o);
  o.name = "break";
  o.broken = true;
  const std::string a = R"("component":"lockd","lease_id":"a","name":"L","owner":"A","token":1)";
  lines.push_back(At("01.000", a + R"(,"event":"granted")"));
  lines.push_back(At("01.006", a + R"(,"event":"lease_broken","reason":"r","caller":"127.0.0.1:9","expires_in_ms":990)"));
  lines.push_back(At("01.008", R"("component":"lockd","event":"granted","lease_id":"b","owner":"B","token":2)"));
  if (keepalive_refused) {
    lines.push_back(At("03.000", R"("component":"lockd","event":"refused","lease_id":"a","op":"keepalive","error":"lease_broken")"));
  }
  lines.push_back(At("03.000", R"("component":"worker","event":"lease_lost","owner":"A","term":1,"message":"lease a: an operator broke it; acquire again")"));
  o.lines = MergeByTime({lines});
  return o;
}

TEST(AnalyzeScheduleTest, BreakRunHasNoProblemsAlthoughBLedBeforeTheLeaseRanOut) {
  ScheduleOutcome o = BreakSchedule(true);
  for (auto& l : o.lines) {
    if (l.Event() == "pause_injected") l.json["lease_remaining_ms"] = 5000;
  }
  AnalyzeSchedule(o);
  EXPECT_TRUE(o.problems.empty()) << o.problems.front();
  EXPECT_EQ(o.end_to_grant_ms, 2);
  EXPECT_EQ(o.a_lease_end_event, "lease_broken");
}

TEST(AnalyzeScheduleTest, ReportsABrokenLeaseWhoseKeepAliveWasNotRefused) {
  ScheduleOutcome o = BreakSchedule(false);
  AnalyzeSchedule(o);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("did not refuse A's keep-alive"), std::string::npos)
      << o.problems[0];
}

}  // namespace
}  // namespace fence::tools::demo
