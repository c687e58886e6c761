#include "core/lease_table.h"

#include <gtest/gtest.h>

namespace fence {
namespace {

constexpr Millis kTtl{1000};

class LeaseTableTest : public ::testing::Test {
 protected:
  Lease MustGrant(std::string_view name, std::string owner, std::uint64_t id,
                  std::uint64_t token, Millis ttl = kTtl) {
    auto lease = table_.Grant(name, std::move(owner), ttl, LeaseId(id), Token(token));
    EXPECT_TRUE(lease.ok()) << (lease.ok() ? "" : lease.error().message);
    return *lease;
  }

  FakeClock clock_;
  LeaseTable table_{clock_};
};

TEST_F(LeaseTableTest, GrantsAFreeLockAndRecordsTheHolder) {
  const Lease lease = MustGrant("job", "A", 7, 1);
  EXPECT_EQ(lease.name, "job");
  EXPECT_EQ(lease.owner, "A");
  EXPECT_EQ(lease.token, Token(1));
  EXPECT_EQ(lease.expires_at, clock_.Now() + kTtl);
  ASSERT_NE(table_.Holder("job"), nullptr);
  EXPECT_EQ(table_.Holder("job")->id, LeaseId(7));
  EXPECT_EQ(table_.HeldCount(), 1u);
  EXPECT_EQ(table_.NextExpiry(), clock_.Now() + kTtl);
}

// lockd's clock reads whole milliseconds, floored: a grant or renewal read
// as t happened at up to t + 1 ms. Its holder counts its lease from when it
// sent the request, which can be inside that millisecond, so lockd must not
// end the lease before t + ttl + 1 ms (the nemesis checker found grants up
// to 187 us inside the previous holder's lease before this).
TEST(LeaseTableResolutionTest, AFlooredMillisecondClockEndsLeasesNoEarlierThanTheTtlAfterTheGrant) {
  FakeClock clock(Millis(1));
  LeaseTable table(clock);
  auto granted = table.Grant("job", "A", kTtl, LeaseId(1), Token(1));
  ASSERT_TRUE(granted.ok());
  clock.Advance(kTtl);
  EXPECT_NE(table.Holder("job"), nullptr) << "the lease ended less than ttl after its grant";
  EXPECT_FALSE(table.Grant("job", "B", kTtl, LeaseId(2), Token(2)).ok());
  ASSERT_TRUE(table.KeepAlive(LeaseId(1)).ok());
  clock.Advance(kTtl);
  EXPECT_FALSE(table.Grant("job", "B", kTtl, LeaseId(2), Token(2)).ok())
      << "a renewal read as t must also last until t + ttl + 1 ms";
  clock.Advance(Millis(1));
  table.ExpireDue();
  EXPECT_TRUE(table.Grant("job", "B", kTtl, LeaseId(2), Token(2)).ok());
}

TEST_F(LeaseTableTest, RefusesAHeldLock) {
  MustGrant("job", "A", 7, 1);
  auto second = table_.Grant("job", "B", kTtl, LeaseId(8), Token(2));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, "held");
  EXPECT_EQ(table_.Holder("job")->owner, "A");
}

TEST_F(LeaseTableTest, LocksAreIndependent) {
  MustGrant("a", "A", 1, 1);
  MustGrant("b", "B", 2, 2);
  EXPECT_EQ(table_.HeldCount(), 2u);
}

TEST_F(LeaseTableTest, RefusesADuplicateLeaseId) {
  MustGrant("a", "A", 1, 1);
  auto dup = table_.Grant("b", "B", kTtl, LeaseId(1), Token(2));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, "duplicate_lease");
  EXPECT_TRUE(table_.IsFree("b"));
}

TEST_F(LeaseTableTest, ExpiresExactlyAtTheTtl) {
  MustGrant("job", "A", 7, 1);
  clock_.Advance(kTtl - Millis(1));
  EXPECT_TRUE(table_.ExpireDue().empty());
  ASSERT_NE(table_.Holder("job"), nullptr);
  EXPECT_EQ(table_.ExpiresIn(*table_.Holder("job")), Millis(1));
  clock_.Advance(Millis(1));
  const auto expired = table_.ExpireDue();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, LeaseId(7));
  EXPECT_EQ(table_.Holder("job"), nullptr);
  EXPECT_TRUE(table_.IsFree("job"));
  EXPECT_EQ(table_.HeldCount(), 0u);
  EXPECT_FALSE(table_.NextExpiry().has_value());
}

TEST_F(LeaseTableTest, KeepAliveAtTheDeadlineIsTooLate) {
  MustGrant("job", "A", 7, 1);
  clock_.Advance(kTtl);
  auto renewed = table_.KeepAlive(LeaseId(7));
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, "unknown_lease");
  EXPECT_EQ(table_.ExpireDue().size(), 1u);
}

TEST_F(LeaseTableTest, KeepAliveExtendsFromNow) {
  MustGrant("job", "A", 7, 1);
  clock_.Advance(Millis(900));
  auto renewed = table_.KeepAlive(LeaseId(7));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->expires_at, clock_.Now() + kTtl);
  EXPECT_EQ(table_.NextExpiry(), clock_.Now() + kTtl);
  clock_.Advance(Millis(999));  // 1899 ms after the grant, past the old TTL
  EXPECT_TRUE(table_.ExpireDue().empty());
  EXPECT_EQ(table_.Holder("job")->owner, "A");
  clock_.Advance(Millis(1));
  EXPECT_EQ(table_.ExpireDue().size(), 1u);
}

TEST_F(LeaseTableTest, KeepAliveOfUnknownLeaseFails) {
  auto renewed = table_.KeepAlive(LeaseId(99));
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, "unknown_lease");
}

TEST_F(LeaseTableTest, ReleaseFreesTheLock) {
  MustGrant("job", "A", 7, 1);
  auto released = table_.Release("job", LeaseId(7));
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->token, Token(1));
  EXPECT_TRUE(table_.IsFree("job"));
  EXPECT_FALSE(table_.NextExpiry().has_value());
  clock_.Advance(kTtl * 2);
  EXPECT_TRUE(table_.ExpireDue().empty()) << "a released lease must not expire later";
  auto again = table_.Release("job", LeaseId(7));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "unknown_lease");
}

TEST_F(LeaseTableTest, ReleaseByAnotherLeaseIsNotHolder) {
  MustGrant("job", "A", 7, 1);
  MustGrant("other", "B", 8, 2);
  auto stranger = table_.Release("job", LeaseId(99));
  ASSERT_FALSE(stranger.ok());
  EXPECT_EQ(stranger.error().code, "not_holder");
  EXPECT_EQ(stranger.error().details["holder"], "A");
  auto wrong_lock = table_.Release("job", LeaseId(8));
  ASSERT_FALSE(wrong_lock.ok());
  EXPECT_EQ(wrong_lock.error().code, "not_holder");
  auto wrong_free_lock = table_.Release("free", LeaseId(8));
  ASSERT_FALSE(wrong_free_lock.ok());
  EXPECT_EQ(wrong_free_lock.error().code, "not_holder");
  EXPECT_EQ(table_.Holder("job")->owner, "A");
  EXPECT_EQ(table_.Holder("other")->owner, "B");
}

TEST_F(LeaseTableTest, ReleaseOfAnExpiredLeaseIsRefused) {
  MustGrant("job", "A", 7, 1);
  clock_.Advance(kTtl);
  auto late = table_.Release("job", LeaseId(7));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, "unknown_lease");
}

TEST_F(LeaseTableTest, OldHolderCannotReleaseTheNextHoldersLock) {
  MustGrant("job", "A", 7, 1);
  clock_.Advance(kTtl);
  table_.ExpireDue();
  MustGrant("job", "B", 8, 2);
  auto stale = table_.Release("job", LeaseId(7));
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, "not_holder");
  EXPECT_EQ(table_.Holder("job")->owner, "B");
}

TEST_F(LeaseTableTest, WaitersAreServedInOrder) {
  MustGrant("job", "A", 1, 1);
  table_.Enqueue("job", Waiter{10, "B", kTtl});
  table_.Enqueue("job", Waiter{11, "C", kTtl});
  table_.Enqueue("job", Waiter{12, "D", kTtl});
  EXPECT_EQ(table_.WaiterCount("job"), 3u);
  EXPECT_FALSE(table_.HasReadyWaiter("job"));
  EXPECT_FALSE(table_.GrantToHead("job", LeaseId(2), Token(2)).ok());

  std::vector<std::string> order;
  std::uint64_t last_id = 1;
  for (std::uint64_t token = 2; token <= 4; ++token) {
    ASSERT_TRUE(table_.Release("job", LeaseId(last_id)).ok());
    ASSERT_TRUE(table_.HasReadyWaiter("job"));
    EXPECT_FALSE(table_.IsFree("job")) << "a newcomer must not jump the queue";
    auto handoff = table_.GrantToHead("job", LeaseId(token), Token(token));
    ASSERT_TRUE(handoff.ok());
    EXPECT_EQ(handoff->lease.owner, handoff->waiter.owner);
    EXPECT_EQ(table_.Holder("job")->token, Token(token));
    order.push_back(handoff->waiter.owner);
    last_id = token;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"B", "C", "D"}));
  EXPECT_EQ(table_.TotalWaiters(), 0u);
}

TEST_F(LeaseTableTest, ExpiredLeaseFreesTheLockForTheNextWaiterAtOnce) {
  MustGrant("job", "A", 1, 1);
  table_.Enqueue("job", Waiter{10, "B", Millis(500)});
  clock_.Advance(kTtl);
  const auto expired = table_.ExpireDue();
  ASSERT_EQ(expired.size(), 1u);
  ASSERT_TRUE(table_.HasReadyWaiter("job"));
  auto handoff = table_.GrantToHead("job", LeaseId(2), Token(2));
  ASSERT_TRUE(handoff.ok());
  EXPECT_EQ(handoff->waiter.id, 10u);
  EXPECT_EQ(handoff->lease.expires_at, clock_.Now() + Millis(500))
      << "the waiter's own ttl counts from the handoff";
}

TEST_F(LeaseTableTest, RemovedWaiterIsSkipped) {
  MustGrant("job", "A", 1, 1);
  table_.Enqueue("job", Waiter{10, "B", kTtl});
  table_.Enqueue("job", Waiter{11, "C", kTtl});
  EXPECT_TRUE(table_.RemoveWaiter("job", 10));
  EXPECT_FALSE(table_.RemoveWaiter("job", 10));
  ASSERT_TRUE(table_.Release("job", LeaseId(1)).ok());
  auto handoff = table_.GrantToHead("job", LeaseId(2), Token(2));
  ASSERT_TRUE(handoff.ok());
  EXPECT_EQ(handoff->waiter.owner, "C");
}

TEST_F(LeaseTableTest, ExpiresInDeadlineOrder) {
  MustGrant("late", "A", 1, 1, Millis(300));
  MustGrant("early", "B", 2, 2, Millis(100));
  MustGrant("middle", "C", 3, 3, Millis(200));
  EXPECT_EQ(table_.NextExpiry(), clock_.Now() + Millis(100));
  clock_.Advance(Millis(300));
  const auto expired = table_.ExpireDue();
  ASSERT_EQ(expired.size(), 3u);
  EXPECT_EQ(expired[0].name, "early");
  EXPECT_EQ(expired[1].name, "middle");
  EXPECT_EQ(expired[2].name, "late");
}

TEST_F(LeaseTableTest, LocksWithWaitersListsOnlyQueuedLocks) {
  table_.Enqueue("b", Waiter{1, "X", kTtl});
  MustGrant("a", "A", 1, 1);
  EXPECT_EQ(table_.LocksWithWaiters(), std::vector<std::string>{"b"});
  EXPECT_TRUE(table_.HasReadyWaiter("b"));
  EXPECT_FALSE(table_.IsFree("b"));
}

// How a lease ends, for the lock-delay table below.
enum class End { kExpiry, kRelease, kBreak };

struct LockDelayRow {
  const char* what;
  End end;
  Millis lock_delay;
  Millis after_end;  // time from the end to the look at the lock
  bool free;
  Millis remaining;
};

// The rule: only an expiry starts a lock-delay, measured from the expiry
// instant; a release or a break frees the lock at once whatever the lease
// asked for.
TEST_F(LeaseTableTest, LockDelayFollowsOnlyAnExpiry) {
  const LockDelayRow rows[] = {
      {"expiry, no delay", End::kExpiry, Millis(0), Millis(0), true, Millis(0)},
      {"expiry, at its start", End::kExpiry, Millis(500), Millis(0), false, Millis(500)},
      {"expiry, one ms before its end", End::kExpiry, Millis(500), Millis(499), false,
       Millis(1)},
      {"expiry, at its end", End::kExpiry, Millis(500), Millis(500), true, Millis(0)},
      {"release", End::kRelease, Millis(500), Millis(0), true, Millis(0)},
      {"break", End::kBreak, Millis(500), Millis(0), true, Millis(0)},
  };
  std::uint64_t next = 1;
  for (const LockDelayRow& row : rows) {
    SCOPED_TRACE(row.what);
    const std::string name = std::string("job-") + std::to_string(next);
    const Lease lease = *table_.Grant(name, "A", kTtl, LeaseId(next), Token(next),
                                      row.lock_delay);
    ++next;
    EXPECT_EQ(lease.lock_delay, row.lock_delay);
    switch (row.end) {
      case End::kExpiry:
        clock_.Advance(kTtl);
        ASSERT_EQ(table_.ExpireDue().size(), 1u);
        break;
      case End::kRelease:
        ASSERT_TRUE(table_.Release(name, lease.id).ok());
        break;
      case End::kBreak:
        ASSERT_TRUE(table_.Break(name).ok());
        break;
    }
    clock_.Advance(row.after_end);
    table_.EndDueDelays();
    EXPECT_EQ(table_.IsFree(name), row.free);
    EXPECT_EQ(table_.LockDelayRemaining(name), row.remaining);
    auto grant = table_.Grant(name, "B", kTtl, LeaseId(100 + next), Token(100 + next));
    EXPECT_EQ(grant.ok(), row.free);
    if (grant.ok()) {
      ASSERT_TRUE(table_.Release(name, grant->id).ok());  // for the next row
    } else {
      EXPECT_EQ(grant.error().code, "held");
      EXPECT_EQ(grant.error().details.value("lock_delay_remaining_ms", -1),
                row.remaining.count());
    }
  }
}

TEST_F(LeaseTableTest, LockDelayCountsFromTheExpiryInstantNotFromWhenItIsNoticed) {
  MustGrant("job", "A", 1, 1, kTtl);
  ASSERT_TRUE(table_.KeepAlive(LeaseId(1)).ok());
  auto lease = table_.Grant("other", "B", kTtl, LeaseId(2), Token(2), Millis(300));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(table_.NextDeadline(), clock_.Now() + kTtl);
  clock_.Advance(kTtl + Millis(100));  // the expiry is noticed 100 ms late
  ASSERT_EQ(table_.ExpireDue().size(), 2u);
  EXPECT_EQ(table_.LockDelayRemaining("other"), Millis(200));
  EXPECT_EQ(table_.NextDeadline(), lease->expires_at + Millis(300));
  EXPECT_TRUE(table_.EndDueDelays().empty());
  clock_.Advance(Millis(200));
  const auto ended = table_.EndDueDelays();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].expired.token, Token(2));
  EXPECT_EQ(ended[0].until, lease->expires_at + Millis(300));
  EXPECT_FALSE(table_.NextDeadline().has_value());
  EXPECT_TRUE(table_.IsFree("other"));
}

TEST_F(LeaseTableTest, DelayNoticedAfterItsEndStartsAndEndsAtOnce) {
  ASSERT_TRUE(table_.Grant("job", "A", kTtl, LeaseId(1), Token(1), Millis(50)).ok());
  clock_.Advance(kTtl + Millis(80));
  ASSERT_EQ(table_.ExpireDue().size(), 1u);
  EXPECT_EQ(table_.LockDelayRemaining("job"), Millis(0));
  EXPECT_TRUE(table_.IsFree("job"));
  EXPECT_EQ(table_.EndDueDelays().size(), 1u);
}

TEST_F(LeaseTableTest, WaitersWaitThroughTheLockDelay) {
  ASSERT_TRUE(table_.Grant("job", "A", kTtl, LeaseId(1), Token(1), Millis(400)).ok());
  table_.Enqueue("job", Waiter{10, "B", kTtl, Millis(0)});
  clock_.Advance(kTtl);
  ASSERT_EQ(table_.ExpireDue().size(), 1u);
  EXPECT_EQ(table_.Holder("job"), nullptr);
  EXPECT_FALSE(table_.HasReadyWaiter("job"));
  EXPECT_FALSE(table_.GrantToHead("job", LeaseId(2), Token(2)).ok());
  clock_.Advance(Millis(400));
  EXPECT_EQ(table_.EndDueDelays().size(), 1u);
  ASSERT_TRUE(table_.HasReadyWaiter("job"));
  auto handoff = table_.GrantToHead("job", LeaseId(2), Token(2));
  ASSERT_TRUE(handoff.ok());
  EXPECT_EQ(handoff->lease.owner, "B");
}

TEST_F(LeaseTableTest, WaiterCarriesItsLockDelayIntoItsLease) {
  MustGrant("job", "A", 1, 1);
  table_.Enqueue("job", Waiter{10, "B", kTtl, Millis(250)});
  ASSERT_TRUE(table_.Release("job", LeaseId(1)).ok());
  auto handoff = table_.GrantToHead("job", LeaseId(2), Token(2));
  ASSERT_TRUE(handoff.ok());
  EXPECT_EQ(handoff->lease.lock_delay, Millis(250));
  clock_.Advance(kTtl);
  ASSERT_EQ(table_.ExpireDue().size(), 1u);
  EXPECT_EQ(table_.LockDelayRemaining("job"), Millis(250));
}

TEST_F(LeaseTableTest, BreakEndsTheLeaseAndItsHolderLearnsWhy) {
  ASSERT_TRUE(table_.Grant("job", "A", kTtl, LeaseId(7), Token(1), Millis(500)).ok());
  table_.Enqueue("job", Waiter{10, "B", kTtl, Millis(0)});
  auto broken = table_.Break("job");
  ASSERT_TRUE(broken.ok());
  EXPECT_EQ(broken->owner, "A");
  EXPECT_EQ(broken->token, Token(1));
  EXPECT_EQ(broken->id, LeaseId(7));
  EXPECT_TRUE(table_.HasReadyWaiter("job")) << "no lock-delay after a break";
  EXPECT_FALSE(table_.NextDeadline().has_value());
  auto renewed = table_.KeepAlive(LeaseId(7));
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, "lease_broken");
  auto released = table_.Release("job", LeaseId(7));
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.error().code, "lease_broken");
  ASSERT_TRUE(table_.GrantToHead("job", LeaseId(8), Token(2)).ok());
  released = table_.Release("job", LeaseId(7));
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.error().code, "not_holder") << "the lock has a new holder";
}

TEST_F(LeaseTableTest, BreakOfAFreeOrDelayedLockIsNotHeld) {
  for (const char* name : {"never", "delayed"}) {
    SCOPED_TRACE(name);
    if (std::string_view(name) == "delayed") {
      ASSERT_TRUE(table_.Grant(name, "A", kTtl, LeaseId(1), Token(1), Millis(500)).ok());
      clock_.Advance(kTtl);
      ASSERT_EQ(table_.ExpireDue().size(), 1u);
    }
    auto broken = table_.Break(name);
    ASSERT_FALSE(broken.ok());
    EXPECT_EQ(broken.error().code, "not_held");
  }
  EXPECT_EQ(table_.LockDelayRemaining("delayed"), Millis(500))
      << "a refused break leaves the delay alone";
}

TEST_F(LeaseTableTest, BrokenLeasesAreRememberedBoundedly) {
  const std::uint64_t n = LeaseTable::kBrokenRemembered + 1;
  for (std::uint64_t i = 1; i <= n; ++i) {
    MustGrant("job", "A", i, i);
    ASSERT_TRUE(table_.Break("job").ok());
  }
  EXPECT_EQ(table_.KeepAlive(LeaseId(1)).error().code, "unknown_lease")
      << "the oldest break is forgotten, and its lease is still refused";
  EXPECT_EQ(table_.KeepAlive(LeaseId(2)).error().code, "lease_broken");
  EXPECT_EQ(table_.KeepAlive(LeaseId(n)).error().code, "lease_broken");
}

TEST(LeaseIdTest, RoundTripsAsSixteenHexDigits) {
  const LeaseId id(0x00ab'cdef'0123'4567ull);
  EXPECT_EQ(id.ToString(), "00abcdef01234567");
  auto parsed = ParseLeaseId("00ABCDEF01234567");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, id);
}

TEST(LeaseIdTest, RejectsMalformedIds) {
  for (std::string_view bad :
       {"", "abc", "00abcdef0123456", "00abcdef012345678", "00abcdef0123456g",
        "0000000000000000", "-0abcdef01234567", " 0abcdef01234567"}) {
    auto parsed = ParseLeaseId(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code, "bad_lease_id");
  }
}

}  // namespace
}  // namespace fence
