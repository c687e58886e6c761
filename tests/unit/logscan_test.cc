#include "tools/logscan/logscan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fence::tools::logscan {
namespace {

// 2024-05-01T12:00:00.000Z: synthetic logs start here.
constexpr EpochMillis kT0 = 1714564800000;

// One log line exactly as our logger writes it (offset "+00:00").
std::string Line(EpochMillis at, std::string component, std::string event,
                 nlohmann::json fields = nlohmann::json::object()) {
  std::string ts = FormatTimestamp(kT0 + at);
  ts.replace(ts.size() - 1, 1, "+00:00");
  nlohmann::ordered_json line;
  line["ts"] = ts;
  line["level"] = "info";
  line["component"] = component;
  line["event"] = event;
  for (auto& [k, v] : fields.items()) line[k] = v;
  return line.dump();
}

class LogBuilder {
 public:
  explicit LogBuilder(std::string source = "test.log") : source_(std::move(source)) {}
  LogBuilder& Add(std::string line) {
    lines_.push_back(std::move(line));
    return *this;
  }
  LogBuilder& Elected(EpochMillis at, std::string owner, std::uint64_t term,
                      std::string lock = "leader") {
    return Add(Line(at, "worker", "elected",
                    {{"owner", owner}, {"lock", lock}, {"backend", "lockd"}, {"token", term},
                     {"lease_id", "l" + std::to_string(term)}, {"ttl_ms", 1000}, {"term", term}}));
  }
  LogBuilder& Worker(EpochMillis at, std::string event, std::string owner, std::uint64_t term,
                     nlohmann::json extra = nlohmann::json::object()) {
    nlohmann::json fields = {{"owner", owner}, {"term", term}};
    for (auto& [k, v] : extra.items()) fields[k] = v;
    return Add(Line(at, "worker", event, fields));
  }
  LogBuilder& WriteDone(EpochMillis at, std::string owner, std::uint64_t term) {
    return Worker(at, "write_done", owner, term,
                  {{"key", "report"}, {"token", term}, {"highest_token", term}});
  }
  void AppendTo(std::vector<LogEvent>& events, InputStats& stats) const {
    stats.sources.push_back(source_);
    std::size_t n = 0;
    for (const auto& l : lines_) {
      ++stats.lines;
      auto parsed = ParseLine(l, source_, ++n);
      if (parsed.kind == LineKind::kEvent) {
        ++stats.events;
        events.push_back(*parsed.event);
      } else if (parsed.kind == LineKind::kNotJson) {
        ++stats.not_json;
      } else {
        ++stats.not_event;
      }
    }
  }
  Findings Analyze() const { return AnalyzeAll({this}); }
  static Findings AnalyzeAll(std::vector<const LogBuilder*> logs) {
    std::vector<LogEvent> events;
    InputStats stats;
    for (const auto* log : logs) log->AppendTo(events, stats);
    return logscan::Analyze(std::move(events), std::move(stats));
  }

 private:
  std::string source_;
  std::vector<std::string> lines_;
};

TEST(LogscanTimestampTest, ParsesOurLoggerFormatAndZulu) {
  auto ours = ParseTimestamp("2024-05-01T12:00:00.123+00:00");
  auto zulu = ParseTimestamp("2024-05-01T12:00:00.123Z");
  ASSERT_TRUE(ours.ok());
  ASSERT_TRUE(zulu.ok());
  EXPECT_EQ(*ours, kT0 + 123);
  EXPECT_EQ(*zulu, *ours);
}

TEST(LogscanTimestampTest, AppliesOffsetsAndFractions) {
  EXPECT_EQ(*ParseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseTimestamp("2000-03-01T00:00:00.5Z"), 951868800500);
  EXPECT_EQ(*ParseTimestamp("2000-02-29T23:59:59.999999Z"), 951868799999);
  EXPECT_EQ(*ParseTimestamp("2024-05-01T14:00:00+02:00"), kT0);
  EXPECT_EQ(*ParseTimestamp("2024-05-01T07:30:00-04:30"), kT0);
}

TEST(LogscanTimestampTest, RejectsWhatIsNotRfc3339) {
  for (const char* bad :
       {"", "garbage", "2024-05-01", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00Zjunk", "2024-05-01T12:00:00+0200", "1714564800"}) {
    auto ts = ParseTimestamp(bad);
    EXPECT_FALSE(ts.ok()) << bad;
    if (!ts.ok()) {
      EXPECT_EQ(ts.error().code, "bad_timestamp");
    }
  }
}

TEST(LogscanTimestampTest, FormatsWhatItParses) {
  for (EpochMillis ms : {EpochMillis{0}, kT0, kT0 + 1, EpochMillis{951868799999}}) {
    EXPECT_EQ(*ParseTimestamp(FormatTimestamp(ms)), ms);
  }
  EXPECT_EQ(FormatTimestamp(kT0 + 7), "2024-05-01T12:00:00.007Z");
}

TEST(LogscanParseLineTest, SortsLinesIntoEventsNonJsonAndForeignJson) {
  EXPECT_EQ(ParseLine("", "x", 1).kind, LineKind::kNotJson);
  EXPECT_EQ(ParseLine("starting fence-demo ...", "x", 1).kind, LineKind::kNotJson);
  EXPECT_EQ(ParseLine(R"({"ts":"2024-05-01T12:00:00Z","event":)", "x", 1).kind,
            LineKind::kNotJson);
  EXPECT_EQ(ParseLine(R"({"hello":"world"})", "x", 1).kind, LineKind::kNotEvent);
  auto bad_ts = ParseLine(R"({"ts":"yesterday","component":"store","event":"x"})", "x", 1);
  EXPECT_EQ(bad_ts.kind, LineKind::kNotEvent);
  EXPECT_NE(bad_ts.problem.find("RFC 3339"), std::string::npos);
  auto no_event = ParseLine(R"({"ts":"2024-05-01T12:00:00Z","component":"store"})", "x", 1);
  EXPECT_EQ(no_event.kind, LineKind::kNotEvent);
  EXPECT_NE(no_event.problem.find("event"), std::string::npos);

  auto ok = ParseLine("  " + Line(5, "store", "write_fenced", {{"key", "k"}}) + "\r", "f.log", 9);
  ASSERT_EQ(ok.kind, LineKind::kEvent);
  EXPECT_EQ(ok.event->ts, kT0 + 5);
  EXPECT_EQ(ok.event->component, "store");
  EXPECT_EQ(ok.event->event, "write_fenced");
  EXPECT_EQ(ok.event->source, "f.log");
  EXPECT_EQ(ok.event->line, 9u);
  EXPECT_EQ(ok.event->fields["key"], "k");
}

TEST(LogscanTest, CleanHandoverHasNoEvidence) {
  LogBuilder log;
  log.Add("not json at all")
      .Elected(0, "A", 1)
      .WriteDone(100, "A", 1)
      .Worker(200, "resigned", "A", 1)
      .Elected(300, "B", 2)
      .WriteDone(400, "B", 2)
      .Worker(500, "resigned", "B", 2);
  Findings f = log.Analyze();
  EXPECT_FALSE(f.SplitBrainEvidence()) << FormatReport(f);
  ASSERT_EQ(f.terms.size(), 2u);
  EXPECT_EQ(f.terms[0].end, kT0 + 200);
  EXPECT_EQ(f.terms[0].ended_by, "resigned");
  EXPECT_TRUE(f.overlaps.empty());
  EXPECT_TRUE(f.stale_writes.empty());
  EXPECT_EQ(f.input.not_json, 1u);
  EXPECT_NE(FormatReport(f).find("no split-brain evidence"), std::string::npos);
  EXPECT_EQ(ToJson(f)["verdict"], "clean");
}

// The unfenced demo: A is paused past its lease, B is elected and writes, A
// wakes up still believing it leads and its write lands.
TEST(LogscanTest, FindsOverlapAndStaleWriteThatLanded) {
  LogBuilder log;
  log.Elected(0, "A", 1)
      .Worker(50, "pause_injected", "A", 1, {{"duration_ms", 3000}})
      .Elected(1200, "B", 2)
      .WriteDone(1300, "B", 2)
      .Worker(3050, "resumed", "A", 1, {{"paused_ms", 3000}})
      .Worker(3060, "write_attempt", "A", 1, {{"key", "report"}, {"token", nullptr}})
      .WriteDone(3070, "A", 1)
      .Worker(3100, "lease_lost", "A", 1, {{"reason", "keepalive 404"}});
  Findings f = log.Analyze();
  EXPECT_TRUE(f.SplitBrainEvidence());
  ASSERT_EQ(f.overlaps.size(), 1u);
  const Overlap& o = f.overlaps[0];
  EXPECT_EQ(o.lock, "leader");
  EXPECT_EQ(o.older.owner, "A");
  EXPECT_EQ(o.newer.owner, "B");
  EXPECT_EQ(o.from, kT0 + 1200);
  EXPECT_EQ(o.to, kT0 + 3100);
  ASSERT_EQ(f.stale_writes.size(), 1u);
  const StaleWrite& w = f.stale_writes[0];
  EXPECT_EQ(w.outcome, WriteOutcome::kLanded);
  EXPECT_EQ(w.owner, "A");
  EXPECT_EQ(w.term, 1u);
  EXPECT_EQ(w.newer_term, 2u);
  EXPECT_EQ(w.newer_owner, "B");
  EXPECT_EQ(w.where.line, 7u);
  EXPECT_EQ(f.LandedStaleWrites(), 1u);
  EXPECT_TRUE(f.fenced_writes.empty());

  const std::string report = FormatReport(f);
  EXPECT_NE(report.find("SPLIT-BRAIN EVIDENCE FOUND"), std::string::npos) << report;
  EXPECT_NE(report.find("1900 ms"), std::string::npos) << report;
  EXPECT_NE(report.find("1 LANDED"), std::string::npos) << report;
  auto j = ToJson(f);
  EXPECT_EQ(j["verdict"], "split_brain_evidence");
  EXPECT_EQ(j["overlaps"][0]["duration_ms"], 1900);
  EXPECT_EQ(j["overlaps"][0]["from"], "2024-05-01T12:00:01.200Z");
  EXPECT_EQ(j["stale_writes"]["landed"], 1);
}

// Log lines have millisecond timestamps: a worker that writes, resigns and
// is elected again within one millisecond logs all three with the same ts.
// Its own file's line order says the write came first: no stale write.
TEST(LogscanTest, AWriteBeforeANewerElectionInTheSameMillisecondOfOneFileIsNotStale) {
  LogBuilder log;
  log.Elected(0, "W", 1)
      .WriteDone(100, "W", 1)
      .Worker(100, "resigned", "W", 1)
      .Elected(100, "W", 2)
      .WriteDone(100, "W", 2);
  Findings f = log.Analyze();
  EXPECT_TRUE(f.stale_writes.empty()) << FormatReport(f);
  EXPECT_FALSE(f.SplitBrainEvidence()) << FormatReport(f);

  // From two files, lines of one millisecond have no order: the write is
  // still reported, since a stale write must not be missed.
  LogBuilder a("a.log");
  LogBuilder b("b.log");
  a.Elected(0, "A", 1).WriteDone(100, "A", 1);
  b.Elected(100, "B", 2);
  Findings both = LogBuilder::AnalyzeAll({&a, &b});
  EXPECT_EQ(both.LandedStaleWrites(), 1u) << FormatReport(both);
}

// The fenced demo: the same overlap, but the store refuses A's write.
TEST(LogscanTest, FencedRunShowsOverlapAndEveryStaleWriteRejected) {
  LogBuilder workers("workers.log");
  workers.Elected(0, "A", 1)
      .Worker(50, "pause_injected", "A", 1)
      .Elected(1200, "B", 2)
      .WriteDone(1300, "B", 2)
      .Worker(3070, "fenced", "A", 1, {{"key", "report"}, {"token", 1}, {"highest_token", 2}});
  LogBuilder store("store.log");
  store.Add(Line(1300, "store", "write_accepted",
                 {{"op", "put"}, {"key", "report"}, {"token", 2}, {"highest_token", 2}}))
      .Add(Line(3069, "store", "write_fenced",
                {{"key", "report"}, {"token", 1}, {"highest_token", 2}, {"error", "stale_token"}}));
  Findings f = LogBuilder::AnalyzeAll({&workers, &store});
  EXPECT_TRUE(f.SplitBrainEvidence());
  ASSERT_EQ(f.overlaps.size(), 1u);
  EXPECT_EQ(f.overlaps[0].from, kT0 + 1200);
  EXPECT_EQ(f.overlaps[0].to, kT0 + 3070);
  EXPECT_EQ(f.overlaps[0].older.ended_by, "fenced");
  EXPECT_EQ(f.LandedStaleWrites(), 0u);
  ASSERT_EQ(f.RejectedStaleWrites(), 1u);
  EXPECT_EQ(f.stale_writes[0].newer_term, 2u);
  EXPECT_EQ(f.stale_writes[0].newer_owner, "B");
  // The store's line counts the refused write; the worker's is the same write.
  ASSERT_EQ(f.fenced_writes.size(), 1u);
  EXPECT_EQ(f.fenced_writes[0].component, "store");
  EXPECT_EQ(f.fenced_writes[0].where.source, "store.log");
  ASSERT_TRUE(f.FencedWritesPerSecond());
  EXPECT_NEAR(*f.FencedWritesPerSecond(), 1.0 / 3.07, 1e-9);
  EXPECT_TRUE(f.regressions.empty());
  EXPECT_EQ(ToJson(f)["fenced_writes"]["count"], 1);
}

TEST(LogscanTest, CountsWorkerFencedLinesWhenNoStoreLogIsGiven) {
  LogBuilder log;
  log.Elected(0, "A", 1).Elected(500, "B", 2).Worker(
      600, "fenced", "A", 1, {{"key", "k"}, {"token", 1}, {"highest_token", 2}});
  Findings f = log.Analyze();
  ASSERT_EQ(f.fenced_writes.size(), 1u);
  EXPECT_EQ(f.fenced_writes[0].component, "worker");
  EXPECT_EQ(f.fenced_writes[0].owner, "A");
}

TEST(LogscanTest, FencedWritesAloneAreEvidence) {
  LogBuilder store;
  for (int i = 0; i < 4; ++i) {
    store.Add(Line(static_cast<EpochMillis>(i) * 1000, "store", "write_fenced",
                   {{"key", "k"}, {"token", 3}, {"highest_token", 9}}));
  }
  Findings f = store.Analyze();
  EXPECT_TRUE(f.SplitBrainEvidence());
  EXPECT_EQ(f.fenced_writes.size(), 4u);
  EXPECT_NEAR(*f.FencedWritesPerSecond(), 4.0 / 3.0, 1e-9);
}

TEST(LogscanTest, OpenTermLastsUntilTheOwnersLastLine) {
  LogBuilder quiet;
  quiet.Elected(0, "A", 1).WriteDone(300, "A", 1).Elected(1000, "B", 2);
  EXPECT_TRUE(quiet.Analyze().overlaps.empty());

  LogBuilder late;
  late.Elected(0, "A", 1).Elected(1000, "B", 2).WriteDone(1200, "A", 1);
  Findings f = late.Analyze();
  ASSERT_EQ(f.overlaps.size(), 1u);
  EXPECT_EQ(f.overlaps[0].to, kT0 + 1200);
  EXPECT_TRUE(f.overlaps[0].older.ended_by.empty());
  EXPECT_EQ(f.LandedStaleWrites(), 1u);
}

TEST(LogscanTest, TermsOnDifferentLocksDoNotOverlap) {
  LogBuilder log;
  log.Elected(0, "A", 1, "orders").Elected(100, "B", 2, "billing").WriteDone(200, "A", 1);
  Findings f = log.Analyze();
  EXPECT_TRUE(f.overlaps.empty());
  EXPECT_TRUE(f.stale_writes.empty());
}

// Two demo runs read together: each lockd starts its tokens at 1 again. The
// second run's A (term 1) must not look stale next to the first run's B.
TEST(LogscanTest, SeparateRunsDoNotAccuseEachOther) {
  LogBuilder first("first.log");
  first.Add(Line(0, "lockd", "granted", {{"name", "leader"}, {"owner", "A"}, {"token", 1}}))
      .Elected(0, "A", 1)
      .Worker(100, "resigned", "A", 1)
      .Add(Line(200, "lockd", "granted", {{"name", "leader"}, {"owner", "B"}, {"token", 2}}))
      .Elected(200, "B", 2)
      .Worker(300, "resigned", "B", 2);
  LogBuilder second("second.log");
  second.Add(Line(5000, "lockd", "granted", {{"name", "leader"}, {"owner", "A"}, {"token", 1}}))
      .Elected(5000, "A", 1)
      .WriteDone(5100, "A", 1)
      .Worker(5200, "resigned", "A", 1);
  Findings f = LogBuilder::AnalyzeAll({&first, &second});
  EXPECT_FALSE(f.SplitBrainEvidence()) << FormatReport(f);
}

TEST(LogscanTest, FindsTokenRegressions) {
  LogBuilder log("lockd-and-store.log");
  log.Add(Line(0, "lockd", "granted", {{"name", "a"}, {"owner", "A"}, {"token", 5}}))
      .Add(Line(10, "lockd", "granted", {{"name", "b"}, {"owner", "B"}, {"token", 5}}))
      .Add(Line(20, "store", "write_accepted",
                {{"key", "k"}, {"token", 7}, {"highest_token", 7}}))
      .Add(Line(30, "store", "fence_raised",
                {{"key", "k"}, {"token", 4}, {"highest_token", 4}}))
      .Elected(40, "A", 9)
      .Worker(41, "resigned", "A", 9)
      .Elected(50, "B", 8)
      .Worker(51, "resigned", "B", 8);
  Findings f = log.Analyze();
  ASSERT_EQ(f.regressions.size(), 3u) << FormatReport(f);
  EXPECT_EQ(f.regressions[0].kind, "lockd_grant");
  EXPECT_EQ(f.regressions[0].subject, "b");
  EXPECT_EQ(f.regressions[0].before, 5u);
  EXPECT_EQ(f.regressions[0].after, 5u);
  EXPECT_EQ(f.regressions[1].kind, "store_fence");
  EXPECT_EQ(f.regressions[1].before, 7u);
  EXPECT_EQ(f.regressions[1].after, 4u);
  EXPECT_EQ(f.regressions[2].kind, "leader_term");
  EXPECT_TRUE(f.SplitBrainEvidence());
  EXPECT_NE(FormatReport(f).find("Token regressions: 3"), std::string::npos);
}

TEST(LogscanTest, StoreAloneSeesAStaleWriteThatLandedWithFencingOff) {
  LogBuilder store;
  store.Add(Line(0, "store", "write_accepted", {{"key", "k"}, {"token", 5}}))
      .Add(Line(10, "store", "write_accepted", {{"key", "k"}, {"token", 3}}))
      .Add(Line(20, "store", "write_accepted", {{"key", "other"}, {"token", 1}}));
  Findings f = store.Analyze();
  ASSERT_EQ(f.stale_writes.size(), 1u);
  EXPECT_EQ(f.stale_writes[0].outcome, WriteOutcome::kLanded);
  EXPECT_EQ(f.stale_writes[0].key, "k");
  EXPECT_EQ(f.stale_writes[0].term, 3u);
  EXPECT_EQ(f.stale_writes[0].newer_term, 5u);
}

TEST(LogscanTest, OrdersEventsFromSeveralFilesByTime) {
  LogBuilder a("a.log"), b("b.log");
  a.Elected(0, "A", 1).WriteDone(2000, "A", 1).Worker(2100, "lease_lost", "A", 1);
  b.Elected(1000, "B", 2).Worker(1500, "resigned", "B", 2);
  Findings f = LogBuilder::AnalyzeAll({&a, &b});
  ASSERT_EQ(f.overlaps.size(), 1u);
  EXPECT_EQ(f.overlaps[0].from, kT0 + 1000);
  EXPECT_EQ(f.overlaps[0].to, kT0 + 1500);
  EXPECT_EQ(f.LandedStaleWrites(), 1u);
  EXPECT_EQ(*f.first_ts, kT0);
  EXPECT_EQ(*f.last_ts, kT0 + 2100);
}

TEST(LogscanTest, ReportListsAtMostMaxItems) {
  LogBuilder store;
  for (int i = 0; i < 30; ++i) {
    store.Add(Line(i, "store", "write_fenced", {{"key", "k"}, {"token", 1}, {"highest_token", 2}}));
  }
  const std::string report = FormatReport(store.Analyze(), 5);
  EXPECT_NE(report.find("... and 25 more"), std::string::npos) << report;
}

}  // namespace
}  // namespace fence::tools::logscan
