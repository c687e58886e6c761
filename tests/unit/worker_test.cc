// The worker's decisions, with a fake lock backend, a fake store and a fake
// pauser: what it does on a stale write, a lost lease, a store error, and
// where the pause sits relative to its leadership check.
#include "client/worker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/monotonic_clock.h"
#include "core/log_event.h"

namespace fence::client {
namespace {

namespace ev = fence::events;

class FakeBackend : public LockBackend {
 public:
  std::string_view kind() const override { return "fake"; }
  Result<LockGrant> Acquire(const std::string& lock, const std::string& owner, Millis ttl,
                        Millis) override {
    if (during_acquire) during_acquire();
    std::lock_guard g(mu);
    ++acquires;
    if (!acquire_script.empty()) {
      Error e = acquire_script.front();
      acquire_script.pop_front();
      return e;
    }
    held = true;
    return LockGrant{lock, owner, Token(next_token++), "lease-" + std::to_string(acquires), ttl, {}};
  }
  Status KeepAlive(Millis timeout) override {
    std::lock_guard g(mu);
    ++keepalives;
    keepalive_timeouts.push_back(timeout);
    changed.notify_all();
    if (lose_lease) return MakeError("lease_lost", "gone");
    if (!keepalive_script.empty()) {
      Error e = keepalive_script.front();
      keepalive_script.pop_front();
      return e;
    }
    return OkStatus();
  }
  // Bounded wait (in real time) for the worker's n-th keep-alive.
  bool WaitForKeepAlives(int n) {
    std::unique_lock g(mu);
    return changed.wait_for(g, std::chrono::seconds(10), [&] { return keepalives >= n; });
  }
  Status Release() override {
    std::lock_guard g(mu);
    ++releases;
    held = false;
    return OkStatus();
  }

  std::mutex mu;
  std::condition_variable changed;
  std::deque<Error> acquire_script;
  std::function<void()> during_acquire;
  std::deque<Error> keepalive_script;  // failures of the next keep-alives
  std::vector<Millis> keepalive_timeouts;
  std::uint64_t next_token = 5;
  bool lose_lease = false;
  bool held = false;
  int acquires = 0, keepalives = 0, releases = 0;
};

class FakeStore : public ObjectStore {
 public:
  Result<PutResult> Put(const std::string& key, const std::string& body,
                        std::optional<Token> token) override {
    puts.push_back({key, body, token});
    calls.push_back("put " + key);
    return Answer(answers, token);
  }
  Result<PutResult> RaiseFence(const std::string& key, Token token) override {
    fences.push_back({key, "", token});
    calls.push_back("fence " + key);
    if (during_fence) during_fence();
    return Answer(fence_answers, token);
  }
  Result<PutResult> RaiseScope(const std::string& scope, Token token) override {
    calls.push_back("scope " + scope);
    return Answer(scope_answers, token);
  }
  // The next scripted answer, or a 200 that accepted `token`.
  static Result<PutResult> Answer(std::deque<Result<PutResult>>& script,
                                  std::optional<Token> token) {
    if (!script.empty()) {
      auto a = script.front();
      script.pop_front();
      return a;
    }
    PutResult ok;
    ok.token = token;
    ok.highest_token = token;
    ok.http_status = 200;
    return ok;
  }
  struct Call {
    std::string key, body;
    std::optional<Token> token;
  };
  std::vector<Call> puts;
  std::vector<Call> fences;
  std::vector<std::string> calls;  // "fence KEY" and "put KEY", in order
  std::deque<Result<PutResult>> answers;
  std::deque<Result<PutResult>> fence_answers;
  std::deque<Result<PutResult>> scope_answers;
  std::function<void()> during_fence;
};

class FakePauser : public Pauser {
 public:
  Result<Millis> Pause(Millis d) override {
    durations.push_back(d);
    if (during) during();
    return d;
  }
  std::vector<Millis> durations;
  std::function<void()> during;
};

// Simulated time shared with the worker's threads. The worker's waits sleep
// on the real clock, so each Advance is followed by Worker::WakeForTest.
class ManualClock final : public Clock {
 public:
  Millis Now() const override {
    std::lock_guard g(mu_);
    return now_;
  }
  void Advance(Millis by) {
    std::lock_guard g(mu_);
    now_ += by;
  }

 private:
  mutable std::mutex mu_;
  Millis now_{1000};
};

struct Recorded {
  std::string event;
  nlohmann::json fields;
};

class WorkerTest : public ::testing::Test {
 protected:
  WorkerConfig Config() {
    WorkerConfig c;
    c.id = "A";
    c.lock = "leader";
    c.keys = {"k"};
    c.ttl = Millis(300);
    c.renew_interval = Millis(5);
    c.terms = 1;
    return c;
  }
  // A 90 s lease renewed every 30 s, for tests on simulated time: a worker
  // that waited on the real clock would renew nothing within the test.
  WorkerConfig MinuteConfig() {
    WorkerConfig c = Config();
    c.ttl = Millis(90000);
    c.renew_interval = Millis(30000);
    return c;
  }
  EventSink Sink() {
    return [this](EventLevel, std::string_view e, const nlohmann::json& f) {
      std::lock_guard g(mu_);
      events_.push_back({std::string(e), f});
      logged_.notify_all();
    };
  }
  // Bounded wait (in real time) for the n-th such event from the worker.
  bool WaitForEvent(std::string_view name, long n = 1) {
    std::unique_lock g(mu_);
    return logged_.wait_for(g, std::chrono::seconds(10), [&] {
      return std::count_if(events_.begin(), events_.end(),
                           [&](const Recorded& e) { return e.event == name; }) >= n;
    });
  }
  std::vector<std::string> Names() {
    std::lock_guard g(mu_);
    std::vector<std::string> out;
    for (const auto& e : events_) out.push_back(e.event);
    return out;
  }
  std::optional<Recorded> Find(std::string_view name) {
    std::lock_guard g(mu_);
    for (const auto& e : events_) {
      if (e.event == name) return e;
    }
    return std::nullopt;
  }
  int Count(std::string_view name) {
    int n = 0;
    for (const auto& e : Names()) n += e == name;
    return n;
  }

  MonotonicClock clock_;
  FakeBackend backend_;
  FakeStore store_;
  FakePauser pauser_;
  std::mutex mu_;
  std::condition_variable logged_;
  std::vector<Recorded> events_;
};

PutResult Stale(std::uint64_t token, std::uint64_t highest) {
  PutResult r;
  r.outcome = PutResult::Outcome::kStale;
  r.token = Token(token);
  r.highest_token = Token(highest);
  r.http_status = 409;
  r.server_body = {{"error", "stale_token"}, {"token", token}, {"highest_token", highest}};
  return r;
}

TEST_F(WorkerTest, AcceptedWriteCarriesTheTermTokenAndResigns) {
  Worker w(Config(), backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kWritten);
  ASSERT_EQ(store_.puts.size(), 1u);
  ASSERT_TRUE(store_.puts[0].token.has_value());
  EXPECT_EQ(store_.puts[0].token->value(), 5u);
  EXPECT_EQ(backend_.releases, 1);
  const std::vector<std::string> expected = {
      std::string(ev::kAcquiring),    std::string(ev::kElected),
      std::string(ev::kFenceRaised),  std::string(ev::kScopeFenceRaised),
      std::string(ev::kWriteAttempt), std::string(ev::kWriteDone),
      std::string(ev::kResigned)};
  EXPECT_EQ(Names(), expected);
  EXPECT_EQ(Find(ev::kElected)->fields["term"], 5);
  EXPECT_EQ(Find(ev::kWriteDone)->fields["owner"], "A");
  auto body = nlohmann::json::parse(store_.puts[0].body);
  EXPECT_EQ(body["owner"], "A");
  EXPECT_EQ(body["term"], 5);
}

TEST_F(WorkerTest, StaleWriteIsFencedNeverRetriedAndReleased) {
  store_.answers.push_back(Stale(5, 9));
  Worker w(Config(), backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kFenced);
  EXPECT_EQ(store_.puts.size(), 1u) << "a fenced write must not be retried";
  EXPECT_EQ(backend_.releases, 1);
  auto fenced = Find(ev::kFenced);
  ASSERT_TRUE(fenced);
  EXPECT_EQ(fenced->fields["token"], 5);
  EXPECT_EQ(fenced->fields["highest_token"], 9);
  EXPECT_EQ(fenced->fields["term"], 5);
  EXPECT_EQ(Count(ev::kWriteDone), 0);
  EXPECT_EQ(Count(ev::kResigned), 0) << "fenced already ended the term";
}

TEST_F(WorkerTest, FencedWorkerGoesBackToAcquiringWithANewTerm) {
  store_.answers.push_back(Stale(5, 9));
  auto config = Config();
  config.terms = 2;
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.Run(), 0);
  ASSERT_EQ(store_.puts.size(), 2u);
  EXPECT_EQ(store_.puts[0].token->value(), 5u);
  EXPECT_EQ(store_.puts[1].token->value(), 6u) << "only a new grant gives a higher token";
  EXPECT_EQ(Count(ev::kAcquiring), 2);
}

TEST_F(WorkerTest, FencingOffSendsNoToken) {
  auto config = Config();
  config.fencing = false;
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.RunTerm().end, TermEnd::kWritten);
  ASSERT_EQ(store_.puts.size(), 1u);
  EXPECT_FALSE(store_.puts[0].token.has_value());
  EXPECT_TRUE(Find(ev::kWriteAttempt)->fields["token"].is_null());
  EXPECT_TRUE(store_.fences.empty()) << "no token, no fence to raise";
}

TEST_F(WorkerTest, LeaseLostBeforeTheWriteMeansNoWrite) {
  backend_.lose_lease = true;
  auto config = Config();
  config.work = Millis(60000);  // ended early by the lost lease, not by time
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kLeaseLost);
  EXPECT_TRUE(store_.puts.empty());
  EXPECT_EQ(Count(ev::kLeaseLost), 1);
  EXPECT_EQ(Find(ev::kLeaseLost)->fields["term"], 5);
  EXPECT_EQ(Count(ev::kResigned), 0);
}

TEST_F(WorkerTest, PauseSitsBetweenTheLeadershipCheckAndTheWrite) {
  auto config = Config();
  config.pause_before_write = Millis(1234);
  // The lease is lost while the process is stopped; the write that follows
  // still goes out: no check inside the worker can close this window.
  pauser_.during = [this] {
    std::lock_guard g(backend_.mu);
    backend_.lose_lease = true;
  };
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  w.RunTerm();
  ASSERT_EQ(pauser_.durations.size(), 1u);
  EXPECT_EQ(pauser_.durations[0], Millis(1234));
  EXPECT_EQ(store_.puts.size(), 1u);
  const auto names = Names();
  auto pos = [&](std::string_view e) {
    return std::find(names.begin(), names.end(), e) - names.begin();
  };
  EXPECT_LT(pos(ev::kPauseInjected), pos(ev::kResumed));
  EXPECT_LT(pos(ev::kResumed), pos(ev::kWriteAttempt));
  EXPECT_EQ(Find(ev::kPauseInjected)->fields["duration_ms"], 1234);
}

TEST_F(WorkerTest, PauseIsInjectedInTheFirstTermOnly) {
  auto config = Config();
  config.terms = 2;
  config.pause_before_write = Millis(10);
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.Run(), 0);
  EXPECT_EQ(pauser_.durations.size(), 1u);
  EXPECT_EQ(store_.puts.size(), 2u);
}

TEST_F(WorkerTest, StoreErrorStepsDownWithoutRetry) {
  store_.answers.push_back(MakeError("unreachable", "connection refused"));
  Worker w(Config(), backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kStoreError);
  EXPECT_EQ(store_.puts.size(), 1u);
  EXPECT_EQ(backend_.releases, 1);
  auto down = Find(ev::kSteppedDown);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->fields["reason"], "store_error");
  EXPECT_EQ(down->fields["error"], "unreachable");
}

TEST_F(WorkerTest, HeldLockIsRetriedUntilGranted) {
  backend_.acquire_script = {MakeError("held", "held by B"), MakeError("held", "held by B")};
  Worker w(Config(), backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.RunTerm().end, TermEnd::kWritten);
  EXPECT_EQ(backend_.acquires, 3);
  EXPECT_EQ(Count(ev::kElected), 1);
}

TEST_F(WorkerTest, InvalidLockRequestEndsTheTermUnelected) {
  backend_.acquire_script = {MakeError("bad_request", "ttl too large")};
  Worker w(Config(), backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.Run(), 1);
  EXPECT_TRUE(store_.puts.empty());
  EXPECT_EQ(Count(ev::kElected), 0);
}

TEST_F(WorkerTest, HoldRenewalsWaitsForARenewalBeforeResigning) {
  auto config = Config();
  config.hold_renewals = 2;
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.RunTerm().end, TermEnd::kWritten);
  std::lock_guard g(backend_.mu);
  EXPECT_GE(backend_.keepalives, 2);
  EXPECT_EQ(Count(ev::kResigned), 1);
}

TEST_F(WorkerTest, NewLeaderRaisesTheFenceOfEveryKeyBeforeAnyWork) {
  auto config = Config();
  config.keys = {"a", "b/c"};
  // The work would take a minute (of a two-minute lease); the fences must
  // already be up before it starts.
  config.ttl = Millis(120000);
  config.work = Millis(60000);
  ManualClock clock;
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  TermReport report;
  std::thread term([&] { report = w.RunTerm(); });
  // Both fences stand while the worker's clock has not moved since its
  // election: before any of the work.
  ASSERT_TRUE(WaitForEvent(ev::kScopeFenceRaised, 1));
  clock.Advance(Millis(60000));
  w.WakeForTest();
  term.join();
  EXPECT_EQ(report.end, TermEnd::kWritten);
  // The keys' fences, then the scope's (the lock's name): one call.
  const std::vector<std::string> expected = {"fence a", "fence b/c", "scope leader", "put a",
                                             "put b/c"};
  EXPECT_EQ(store_.calls, expected);
  for (const auto& f : store_.fences) EXPECT_EQ(f.token, Token(5));
  EXPECT_EQ(Count(ev::kFenceRaised), 2);
  EXPECT_EQ(Find(ev::kScopeFenceRaised)->fields["scope"], "leader");
  EXPECT_EQ(Find(ev::kFenceRaised)->fields["key"], "a");
  EXPECT_EQ(Find(ev::kFenceRaised)->fields["highest_token"], 5);
  EXPECT_EQ(Find(ev::kFenceRaised)->fields["term"], 5);
  EXPECT_EQ(Count(ev::kWriteDone), 2);
}

TEST_F(WorkerTest, StaleFenceMeansAlreadyFencedSoItStepsDownWithoutWork) {
  store_.fence_answers.push_back(Stale(5, 9));
  auto config = Config();
  config.keys = {"a", "b"};
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kFenced);
  EXPECT_TRUE(store_.puts.empty());
  EXPECT_EQ(store_.fences.size(), 1u) << "stops at the first refused fence";
  EXPECT_EQ(backend_.releases, 1);
  auto fenced = Find(ev::kFenced);
  ASSERT_TRUE(fenced);
  EXPECT_EQ(fenced->fields["step"], "fence_first");
  EXPECT_EQ(fenced->fields["key"], "a");
  EXPECT_EQ(fenced->fields["token"], 5);
  EXPECT_EQ(fenced->fields["highest_token"], 9);
  EXPECT_EQ(Count(ev::kFenceRaised), 0);
}

// A newer leader already raised the job's scope: the worker stops before any
// work, whatever its own keys' fences said.
TEST_F(WorkerTest, StaleScopeFenceStepsDownWithoutWork) {
  store_.scope_answers.push_back(Stale(5, 9));
  auto config = Config();
  config.keys = {"a"};
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kFenced);
  EXPECT_TRUE(store_.puts.empty());
  const std::vector<std::string> expected = {"fence a", "scope leader"};
  EXPECT_EQ(store_.calls, expected);
  auto fenced = Find(ev::kFenced);
  ASSERT_TRUE(fenced);
  EXPECT_EQ(fenced->fields["step"], "scope_fence_first");
  EXPECT_EQ(fenced->fields["key"], "leader");
  EXPECT_EQ(fenced->fields["highest_token"], 9);
}

TEST_F(WorkerTest, ScopeFencingOffFencesPerKeyOnly) {
  auto config = Config();
  config.keys = {"a"};
  config.scope_fencing = false;
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.RunTerm().end, TermEnd::kWritten);
  const std::vector<std::string> expected = {"fence a", "put a"};
  EXPECT_EQ(store_.calls, expected);
}

TEST_F(WorkerTest, FailedFenceStepsDownAndGoesBackToAcquiring) {
  store_.fence_answers.push_back(MakeError("unreachable", "connection refused"));
  auto config = Config();
  config.terms = 2;
  Worker w(config, backend_, store_, pauser_, clock_, Sink());
  EXPECT_EQ(w.Run(), 1);
  auto down = Find(ev::kSteppedDown);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->fields["reason"], "fence_failed");
  EXPECT_EQ(down->fields["error"], "unreachable");
  EXPECT_EQ(Count(ev::kAcquiring), 2);
  ASSERT_EQ(store_.puts.size(), 1u) << "only the second term wrote";
  EXPECT_EQ(store_.puts[0].token, Token(6));
}

// A store that is down must not make the worker spin through grants (each
// one burns a token and a lock-service write): after a term that ended on a
// store error it waits, twice as long each time, before asking again.
TEST_F(WorkerTest, StoreOutageBacksOffBeforeTheNextTerm) {
  for (int i = 0; i < 2; ++i) {
    store_.fence_answers.push_back(MakeError("unreachable", "connection refused"));
  }
  ManualClock clock;
  auto config = MinuteConfig();
  config.terms = 3;
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  int code = -1;
  std::thread run([&] { code = w.Run(); });
  for (const long outages : {1, 2}) {
    const long backoff_ms = outages * 100;
    ASSERT_TRUE(WaitForEvent(ev::kStoreUnavailable, outages))
        << "outage " << outages << "; events: " << testing::PrintToString(Names());
    EXPECT_EQ(Count(ev::kAcquiring), outages) << "no new term during the back-off";
    {
      std::lock_guard g(mu_);
      EXPECT_EQ(events_.back().fields["retry_in_ms"], backoff_ms);
      EXPECT_EQ(events_.back().fields["error"], "unreachable");
    }
    clock.Advance(Millis(backoff_ms));
    w.WakeForTest();
  }
  run.join();
  EXPECT_EQ(Count(ev::kAcquiring), 3);
  EXPECT_EQ(store_.puts.size(), 1u) << "the third term wrote";
  EXPECT_EQ(code, 1);
}

TEST_F(WorkerTest, LeaseRunOutByItsOwnClockMeansNoWrite) {
  // The fence call took longer than the whole TTL (a slow store); no
  // renewal was due yet, so only the worker's own clock can tell.
  ManualClock clock;
  auto config = MinuteConfig();
  store_.during_fence = [&] { clock.Advance(Millis(90000)); };
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kLeaseLost);
  EXPECT_TRUE(r.lease_lost);
  EXPECT_TRUE(store_.puts.empty()) << "a write was sent past the lease";
  EXPECT_EQ(Count(ev::kWriteAttempt), 0);
  auto lost = Find(ev::kLeaseLost);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->fields["reason"], "expired_by_own_clock");
  EXPECT_EQ(lost->fields["term"], 5);
  EXPECT_EQ(backend_.releases, 1) << "it steps down: the lock is released";
}

TEST_F(WorkerTest, PauseSitsAfterTheOwnClockCheckSoTheWriteStillGoesOut) {
  // The pause (a real SIGSTOP in fence-worker) outlasts the lease; the write
  // that follows goes out all the same: it is the pause no check on the
  // client side can rule out, and the store's fence must refuse it.
  ManualClock clock;
  auto config = MinuteConfig();
  config.keys = {"a", "b"};
  config.pause_before_write = Millis(200000);
  pauser_.during = [&] { clock.Advance(Millis(200000)); };
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  const TermReport r = w.RunTerm();
  ASSERT_EQ(store_.puts.size(), 1u) << "the first write follows the pause; the second is refused";
  EXPECT_EQ(store_.puts[0].key, "a");
  EXPECT_EQ(Find(ev::kPauseInjected)->fields["lease_remaining_ms"], 90000);
  const auto names = Names();
  auto pos = [&](std::string_view e) {
    return std::find(names.begin(), names.end(), e) - names.begin();
  };
  EXPECT_LT(pos(ev::kResumed), pos(ev::kWriteAttempt));
  EXPECT_LT(pos(ev::kWriteAttempt), pos(ev::kLeaseLost)) << "checked again before key b";
  EXPECT_EQ(Find(ev::kLeaseLost)->fields["reason"], "expired_by_own_clock");
  EXPECT_EQ(r.end, TermEnd::kLeaseLost);
}

TEST_F(WorkerTest, GrantAfterALongPollIsConfirmedBeforeTheTermStarts) {
  // The acquire waited longer than the whole TTL for the lock to free: its
  // send time says nothing useful about the lease. One keep-alive first.
  ManualClock clock;
  auto config = MinuteConfig();
  backend_.during_acquire = [&] { clock.Advance(Millis(100000)); };
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kWritten);
  EXPECT_EQ(store_.puts.size(), 1u);
  std::lock_guard g(backend_.mu);
  ASSERT_GE(backend_.keepalives, 1);
  EXPECT_EQ(backend_.keepalive_timeouts[0], Millis(90000));
}

TEST_F(WorkerTest, UnconfirmedGrantIsReleasedAndAskedAgain) {
  ManualClock clock;
  auto config = MinuteConfig();
  config.acquire_timeout = Millis(0);  // the slow first acquire must not end the term
  int slow_acquires = 1;
  backend_.during_acquire = [&] {
    if (slow_acquires-- > 0) clock.Advance(Millis(100000));
  };
  backend_.keepalive_script = {MakeError("lease_lost", "expired")};
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  const TermReport r = w.RunTerm();
  EXPECT_EQ(r.end, TermEnd::kWritten);
  EXPECT_EQ(Count("grant_unconfirmed"), 1);
  EXPECT_EQ(backend_.acquires, 2);
  ASSERT_EQ(store_.puts.size(), 1u);
  EXPECT_EQ(store_.puts[0].token, Token(6)) << "only the confirmed grant's term writes";
}

TEST_F(WorkerTest, RenewsEveryIntervalOfItsOwnClock) {
  // Simulated minutes, real milliseconds: a worker that waited on the real
  // clock would renew nothing within the test's bounded waits.
  ManualClock clock;
  auto config = MinuteConfig();
  config.work = Millis(100000);
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  TermReport report;
  std::thread term([&] { report = w.RunTerm(); });
  ASSERT_TRUE(WaitForEvent(ev::kElected));
  for (int i = 1; i <= 3; ++i) {
    clock.Advance(Millis(29999));
    w.WakeForTest();
    clock.Advance(Millis(1));
    w.WakeForTest();
    EXPECT_TRUE(backend_.WaitForKeepAlives(i)) << "renewal " << i;
    std::lock_guard g(backend_.mu);
    EXPECT_EQ(backend_.keepalives, i) << "one renewal per interval";
  }
  EXPECT_TRUE(store_.puts.empty()) << "the work takes 100 s of the worker's clock";
  clock.Advance(Millis(10000));
  w.WakeForTest();
  term.join();
  EXPECT_EQ(report.end, TermEnd::kWritten);
  EXPECT_EQ(store_.puts.size(), 1u);
  std::lock_guard g(backend_.mu);
  EXPECT_EQ(backend_.keepalives, 3);
}

TEST_F(WorkerTest, KeepAliveMayTakeOnlyTheTimeLeftOnTheLease) {
  ManualClock clock;
  auto config = MinuteConfig();
  config.work = Millis(1000000);
  backend_.keepalive_script = {MakeError("unavailable", "timed out")};
  Worker w(config, backend_, store_, pauser_, clock, Sink());
  TermReport report;
  std::thread term([&] { report = w.RunTerm(); });
  ASSERT_TRUE(WaitForEvent(ev::kElected));
  auto step = [&](Millis by, int keepalives) {
    clock.Advance(by);
    w.WakeForTest();
    return backend_.WaitForKeepAlives(keepalives);
  };
  EXPECT_TRUE(step(Millis(30000), 1));  // due at 30 s: 60 s left, fails
  ASSERT_TRUE(WaitForEvent("renewal_failed"));
  EXPECT_TRUE(step(Millis(100), 2));    // retried 100 ms later: 59.9 s left, renewed
  EXPECT_TRUE(step(Millis(30000), 3));  // due 30 s after that send: 60 s left
  // A pause longer than the lease: no renewal is sent any more, the lease
  // is lost by the worker's own clock.
  clock.Advance(Millis(200000));
  w.WakeForTest();
  term.join();
  EXPECT_EQ(report.end, TermEnd::kLeaseLost);
  EXPECT_TRUE(store_.puts.empty());
  EXPECT_EQ(Find(ev::kLeaseLost)->fields["reason"], "expired_by_own_clock");
  std::lock_guard g(backend_.mu);
  const std::vector<Millis> expected = {Millis(60000), Millis(59900), Millis(60000)};
  EXPECT_EQ(backend_.keepalive_timeouts, expected);
}

TEST(JudgeWriteTest, MapsEveryAnswer) {
  PutResult ok;
  EXPECT_EQ(JudgeWrite(Result<PutResult>(ok)), WriteVerdict::kKeepLeading);
  EXPECT_EQ(JudgeWrite(Result<PutResult>(Stale(1, 2))), WriteVerdict::kFenced);
  EXPECT_EQ(JudgeWrite(Result<PutResult>(MakeError("storage_error", "disk"))), WriteVerdict::kStepDown);
}

TEST(ParsePauseSpecTest, AcceptsMillisecondsAndSeconds) {
  EXPECT_EQ(*ParsePauseSpec("before-write:3000ms"), Millis(3000));
  EXPECT_EQ(*ParsePauseSpec("before-write:3s"), Millis(3000));
  EXPECT_EQ(*ParsePauseSpec("before-write:1ms"), Millis(1));
  EXPECT_EQ(*ParsePauseSpec("before-write:3600s"), Millis(3600000));
}

TEST(ParsePauseSpecTest, RejectsEverythingElse) {
  for (const char* bad : {"", "before-write:", "before-write:3", "before-write:3 s",
                          "before-write:-3s", "before-write:+3s", "before-write:3m",
                          "before-write:0ms", "before-write:3601s", "after-write:3s",
                          "before-write:3.5s", "before-write:99999999999ms", "3s",
                          "before-write:3sx", "BEFORE-WRITE:3s"}) {
    auto r = ParsePauseSpec(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, "bad_pause");
    }
  }
}

}  // namespace
}  // namespace fence::client
