// Time is injected: leases and timeouts read a Clock so that tests move a
// simulated clock instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>

namespace fence {

using Millis = std::chrono::milliseconds;

// Monotonic time only. Lease arithmetic must never use the wall clock: an NTP
// step or a manual date change would shorten or extend every lease.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis Now() const = 0;
  // How far the true time may be past Now(): a clock read in whole
  // milliseconds, floored, is up to 1 ms behind. A lease that must last ttl
  // from an instant read as t lasts until t + ttl + Resolution().
  virtual Millis Resolution() const { return Millis(0); }
};

class FakeClock final : public Clock {
 public:
  FakeClock() = default;
  explicit FakeClock(Millis resolution) : resolution_(resolution) {}
  Millis Now() const override { return now_; }
  Millis Resolution() const override { return resolution_; }
  void Advance(Millis by) { now_ += by; }

 private:
  Millis now_{1000};
  Millis resolution_{0};
};

// Callbacks at instants of a Clock: the deadlines of a lease service (lease
// expiry, waiter timeouts, the end of a grace period). A callback runs on
// the same thread (or strand) as every other call of the one user of the
// Timers, at or after its instant, never before. Cancel of a timer that has
// fired or was cancelled does nothing.
class Timers {
 public:
  using Id = std::uint64_t;
  virtual ~Timers() = default;
  virtual Id ScheduleAt(Millis at, std::function<void()> fire) = 0;
  virtual void Cancel(Id id) = 0;
};

// Timers on a FakeClock, for tests: Advance moves the clock and fires every
// callback falling due on the way, earliest first (equal instants in the
// order they were scheduled), each with the clock at its own instant, so a
// test sees exactly what happens at every millisecond without sleeping.
class FakeTimers final : public Timers {
 public:
  explicit FakeTimers(FakeClock& clock) : clock_(clock) {}

  Id ScheduleAt(Millis at, std::function<void()> fire) override {
    const Id id = next_id_++;
    due_.emplace(std::pair(at, id), std::move(fire));
    at_.emplace(id, at);
    return id;
  }
  void Cancel(Id id) override {
    auto it = at_.find(id);
    if (it == at_.end()) return;
    due_.erase(std::pair(it->second, id));
    at_.erase(it);
  }

  // A callback may schedule or cancel timers; one that falls due within
  // this advance fires within it too.
  void Advance(Millis by) {
    const Millis target = clock_.Now() + by;
    while (!due_.empty() && due_.begin()->first.first <= target) {
      auto node = due_.extract(due_.begin());
      at_.erase(node.key().second);
      if (node.key().first > clock_.Now()) clock_.Advance(node.key().first - clock_.Now());
      node.mapped()();
    }
    clock_.Advance(target - clock_.Now());
  }
  std::size_t Pending() const { return due_.size(); }

 private:
  FakeClock& clock_;
  Id next_id_ = 1;
  std::map<std::pair<Millis, Id>, std::function<void()>> due_;
  std::unordered_map<Id, Millis> at_;
};

}  // namespace fence
