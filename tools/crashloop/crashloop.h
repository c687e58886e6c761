// fence-crashloop: writers (store) or lock clients (lockd) against a real
// daemon, SIGKILLed at seeded random moments and restarted on the same data
// directory; after each restart, what it shows is checked against every
// answer it gave before (crashloop_check.h holds the decisions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "tools/crashloop/crashloop_check.h"

namespace fence::crashloop {

struct Options {
  std::string target;  // "store" or "lockd"
  int kills = 20;
  std::uint64_t seed = 0;
  int writers = 4;
  int keys = 16;  // keys (store) or locks (lockd)
  std::string work_dir;  // holds data/ (the daemon's data) and daemon.log
  double max_seconds = 600;
};

struct Summary {
  std::string target;
  std::uint64_t seed = 0;
  int kills = 0;
  long acknowledged = 0;  // writes (store) or grants, keep-alives, releases (lockd) answered
  long indeterminate = 0;  // sent, and no answer: the daemon was killed
  long indeterminate_applied = 0;  // store: unanswered writes found applied after restart
  long verified = 0;       // key checks after restarts (store), grants checked (lockd)
  std::vector<Violation> violations;
  double wall_seconds = 0;
};

// Each runs the whole loop and returns its figures; an Error only when the
// loop could not run (a daemon that would not start the first time). A
// daemon that will not restart after a kill is a violation ("restart_failed").
Result<Summary> RunStoreLoop(const Options& options);
Result<Summary> RunLockdLoop(const Options& options);

}  // namespace fence::crashloop
