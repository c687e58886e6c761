// The process's monotonic clock (CLOCK_MONOTONIC) behind the Clock interface
// of core/, in whole milliseconds. Tests use core's FakeClock instead.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/clock.h"

namespace fence {

class MonotonicClock final : public Clock {
 public:
  Millis Now() const override {
    return std::chrono::duration_cast<Millis>(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  // duration_cast floors: the true time is up to 1 ms past Now().
  Millis Resolution() const override { return Millis(1); }
};

// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the
// machine, so times recorded by different processes compare (histories).
inline std::int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace fence
