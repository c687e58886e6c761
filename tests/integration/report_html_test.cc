// report.html and fence-logscan --html in a real browser: a short real demo
// (lockd, store, workers, a real SIGSTOP) writes its logs and report.html;
// headless Chromium loads the page, and the marks are counted in the DOM it
// rendered, against counts this test computes from the log files itself.
// Screenshots are kept with the demo's output in
// build/test-artifacts/report-html/ for a person to look at.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <tuple>

#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// (data-lane, data-event, data-token) -> how many marks.
using MarkCounts = std::map<std::tuple<std::string, std::string, std::string>, int>;

// The rule, written out independently of the renderer: which log lines get
// a mark, in which lane, with which token.
bool GetsMark(const std::string& component, const std::string& event) {
  if (component == "worker") {
    return event == "elected" || event == "fence_raised" || event == "write_done" ||
           event == "fenced";
  }
  if (component == "lockd") {
    return event == "lease_broken" || event == "lock_delay_started" || event == "lock_delay_ended";
  }
  return component == "store" &&
         (event == "write_accepted" || event == "write_fenced" || event == "fence_raised");
}

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("ts") && j.contains("component")) out.push_back(j);
  }
  return out;
}

MarkCounts ExpectedMarks(const std::vector<nlohmann::json>& lines) {
  MarkCounts counts;
  for (const auto& j : lines) {
    const std::string component = j.value("component", "");
    const std::string event = j.value("event", "");
    if (!GetsMark(component, event)) continue;
    const std::string lane = component == "worker" ? "worker " + j.value("owner", "") : component;
    const std::string token = j.contains("token") && j["token"].is_number_integer()
                                  ? std::to_string(j["token"].get<std::uint64_t>())
                                  : "";
    ++counts[{lane, event, token}];
  }
  return counts;
}

// The attributes of every start tag of the DOM that carries data-run="run".
std::vector<std::map<std::string, std::string>> Elements(const std::string& dom,
                                                         const std::string& run) {
  static const std::regex tag("<(g|rect)\\s([^>]*)>");
  static const std::regex attr("([\\w-]+)=\"([^\"]*)\"");
  std::vector<std::map<std::string, std::string>> out;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), tag); it != std::sregex_iterator();
       ++it) {
    const std::string attrs = (*it)[2];
    std::map<std::string, std::string> m;
    for (auto a = std::sregex_iterator(attrs.begin(), attrs.end(), attr);
         a != std::sregex_iterator(); ++a) {
      m[(*a)[1]] = (*a)[2];
    }
    if (m["data-run"] == run) out.push_back(std::move(m));
  }
  return out;
}

MarkCounts RenderedMarks(const std::string& dom, const std::string& run) {
  MarkCounts counts;
  for (auto& m : Elements(dom, run)) {
    if (m.count("data-event") != 0) ++counts[{m["data-lane"], m["data-event"], m["data-token"]}];
  }
  return counts;
}

// Lease bars per token at lockd, from the DOM and from the log.
std::map<std::string, int> RenderedLeases(const std::string& dom, const std::string& run) {
  std::map<std::string, int> counts;
  for (auto& m : Elements(dom, run)) {
    if (m["data-bar"] == "lease") ++counts[m["data-token"]];
  }
  return counts;
}
std::map<std::string, int> LoggedGrants(const std::vector<nlohmann::json>& lines) {
  std::map<std::string, int> counts;
  for (const auto& j : lines) {
    if (j.value("component", "") == "lockd" && j.value("event", "") == "granted") {
      ++counts[std::to_string(j.value("token", std::uint64_t{0}))];
    }
  }
  return counts;
}

std::string Describe(const MarkCounts& counts) {
  std::string out;
  for (const auto& [k, n] : counts) {
    out += "  " + std::get<0>(k) + " / " + std::get<1>(k) + " / token '" + std::get<2>(k) +
           "': " + std::to_string(n) + "\n";
  }
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// Headless Chromium (Debian's `chromium`): its stdout only (its stderr is
// D-Bus noise in a container), each run with a fresh profile.
ToolRun Chromium(const std::string& profile, std::vector<std::string> args) {
  const auto chromium = FindProgram("chromium");
  EXPECT_TRUE(chromium.has_value()) << "chromium is not installed (deploy/install-deps.sh)";
  if (!chromium) return {};
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>/dev/null", *chromium,
                                   "--headless=new", "--no-sandbox", "--disable-gpu",
                                   "--no-first-run", "--user-data-dir=" + profile};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunTool(argv, 60s);
}

std::string DumpDom(const std::string& profile, const std::string& file) {
  ToolRun run = Chromium(profile, {"--dump-dom", "file://" + file});
  EXPECT_EQ(run.exit_code, 0) << run.Output();
  return run.Output();
}

// A PNG of `width` x `height` (read from its IHDR chunk); its size in bytes.
std::uintmax_t ExpectPng(const std::string& path, std::uint32_t width, std::uint32_t height) {
  const std::string png = ReadFileOrEmpty(path);
  EXPECT_GE(png.size(), 24u) << path << " is missing or not a PNG";
  if (png.size() < 24) return 0;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(png[at + i]);
    return v;
  };
  EXPECT_EQ(be32(16), width);
  EXPECT_EQ(be32(20), height);
  return png.size();
}

// A's pause, one hatched span per run, from pause_injected (just before the
// SIGSTOP) to resumed (after the SIGCONT).
void ExpectPauseFromSigstopToSigcont(const std::string& dom) {
  for (const std::string run : {"unfenced", "fenced"}) {
    int pauses = 0;
    for (auto& m : Elements(dom, run)) {
      if (m["data-bar"] != "pause") continue;
      ++pauses;
      EXPECT_EQ(m["data-owner"], "A");
      EXPECT_EQ(m["data-end-event"], "resumed");
      // The demo stops A for TTL + margin = 1100 ms.
      EXPECT_GE(std::stoll(m["data-to-ms"]) - std::stoll(m["data-from-ms"]), 1100);
    }
    EXPECT_EQ(pauses, 1) << run;
  }
}

// The first line of `event` at lockd, or null.
nlohmann::json LockdLine(const std::vector<nlohmann::json>& lines, const std::string& event) {
  for (const auto& j : lines) {
    if (j.value("component", "") == "lockd" && j.value("event", "") == event) return j;
  }
  return nullptr;
}

// The lock-delay run: one lock-delay span on lockd's lane, from its
// lock_delay_started mark to its lock_delay_ended mark; the break run: one
// lease_broken mark, at lockd, with A's token.
void ExpectLockdMarks(const std::string& dom, const std::vector<nlohmann::json>& delay_log,
                      const std::vector<nlohmann::json>& break_log) {
  const auto started = LockdLine(delay_log, "lock_delay_started");
  const auto ended = LockdLine(delay_log, "lock_delay_ended");
  ASSERT_TRUE(started.is_object() && ended.is_object()) << "no lock-delay in lock-delay.log";
  std::map<std::string, std::string> span, start_mark, end_mark;
  int spans = 0;
  for (auto& m : Elements(dom, "lock-delay")) {
    if (m["data-bar"] == "lock-delay") span = m, ++spans;
    if (m["data-event"] == "lock_delay_started") start_mark = m;
    if (m["data-event"] == "lock_delay_ended") end_mark = m;
  }
  ASSERT_EQ(spans, 1);
  EXPECT_EQ(span["data-lane"], "lockd");
  EXPECT_EQ(span["data-token"], std::to_string(started.value("token", 0)));
  EXPECT_EQ(span["data-from-ms"], start_mark["data-ms"]);
  EXPECT_EQ(span["data-to-ms"], end_mark["data-ms"]);
  EXPECT_GE(std::stoll(span["data-to-ms"]) - std::stoll(span["data-from-ms"]) + 1,
            started.value("lock_delay_ms", 0));

  const auto broken = LockdLine(break_log, "lease_broken");
  ASSERT_TRUE(broken.is_object()) << "no lease_broken in break.log";
  const auto marks = RenderedMarks(dom, "break");
  const auto it = marks.find({"lockd", "lease_broken", std::to_string(broken.value("token", 0))});
  EXPECT_EQ(it == marks.end() ? 0 : it->second, 1) << "A's lease_broken mark";
  EXPECT_EQ(broken.value("owner", ""), "A");
}

class ReportHtmlTest : public ::testing::Test {
 protected:
  // One short demo per test (ctest runs each test alone), about 5 s: the
  // trade-off at the run's own TTL reuses its failover trial. Its output is
  // kept for people.
  static void SetUpTestSuite() {
    artifacts_ = (fs::path(SiblingBinary("fence-demo")).parent_path().parent_path() /
                  "test-artifacts" / "report-html").string();
    // Kept between runs for people to look at; each file is replaced.
    std::error_code ec;
    fs::create_directories(artifacts_, ec);
    profile_ = new TempDir("fence-chromium");
    demo_ = RunTool({SiblingBinary("fence-demo"), "--out", Out(""), "--ttl-ms", "300",
                     "--pause-margin-ms", "800", "--failover-trials", "1", "--tradeoff-ttls",
                     "300", "--tradeoff-trials", "1", "--stall-trials", "1"},
                    std::chrono::minutes(2));
  }
  static void TearDownTestSuite() {
    delete profile_;
    profile_ = nullptr;
  }
  void SetUp() override { ASSERT_EQ(demo_.exit_code, 0) << demo_.Output(); }

  static std::string Out(const std::string& name) { return artifacts_ + "/demo-out/" + name; }
  static std::string Profile(const std::string& name) { return profile_->Sub(name); }

  static std::string artifacts_;
  static TempDir* profile_;
  static ToolRun demo_;
};

std::string ReportHtmlTest::artifacts_;
TempDir* ReportHtmlTest::profile_ = nullptr;
ToolRun ReportHtmlTest::demo_;

TEST_F(ReportHtmlTest, EveryLoggedWriteFenceAndElectionHasExactlyOneMarkInTheBrowser) {
  const std::string dom = DumpDom(Profile("dom"), Out("report.html"));
  ASSERT_NE(dom.find("</svg>"), std::string::npos) << dom.substr(0, 2000);
  // The bypass run: the fenced run's store lines, then the bypass PUT's.
  std::vector<nlohmann::json> bypass;
  for (auto& j : JsonLines(Out("fenced.log"))) {
    if (j.value("component", "") == "store") bypass.push_back(j);
  }
  // The stale PUT's line and, signed tokens being on (the demo started
  // lockd), the forged future token's refusal.
  const auto bypass_lines = JsonLines(Out("bypass.log"));
  ASSERT_EQ(bypass_lines.size(), 2u) << ReadFileOrEmpty(Out("bypass.log"));
  bypass.insert(bypass.end(), bypass_lines.begin(), bypass_lines.end());

  const std::map<std::string, std::vector<nlohmann::json>> runs = {
      {"unfenced", JsonLines(Out("unfenced.log"))},
      {"fenced", JsonLines(Out("fenced.log"))},
      {"bypass", bypass},
      {"lock-delay", JsonLines(Out("lock-delay.log"))},
      {"break", JsonLines(Out("break.log"))}};
  for (const auto& [run, lines] : runs) {
    const MarkCounts expected = ExpectedMarks(lines);
    ASSERT_GE(expected.size(), 3u) << run << ": too few events in the logs to check";
    const MarkCounts rendered = RenderedMarks(dom, run);
    EXPECT_EQ(rendered, expected) << run << "\nrendered:\n"
                                  << Describe(rendered) << "expected from the logs:\n"
                                  << Describe(expected);
    if (run != "bypass") {
      EXPECT_EQ(RenderedLeases(dom, run), LoggedGrants(lines)) << run;
    }
  }
  // The split-brain itself: a shaded window and A's stale write landing.
  EXPECT_FALSE(Elements(dom, "unfenced").empty());
  int windows = 0;
  for (auto& m : Elements(dom, "unfenced")) windows += m["data-window"] == "both-led";
  EXPECT_EQ(windows, 1);
  EXPECT_EQ((RenderedMarks(dom, "unfenced")[{"store", "write_accepted", ""}]), 2);
  int refused = 0;
  for (const auto& [key, n] : RenderedMarks(dom, "fenced")) {
    if (std::get<0>(key) == "store" && std::get<1>(key) == "write_fenced") refused += n;
  }
  EXPECT_EQ(refused, 1);
  ExpectPauseFromSigstopToSigcont(dom);
  ExpectLockdMarks(dom, runs.at("lock-delay"), runs.at("break"));
  // The trade-off plot is inline too.
  EXPECT_NE(dom.find("False evictions of a slow leader vs TTL"), std::string::npos);
}

TEST_F(ReportHtmlTest, ScreenshotIsSavedWithTheDemoOutput) {
  const std::string shot = Out("report.png");
  std::error_code ec;
  fs::remove(shot, ec);  // a previous run's picture proves nothing
  ToolRun run = Chromium(Profile("shot"), {"--screenshot=" + shot, "--window-size=1400,900",
                                           "file://" + Out("report.html")});
  ASSERT_EQ(run.exit_code, 0) << run.Output();
  // Non-trivial: far larger than a blank page of the same size.
  const std::string blank_html = artifacts_ + "/blank.html";
  ASSERT_TRUE(WriteFile(blank_html, "<!DOCTYPE html><html><body></body></html>"));
  ToolRun blank = Chromium(Profile("blank"), {"--screenshot=" + artifacts_ + "/blank.png",
                                              "--window-size=1400,900", "file://" + blank_html});
  ASSERT_EQ(blank.exit_code, 0) << blank.Output();
  const auto report_bytes = ExpectPng(shot, 1400, 900);
  const auto blank_bytes = ExpectPng(artifacts_ + "/blank.png", 1400, 900);
  EXPECT_GT(report_bytes, 5 * blank_bytes) << "report.png looks empty";
  std::printf("screenshot: %s (%ju bytes)\n", shot.c_str(), report_bytes);
  // The whole page, down to the lock-delay and break timelines at its end.
  const std::string full = Out("report-full.png");
  fs::remove(full, ec);
  ToolRun whole = Chromium(Profile("full"), {"--screenshot=" + full, "--window-size=1400,4400",
                                             "file://" + Out("report.html")});
  ASSERT_EQ(whole.exit_code, 0) << whole.Output();
  EXPECT_GT(ExpectPng(full, 1400, 4400), report_bytes);
  std::printf("whole page: %s\n", full.c_str());
}

TEST_F(ReportHtmlTest, LogscanHtmlDrawsTheSameMarksFromTheLogFiles) {
  const std::string html = artifacts_ + "/logscan.html";
  ToolRun scan = RunTool({SiblingBinary("fence-logscan"), "--html", html, Out("unfenced.log"),
                          Out("fenced.log")});
  EXPECT_EQ(scan.exit_code, 1) << scan.Output();  // split-brain evidence found
  const std::string dom = DumpDom(Profile("logscan"), html);
  auto lines = JsonLines(Out("unfenced.log"));
  for (auto& j : JsonLines(Out("fenced.log"))) lines.push_back(j);
  const MarkCounts expected = ExpectedMarks(lines);
  EXPECT_EQ(RenderedMarks(dom, "logs"), expected) << "expected:\n" << Describe(expected);
  EXPECT_EQ(RenderedLeases(dom, "logs"), LoggedGrants(lines));
  std::error_code ec;
  fs::remove(artifacts_ + "/logscan.png", ec);
  ToolRun shot = Chromium(Profile("logscan-shot"), {"--screenshot=" + artifacts_ + "/logscan.png",
                                                    "--window-size=1400,900", "file://" + html});
  EXPECT_EQ(shot.exit_code, 0) << shot.Output();
  EXPECT_GT(ExpectPng(artifacts_ + "/logscan.png", 1400, 900), 0u);
}

TEST(LogscanHtmlFlagsTest, UnreadableFileNoEventsOrUnwritableOutputExit2) {
  TempDir dir("fence-logscan-html");
  const std::string html = dir.Sub("out.html");
  ToolRun missing = RunTool({SiblingBinary("fence-logscan"), "--html", html, dir.Sub("nope.log")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.Output().find("input_unreadable"), std::string::npos) << missing.Output();

  ASSERT_TRUE(WriteFile(dir.Sub("text.log"), "not a log\n{\"no\":\"event\"}\n"));
  ToolRun empty = RunTool({SiblingBinary("fence-logscan"), "--html", html, dir.Sub("text.log")});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_NE(empty.Output().find("no_events"), std::string::npos) << empty.Output();
  EXPECT_FALSE(Exists(html)) << "an HTML file was written for unusable input";

  ASSERT_TRUE(WriteFile(dir.Sub("one.log"),
                        R"({"ts":"2026-01-01T00:00:00.000Z","component":"store",)"
                        R"("event":"write_accepted","key":"k","token":1})"
                        "\n"));
  ToolRun unwritable = RunTool({SiblingBinary("fence-logscan"), "--html",
                                dir.Sub("no-such-dir/out.html"), dir.Sub("one.log")});
  EXPECT_EQ(unwritable.exit_code, 2);
  EXPECT_NE(unwritable.Output().find("output_unwritable"), std::string::npos)
      << unwritable.Output();
  ToolRun ok = RunTool({SiblingBinary("fence-logscan"), "--html", html, dir.Sub("one.log")});
  EXPECT_EQ(ok.exit_code, 0) << ok.Output();
  EXPECT_NE(ReadFileOrEmpty(html).find("data-event=\"write_accepted\""), std::string::npos);
}

}  // namespace
}  // namespace fence::testing
