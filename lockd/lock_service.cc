#include "lockd/lock_service.h"

#include <sys/random.h>

#include <boost/asio/post.hpp>
#include <cerrno>

#include "common/logging.h"
#include "core/log_event.h"

namespace fence::lockd {

namespace asio = boost::asio;
namespace ev = fence::events;

LockService::LockService(asio::io_context& ioc, const Clock& clock,
                         TokenJournal& journal, LockdMetrics& metrics,
                         LockServiceOptions options)
    : strand_(asio::make_strand(ioc)),
      clock_(clock),
      journal_(journal),
      metrics_(metrics),
      options_(options),
      grace_until_(clock.Now() + options.grace),
      table_(clock),
      expiry_timer_(strand_),
      grace_timer_(strand_) {
  metrics_.last_token.Set(static_cast<double>(journal_.floor()));
  if (options_.grace > Millis(0)) {
    log::Info("grace_started",
              {{"grace_ms", options_.grace.count()},
               {"token_floor", journal_.floor()},
               {"reason", "restart: a lease granted before it may still be "
                          "live for one max TTL"}});
  }
  asio::post(strand_, [this] {
    grace_timer_.expires_after(options_.grace);
    grace_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Tick();
    });
    Tick();
  });
}

LockService::~LockService() = default;

Millis LockService::GraceRemaining() const {
  return std::max(Millis(0), grace_until_ - clock_.Now());
}

void LockService::Acquire(std::string name, std::string owner, Millis ttl,
                          Millis wait, LeaseCallback done) {
  asio::post(strand_, [this, name = std::move(name), owner = std::move(owner),
                       ttl, wait, done = std::move(done)]() mutable {
    DoAcquire(std::move(name), std::move(owner), ttl, wait, std::move(done));
  });
}

void LockService::DoAcquire(std::string name, std::string owner, Millis ttl,
                            Millis wait, LeaseCallback done) {
  Tick();
  if (shutting_down_) {
    Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "shutting_down"}});
    return done(MakeError("shutting_down",
                          "lockd is shutting down; retry against a running "
                          "lockd"));
  }
  if (!granting_) {
    // A wait that ends inside the grace period can only end in a refusal:
    // say so now, with the time after which asking again can succeed.
    if (wait < GraceRemaining()) return done(Starting(name, owner));
    return Wait(std::move(name), std::move(owner), ttl, wait, std::move(done));
  }
  if (!table_.IsFree(name)) {
    if (wait == Millis(0)) return done(Held(name, owner, Millis(0)));
    return Wait(std::move(name), std::move(owner), ttl, wait, std::move(done));
  }
  if (table_.HeldCount() >= options_.max_locks) {
    Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "too_many_locks"}});
    return done(MakeError("too_many_locks",
                          "lockd already holds its limit of " +
                              std::to_string(options_.max_locks) +
                              " locks; release some or raise --max-locks",
                          {{"max_locks", options_.max_locks}}));
  }
  auto token = NextToken();
  if (!token.ok()) {
    Refuse("storage", {{"name", name}, {"owner", owner}, {"error", token.error().message}});
    return done(token.error());
  }
  auto lease = table_.Grant(name, std::move(owner), ttl, NewLeaseId(), *token);
  if (!lease.ok()) return done(lease.error());  // unreachable: checked free
  OnGranted(*lease, std::nullopt);
  ArmExpiryTimer();
  done(std::move(*lease));
}

void LockService::Wait(std::string name, std::string owner, Millis ttl,
                       Millis wait, LeaseCallback done) {
  if (table_.TotalWaiters() >= options_.max_waiters) {
    Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "too_many_waiters"}});
    return done(MakeError("too_many_waiters",
                          "lockd already has its limit of " +
                              std::to_string(options_.max_waiters) +
                              " acquires waiting; retry with backoff",
                          {{"max_waiters", options_.max_waiters}}));
  }
  const WaiterId id = next_waiter_id_++;
  table_.Enqueue(name, Waiter{id, owner, ttl});
  auto timer = std::make_unique<asio::steady_timer>(strand_, wait);
  timer->async_wait([this, id](boost::system::error_code ec) {
    if (!ec) OnWaitTimeout(id);
  });
  waiters_.emplace(id, PendingWaiter{std::move(name), std::move(owner), std::move(done),
                                     std::move(timer), clock_.Now()});
}

void LockService::OnWaitTimeout(WaiterId id) {
  Tick();  // the lock may have freed this very millisecond
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;  // served or answered meanwhile
  PendingWaiter w = std::move(it->second);
  waiters_.erase(it);
  table_.RemoveWaiter(w.name, id);
  const Millis waited = clock_.Now() - w.since;
  if (!granting_) return w.done(Starting(w.name, w.owner));
  w.done(Held(w.name, w.owner, waited));
}

void LockService::KeepAlive(LeaseId id, LeaseCallback done) {
  asio::post(strand_, [this, id, done = std::move(done)] {
    Tick();
    auto lease = table_.KeepAlive(id);
    if (!lease.ok()) {
      Refuse("unknown_lease", {{"lease_id", id.ToString()}, {"op", "keepalive"}});
      return done(lease.error());
    }
    metrics_.keepalives.Increment();
    log::Info(ev::kRenewed, {{"name", lease->name},
                             {ev::kOwner, lease->owner},
                             {ev::kToken, lease->token.value()},
                             {ev::kLeaseId, id.ToString()},
                             {"ttl_ms", lease->ttl.count()}});
    ArmExpiryTimer();
    done(std::move(*lease));
  });
}

void LockService::Release(std::string name, LeaseId id, LeaseCallback done) {
  asio::post(strand_, [this, name = std::move(name), id,
                       done = std::move(done)] {
    Tick();
    auto lease = table_.Release(name, id);
    if (!lease.ok()) {
      Refuse(lease.error().code == "not_holder" ? "not_holder" : "unknown_lease",
             {{"name", name}, {"lease_id", id.ToString()}, {"op", "release"}});
      return done(lease.error());
    }
    metrics_.releases.Increment();
    log::Info(ev::kReleased, {{"name", lease->name},
                              {ev::kOwner, lease->owner},
                              {ev::kToken, lease->token.value()},
                              {ev::kLeaseId, id.ToString()}});
    OnFreed(*lease);
    Serve(name);
    ArmExpiryTimer();
    done(std::move(*lease));
  });
}

void LockService::Status(std::string name, StatusCallback done) {
  asio::post(strand_, [this, name = std::move(name), done = std::move(done)] {
    Tick();
    const Lease* holder = table_.Holder(name);
    if (holder == nullptr) {
      return done(MakeError(
          "not_held", "lock '" + name + "' is not held",
          {{"name", name},
           {"waiters", table_.WaiterCount(name)},
           {"grace_remaining_ms", GraceRemaining().count()}}));
    }
    done(LockStatus{name, holder->owner, holder->token,
                    table_.ExpiresIn(*holder), holder->ttl,
                    table_.WaiterCount(name)});
  });
}

void LockService::Shutdown() {
  asio::post(strand_, [this] {
    shutting_down_ = true;
    for (auto& [id, w] : waiters_) {
      table_.RemoveWaiter(w.name, id);
      w.timer->cancel();
      Refuse("capacity", {{"name", w.name}, {"error", "shutting_down"}});
      w.done(MakeError("shutting_down",
                       "lockd is shutting down; retry against a running "
                       "lockd"));
    }
    waiters_.clear();
    expiry_timer_.cancel();
    grace_timer_.cancel();
  });
}

void LockService::Tick() {
  std::vector<Lease> expired = table_.ExpireDue();
  for (const Lease& lease : expired) {
    metrics_.expirations.Increment();
    log::Info(ev::kExpired, {{"name", lease.name},
                             {ev::kOwner, lease.owner},
                             {ev::kToken, lease.token.value()},
                             {ev::kLeaseId, lease.id.ToString()},
                             {"ttl_ms", lease.ttl.count()}});
    OnFreed(lease);
  }
  if (!granting_ && clock_.Now() >= grace_until_) {
    granting_ = true;
    if (options_.grace > Millis(0)) {
      log::Info("grace_ended", {{"waiters", table_.TotalWaiters()}});
    }
    for (const std::string& name : table_.LocksWithWaiters()) Serve(name);
  }
  for (const Lease& lease : expired) Serve(lease.name);
  ArmExpiryTimer();
}

void LockService::Serve(const std::string& name) {
  while (granting_ && !shutting_down_ && table_.HasReadyWaiter(name)) {
    auto token = NextToken();
    if (!token.ok()) {
      const WaiterId head = table_.FirstWaiter(name)->id;
      table_.RemoveWaiter(name, head);
      auto it = waiters_.find(head);
      Refuse("storage", {{"name", name}, {"error", token.error().message}});
      if (it != waiters_.end()) {
        PendingWaiter w = std::move(it->second);
        waiters_.erase(it);
        w.timer->cancel();
        w.done(token.error());
      }
      continue;
    }
    auto handoff = table_.GrantToHead(name, NewLeaseId(), *token);
    if (!handoff.ok()) return;  // unreachable: checked ready
    auto it = waiters_.find(handoff->waiter.id);
    std::optional<Millis> waited;
    LeaseCallback done;
    if (it != waiters_.end()) {
      waited = clock_.Now() - it->second.since;
      it->second.timer->cancel();
      done = std::move(it->second.done);
      waiters_.erase(it);
    }
    OnGranted(handoff->lease, waited);
    if (done) done(handoff->lease);
  }
}

void LockService::ArmExpiryTimer() {
  const std::optional<Millis> next = table_.NextExpiry();
  if (next == expiry_armed_for_) return;
  expiry_armed_for_ = next;
  if (!next) {
    expiry_timer_.cancel();
    return;
  }
  expiry_timer_.expires_after(std::max(Millis(0), *next - clock_.Now()));
  expiry_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // re-armed or cancelled
    expiry_armed_for_.reset();
    Tick();
  });
}

void LockService::OnGranted(const Lease& lease, std::optional<Millis> waited) {
  metrics_.grants.Increment();
  metrics_.last_token.Set(static_cast<double>(lease.token.value()));
  metrics_.holders.Set(static_cast<double>(table_.HeldCount()));
  auto& gauge = metrics_.lock_token.Add({{"lock", lease.name}});
  gauge.Set(static_cast<double>(lease.token.value()));
  lock_gauges_[lease.name] = &gauge;
  nlohmann::json fields = {{"name", lease.name},
                           {ev::kOwner, lease.owner},
                           {ev::kToken, lease.token.value()},
                           {ev::kLeaseId, lease.id.ToString()},
                           {"ttl_ms", lease.ttl.count()}};
  if (waited) fields["waited_ms"] = waited->count();
  log::Info(ev::kGranted, fields);
}

void LockService::OnFreed(const Lease& lease) {
  metrics_.holders.Set(static_cast<double>(table_.HeldCount()));
  auto it = lock_gauges_.find(lease.name);
  if (it != lock_gauges_.end()) {
    metrics_.lock_token.Remove(it->second);
    lock_gauges_.erase(it);
  }
}

Result<Token> LockService::NextToken() {
  auto token = journal_.Next();
  if (!token.ok()) {
    log::Error("token_journal_failed", {{"path", journal_.path()},
                                        {"message", token.error().message}});
    return MakeError("storage_error",
                     "lockd cannot make its token counter durable (" +
                         token.error().message +
                         "); no lock is granted until it is restarted with "
                         "working storage");
  }
  return token;
}

LeaseId LockService::NewLeaseId() const {
  while (true) {
    std::uint64_t value = 0;
    // getrandom draws from the kernel CSPRNG: a lease id is a bearer
    // capability, so it must not be predictable from ids seen before.
    if (getrandom(&value, sizeof value, 0) != sizeof value) continue;
    if (value != 0 && !table_.HasLease(LeaseId(value))) return LeaseId(value);
  }
}

Error LockService::Held(const std::string& name, const std::string& owner,
                        Millis waited) {
  const Lease* holder = table_.Holder(name);
  nlohmann::json details = {{"name", name}, {"waited_ms", waited.count()}};
  std::string message = "lock '" + name + "' is held";
  if (holder != nullptr) {
    details["holder"] = holder->owner;
    details["token"] = holder->token.value();
    details["expires_in_ms"] = table_.ExpiresIn(*holder).count();
    message += " by '" + holder->owner + "' for another " +
               std::to_string(table_.ExpiresIn(*holder).count()) + " ms";
  }
  details["waiters"] = table_.WaiterCount(name);
  message += waited > Millis(0) ? "; waited " + std::to_string(waited.count()) +
                                      " ms without it freeing"
                                : "; pass wait_ms to wait for it";
  Refuse("held", {{"name", name}, {"owner", owner},
                  {"holder", details.value("holder", "")},
                  {"waited_ms", waited.count()}});
  return MakeError("held", message, details);
}

Error LockService::Starting(const std::string& name, const std::string& owner) {
  const Millis remaining = GraceRemaining();
  Refuse("grace", {{"name", name}, {"owner", owner},
                   {"retry_after_ms", remaining.count()}});
  return MakeError("starting",
                   "lockd restarted less than one max TTL ago and grants "
                   "nothing until every lease from before the restart has "
                   "surely expired; retry after retry_after_ms",
                   {{"name", name}, {"retry_after_ms", remaining.count()}});
}

void LockService::Refuse(const char* reason, nlohmann::json fields) {
  metrics_.Refused(reason);
  fields["reason"] = reason;
  log::Info(ev::kRefused, fields);
}

}  // namespace fence::lockd
