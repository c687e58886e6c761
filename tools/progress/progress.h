// Progress a person can follow while a long tool runs. On a terminal: one
// status line, redrawn in place a few times a second, with the step (k of
// n), what the tool is waiting for and the elapsed time. Elsewhere (CI, a
// pipe, a file): one plain line per step and nothing else, so logs stay
// quiet and line-oriented.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"

namespace fence::tools {

class Progress {
 public:
  // `terminal` chooses the redrawn status line; `clock` reads the elapsed
  // time (fence::MonotonicClock in the tools). A terminal Progress redraws
  // from a thread of its own every `redraw`.
  Progress(std::FILE* out, bool terminal, int steps, const Clock& clock,
           Millis redraw = Millis(250));
  ~Progress();  // clears the status line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A Progress on stdout, a terminal one if stdout is a terminal.
  static bool StdoutIsTerminal();

  // Starts the next step: "[k/n] what".
  void Step(const std::string& what);
  // What the current step waits for now ("A stopped for 2000 ms"); shown on
  // a terminal only.
  void Waiting(const std::string& what);
  // The status line as it is drawn now (for tests and the redraw thread).
  std::string StatusLine() const;

  // For a tool about to exit at once (a signal): clears the status line on a
  // terminal and prints `message` on a line of its own, and no Progress draws
  // again, so the shell's prompt starts on a clean row.
  static void EndWith(std::FILE* out, bool terminal, const std::string& message);

 private:
  void Draw();
  void RedrawLoop(Millis every);

  std::FILE* const out_;
  const bool terminal_;
  const int steps_;
  const Clock& clock_;
  const Millis started_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  int step_ = 0;          // GUARDED_BY(mu_)
  std::string what_;      // GUARDED_BY(mu_)
  std::string waiting_;   // GUARDED_BY(mu_)
  bool stop_ = false;     // GUARDED_BY(mu_)
  std::thread redraw_;
};

}  // namespace fence::tools
