#include "client/worker.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log_event.h"

namespace fence::client {

namespace ev = fence::events;

namespace {

nlohmann::json TokenJson(std::optional<Token> t) {
  return t ? nlohmann::json(t->value()) : nlohmann::json(nullptr);
}

}  // namespace

Result<Millis> ParsePauseSpec(std::string_view spec) {
  constexpr std::string_view kPoint = "before-write:";
  auto bad = [&](const std::string& why) {
    return MakeError("bad_pause",
                     "--inject-pause '" + std::string(spec) + "' " + why +
                         "; expected before-write:DURATION with DURATION like "
                         "3000ms or 3s (1ms to 3600s)");
  };
  if (spec.substr(0, kPoint.size()) != kPoint) {
    return bad("names no known pause point");
  }
  std::string_view d = spec.substr(kPoint.size());
  std::size_t digits = 0;
  while (digits < d.size() && d[digits] >= '0' && d[digits] <= '9') ++digits;
  if (digits == 0) return bad("has no number");
  if (digits > 10) return bad("has a number that is too large");
  const std::string_view unit = d.substr(digits);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < digits; ++i) n = n * 10 + static_cast<unsigned>(d[i] - '0');
  std::uint64_t ms = 0;
  if (unit == "ms") {
    ms = n;
  } else if (unit == "s") {
    ms = n * 1000;
  } else {
    return bad(unit.empty() ? "has no unit" : "has an unknown unit '" + std::string(unit) + "'");
  }
  if (ms < 1 || ms > 3600ull * 1000) return bad("is out of range");
  return Millis(static_cast<std::int64_t>(ms));
}

namespace {

// Whether /proc/<pid>/stat (read into `stat`) shows the process stopped.
// Async-signal-safe: runs in the forked resumer.
bool ShowsStopped(const char* stat, ssize_t n) {
  ssize_t close_paren = -1;
  for (ssize_t j = 0; j < n; ++j) {
    if (stat[j] == ')') close_paren = j;
  }
  return close_paren >= 0 && close_paren + 2 < n && stat[close_paren + 2] == 'T';
}

// The forked resumer: sleeps until `deadline`, then sends `target` SIGCONT
// once it has really stopped. Only async-signal-safe calls: the parent is
// multithreaded.
[[noreturn]] void RunResumer(pid_t target, const char* stat_path, const timespec& deadline) {
  // A resumer that outlived a killed worker could SIGCONT a recycled pid.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != target) _exit(1);
  const int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
  }
  // No other descriptor of the worker (its log pipe, sockets) stays open
  // here, so whoever reads the worker's output sees EOF when it exits.
  syscall(SYS_close_range, 3u, ~0u, 0u);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
  }
  // SIGCONT must not arrive before the worker has stopped (it would be
  // lost, and the worker would stay stopped): wait, bounded, for state T.
  for (int i = 0; i < 10000; ++i) {
    char buf[512];
    const int fd = open(stat_path, O_RDONLY);
    if (fd < 0) _exit(1);  // the worker is gone
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && ShowsStopped(buf, n)) {
      kill(target, SIGCONT);
      _exit(0);
    }
    const timespec one_ms{0, 1000000};
    nanosleep(&one_ms, nullptr);
  }
  kill(target, SIGCONT);
  _exit(2);
}

timespec MonotonicDeadline(Millis after) {
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += static_cast<time_t>(after.count() / 1000);
  deadline.tv_nsec += static_cast<long>((after.count() % 1000) * 1000000);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  return deadline;
}

}  // namespace

Result<Millis> ProcessPauser::Pause(Millis duration) {
  // Everything the resumer needs is computed before fork: in a
  // multithreaded process the child may only make async-signal-safe calls.
  const pid_t self = getpid();
  const std::string stat_path = "/proc/" + std::to_string(self) + "/stat";
  const timespec deadline = MonotonicDeadline(duration);
  const Millis started = clock_.Now();
  const pid_t resumer = fork();
  if (resumer < 0) {
    return MakeError("pause_failed", std::string("fork of the resumer failed: ") +
                                         std::strerror(errno));
  }
  if (resumer == 0) RunResumer(self, stat_path.c_str(), deadline);
  // The whole process stops here, keep-alive thread included.
  kill(self, SIGSTOP);
  const Millis paused = clock_.Now() - started;
  int status = 0;
  while (waitpid(resumer, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return MakeError("pause_failed", "the resumer process did not resume us normally",
                     {{"paused_ms", paused.count()}, {"wait_status", status}});
  }
  return paused;
}

WriteVerdict JudgeWrite(const Result<PutResult>& put) {
  if (!put.ok()) return WriteVerdict::kStepDown;
  if (put->accepted()) return WriteVerdict::kKeepLeading;
  return WriteVerdict::kFenced;
}

std::string_view TermEndName(TermEnd end) {
  switch (end) {
    case TermEnd::kWritten: return "written";
    case TermEnd::kFenced: return "fenced";
    case TermEnd::kLeaseLost: return "lease_lost";
    case TermEnd::kStoreError: return "store_error";
    case TermEnd::kNotElected: return "not_elected";
    case TermEnd::kFailed: return "failed";
    case TermEnd::kStopped: return "stopped";
  }
  return "unknown";
}


Worker::Worker(WorkerConfig config, LockBackend& backend, ObjectStore& store,
               Pauser& pauser, const Clock& clock, EventSink sink)
    : config_(std::move(config)),
      backend_(backend),
      store_(store),
      pauser_(pauser),
      clock_(clock),
      sink_(std::move(sink)) {}

Worker::~Worker() { StopKeepAlive(); }

TermReport Worker::RunTerm() {
  TermReport unelected;
  Millis acquire_sent{0};
  std::optional<LockGrant> grant = AcquireLock(unelected, acquire_sent);
  if (!grant) return unelected;
  Term term{std::move(*grant), {}};
  StartRenewing(term, acquire_sent);
  if (!FenceFirst(term) || !Work(term)) return term.report;
  for (const std::string& key : config_.keys) {
    if (!CheckLease(term) || !InjectPause(term)) return term.report;
    LastStepBeforeWrite();
    if (!JudgeAnswer(term, key, Write(term, key))) return term.report;
  }
  Resign(term);
  return term.report;
}

std::optional<LockGrant> Worker::AcquireLock(TermReport& report, Millis& sent) {
  {
    std::lock_guard guard(mu_);
    lease_lost_ = false;  // a lost lease of the previous term must not cut our waits short
  }
  Emit(EventLevel::kInfo, ev::kAcquiring,
       {{"lock", config_.lock}, {"backend", std::string(backend_.kind())}});
  const Millis started = clock_.Now();
  const bool bounded = config_.acquire_timeout > Millis(0);
  const Millis deadline = started + config_.acquire_timeout;
  Millis backoff(100);
  while (!stopped()) {
    Millis wait = config_.acquire_wait;
    if (bounded) {
      const Millis left = deadline - clock_.Now();
      if (left <= Millis(0)) {
        Emit(EventLevel::kError, "acquire_timeout",
             {{"lock", config_.lock}, {"waited_ms", (clock_.Now() - started).count()}});
        report.end = TermEnd::kNotElected;
        return std::nullopt;
      }
      wait = std::min(wait, left);
    }
    sent = clock_.Now();
    auto granted = backend_.Acquire(config_.lock, config_.id, config_.ttl, wait);
    if (granted.ok()) {
      if (ConfirmGrant(*granted, sent)) return std::move(*granted);
      continue;
    }
    if (!RetryAcquire(report, granted.error(), sent, wait, backoff)) return std::nullopt;
  }
  return std::nullopt;  // stopped: the report says kStopped
}

Millis Worker::LeaseTtl(const LockGrant& grant) const {
  // Never assume the lease lasts longer than asked or than granted (a lock
  // service may grant a shorter TTL than asked).
  const Millis granted = grant.ttl > Millis(0) ? grant.ttl : config_.ttl;
  return std::min(config_.ttl, granted);
}

bool Worker::ConfirmGrant(const LockGrant& grant, Millis& sent) {
  // A grant that came at the end of a long poll tells only that the lease
  // did not start before the acquire was sent, which may be most of a TTL
  // ago. One keep-alive now gives a fresh lower bound, so the term does not
  // start with a lease that looks run out by our own clock.
  const Millis ttl = LeaseTtl(grant);
  if (clock_.Now() - sent < LeaderLease::RenewInterval(ttl, config_.renew_interval)) return true;
  const Millis confirm_sent = clock_.Now();
  const Status confirmed = backend_.KeepAlive(ttl);
  if (confirmed.ok()) {
    sent = confirm_sent;
    return true;
  }
  Emit(EventLevel::kWarn, "grant_unconfirmed",
       {{"lock", config_.lock},
        {std::string(ev::kToken), grant.token.value()},
        {"error", confirmed.error().code},
        {"message", confirmed.error().message}});
  if (const Status released = backend_.Release(); !released.ok()) {
    Emit(EventLevel::kWarn, "release_failed",
         {{"error", released.error().code}, {"message", released.error().message}});
  }
  return false;
}

bool Worker::RetryAcquire(TermReport& report, const Error& error, Millis asked_at,
                          Millis waited, Millis& backoff) {
  if (error.code == "held") {
    // The long poll already waited; a service that answered early is
    // asked again after a short pause instead of in a tight loop.
    if (clock_.Now() - asked_at + Millis(10) < waited) {
      WaitFor(clock_.Now() + Millis(50), [] { return false; });
    }
    return true;
  }
  if (error.code == "unavailable") {
    Emit(EventLevel::kWarn, "lock_unavailable",
         {{"lock", config_.lock}, {"message", error.message}, {"retry_in_ms", backoff.count()}});
    WaitFor(clock_.Now() + backoff, [] { return false; });
    backoff = std::min(backoff * 2, Millis(2000));
    return true;
  }
  Emit(EventLevel::kError, "lock_refused",
       {{"lock", config_.lock}, {"error", error.code}, {"message", error.message},
        {"details", error.details}});
  report.end = TermEnd::kFailed;
  report.error = error;
  return false;
}

void Worker::StartRenewing(Term& term, Millis acquire_sent) {
  const Token token = term.grant.token;
  term.report.token = token;
  term.elected_at = clock_.Now();
  {
    std::lock_guard guard(mu_);
    term_open_ = true;
    lease_lost_ = false;
    keepalive_stop_ = false;
    renewals_ = 0;
    lease_.emplace(clock_, LeaseTtl(term.grant), config_.renew_interval, acquire_sent);
  }
  store_.UseSignedToken(term.grant.token_signature.empty()
                            ? std::nullopt
                            : std::optional<SignedToken>(SignedToken{
                                  term.grant.lock, token, term.grant.token_signature}));
  Emit(EventLevel::kInfo, ev::kElected,
       TermFields(term, {{"lock", config_.lock},
                         {"backend", std::string(backend_.kind())},
                         {std::string(ev::kToken), token.value()},
                         {std::string(ev::kLeaseId), term.grant.lease_id},
                         {"ttl_ms", term.grant.ttl.count()}}));
  keepalive_ = std::thread([this, token] { KeepAliveLoop(token); });
}

bool Worker::FenceFirst(Term& term) {
  // Fence first, as HDFS's newEpoch and Kafka's InitProducerId do: from now
  // on the store refuses every lower token on our keys, so an old leader
  // that wakes up while we work can no longer write there. Without a token
  // (the unfenced demo) there is nothing to raise.
  if (!config_.fencing) return true;
  const Token token = term.grant.token;
  for (const std::string& key : config_.keys) {
    auto raised = store_.RaiseFence(key, token);
    // Unknown whether the fence stands: a leader that cannot fence its keys
    // does not act on them.
    if (!raised.ok()) return StoreFailed(term, key, raised.error(), "fence_failed");
    if (raised->stale()) return Fenced(term, key, *raised, "fence_first");
    Emit(EventLevel::kInfo, ev::kFenceRaised,
         TermFields(term, {{std::string(ev::kKey), key},
                           {std::string(ev::kToken), token.value()},
                           {std::string(ev::kHighestToken), TokenJson(raised->highest_token)}}));
  }
  return !config_.scope_fencing || FenceScope(term);
}

// One call fences the old leader on every key of the job, including keys
// this leader never writes. After the keys' fences, so that a 409 naming
// the scope's fence names a token that this leader also sent to its keys.
bool Worker::FenceScope(Term& term) {
  const Token token = term.grant.token;
  auto raised = store_.RaiseScope(config_.lock, token);
  if (!raised.ok()) return StoreFailed(term, config_.lock, raised.error(), "scope_fence_failed");
  if (raised->stale()) return Fenced(term, config_.lock, *raised, "scope_fence_first");
  Emit(EventLevel::kInfo, ev::kScopeFenceRaised,
       TermFields(term, {{"scope", config_.lock},
                         {std::string(ev::kToken), token.value()},
                         {std::string(ev::kHighestToken), TokenJson(raised->highest_token)}}));
  return true;
}

bool Worker::Fenced(Term& term, const std::string& key, const PutResult& answer,
                    std::string_view step) {
  term.report.put = answer;
  const std::optional<Token> sent =
      config_.fencing ? std::optional<Token>(term.grant.token) : std::nullopt;
  // Proof that a newer leader exists: stop at once, never retry, never
  // raise our own token to get past the fence. Logged even if the lease
  // was already found lost: it is the store's verdict.
  Emit(EventLevel::kWarn, ev::kFenced,
       TermFields(term, {{std::string(ev::kKey), key},
                         {std::string(ev::kToken), TokenJson(answer.token ? answer.token : sent)},
                         {std::string(ev::kHighestToken), TokenJson(answer.highest_token)},
                         {"step", step},
                         {"store_answer", answer.server_body}}));
  CloseTerm(term, TermEnd::kFenced);
  return false;
}

bool Worker::StoreFailed(Term& term, const std::string& key, const Error& error,
                         std::string_view reason) {
  term.report.error = error;
  LeaveTerm(term, TermEnd::kStoreError, EventLevel::kError, ev::kSteppedDown,
            TermFields(term, {{"reason", reason},
                              {std::string(ev::kKey), key},
                              {"error", error.code},
                              {"message", error.message},
                              {"details", error.details}}));
  return false;
}

bool Worker::Work(Term& term) {
  // Ends early when the lease is lost or Stop is called; CheckLease says so.
  if (config_.work > Millis(0)) WaitFor(term.elected_at + config_.work, [] { return false; });
  return true;
}

bool Worker::CheckLease(Term& term) {
  // The leader's last look at its own lease before a write, by its own
  // clock (defence in depth: the store's fence stays the guarantee). The
  // injected pause comes after this check, right before the write: whatever
  // happens there (a GC pause, SIGSTOP, a slow network) is exactly what no
  // check on this side can rule out, and the demo shows the store refusing
  // that write.
  if (lost()) {
    CloseTerm(term, TermEnd::kLeaseLost);  // the keep-alive thread logged lease_lost
    return false;
  }
  {
    std::unique_lock lock(mu_);
    if (!lease_->MayWrite()) {
      const std::string message =
          "no renewal was confirmed within the " + std::to_string(lease_->ttl().count()) +
          " ms TTL by the worker's own clock (ran out " +
          std::to_string(-lease_->TimeLeft().count()) + " ms ago); not writing";
      LoseLease(lock, term.grant.token, "expired_by_own_clock", message);
      CloseTerm(term, TermEnd::kLeaseLost);
      return false;
    }
  }
  if (stopped()) {
    LeaveTerm(term, TermEnd::kStopped, EventLevel::kInfo, ev::kResigned,
              TermFields(term, {{"reason", "stopped"}}));
    return false;
  }
  return true;
}

bool Worker::InjectPause(Term& term) {
  if (!config_.pause_before_write || pause_done_) return true;
  pause_done_ = true;
  const Millis duration = *config_.pause_before_write;
  Millis left{0};
  {
    std::lock_guard guard(mu_);
    left = lease_->TimeLeft();
  }
  Emit(EventLevel::kInfo, ev::kPauseInjected,
       TermFields(term, {{"point", "before-write"},
                         {"duration_ms", duration.count()},
                         {"lease_remaining_ms", std::max(Millis(0), left).count()}}));
  auto paused = pauser_.Pause(duration);
  if (!paused.ok()) {
    term.report.error = paused.error();
    LeaveTerm(term, TermEnd::kFailed, EventLevel::kError, ev::kSteppedDown,
              TermFields(term, {{"reason", "pause_failed"}, {"message", paused.error().message}}));
    return false;
  }
  Emit(EventLevel::kInfo, ev::kResumed, TermFields(term, {{"paused_ms", paused->count()}}));
  return true;
}

void Worker::LastStepBeforeWrite() {
  if (config_.write_delay <= Millis(0)) return;
  std::unique_lock lock(mu_);
  WaitLocked(lock, clock_.Now() + config_.write_delay, [&] { return stop_; });
}

Result<PutResult> Worker::Write(Term& term, const std::string& key) {
  const Token token = term.grant.token;
  const std::optional<Token> sent_token =
      config_.fencing ? std::optional<Token>(token) : std::nullopt;
  const nlohmann::json object = {
      {"owner", config_.id}, {"term", token.value()}, {"payload", config_.payload}};
  Emit(EventLevel::kInfo, ev::kWriteAttempt,
       TermFields(term, {{std::string(ev::kKey), key},
                         {std::string(ev::kToken), TokenJson(sent_token)},
                         {"fencing", config_.fencing}}));
  return store_.Put(key, object.dump(), sent_token);
}

bool Worker::JudgeAnswer(Term& term, const std::string& key, const Result<PutResult>& put) {
  switch (JudgeWrite(put)) {
    case WriteVerdict::kKeepLeading:
      term.report.put = *put;
      term.report.end = TermEnd::kWritten;
      Emit(EventLevel::kInfo, ev::kWriteDone,
           TermFields(term, {{std::string(ev::kKey), key},
                             {std::string(ev::kToken), TokenJson(put->token)},
                             {std::string(ev::kHighestToken), TokenJson(put->highest_token)},
                             {"etag", put->etag},
                             {"store_fencing", put->fencing_off ? "off" : "on"}}));
      return true;
    case WriteVerdict::kFenced:
      return Fenced(term, key, *put, "write");
    case WriteVerdict::kStepDown:
      // The write's fate is unknown: a leader that cannot tell whether its
      // write landed stops leading rather than guess.
      return StoreFailed(term, key, put.error(), "store_error");
  }
  return false;
}

void Worker::Resign(Term& term) {
  if (config_.hold_renewals > 0) {
    int target = 0;
    Millis until{0};
    {
      std::lock_guard guard(mu_);
      target = renewals_ + config_.hold_renewals;
      until = lease_->RenewalsDueBy(config_.hold_renewals);
    }
    WaitFor(until, [&] { return renewals_ >= target; });
  }
  // Logs nothing if the lease was lost meanwhile: lease_lost ended the term.
  LeaveTerm(term, term.report.end, EventLevel::kInfo, ev::kResigned,
            TermFields(term, {{"reason", "work_done"}}));
}

int Worker::Run() {
  int code = 0;
  Millis store_backoff = kFirstStoreBackoff;
  for (int served = 0; config_.terms == 0 || served < config_.terms; ++served) {
    const TermReport report = RunTerm();
    switch (report.end) {
      case TermEnd::kStopped:
        return code;
      case TermEnd::kNotElected:
      case TermEnd::kFailed:
        return 1;
      case TermEnd::kStoreError:
        code = 1;
        if (served + 1 != config_.terms) BackOffFromStore(report, store_backoff);
        break;
      case TermEnd::kWritten:
        store_backoff = kFirstStoreBackoff;
        break;
      default:
        break;
    }
    if (stopped()) break;
  }
  return code;
}

void Worker::BackOffFromStore(const TermReport& report, Millis& backoff) {
  // Without a wait, a worker whose store is down would take a grant, fail
  // its first write and release, in a loop: every turn burns a token and a
  // lock-service write, and starves the other candidates.
  const Millis until = clock_.Now() + backoff;
  Emit(EventLevel::kWarn, ev::kStoreUnavailable,
       {{std::string(ev::kOwner), config_.id},
        {"error", report.error ? report.error->code : std::string("unknown")},
        {"retry_in_ms", backoff.count()}});
  WaitFor(until, [] { return false; });
  backoff = std::min(backoff * 2, kMaxStoreBackoff);
}

void Worker::Stop() {
  std::lock_guard guard(mu_);
  stop_ = true;
  changed_.notify_all();
}

void Worker::WakeForTest() {
  std::lock_guard guard(mu_);
  changed_.notify_all();
}

nlohmann::json Worker::TermFields(const Term& term, nlohmann::json fields) const {
  fields[std::string(ev::kTerm)] = term.grant.token.value();
  return fields;
}

void Worker::Emit(EventLevel level, std::string_view event, nlohmann::json fields) {
  // `owner` on every line: a reader (or fence-logscan) attributes each event
  // without tracking process ids.
  nlohmann::json line = {{std::string(ev::kOwner), config_.id}};
  for (auto& [k, v] : fields.items()) line[k] = v;
  sink_(level, event, line);
}

bool Worker::EndTerm(EventLevel level, std::string_view event, nlohmann::json fields) {
  {
    std::lock_guard guard(mu_);
    if (!term_open_) return false;
    term_open_ = false;
  }
  Emit(level, event, std::move(fields));
  return true;
}

void Worker::LeaveTerm(Term& term, TermEnd end, EventLevel level, std::string_view event,
                       nlohmann::json fields) {
  EndTerm(level, event, std::move(fields));
  CloseTerm(term, end);
}

void Worker::CloseTerm(Term& term, TermEnd end) {
  {
    std::lock_guard guard(mu_);
    term_open_ = false;
  }
  term.report.end = end;
  term.report.lease_lost = lost();
  StopKeepAlive();
  const Status released = backend_.Release();
  if (!released.ok()) {
    // The lease then simply runs out; nothing else depends on the release.
    Emit(EventLevel::kWarn, "release_failed",
         {{"error", released.error().code}, {"message", released.error().message}});
  }
}

void Worker::KeepAliveLoop(Token term) {
  std::unique_lock lock(mu_);
  Millis due = lease_->NextRenewalDue();
  while (!WaitLocked(lock, due, [&] { return keepalive_stop_; })) {
    // A keep-alive may take only the time left on the lease: its answer
    // after that proves nothing. With nothing left (a pause, or renewals
    // that failed until now) the lease is gone by our own clock.
    const Millis timeout = lease_->KeepAliveTimeout();
    if (timeout <= Millis(0)) {
      LoseLease(lock, term, "expired_by_own_clock",
                "no renewal was confirmed within the " + std::to_string(lease_->ttl().count()) +
                    " ms TTL by the worker's own clock");
      return;
    }
    const Millis sent = clock_.Now();
    lock.unlock();
    const Status renewed = backend_.KeepAlive(timeout);
    lock.lock();
    if (keepalive_stop_) return;
    if (renewed.ok()) {
      lease_->Renewed(sent);
      ++renewals_;
      due = lease_->NextRenewalDue();
      changed_.notify_all();
      continue;
    }
    const Error& e = renewed.error();
    if (e.code == "lease_lost" || lease_->Expired()) {
      // Without a successful renewal the lease must be taken as gone once
      // its TTL has run out, even if the service could not be asked.
      LoseLease(lock, term,
                e.code == "lease_lost" ? "keepalive_refused" : "renewals_failed_until_expiry",
                e.message);
      return;
    }
    // Scheduled before the event is logged: whoever reads the event (a test
    // moving a simulated clock) finds the retry already due at its time.
    due = lease_->RetryDue();
    const Millis retry_in = due - clock_.Now();
    lock.unlock();
    Emit(EventLevel::kWarn, "renewal_failed",
         {{std::string(ev::kTerm), term.value()}, {"error", e.code}, {"message", e.message},
          {"retry_in_ms", retry_in.count()}});
    lock.lock();
  }
}

void Worker::LoseLease(std::unique_lock<std::mutex>& lock, Token term, std::string_view reason,
                       const std::string& message) {
  // Lost and ended in one step under mu_, so the main thread, once it sees
  // the loss, can no longer end the term with another event.
  lease_lost_ = true;
  const bool ended_here = term_open_;
  term_open_ = false;
  changed_.notify_all();
  lock.unlock();
  if (ended_here) {
    Emit(EventLevel::kWarn, ev::kLeaseLost,
         {{std::string(ev::kTerm), term.value()}, {"reason", reason}, {"message", message}});
  }
}

void Worker::StopKeepAlive() {
  {
    std::lock_guard guard(mu_);
    keepalive_stop_ = true;
    changed_.notify_all();
  }
  if (keepalive_.joinable()) keepalive_.join();
}

bool Worker::WaitLocked(std::unique_lock<std::mutex>& lock, Millis until,
                        const std::function<bool()>& done) {
  // The condition variable sleeps on the real clock; the injected clock
  // alone decides when `until` has come (re-read after every wake-up).
  while (!done()) {
    const Millis left = until - clock_.Now();
    if (left <= Millis(0)) return false;
    changed_.wait_for(lock, left);
  }
  return true;
}

bool Worker::WaitFor(Millis until, const std::function<bool()>& done) {
  std::unique_lock lock(mu_);
  WaitLocked(lock, until, [&] { return stop_ || lease_lost_ || done(); });
  return done();
}

bool Worker::stopped() const {
  std::lock_guard guard(mu_);
  return stop_;
}

bool Worker::lost() const {
  std::lock_guard guard(mu_);
  return lease_lost_;
}

}  // namespace fence::client
