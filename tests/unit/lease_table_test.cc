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
