// The timeline's pure layout (events -> lanes, bars, marks, windows, ticks
// with coordinates) and its HTML printer, on hand-written events shaped
// like the demo's logs.
#include "tools/timeline/timeline.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>

#include "tools/timeline/timeline_html.h"

namespace fence::tools::timeline {
namespace {

constexpr EpochMillis kBase = 1'800'000'000'000;

logscan::LogEvent Ev(EpochMillis at, const std::string& component, const std::string& event,
                     nlohmann::json fields = nlohmann::json::object()) {
  logscan::LogEvent e;
  e.source = "test.log";
  e.ts = kBase + at;
  e.component = component;
  e.event = event;
  fields["component"] = component;
  fields["event"] = event;
  e.fields = std::move(fields);
  return e;
}

// The fenced run of the demo: A elected with 4, stopped, its lease expires,
// B elected with 5 fences and writes, A resumes and is refused.
std::vector<logscan::LogEvent> FencedRun() {
  return {
      Ev(0, "lockd", "granted", {{"lease_id", "a"}, {"name", "L"}, {"owner", "A"}, {"token", 4}}),
      Ev(0, "worker", "elected", {{"owner", "A"}, {"lock", "L"}, {"token", 4}, {"term", 4}}),
      Ev(4, "store", "fence_raised", {{"key", "k"}, {"token", 4}, {"highest_token", 4}}),
      Ev(4, "worker", "fence_raised", {{"owner", "A"}, {"key", "k"}, {"token", 4}, {"term", 4}}),
      Ev(5, "worker", "pause_injected", {{"owner", "A"}, {"term", 4}, {"duration_ms", 1100}}),
      Ev(300, "lockd", "expired", {{"lease_id", "a"}, {"name", "L"}, {"owner", "A"}, {"token", 4}}),
      Ev(300, "lockd", "granted", {{"lease_id", "b"}, {"name", "L"}, {"owner", "B"}, {"token", 5}}),
      Ev(301, "worker", "elected", {{"owner", "B"}, {"lock", "L"}, {"token", 5}, {"term", 5}}),
      Ev(302, "store", "fence_raised", {{"key", "k"}, {"token", 5}, {"highest_token", 5}}),
      Ev(303, "store", "write_accepted", {{"key", "k"}, {"token", 5}, {"highest_token", 5}}),
      Ev(303, "worker", "write_done", {{"owner", "B"}, {"key", "k"}, {"token", 5}, {"term", 5}}),
      Ev(304, "worker", "resigned", {{"owner", "B"}, {"term", 5}}),
      Ev(304, "lockd", "released", {{"lease_id", "b"}, {"name", "L"}, {"owner", "B"}, {"token", 5}}),
      Ev(1105, "worker", "resumed", {{"owner", "A"}, {"term", 4}, {"paused_ms", 1100}}),
      Ev(1106, "store", "write_fenced", {{"key", "k"}, {"token", 4}, {"highest_token", 5}}),
      Ev(1106, "worker", "fenced", {{"owner", "A"}, {"key", "k"}, {"token", 4}, {"term", 4}}),
      Ev(1107, "demo", "scenario_done"),  // not a lane: left out, and not the log's end
  };
}

const Bar* FindBar(const Layout& l, BarKind kind, const std::string& owner) {
  for (const auto& b : l.bars) {
    if (b.kind == kind && b.owner == owner) return &b;
  }
  return nullptr;
}

TEST(MarkShapeOfTest, EveryDrawnEventHasItsShape) {
  struct Case {
    const char* component;
    const char* event;
    std::optional<MarkShape> shape;
  };
  const Case cases[] = {
      {"store", "write_accepted", MarkShape::kCircle},
      {"store", "write_fenced", MarkShape::kCross},
      {"store", "fence_raised", MarkShape::kTriangle},
      {"worker", "write_done", MarkShape::kCircle},
      {"worker", "fenced", MarkShape::kCross},
      {"worker", "fence_raised", MarkShape::kTriangle},
      {"worker", "elected", MarkShape::kDiamond},
      {"worker", "write_attempt", std::nullopt},
      {"lockd", "granted", std::nullopt},  // a lease bar, not a mark
      {"lockd", "lease_broken", MarkShape::kBreak},
      {"lockd", "lock_delay_started", MarkShape::kDelayStart},
      {"lockd", "lock_delay_ended", MarkShape::kDelayEnd},
      {"worker", "lease_broken", std::nullopt},
      {"store", "elected", std::nullopt},
      {"demo", "write_done", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(MarkShapeOf(c.component, c.event), c.shape) << c.component << " " << c.event;
  }
}

TEST(LaneOfTest, OneLanePerWorkerAndOneEachForLockdAndStore) {
  struct Case {
    logscan::LogEvent event;
    std::string lane;
  };
  const Case cases[] = {
      {Ev(0, "worker", "elected", {{"owner", "A"}}), "worker A"},
      {Ev(0, "worker", "acquiring"), "worker"},
      {Ev(0, "lockd", "granted", {{"owner", "A"}}), "lockd"},
      {Ev(0, "store", "write_accepted"), "store"},
      {Ev(0, "demo", "scenario_started"), ""},
  };
  for (const auto& c : cases) EXPECT_EQ(LaneOf(c.event), c.lane) << c.event.event;
}

TEST(TickStepTest, OneTwoOrFiveTimesAPowerOfTen) {
  struct Case {
    EpochMillis span;
    int max_ticks;
    std::int64_t step;
  };
  const Case cases[] = {{0, 10, 1},     {10, 10, 1},      {11, 10, 2},       {1000, 10, 100},
                        {1100, 10, 200}, {25000, 10, 5000}, {60000, 6, 10000}, {7, 0, 5}};
  for (const auto& c : cases) {
    EXPECT_EQ(TickStep(c.span, c.max_ticks), c.step) << c.span << " / " << c.max_ticks;
  }
}

TEST(LayOutTest, LanesInReadingOrderAndTheAxisFromTheFirstEvent) {
  const Layout l = LayOut(FencedRun());
  std::vector<std::string> lanes;
  for (const auto& lane : l.lanes) lanes.push_back(lane.id);
  EXPECT_EQ(lanes, (std::vector<std::string>{"worker A", "worker B", "lockd", "store"}));
  EXPECT_EQ(l.start, kBase);
  EXPECT_EQ(l.span_ms, 1106);  // the demo line is not drawn, so not the end
  ASSERT_FALSE(l.ticks.empty());
  EXPECT_EQ(l.ticks.front().at_ms, 0);
  EXPECT_DOUBLE_EQ(l.ticks.front().x, l.plot_left);
  EXPECT_EQ(l.ticks[1].at_ms, 200);
  for (std::size_t i = 1; i < l.lanes.size(); ++i) {
    EXPECT_DOUBLE_EQ(l.lanes[i].top, l.lanes[i - 1].top + l.lanes[i - 1].height);
  }
  EXPECT_DOUBLE_EQ(l.plot_bottom, l.lanes.back().top + l.lanes.back().height);
}

TEST(LayOutTest, LeasesAreBarsFromGrantToTheirEndAtLockd) {
  const Layout l = LayOut(FencedRun());
  struct Case {
    std::string owner;
    std::uint64_t token;
    EpochMillis from, to;
    std::string end_event;
  };
  const Case cases[] = {{"A", 4, 0, 300, "expired"}, {"B", 5, 300, 304, "released"}};
  for (const auto& c : cases) {
    const Bar* b = FindBar(l, BarKind::kLease, c.owner);
    ASSERT_NE(b, nullptr) << c.owner;
    EXPECT_EQ(b->lane, "lockd");
    EXPECT_EQ(b->token, c.token);
    EXPECT_EQ(b->from_ms, c.from);
    EXPECT_EQ(b->to_ms, c.to);
    EXPECT_EQ(b->end_event, c.end_event);
    EXPECT_GE(b->x1 - b->x0, LayoutOptions{}.min_bar_width);
  }
  // Same lock, one after the other: one row.
  EXPECT_DOUBLE_EQ(FindBar(l, BarKind::kLease, "A")->y, FindBar(l, BarKind::kLease, "B")->y);
}

// The demo's lock-delay run at lockd: A's lease expires, nobody is granted
// the lock for 300 ms, then B is; and a break of B's lease.
std::vector<logscan::LogEvent> LockDelayAndBreak() {
  const nlohmann::json a = {{"lease_id", "a"}, {"name", "L"}, {"owner", "A"}, {"token", 4}};
  nlohmann::json b = {{"lease_id", "b"}, {"name", "L"}, {"owner", "B"}, {"token", 5}};
  nlohmann::json delay = a;
  delay["lock_delay_ms"] = 300;
  nlohmann::json broken = b;
  broken["reason"] = "B hung";
  return {Ev(0, "lockd", "granted", a),          Ev(300, "lockd", "expired", a),
          Ev(300, "lockd", "lock_delay_started", delay), Ev(600, "lockd", "lock_delay_ended", delay),
          Ev(600, "lockd", "granted", b),          Ev(700, "lockd", "lease_broken", broken)};
}

TEST(LayOutTest, LockDelayIsASpanOnLockdsLaneBetweenItsMarksInTheLeasesRow) {
  const Layout l = LayOut(LockDelayAndBreak());
  const Bar* delay = FindBar(l, BarKind::kLockDelay, "A");
  ASSERT_NE(delay, nullptr);
  EXPECT_EQ(delay->lane, "lockd");
  EXPECT_EQ(delay->token, 4u);
  EXPECT_EQ(delay->from_ms, 300);
  EXPECT_EQ(delay->to_ms, 600);
  EXPECT_EQ(delay->end_event, "lock_delay_ended");
  // Between A's lease and B's, in their row.
  EXPECT_DOUBLE_EQ(delay->y, FindBar(l, BarKind::kLease, "A")->y);
  EXPECT_DOUBLE_EQ(delay->y, FindBar(l, BarKind::kLease, "B")->y);
  EXPECT_EQ(FindBar(l, BarKind::kLease, "B")->end_event, "lease_broken");
  std::map<std::string, EpochMillis> marks;
  for (const auto& m : l.marks) {
    EXPECT_EQ(m.lane, "lockd") << m.event;
    marks[m.event] = m.at_ms;
  }
  EXPECT_EQ(marks, (std::map<std::string, EpochMillis>{
                       {"lock_delay_started", 300}, {"lock_delay_ended", 600}, {"lease_broken", 700}}));
  const std::string svg = TimelineSvg(l, "r");
  EXPECT_NE(svg.find("data-bar=\"lock-delay\""), std::string::npos);
  EXPECT_NE(svg.find("lock-delay 300 ms"), std::string::npos);
  EXPECT_NE(svg.find("broken t5"), std::string::npos);
}

TEST(LayOutTest, PauseTermAndTheTermsPartAfterItsLeaseEnded) {
  const Layout l = LayOut(FencedRun());
  const Bar* pause = FindBar(l, BarKind::kPause, "A");
  ASSERT_NE(pause, nullptr);
  EXPECT_EQ(pause->lane, "worker A");
  EXPECT_EQ(pause->from_ms, 5);
  EXPECT_EQ(pause->to_ms, 1105);
  EXPECT_EQ(pause->end_event, "resumed");
  EXPECT_EQ(FindBar(l, BarKind::kPause, "B"), nullptr);

  const Bar* term = FindBar(l, BarKind::kTerm, "A");
  ASSERT_NE(term, nullptr);
  EXPECT_EQ(term->from_ms, 0);
  EXPECT_EQ(term->to_ms, 1106);
  EXPECT_EQ(term->end_event, "fenced");
  const Bar* stale = FindBar(l, BarKind::kStaleBelief, "A");
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->from_ms, 300);  // lockd's expiry of A's lease
  EXPECT_EQ(stale->to_ms, 1106);
  // B resigned before its lease was released: it never believed past it.
  EXPECT_EQ(FindBar(l, BarKind::kStaleBelief, "B"), nullptr);
}

TEST(LayOutTest, OneMarkPerDrawnEventInItsLaneWithItsToken) {
  const Layout l = LayOut(FencedRun());
  struct Case {
    std::string lane, event;
    std::optional<std::uint64_t> token;
    EpochMillis at;
  };
  const std::vector<Case> cases = {
      {"worker A", "elected", 4, 0},       {"store", "fence_raised", 4, 4},
      {"worker A", "fence_raised", 4, 4},  {"worker B", "elected", 5, 301},
      {"store", "fence_raised", 5, 302},   {"store", "write_accepted", 5, 303},
      {"worker B", "write_done", 5, 303},  {"store", "write_fenced", 4, 1106},
      {"worker A", "fenced", 4, 1106},
  };
  ASSERT_EQ(l.marks.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(l.marks[i].lane, cases[i].lane) << i;
    EXPECT_EQ(l.marks[i].event, cases[i].event) << i;
    EXPECT_EQ(l.marks[i].token, cases[i].token) << i;
    EXPECT_EQ(l.marks[i].at_ms, cases[i].at) << i;
  }
  // Time maps linearly onto the plot: the first at its left, the last at its right.
  EXPECT_DOUBLE_EQ(l.marks.front().x, l.plot_left);
  EXPECT_DOUBLE_EQ(l.marks.back().x, l.plot_right);
}

TEST(LayOutTest, BothLedWindowIsLogscansOverlap) {
  const Layout l = LayOut(FencedRun());
  ASSERT_EQ(l.windows.size(), 1u);
  EXPECT_EQ(l.windows[0].older_owner, "A");
  EXPECT_EQ(l.windows[0].newer_owner, "B");
  EXPECT_EQ(l.windows[0].from_ms, 301);  // B elected
  EXPECT_EQ(l.windows[0].to_ms, 304);    // B resigned
  EXPECT_GE(l.windows[0].x1 - l.windows[0].x0, LayoutOptions{}.min_bar_width);
}

TEST(LayOutTest, OpenLeaseLastsToTheLogsEndAndOverlappingLeasesGetTheirOwnRows) {
  const Layout l = LayOut({
      Ev(0, "lockd", "granted", {{"lease_id", "x"}, {"name", "L1"}, {"owner", "P"}, {"token", 1}}),
      Ev(10, "lockd", "granted", {{"lease_id", "y"}, {"name", "L2"}, {"owner", "Q"}, {"token", 2}}),
      Ev(50, "lockd", "released", {{"lease_id", "y"}, {"name", "L2"}, {"owner", "Q"}, {"token", 2}}),
      Ev(90, "lockd", "renewed", {{"lease_id", "x"}}),
  });
  const Bar* p = FindBar(l, BarKind::kLease, "P");
  const Bar* q = FindBar(l, BarKind::kLease, "Q");
  ASSERT_TRUE(p && q);
  EXPECT_EQ(p->to_ms, 90);
  EXPECT_EQ(p->end_event, "");
  EXPECT_NE(p->y, q->y);
  ASSERT_EQ(l.lanes.size(), 1u);
  EXPECT_GE(l.lanes[0].height, 2 * LayoutOptions{}.lease_row_height);
}

TEST(LayOutTest, NoDrawableEventsGiveNoLanes) {
  EXPECT_TRUE(LayOut({}).lanes.empty());
  EXPECT_TRUE(LayOut({Ev(0, "demo", "scenario_started")}).lanes.empty());
}

TEST(LayOutTest, MarksTooCloseInOneRowAreSpreadAndShareOneLabel) {
  const Layout l = LayOut({
      Ev(0, "store", "fence_raised", {{"token", 5}}),
      Ev(1000, "store", "write_fenced", {{"token", 4}}),
      Ev(1001, "store", "write_fenced", {{"token", 4}}),
  });
  ASSERT_EQ(l.marks.size(), 3u);
  const Mark& a = l.marks[1];
  const Mark& b = l.marks[2];
  EXPECT_DOUBLE_EQ(b.x - a.x, LayoutOptions{}.min_mark_gap);
  EXPECT_EQ(b.at_ms, 1001);  // the time stays exact
  // At the right edge the shared label goes left of the first.
  EXPECT_EQ(a.label, "409 t4 \u00d72");
  EXPECT_TRUE(a.label_left);
  EXPECT_EQ(b.label, "");
  EXPECT_EQ(l.marks[0].label, "fence t5");
}

int Count(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), re),
                                        std::sregex_iterator()));
}

TEST(TimelineSvgTest, EveryMarkAndBarHasItsAttributesOnce) {
  const Layout l = LayOut(FencedRun());
  const std::string svg = TimelineSvg(l, "fenced");
  EXPECT_EQ(Count(svg, "data-event=\""), static_cast<int>(l.marks.size()));
  EXPECT_EQ(Count(svg, R"(<g class="mark" data-run="fenced" data-lane="store" data-event="write_fenced" data-token="4")"), 1);
  EXPECT_EQ(Count(svg, R"(data-lane="worker B" data-event="write_done" data-token="5")"), 1);
  EXPECT_EQ(Count(svg, R"(data-bar="lease")"), 2);
  EXPECT_EQ(Count(svg, R"(data-bar="pause" data-owner="A")"), 1);
  EXPECT_EQ(Count(svg, R"(data-window="both-led")"), 1);
  EXPECT_EQ(Count(svg, "<script"), 0);
  EXPECT_EQ(Count(svg, "https?://(?!www\\.w3\\.org/2000/svg)"), 0);
}

TEST(TimelineSvgTest, AnEmptyTimelineSaysSo) {
  const std::string html = TimelineSection("r", "Run", "text", LayOut({}));
  EXPECT_NE(html.find("nothing to draw"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
}

TEST(HtmlEscapeTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape(R"(<a href="x">'&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain"), "plain");
}

TEST(HtmlPageTest, SelfContained) {
  const std::string page = HtmlPage("t <1>", TimelineSection("r", "h", "p", LayOut(FencedRun())));
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<title>t &lt;1&gt;</title>"), std::string::npos);
  EXPECT_EQ(Count(page, "<script|<link|@import|src=|url\\((?!#)"), 0);
}

}  // namespace
}  // namespace fence::tools::timeline
