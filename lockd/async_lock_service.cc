#include "lockd/async_lock_service.h"

#include <boost/asio/post.hpp>

namespace fence::lockd {

namespace asio = boost::asio;

AsyncLockService::AsyncLockService(asio::io_context& ioc, const Clock& clock,
                                   TokenJournal& journal, LockdMetrics& metrics,
                                   LockServiceOptions options)
    : strand_(asio::make_strand(ioc)),
      asio_timers_(std::in_place, strand_, clock),
      service_(clock, *asio_timers_, journal, metrics, options) {
  asio::post(strand_, [this] { service_.Start(); });
}

AsyncLockService::AsyncLockService(asio::io_context& ioc, const Clock& clock,
                                   Timers& timers, TokenJournal& journal,
                                   LockdMetrics& metrics, LockServiceOptions options)
    : strand_(asio::make_strand(ioc)), service_(clock, timers, journal, metrics, options) {
  asio::post(strand_, [this] { service_.Start(); });
}

void AsyncLockService::Acquire(std::string name, std::string owner, Millis ttl,
                               Millis wait, Millis lock_delay, LeaseCallback done) {
  asio::post(strand_, [this, name = std::move(name), owner = std::move(owner),
                       ttl, wait, lock_delay, done = std::move(done)]() mutable {
    service_.Acquire(std::move(name), std::move(owner), ttl, wait, lock_delay,
                     std::move(done));
  });
}

void AsyncLockService::Break(std::string name, std::string reason,
                             std::string caller, LeaseCallback done) {
  asio::post(strand_, [this, name = std::move(name), reason = std::move(reason),
                       caller = std::move(caller), done = std::move(done)] {
    service_.Break(name, reason, caller, done);
  });
}

void AsyncLockService::KeepAlive(LeaseId id, LeaseCallback done) {
  asio::post(strand_, [this, id, done = std::move(done)] {
    service_.KeepAlive(id, done);
  });
}

void AsyncLockService::Release(std::string name, LeaseId id, LeaseCallback done) {
  asio::post(strand_, [this, name = std::move(name), id, done = std::move(done)] {
    service_.Release(name, id, done);
  });
}

void AsyncLockService::Status(std::string name, StatusCallback done) {
  asio::post(strand_, [this, name = std::move(name), done = std::move(done)] {
    service_.Status(name, done);
  });
}

void AsyncLockService::Shutdown() {
  asio::post(strand_, [this] { service_.Shutdown(); });
}

}  // namespace fence::lockd
