// Time is injected: leases and timeouts read a Clock so that tests move a
// simulated clock instead of sleeping.
#pragma once

#include <chrono>

namespace fence {

using Millis = std::chrono::milliseconds;

// Monotonic time only. Lease arithmetic must never use the wall clock: an NTP
// step or a manual date change would shorten or extend every lease.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis Now() const = 0;
};

class FakeClock final : public Clock {
 public:
  Millis Now() const override { return now_; }
  void Advance(Millis by) { now_ += by; }

 private:
  Millis now_{1000};
};

}  // namespace fence
