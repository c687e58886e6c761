#include "lockd/lock_service.h"

#include <sys/random.h>

#include <cerrno>

#include "common/logging.h"
#include "core/log_event.h"

namespace fence::lockd {

namespace ev = fence::events;

namespace {

// The fields every lease event starts with, plus `more`.
nlohmann::json LeaseFields(const Lease& lease, nlohmann::json more = nlohmann::json::object()) {
  more["name"] = lease.name;
  more[ev::kOwner] = lease.owner;
  more[ev::kToken] = lease.token.value();
  more[ev::kLeaseId] = lease.id.ToString();
  return more;
}

}  // namespace

LockService::LockService(const Clock& clock, Timers& timers,
                         TokenJournal& journal, LockdMetrics& metrics,
                         LockServiceOptions options)
    : clock_(clock),
      timers_(timers),
      journal_(journal),
      metrics_(metrics),
      options_(options),
      grace_until_(clock.Now() + options.grace),
      table_(clock) {
  metrics_.last_token.Set(static_cast<double>(journal_.floor()));
}

LockService::~LockService() {
  if (grace_timer_) timers_.Cancel(*grace_timer_);
  if (expiry_timer_) timers_.Cancel(*expiry_timer_);
  for (auto& [id, w] : waiters_) timers_.Cancel(w.timer);
}

void LockService::Start() {
  if (options_.grace > Millis(0)) {
    log::Info("grace_started",
              {{"grace_ms", options_.grace.count()},
               {"source", options_.grace_source},
               {"token_floor", journal_.floor()},
               {"reason", "restart: a lease granted before it may still be "
                          "live for up to the largest TTL ever granted"}});
    grace_timer_ = timers_.ScheduleAt(grace_until_, [this] {
      grace_timer_.reset();
      Tick();
    });
  }
  Tick();
}

Millis LockService::GraceRemaining() const {
  return std::max(Millis(0), grace_until_ - clock_.Now());
}

void LockService::Acquire(std::string name, std::string owner, Millis ttl,
                          Millis wait, Millis lock_delay, LeaseCallback done) {
  Tick();
  if (shutting_down_) return done(ShuttingDown(name, owner));
  if (!granting_) {
    // A wait that ends inside the grace period can only end in a refusal:
    // say so now, with the time after which asking again can succeed.
    if (wait < GraceRemaining()) return done(Starting(name, owner));
    return Wait(std::move(name), std::move(owner), ttl, wait, lock_delay, std::move(done));
  }
  if (!table_.IsFree(name)) {
    if (wait == Millis(0)) return done(Held(name, owner, Millis(0)));
    return Wait(std::move(name), std::move(owner), ttl, wait, lock_delay, std::move(done));
  }
  // A lock in its lock-delay takes memory like a held one: counting it
  // keeps lockd's memory bounded by --max-locks whatever the delays.
  if (table_.HeldCount() + table_.DelayedCount() >= options_.max_locks) {
    Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "too_many_locks"}});
    return done(MakeError("too_many_locks",
                          "lockd already holds its limit of " +
                              std::to_string(options_.max_locks) +
                              " locks (held, or in a lock-delay); release some or "
                              "raise --max-locks",
                          {{"max_locks", options_.max_locks}}));
  }
  auto token = NextToken(ttl);
  if (!token.ok()) {
    Refuse("storage", {{"name", name}, {"owner", owner}, {"error", token.error().message}});
    return done(token.error());
  }
  auto lease = table_.Grant(name, std::move(owner), ttl, NewLeaseId(), *token, lock_delay);
  if (!lease.ok()) return done(lease.error());  // unreachable: checked free
  OnGranted(*lease, std::nullopt);
  ArmExpiryTimer();
  done(std::move(*lease));
}

void LockService::Wait(std::string name, std::string owner, Millis ttl,
                       Millis wait, Millis lock_delay, LeaseCallback done) {
  if (table_.TotalWaiters() >= options_.max_waiters) {
    Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "too_many_waiters"}});
    return done(MakeError("too_many_waiters",
                          "lockd already has its limit of " +
                              std::to_string(options_.max_waiters) +
                              " acquires waiting; retry with backoff",
                          {{"max_waiters", options_.max_waiters}}));
  }
  const WaiterId id = next_waiter_id_++;
  table_.Enqueue(name, Waiter{id, owner, ttl, lock_delay});
  const Millis now = clock_.Now();
  const Timers::Id timer =
      timers_.ScheduleAt(now + wait, [this, id] { OnWaitTimeout(id); });
  waiters_.emplace(id, PendingWaiter{std::move(name), std::move(owner),
                                     std::move(done), timer, now});
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

void LockService::KeepAlive(LeaseId id, const LeaseCallback& done) {
  Tick();
  auto lease = table_.KeepAlive(id);
  if (!lease.ok()) {
    Refuse("unknown_lease", {{"lease_id", id.ToString()},
                             {"op", "keepalive"},
                             {"error", lease.error().code}});
    return done(lease.error());
  }
  metrics_.keepalives.Increment();
  log::Info(ev::kRenewed, LeaseFields(*lease, {{"ttl_ms", lease->ttl.count()}}));
  ArmExpiryTimer();
  done(std::move(*lease));
}

void LockService::Release(const std::string& name, LeaseId id,
                          const LeaseCallback& done) {
  Tick();
  auto lease = table_.Release(name, id);
  if (!lease.ok()) {
    Refuse(lease.error().code == "not_holder" ? "not_holder" : "unknown_lease",
           {{"name", name}, {"lease_id", id.ToString()}, {"op", "release"},
            {"error", lease.error().code}});
    return done(lease.error());
  }
  metrics_.releases.Increment();
  log::Info(ev::kReleased, LeaseFields(*lease));
  OnFreed();
  Serve(name);
  ArmExpiryTimer();
  done(std::move(*lease));
}

void LockService::Break(const std::string& name, const std::string& reason,
                        const std::string& caller, const LeaseCallback& done) {
  Tick();
  auto lease = table_.Break(name);
  if (!lease.ok()) return done(lease.error());
  metrics_.leases_broken.Increment();
  // Warn: an operator overrode the lease protocol; the on-call reads these.
  log::Warn(ev::kLeaseBroken,
            LeaseFields(*lease, {{"reason", reason},
                                 {"caller", caller},
                                 {"expires_in_ms", (lease->expires_at - clock_.Now()).count()},
                                 {"waiters", table_.WaiterCount(name)}}));
  OnFreed();
  Serve(name);
  ArmExpiryTimer();
  done(std::move(*lease));
}

void LockService::Status(const std::string& name, const StatusCallback& done) {
  Tick();
  const Lease* holder = table_.Holder(name);
  if (holder == nullptr) {
    const Millis delay = table_.LockDelayRemaining(name);
    return done(MakeError(
        "not_held",
        "lock '" + name + "' is not held" +
            (delay > Millis(0) ? "; it is in its lock-delay for another " +
                                     std::to_string(delay.count()) + " ms"
                               : ""),
        {{"name", name},
         {"waiters", table_.WaiterCount(name)},
         {"grace_remaining_ms", GraceRemaining().count()},
         {"lock_delay_remaining_ms", delay.count()}}));
  }
  done(LockStatus{name, holder->owner, holder->token, table_.ExpiresIn(*holder),
                  holder->ttl, table_.WaiterCount(name)});
}

void LockService::Shutdown() {
  shutting_down_ = true;
  std::unordered_map<WaiterId, PendingWaiter> waiters;
  waiters.swap(waiters_);
  for (auto& [id, w] : waiters) {
    table_.RemoveWaiter(w.name, id);
    timers_.Cancel(w.timer);
    w.done(ShuttingDown(w.name, w.owner));
  }
  if (expiry_timer_) timers_.Cancel(*expiry_timer_);
  if (grace_timer_) timers_.Cancel(*grace_timer_);
  expiry_timer_.reset();
  expiry_armed_for_.reset();
  grace_timer_.reset();
}

void LockService::Tick() {
  std::vector<Lease> expired = table_.ExpireDue();
  for (const Lease& lease : expired) LogExpired(lease);
  const std::vector<LockDelay> delays_ended = table_.EndDueDelays();
  for (const LockDelay& delay : delays_ended) LogDelayEnded(delay);
  if (!granting_ && clock_.Now() >= grace_until_) {
    granting_ = true;
    if (options_.grace > Millis(0)) {
      log::Info("grace_ended", {{"waiters", table_.TotalWaiters()}});
    }
    for (const std::string& name : table_.LocksWithWaiters()) Serve(name);
  }
  for (const Lease& lease : expired) Serve(lease.name);
  for (const LockDelay& delay : delays_ended) Serve(delay.expired.name);
  ArmExpiryTimer();
}

void LockService::LogExpired(const Lease& lease) {
  metrics_.expirations.Increment();
  log::Info(ev::kExpired, LeaseFields(lease, {{"ttl_ms", lease.ttl.count()}}));
  OnFreed();
  if (lease.lock_delay == Millis(0)) return;
  metrics_.lock_delays.Increment();
  log::Info(ev::kLockDelayStarted,
            LeaseFields(lease, {{"lock_delay_ms", lease.lock_delay.count()},
                                // Less than lock_delay_ms when the expiry
                                // was noticed late.
                                {"lock_delay_remaining_ms",
                                 table_.LockDelayRemaining(lease.name).count()}}));
}

void LockService::LogDelayEnded(const LockDelay& delay) {
  const Lease& lease = delay.expired;
  log::Info(ev::kLockDelayEnded,
            LeaseFields(lease, {{"lock_delay_ms", lease.lock_delay.count()},
                                // By lockd's clock: at least lock_delay_ms.
                                {"since_expiry_ms", (clock_.Now() - lease.expires_at).count()},
                                {"waiters", table_.WaiterCount(lease.name)}}));
}

void LockService::Serve(const std::string& name) {
  while (granting_ && !shutting_down_ && table_.HasReadyWaiter(name)) {
    auto token = NextToken(table_.FirstWaiter(name)->ttl);
    std::optional<Millis> waited;
    if (!token.ok()) {
      const WaiterId head = table_.FirstWaiter(name)->id;
      table_.RemoveWaiter(name, head);
      Refuse("storage", {{"name", name}, {"error", token.error().message}});
      if (LeaseCallback done = TakeWaiter(head, &waited)) done(token.error());
      continue;
    }
    auto handoff = table_.GrantToHead(name, NewLeaseId(), *token);
    if (!handoff.ok()) return;  // unreachable: checked ready
    LeaseCallback done = TakeWaiter(handoff->waiter.id, &waited);
    OnGranted(handoff->lease, waited);
    if (done) done(handoff->lease);
  }
}

LockService::LeaseCallback LockService::TakeWaiter(WaiterId id,
                                                   std::optional<Millis>* waited) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return nullptr;
  *waited = clock_.Now() - it->second.since;
  timers_.Cancel(it->second.timer);
  LeaseCallback done = std::move(it->second.done);
  waiters_.erase(it);
  return done;
}

void LockService::ArmExpiryTimer() {
  if (shutting_down_) return;
  const std::optional<Millis> next = table_.NextDeadline();
  if (next == expiry_armed_for_) return;
  expiry_armed_for_ = next;
  if (expiry_timer_) timers_.Cancel(*expiry_timer_);
  expiry_timer_.reset();
  if (!next) return;
  expiry_timer_ = timers_.ScheduleAt(*next, [this] {
    expiry_timer_.reset();
    expiry_armed_for_.reset();
    Tick();
  });
}

void LockService::OnGranted(const Lease& lease, std::optional<Millis> waited) {
  metrics_.grants.Increment();
  metrics_.last_token.Set(static_cast<double>(lease.token.value()));
  metrics_.holders.Set(static_cast<double>(table_.HeldCount()));
  nlohmann::json fields = LeaseFields(lease, {{"ttl_ms", lease.ttl.count()}});
  if (waited) fields["waited_ms"] = waited->count();
  if (lease.lock_delay > Millis(0)) fields["lock_delay_ms"] = lease.lock_delay.count();
  log::Info(ev::kGranted, fields);
}

void LockService::OnFreed() {
  metrics_.holders.Set(static_cast<double>(table_.HeldCount()));
}

Result<Token> LockService::NextToken(Millis ttl) {
  auto token = journal_.Issue(ttl);
  if (token.ok()) return token;
  const Error& e = token.error();
  const bool full = e.details.value("errno", 0) == ENOSPC;
  log::Error("token_journal_failed", {{"path", journal_.path()},
                                      {"cause", full ? "disk_full" : "io_error"},
                                      {"message", e.message}});
  // Nothing was issued: the next acquire writes the journal again, so
  // grants resume by themselves once the disk takes writes.
  return MakeError("storage_error",
                   "lockd cannot make its token counter durable (" + e.message +
                       "), so it granted nothing. " +
                       (full ? "The disk holding " + journal_.path() +
                                   " is full: free space on that volume"
                             : "Check the disk holding " + journal_.path()) +
                       "; grants resume at the next acquire, no restart needed",
                   {{"cause", full ? "disk_full" : "io_error"}});
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
  if (const Millis delay = table_.LockDelayRemaining(name); delay > Millis(0)) {
    // No holder: the delay is what keeps the lock, so say that, not "held".
    details["lock_delay_remaining_ms"] = delay.count();
    message = "lock '" + name +
              "' is in its lock-delay: its last lease expired and nobody is "
              "granted it for another " + std::to_string(delay.count()) +
              " ms (lock_delay_remaining_ms)";
  } else if (holder != nullptr) {
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
                   "lockd restarted less than the largest lease TTL it ever "
                   "granted ago and grants nothing until every lease from "
                   "before the restart has surely expired; retry after "
                   "retry_after_ms",
                   {{"name", name}, {"retry_after_ms", remaining.count()}});
}

Error LockService::ShuttingDown(const std::string& name, const std::string& owner) {
  Refuse("capacity", {{"name", name}, {"owner", owner}, {"error", "shutting_down"}});
  return MakeError("shutting_down",
                   "lockd is shutting down; retry against a running lockd");
}

void LockService::Refuse(const char* reason, nlohmann::json fields) {
  metrics_.Refused(reason);
  fields["reason"] = reason;
  log::Info(ev::kRefused, fields);
}

}  // namespace fence::lockd
