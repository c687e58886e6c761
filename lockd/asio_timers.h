// Timers (core/clock.h) as asio steady_timers on one strand: the production
// timer seam of the lock service. `clock` must read the same monotonic
// clock as asio's steady_timer (MonotonicClock does); each callback runs on
// the strand.
//
// Concurrency: ScheduleAt, Cancel and the destructor must be called on the
// strand (or before the strand's io_context runs / after it stopped).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <unordered_map>

#include "core/clock.h"

namespace fence::lockd {

class AsioTimers final : public Timers {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  AsioTimers(Strand strand, const Clock& clock);
  ~AsioTimers() override;
  AsioTimers(const AsioTimers&) = delete;
  AsioTimers& operator=(const AsioTimers&) = delete;

  Id ScheduleAt(Millis at, std::function<void()> fire) override;
  void Cancel(Id id) override;

 private:
  struct Pending {
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::function<void()> fire;
  };
  void OnExpired(Id id);

  Strand strand_;
  const Clock& clock_;
  Id next_id_ = 1;
  std::unordered_map<Id, Pending> pending_;  // confined to strand_
};

}  // namespace fence::lockd
