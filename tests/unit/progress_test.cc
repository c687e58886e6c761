// The status line of long tools: redrawn in place on a terminal, one plain
// line per step elsewhere.
#include "tools/progress/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace fence::tools {
namespace {

std::string Contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string text;
  char buf[256];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  return text;
}

TEST(ProgressTest, PlainOutputIsOneLinePerStepWithoutWaits) {
  std::FILE* f = std::tmpfile();
  FakeClock clock;
  {
    Progress p(f, /*terminal=*/false, 2, clock);
    p.Step("starting");
    p.Waiting("A stopped for 2000 ms");  // not shown off a terminal
    clock.Advance(Millis(1500));
    p.Step("fenced run");
  }
  EXPECT_EQ(Contents(f), "[1/2] starting (0.0 s)\n[2/2] fenced run (1.5 s)\n");
  std::fclose(f);
}

TEST(ProgressTest, TerminalRedrawsOneLineWithWhatItWaitsForAndClearsIt) {
  std::FILE* f = std::tmpfile();
  FakeClock clock;
  {
    // A redraw interval longer than the test: only Step and Waiting draw.
    Progress p(f, /*terminal=*/true, 3, clock, Millis(3600000));
    p.Step("fenced run");
    clock.Advance(Millis(2300));
    p.Waiting("A stopped for 2000 ms");
    EXPECT_EQ(p.StatusLine(), "[1/3] fenced run: A stopped for 2000 ms (2.3 s)");
  }
  const std::string out = Contents(f);
  EXPECT_EQ(out,
            "\r\033[K[1/3] fenced run (0.0 s)"
            "\r\033[K[1/3] fenced run: A stopped for 2000 ms (2.3 s)"
            "\r\033[K");
  EXPECT_EQ(out.find('\n'), std::string::npos) << "a terminal keeps one line";
  std::fclose(f);
}

TEST(ProgressTest, TerminalLineIsCutToFitOneRow) {
  std::FILE* f = std::tmpfile();  // not a terminal: taken as 80 columns
  FakeClock clock;
  {
    Progress p(f, /*terminal=*/true, 1, clock, Millis(3600000));
    p.Step(std::string(200, 'x'));
  }
  const std::string out = Contents(f);
  const std::string drawn = out.substr(4, out.size() - 4 - 4);  // between the clears
  EXPECT_EQ(drawn.size(), 79u);
  EXPECT_EQ(drawn.substr(76), "...");
  std::fclose(f);
}

}  // namespace
}  // namespace fence::tools
