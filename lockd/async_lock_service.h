// The LockService on an asio strand, for the HTTP handlers: every call may
// come from any thread; it is posted to the strand, where the service and
// its timers (AsioTimers) live, and answers through its callback from there.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <optional>
#include <string>

#include "lockd/asio_timers.h"
#include "lockd/lock_service.h"

namespace fence::lockd {

class AsyncLockService {
 public:
  using LeaseCallback = LockService::LeaseCallback;
  using StatusCallback = LockService::StatusCallback;

  // `clock` must be the monotonic clock asio's steady_timer runs on
  // (MonotonicClock). The service starts (its grace period is armed) on the
  // strand. Destroy only after `ioc` has stopped running.
  AsyncLockService(boost::asio::io_context& ioc, const Clock& clock,
                   TokenJournal& journal, LockdMetrics& metrics,
                   LockServiceOptions options);
  // For in-process tests and fuzzing: `clock` and `timers` are fakes
  // (FakeClock, FakeTimers) that the caller advances on the one thread that
  // also runs `ioc`, so the strand and the timers never run concurrently.
  AsyncLockService(boost::asio::io_context& ioc, const Clock& clock, Timers& timers,
                   TokenJournal& journal, LockdMetrics& metrics,
                   LockServiceOptions options);

  void Acquire(std::string name, std::string owner, Millis ttl, Millis wait,
               Millis lock_delay, LeaseCallback done);
  void KeepAlive(LeaseId id, LeaseCallback done);
  void Release(std::string name, LeaseId id, LeaseCallback done);
  void Break(std::string name, std::string reason, std::string caller,
             LeaseCallback done);
  void Status(std::string name, StatusCallback done);
  void Shutdown();
  Millis GraceRemaining() const { return service_.GraceRemaining(); }

 private:
  AsioTimers::Strand strand_;
  std::optional<AsioTimers> asio_timers_;  // confined to strand_; unset with fakes
  LockService service_;    // confined to strand_
};

}  // namespace fence::lockd
