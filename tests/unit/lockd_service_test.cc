// The lock service's logic on simulated time: FakeClock and FakeTimers, so
// every deadline (grace, expiry, waiter timeout) is checked at the exact
// millisecond without sleeping.
#include "lockd/lock_service.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "tests/support/sim_env.h"

namespace fence::lockd {
namespace {

// What a callback received, if it ran.
struct Answer {
  std::optional<Result<Lease>> result;
  bool answered() const { return result.has_value(); }
  bool granted() const { return result && result->ok(); }
  const Lease& lease() const { return result->value(); }
  std::string error() const { return result && !result->ok() ? result->error().code : ""; }
  std::int64_t detail(const char* field) const {
    return result->error().details.value(field, std::int64_t{-1});
  }
};

class LockdServiceTest : public ::testing::Test {
 protected:
  void StartService(Millis grace, LockServiceOptions options = {}) {
    auto journal = TokenJournal::Open(env_, "/lockd", {.block = 1});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    journal_ = std::move(*journal);
    options.grace = grace;
    service_ = std::make_unique<LockService>(clock_, timers_, *journal_, metrics_, options);
    service_->Start();
  }

  std::shared_ptr<Answer> Acquire(const std::string& name, const std::string& owner,
                                  Millis ttl, Millis wait, Millis lock_delay = Millis(0)) {
    auto answer = std::make_shared<Answer>();
    service_->Acquire(name, owner, ttl, wait, lock_delay,
                      [answer](Result<Lease> r) { answer->result = std::move(r); });
    return answer;
  }
  Lease MustGrant(const std::string& name, const std::string& owner, Millis ttl,
                  Millis lock_delay = Millis(0)) {
    auto answer = Acquire(name, owner, ttl, Millis(0), lock_delay);
    EXPECT_TRUE(answer->granted()) << answer->error();
    return answer->lease();
  }
  Answer Release(const std::string& name, LeaseId id) {
    Answer answer;
    service_->Release(name, id, [&](Result<Lease> r) { answer.result = std::move(r); });
    return answer;
  }
  Answer Break(const std::string& name, const std::string& reason) {
    Answer answer;
    service_->Break(name, reason, "127.0.0.1:1",
                    [&](Result<Lease> r) { answer.result = std::move(r); });
    return answer;
  }
  Answer KeepAlive(LeaseId id) {
    Answer answer;
    service_->KeepAlive(id, [&](Result<Lease> r) { answer.result = std::move(r); });
    return answer;
  }
  // The holder of `name`, or "" when it is free.
  std::string Holder(const std::string& name) {
    std::string holder;
    service_->Status(name, [&](Result<LockStatus> s) { holder = s.ok() ? s->holder : ""; });
    return holder;
  }

  fence::testing::SimEnv env_;  // the journal's files, in memory
  FakeClock clock_;
  FakeTimers timers_{clock_};
  prometheus::Registry registry_;
  LockdMetrics metrics_{registry_};
  std::unique_ptr<TokenJournal> journal_;
  std::unique_ptr<LockService> service_;
};

constexpr Millis kGrace{5000};
constexpr Millis kTtl{1000};

TEST_F(LockdServiceTest, GrantsNothingUntilTheGraceEndsThenServesWaiters) {
  StartService(kGrace);
  auto early = Acquire("job", "A", kTtl, Millis(0));
  EXPECT_EQ(early->error(), "starting");
  EXPECT_EQ(early->detail("retry_after_ms"), kGrace.count());
  auto b = Acquire("job", "B", kTtl, Millis(6000));
  auto c = Acquire("other", "C", kTtl, kGrace);  // ends with the grace: queued
  timers_.Advance(kGrace - Millis(1));
  EXPECT_FALSE(b->answered());
  EXPECT_FALSE(c->answered());
  EXPECT_EQ(service_->GraceRemaining(), Millis(1));
  EXPECT_EQ(Holder("job"), "");
  timers_.Advance(Millis(1));
  ASSERT_TRUE(b->granted()) << b->error();
  ASSERT_TRUE(c->granted()) << c->error();
  EXPECT_EQ(b->lease().owner, "B");
  EXPECT_EQ(c->lease().owner, "C");
  EXPECT_EQ(service_->GraceRemaining(), Millis(0));
  EXPECT_EQ(metrics_.grants.Value(), 2);
}

TEST_F(LockdServiceTest, WaitShorterThanTheRemainingGraceIsAnsweredStartingAtOnce) {
  StartService(kGrace);
  timers_.Advance(Millis(2000));
  auto a = Acquire("job", "A", kTtl, Millis(2999));
  ASSERT_TRUE(a->answered()) << "answered at once, not after waiting";
  EXPECT_EQ(a->error(), "starting");
  EXPECT_EQ(a->detail("retry_after_ms"), 3000);
  EXPECT_EQ(timers_.Pending(), 1u) << "only the grace timer: nothing queued";
  EXPECT_EQ(metrics_.refusals.at("grace")->Value(), 1);
}

TEST_F(LockdServiceTest, NewDataDirectoryHasNoGrace) {
  StartService(Millis(0));
  EXPECT_EQ(MustGrant("job", "A", kTtl).token, Token(1));
  EXPECT_EQ(timers_.Pending(), 1u) << "only the lease's expiry";
}

TEST_F(LockdServiceTest, LeaseExpiresAtExactlyItsTtl) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", kTtl);
  timers_.Advance(kTtl - Millis(1));
  EXPECT_EQ(Holder("job"), "A");
  auto b = Acquire("job", "B", kTtl, Millis(0));
  EXPECT_EQ(b->error(), "held");
  EXPECT_EQ(b->detail("expires_in_ms"), 1);
  timers_.Advance(Millis(1));
  EXPECT_EQ(Holder("job"), "");
  EXPECT_EQ(metrics_.expirations.Value(), 1);
  EXPECT_EQ(metrics_.holders.Value(), 0);
  EXPECT_EQ(KeepAlive(a.id).error(), "unknown_lease");
  EXPECT_GT(MustGrant("job", "B", kTtl).token, a.token);
}

TEST_F(LockdServiceTest, KeepAliveExtendsTheLeaseByItsTtl) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", kTtl);
  timers_.Advance(Millis(600));
  ASSERT_TRUE(KeepAlive(a.id).granted());
  timers_.Advance(kTtl - Millis(1));  // 1599 ms after the grant
  EXPECT_EQ(Holder("job"), "A");
  EXPECT_EQ(metrics_.expirations.Value(), 0);
  timers_.Advance(Millis(1));  // 1000 ms after the keep-alive
  EXPECT_EQ(Holder("job"), "");
  EXPECT_EQ(metrics_.expirations.Value(), 1);
  EXPECT_EQ(metrics_.keepalives.Value(), 1);
}

TEST_F(LockdServiceTest, WaiterTimeoutAnswersHeldWithWaitedMs) {
  StartService(Millis(0));
  MustGrant("job", "A", Millis(10000));
  auto b = Acquire("job", "B", kTtl, Millis(300));
  timers_.Advance(Millis(299));
  EXPECT_FALSE(b->answered());
  timers_.Advance(Millis(1));
  ASSERT_EQ(b->error(), "held");
  EXPECT_EQ(b->detail("waited_ms"), 300);
  EXPECT_EQ(b->detail("expires_in_ms"), 9700);
  EXPECT_EQ(b->result->error().details.value("holder", ""), "A");
  EXPECT_EQ(Holder("job"), "A");
}

TEST_F(LockdServiceTest, WaitEndingAsTheLeaseExpiresIsGranted) {
  StartService(Millis(0));
  MustGrant("job", "A", kTtl);
  auto b = Acquire("job", "B", kTtl, kTtl);
  timers_.Advance(kTtl);
  ASSERT_TRUE(b->granted()) << b->error();
}

TEST_F(LockdServiceTest, ReleaseHandsTheLockToWaitersInArrivalOrder) {
  StartService(Millis(0));
  Lease holder = MustGrant("job", "A", Millis(10000));
  std::vector<std::shared_ptr<Answer>> waiters;
  for (const char* owner : {"B", "C", "D"}) {
    waiters.push_back(Acquire("job", owner, Millis(10000), Millis(20000)));
    timers_.Advance(Millis(10));
  }
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    ASSERT_TRUE(Release("job", holder.id).granted());
    ASSERT_TRUE(waiters[i]->granted()) << i;
    for (std::size_t j = i + 1; j < waiters.size(); ++j) EXPECT_FALSE(waiters[j]->answered());
    EXPECT_GT(waiters[i]->lease().token, holder.token);
    holder = waiters[i]->lease();
    EXPECT_EQ(Holder("job"), holder.owner);
  }
  EXPECT_EQ(holder.owner, "D");
  EXPECT_EQ(timers_.Pending(), 1u) << "waiter timers are cancelled when served";
}

TEST_F(LockdServiceTest, ExpiryHandsTheLockToWaitersInArrivalOrder) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", kTtl);
  auto b = Acquire("job", "B", Millis(500), Millis(5000));
  auto c = Acquire("job", "C", kTtl, Millis(5000));
  timers_.Advance(kTtl);
  ASSERT_TRUE(b->granted()) << b->error();
  EXPECT_GT(b->lease().token, a.token);
  EXPECT_EQ(b->lease().expires_at, clock_.Now() + Millis(500));
  EXPECT_FALSE(c->answered());
  timers_.Advance(Millis(499));
  EXPECT_FALSE(c->answered());
  timers_.Advance(Millis(1));
  ASSERT_TRUE(c->granted()) << c->error();
  EXPECT_GT(c->lease().token, b->lease().token);
  EXPECT_EQ(metrics_.expirations.Value(), 2);
}

TEST_F(LockdServiceTest, ShutdownAnswersEveryWaiterAndLaterAcquires) {
  StartService(Millis(0));
  MustGrant("job", "A", Millis(10000));
  auto b = Acquire("job", "B", kTtl, Millis(20000));
  auto c = Acquire("job", "C", kTtl, Millis(20000));
  service_->Shutdown();
  EXPECT_EQ(b->error(), "shutting_down");
  EXPECT_EQ(c->error(), "shutting_down");
  EXPECT_EQ(Acquire("free", "D", kTtl, Millis(0))->error(), "shutting_down");
  EXPECT_EQ(timers_.Pending(), 0u) << "no timer left to fire after shutdown";
}

TEST_F(LockdServiceTest, ShutdownDuringTheGraceAnswersItsWaiters) {
  StartService(kGrace);
  auto a = Acquire("job", "A", kTtl, Millis(20000));
  service_->Shutdown();
  EXPECT_EQ(a->error(), "shutting_down");
  timers_.Advance(Millis(30000));
  EXPECT_EQ(metrics_.grants.Value(), 0);
}

TEST_F(LockdServiceTest, LimitsOnLocksAndWaitersAreAnsweredAtOnce) {
  LockServiceOptions options;
  options.max_locks = 1;
  options.max_waiters = 1;
  StartService(Millis(0), options);
  MustGrant("a", "A", kTtl);
  EXPECT_EQ(Acquire("b", "B", kTtl, Millis(0))->error(), "too_many_locks");
  auto waiting = Acquire("a", "C", kTtl, Millis(5000));
  EXPECT_FALSE(waiting->answered());
  EXPECT_EQ(Acquire("a", "D", kTtl, Millis(5000))->error(), "too_many_waiters");
}

TEST_F(LockdServiceTest, ALockInItsLockDelayCountsAgainstMaxLocks) {
  LockServiceOptions options;
  options.max_locks = 1;
  StartService(Millis(0), options);
  MustGrant("a", "A", kTtl, Millis(500));
  timers_.Advance(kTtl);
  EXPECT_EQ(Holder("a"), "");
  EXPECT_EQ(Acquire("b", "B", kTtl, Millis(0))->error(), "too_many_locks");
  timers_.Advance(Millis(500));
  EXPECT_TRUE(Acquire("b", "B", kTtl, Millis(0))->granted());
}

// Failover = TTL + lock-delay: a waiter queued before the expiry is granted
// at expiry + lock_delay exactly, not a millisecond sooner.
TEST_F(LockdServiceTest, WaiterIsGrantedAtExpiryPlusLockDelay) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", kTtl, Millis(700));
  auto b = Acquire("job", "B", kTtl, Millis(5000));
  timers_.Advance(kTtl);
  EXPECT_EQ(Holder("job"), "");
  EXPECT_FALSE(b->answered()) << "no grant during the lock-delay";
  EXPECT_EQ(metrics_.lock_delays.Value(), 1);
  auto c = Acquire("job", "C", kTtl, Millis(0));
  ASSERT_EQ(c->error(), "held");
  EXPECT_EQ(c->detail("lock_delay_remaining_ms"), 700);
  EXPECT_NE(c->result->error().message.find("lock-delay"), std::string::npos)
      << c->result->error().message;
  Answer status;
  service_->Status("job", [&](Result<LockStatus> s) {
    if (!s.ok()) status.result = Result<Lease>(s.error());
  });
  EXPECT_EQ(status.detail("lock_delay_remaining_ms"), 700);
  timers_.Advance(Millis(699));
  EXPECT_FALSE(b->answered());
  timers_.Advance(Millis(1));
  ASSERT_TRUE(b->granted()) << b->error();
  EXPECT_GT(b->lease().token, a.token);
  EXPECT_EQ(b->lease().expires_at, a.expires_at + Millis(700) + kTtl);
}

TEST_F(LockdServiceTest, ReleaseStartsNoLockDelay) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", kTtl, Millis(700));
  auto b = Acquire("job", "B", kTtl, Millis(5000));
  ASSERT_TRUE(Release("job", a.id).granted());
  ASSERT_TRUE(b->granted()) << b->error();
  EXPECT_EQ(metrics_.lock_delays.Value(), 0);
}

TEST_F(LockdServiceTest, WaitEndingInsideTheLockDelayIsHeldWithTheRemainingDelay) {
  StartService(Millis(0));
  ASSERT_TRUE(Acquire("job", "A", kTtl, Millis(0), Millis(700))->granted());
  auto b = Acquire("job", "B", kTtl, Millis(1200));
  timers_.Advance(Millis(1200));
  ASSERT_EQ(b->error(), "held");
  EXPECT_EQ(b->detail("waited_ms"), 1200);
  EXPECT_EQ(b->detail("lock_delay_remaining_ms"), 500);
}

TEST_F(LockdServiceTest, BreakServesTheNextWaiterAtOnceAndRefusesTheOldHolder) {
  StartService(Millis(0));
  const Lease a = MustGrant("job", "A", Millis(10000), Millis(700));
  auto b = Acquire("job", "B", kTtl, Millis(5000));
  EXPECT_EQ(Break("free", "nothing to break").error(), "not_held");
  Answer broken = Break("job", "A is hung");
  ASSERT_TRUE(broken.granted()) << broken.error();
  EXPECT_EQ(broken.lease().token, a.token);
  ASSERT_TRUE(b->granted()) << "a break starts no lock-delay";
  EXPECT_GT(b->lease().token, a.token);
  EXPECT_EQ(metrics_.leases_broken.Value(), 1);
  EXPECT_EQ(metrics_.lock_delays.Value(), 0);
  EXPECT_EQ(KeepAlive(a.id).error(), "lease_broken");
  EXPECT_EQ(Holder("job"), "B");
}

}  // namespace
}  // namespace fence::lockd
