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
using SteadyClock = std::chrono::steady_clock;

namespace {

nlohmann::json TokenJson(std::optional<Token> t) {
  return t ? nlohmann::json(t->value()) : nlohmann::json(nullptr);
}

Millis Since(SteadyClock::time_point from) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - from);
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

Result<Millis> ProcessPauser::Pause(Millis duration) {
  // Everything the resumer needs is computed before fork: in a
  // multithreaded process the child may only make async-signal-safe calls.
  const pid_t self = getpid();
  const std::string stat_path = "/proc/" + std::to_string(self) + "/stat";
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += static_cast<time_t>(duration.count() / 1000);
  deadline.tv_nsec += static_cast<long>((duration.count() % 1000) * 1000000);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  const auto started = SteadyClock::now();
  const pid_t resumer = fork();
  if (resumer < 0) {
    return MakeError("pause_failed", std::string("fork of the resumer failed: ") +
                                         std::strerror(errno));
  }
  if (resumer == 0) {
    // A resumer that outlived a killed worker could SIGCONT a recycled pid.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(1);
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
      const int fd = open(stat_path.c_str(), O_RDONLY);
      if (fd < 0) _exit(1);  // the worker is gone
      const ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n > 0) {
        ssize_t close_paren = -1;
        for (ssize_t j = 0; j < n; ++j) {
          if (buf[j] == ')') close_paren = j;
        }
        if (close_paren >= 0 && close_paren + 2 < n && buf[close_paren + 2] == 'T') {
          kill(self, SIGCONT);
          _exit(0);
        }
      }
      const timespec one_ms{0, 1000000};
      nanosleep(&one_ms, nullptr);
    }
    kill(self, SIGCONT);
    _exit(2);
  }
  // The whole process stops here, keep-alive thread included.
  kill(self, SIGSTOP);
  const Millis paused = Since(started);
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
               Pauser& pauser, EventSink sink)
    : config_(std::move(config)),
      backend_(backend),
      store_(store),
      pauser_(pauser),
      sink_(std::move(sink)) {}

Worker::~Worker() { StopKeepAlive(); }

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

void Worker::Stop() {
  std::lock_guard guard(mu_);
  stop_ = true;
  changed_.notify_all();
}

bool Worker::WaitFor(SteadyClock::time_point until, const std::function<bool()>& done) {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, until, [&] { return stop_ || lease_lost_ || done(); });
  return done();
}

Millis Worker::LeaseRemaining() const {
  std::lock_guard guard(mu_);
  // A lower bound: the service extended the lease no earlier than we sent
  // the last successful renewal (or the acquire).
  const auto expires = last_renew_sent_ + config_.ttl;
  return std::chrono::duration_cast<Millis>(expires - SteadyClock::now());
}

void Worker::KeepAliveLoop(Token term) {
  const Millis interval = config_.renew_interval.count() > 0
                              ? config_.renew_interval
                              : std::max(Millis(1), config_.ttl / 3);
  std::unique_lock lock(mu_);
  auto next = last_renew_sent_ + interval;
  while (true) {
    if (changed_.wait_until(lock, next, [&] { return keepalive_stop_; })) return;
    const auto sent = SteadyClock::now();
    lock.unlock();
    const Status renewed = backend_.KeepAlive();
    lock.lock();
    if (keepalive_stop_) return;
    if (renewed.ok()) {
      last_renew_sent_ = sent;
      ++renewals_;
      next = sent + interval;
      changed_.notify_all();
      continue;
    }
    const Error& e = renewed.error();
    const bool expired_locally = SteadyClock::now() >= last_renew_sent_ + config_.ttl;
    if (e.code == "lease_lost" || expired_locally) {
      // Without a successful renewal the lease must be taken as gone once
      // its TTL has run out, even if the service could not be asked.
      lease_lost_ = true;
      changed_.notify_all();
      lock.unlock();
      EndTerm(EventLevel::kWarn, ev::kLeaseLost,
              {{std::string(ev::kTerm), term.value()},
               {"reason", e.code == "lease_lost" ? "keepalive_refused"
                                                 : "renewals_failed_until_expiry"},
               {"message", e.message}});
      return;
    }
    lock.unlock();
    Emit(EventLevel::kWarn, "renewal_failed",
         {{std::string(ev::kTerm), term.value()}, {"error", e.code}, {"message", e.message}});
    lock.lock();
    next = SteadyClock::now() + std::min(interval, Millis(100));
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

void Worker::LeaveTerm(EventLevel level, std::string_view event, nlohmann::json fields) {
  EndTerm(level, event, std::move(fields));
  StopKeepAlive();
  const Status released = backend_.Release();
  if (!released.ok()) {
    // The lease then simply runs out; nothing else depends on the release.
    Emit(EventLevel::kWarn, "release_failed",
         {{"error", released.error().code}, {"message", released.error().message}});
  }
}

TermReport Worker::RunTerm() {
  TermReport report;
  const std::string backend_kind(backend_.kind());
  Emit(EventLevel::kInfo, ev::kAcquiring, {{"lock", config_.lock}, {"backend", backend_kind}});

  const auto started = SteadyClock::now();
  const bool bounded = config_.acquire_timeout.count() > 0;
  const auto deadline = started + config_.acquire_timeout;
  Millis backoff(100);
  std::optional<LockGrant> lease;
  SteadyClock::time_point acquire_sent;
  while (!lease) {
    {
      std::lock_guard guard(mu_);
      if (stop_) return report;
    }
    Millis wait = config_.acquire_wait;
    if (bounded) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        Emit(EventLevel::kError, "acquire_timeout",
             {{"lock", config_.lock}, {"waited_ms", Since(started).count()}});
        report.end = TermEnd::kNotElected;
        return report;
      }
      wait = std::min(wait, left);
    }
    acquire_sent = SteadyClock::now();
    auto granted = backend_.Acquire(config_.lock, config_.id, config_.ttl, wait);
    if (granted.ok()) {
      lease = *granted;
      break;
    }
    const Error& e = granted.error();
    if (e.code == "held") {
      // The long poll already waited; a service that answered early is
      // asked again after a short pause instead of in a tight loop.
      if (Since(acquire_sent) + Millis(10) < wait) {
        WaitFor(SteadyClock::now() + Millis(50), [] { return false; });
      }
      continue;
    }
    if (e.code == "unavailable") {
      Emit(EventLevel::kWarn, "lock_unavailable",
           {{"lock", config_.lock}, {"message", e.message}, {"retry_in_ms", backoff.count()}});
      WaitFor(SteadyClock::now() + backoff, [] { return false; });
      backoff = std::min(backoff * 2, Millis(2000));
      continue;
    }
    Emit(EventLevel::kError, "lock_refused",
         {{"lock", config_.lock}, {"error", e.code}, {"message", e.message},
          {"details", e.details}});
    report.end = TermEnd::kFailed;
    report.error = e;
    return report;
  }

  const Token term = lease->token;
  report.token = term;
  {
    std::lock_guard guard(mu_);
    term_open_ = true;
    lease_lost_ = false;
    keepalive_stop_ = false;
    renewals_ = 0;
    term_ = term;
    last_renew_sent_ = acquire_sent;
  }
  auto with_term = [&](nlohmann::json fields) {
    fields[std::string(ev::kTerm)] = term.value();
    return fields;
  };
  Emit(EventLevel::kInfo, ev::kElected,
       with_term({{"lock", config_.lock},
                  {"backend", backend_kind},
                  {std::string(ev::kToken), term.value()},
                  {std::string(ev::kLeaseId), lease->lease_id},
                  {"ttl_ms", lease->ttl.count()}}));
  keepalive_ = std::thread([this, term] { KeepAliveLoop(term); });

  auto stopped = [&] {
    std::lock_guard guard(mu_);
    return stop_;
  };
  auto lost = [&] {
    std::lock_guard guard(mu_);
    return lease_lost_;
  };

  if (config_.work.count() > 0) {
    WaitFor(SteadyClock::now() + config_.work, [] { return false; });
  }
  // The leader's last look at its own lease before writing. Whatever happens
  // between this check and the write (a pause, a slow network) is exactly
  // what no check on this side can rule out.
  if (lost()) {
    StopKeepAlive();
    report.end = TermEnd::kLeaseLost;
    report.lease_lost = true;
    return report;
  }
  if (stopped()) {
    LeaveTerm(EventLevel::kInfo, ev::kResigned, with_term({{"reason", "stopped"}}));
    return report;
  }

  if (config_.pause_before_write && !pause_done_) {
    pause_done_ = true;
    const Millis duration = *config_.pause_before_write;
    Emit(EventLevel::kInfo, ev::kPauseInjected,
         with_term({{"point", "before-write"},
                    {"duration_ms", duration.count()},
                    {"lease_remaining_ms", std::max<std::int64_t>(0, LeaseRemaining().count())}}));
    auto paused = pauser_.Pause(duration);
    if (!paused.ok()) {
      report.error = paused.error();
      report.end = TermEnd::kFailed;
      LeaveTerm(EventLevel::kError, ev::kSteppedDown,
                with_term({{"reason", "pause_failed"}, {"message", paused.error().message}}));
      return report;
    }
    Emit(EventLevel::kInfo, ev::kResumed, with_term({{"paused_ms", paused->count()}}));
  }

  const std::optional<Token> sent_token =
      config_.fencing ? std::optional<Token>(term) : std::nullopt;
  const nlohmann::json object = {
      {"owner", config_.id}, {"term", term.value()}, {"payload", config_.payload}};
  Emit(EventLevel::kInfo, ev::kWriteAttempt,
       with_term({{std::string(ev::kKey), config_.key},
                  {std::string(ev::kToken), TokenJson(sent_token)},
                  {"fencing", config_.fencing}}));
  auto put = store_.Put(config_.key, object.dump(), sent_token);
  switch (JudgeWrite(put)) {
    case WriteVerdict::kKeepLeading: {
      report.put = *put;
      report.end = TermEnd::kWritten;
      Emit(EventLevel::kInfo, ev::kWriteDone,
           with_term({{std::string(ev::kKey), config_.key},
                      {std::string(ev::kToken), TokenJson(put->token)},
                      {std::string(ev::kHighestToken), TokenJson(put->highest_token)},
                      {"etag", put->etag},
                      {"store_fencing", put->fencing_off ? "off" : "on"}}));
      if (config_.hold_renewals > 0) {
        int target = 0;
        {
          std::lock_guard guard(mu_);
          target = renewals_ + config_.hold_renewals;
        }
        const Millis interval = config_.renew_interval.count() > 0
                                    ? config_.renew_interval
                                    : std::max(Millis(1), config_.ttl / 3);
        // Bounded: the renewals are due within hold * interval; a lease that
        // cannot be renewed is declared lost within a TTL after that.
        WaitFor(SteadyClock::now() + interval * (config_.hold_renewals + 1) + config_.ttl,
                [&] { return renewals_ >= target; });
      }
      if (lost()) {
        StopKeepAlive();
        report.lease_lost = true;
        return report;
      }
      LeaveTerm(EventLevel::kInfo, ev::kResigned, with_term({{"reason", "work_done"}}));
      return report;
    }
    case WriteVerdict::kFenced: {
      report.put = *put;
      report.end = TermEnd::kFenced;
      report.lease_lost = lost();
      // Proof that a newer leader exists: stop at once, never retry this
      // write, never raise our own token to get past the fence.
      Emit(EventLevel::kWarn, ev::kFenced,
           with_term({{std::string(ev::kKey), config_.key},
                      {std::string(ev::kToken), TokenJson(put->token ? put->token : sent_token)},
                      {std::string(ev::kHighestToken), TokenJson(put->highest_token)},
                      {"store_answer", put->server_body}}));
      {
        std::lock_guard guard(mu_);
        term_open_ = false;  // `fenced` ended the term
      }
      StopKeepAlive();
      const Status released = backend_.Release();
      if (!released.ok()) {
        Emit(EventLevel::kWarn, "release_failed",
             {{"error", released.error().code}, {"message", released.error().message}});
      }
      return report;
    }
    case WriteVerdict::kStepDown: {
      report.error = put.error();
      report.end = TermEnd::kStoreError;
      report.lease_lost = lost();
      // The write's fate is unknown: a leader that cannot tell whether its
      // write landed stops leading rather than guess.
      LeaveTerm(EventLevel::kError, ev::kSteppedDown,
                with_term({{"reason", "store_error"},
                           {"error", put.error().code},
                           {"message", put.error().message},
                           {"details", put.error().details}}));
      return report;
    }
  }
  return report;
}

int Worker::Run() {
  int code = 0;
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
        break;
      default:
        break;
    }
    std::lock_guard guard(mu_);
    if (stop_) break;
  }
  return code;
}

}  // namespace fence::client
