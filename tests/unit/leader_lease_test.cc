// The leader's own lease arithmetic on a simulated clock (no sleeps): when
// the lease runs out, when renewals are due, how long a keep-alive may take,
// and whether a write may still be sent.
#include "core/leader_lease.h"

#include <gtest/gtest.h>

#include <vector>

namespace fence {
namespace {

using M = Millis;

TEST(LeaderLeaseTest, RenewIntervalIsTheConfiguredOneOrAThirdOfTheTtl) {
  struct Row {
    M ttl, configured, expected;
  };
  const std::vector<Row> rows = {
      {M(3000), M(0), M(1000)},     // unset: a third
      {M(3000), M(500), M(500)},    // set and shorter than the TTL
      {M(3000), M(2999), M(2999)},  // just shorter
      {M(3000), M(3000), M(1000)},  // not shorter: a third instead
      {M(3000), M(9000), M(1000)},  // a negotiated TTL below the configured interval
      {M(3000), M(-5), M(1000)},    // negative is unset
      {M(2), M(0), M(1)},           // never zero
      {M(1), M(0), M(1)},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(LeaderLease::RenewInterval(r.ttl, r.configured), r.expected)
        << "ttl " << r.ttl.count() << " configured " << r.configured.count();
  }
}

// Each row: the lease is granted by a request sent at `sent`, renewals sent
// at the listed times are confirmed, then the clock reads `now`.
struct Step {
  const char* what;
  M sent;
  std::vector<M> renewals_sent;
  M now;
  M time_left;
  bool may_write;
  M next_renewal;
  M keepalive_timeout;
};

TEST(LeaderLeaseTest, CountsFromTheLastConfirmedSendNotFromTheAnswer) {
  constexpr M kTtl(900);
  constexpr M kInterval(300);
  const std::vector<Step> rows = {
      {"just granted", M(1000), {}, M(1000), M(900), true, M(1300), M(900)},
      {"the acquire's answer took 200 ms", M(1000), {}, M(1200), M(700), true, M(1300), M(700)},
      {"one renewal", M(1000), {M(1300)}, M(1350), M(850), true, M(1600), M(850)},
      {"two renewals, the older confirmed last", M(1000), {M(1600), M(1300)}, M(1700),
       M(800), true, M(1900), M(800)},
      {"one ms left", M(1000), {}, M(1899), M(1), true, M(1300), M(1)},
      {"ran out exactly at sent + TTL", M(1000), {}, M(1900), M(0), false, M(1300), M(0)},
      {"long past (a pause)", M(1000), {}, M(5000), M(-3100), false, M(1300), M(0)},
      {"renewed, then paused past it", M(1000), {M(1300)}, M(2200), M(0), false, M(1600),
       M(0)},
  };
  for (const Step& r : rows) {
    FakeClock clock;
    clock.Advance(r.sent - clock.Now());
    LeaderLease lease(clock, kTtl, kInterval, r.sent);
    for (M renewal : r.renewals_sent) lease.Renewed(renewal);
    clock.Advance(r.now - clock.Now());
    EXPECT_EQ(lease.TimeLeft(), r.time_left) << r.what;
    EXPECT_EQ(lease.Expired(), !r.may_write) << r.what;
    EXPECT_EQ(lease.MayWrite(), r.may_write) << r.what;
    EXPECT_EQ(lease.NextRenewalDue(), r.next_renewal) << r.what;
    EXPECT_EQ(lease.KeepAliveTimeout(), r.keepalive_timeout) << r.what;
    EXPECT_EQ(lease.ExpiresAt(), r.now + r.time_left) << r.what;
  }
}

TEST(LeaderLeaseTest, KeepAliveTimeoutIsAlwaysShorterThanTheTtlOnceTimePasses) {
  FakeClock clock;
  LeaderLease lease(clock, M(3000), M(0), clock.Now());
  // The renewal is due a third of the way in; by then at most two thirds of
  // the TTL are left, so a keep-alive can never wait out the whole TTL.
  clock.Advance(lease.NextRenewalDue() - clock.Now());
  EXPECT_EQ(lease.KeepAliveTimeout(), M(2000));
  clock.Advance(M(1500));  // a slow keep-alive, failed
  EXPECT_EQ(lease.KeepAliveTimeout(), M(500));
  EXPECT_EQ(lease.RetryDue(), clock.Now() + M(100));
  clock.Advance(M(500));
  EXPECT_EQ(lease.KeepAliveTimeout(), M(0));
  EXPECT_FALSE(lease.MayWrite());
}

TEST(LeaderLeaseTest, RenewalScheduleFollowsConfirmedRenewals) {
  FakeClock clock;
  const M start = clock.Now();
  LeaderLease lease(clock, M(1000), M(0), start);
  ASSERT_EQ(lease.interval(), M(333));
  // Every renewal is confirmed 20 ms after it was sent: the next one is due
  // an interval after the send, not after the answer.
  M due = lease.NextRenewalDue();
  for (int i = 1; i <= 5; ++i) {
    clock.Advance(due - clock.Now());
    const M sent = clock.Now();
    clock.Advance(M(20));
    lease.Renewed(sent);
    EXPECT_EQ(lease.ExpiresAt(), sent + M(1000)) << "renewal " << i;
    due = lease.NextRenewalDue();
    EXPECT_EQ(due, start + M(333) * (i + 1)) << "renewal " << i;
    EXPECT_TRUE(lease.MayWrite());
  }
}

TEST(LeaderLeaseTest, RetryAfterAFailureComesSoonerThanAnInterval) {
  struct Row {
    M interval, expected_delay;
  };
  for (const Row& r : std::vector<Row>{{M(50), M(50)}, {M(100), M(100)}, {M(1000), M(100)}}) {
    FakeClock clock;
    LeaderLease lease(clock, M(5000), r.interval, clock.Now());
    clock.Advance(M(7));
    EXPECT_EQ(lease.RetryDue(), clock.Now() + r.expected_delay) << r.interval.count();
  }
}

TEST(LeaderLeaseTest, RenewalsDueByCoversTheRenewalsAndOneTtl) {
  FakeClock clock;
  LeaderLease lease(clock, M(900), M(300), clock.Now());
  clock.Advance(M(50));
  EXPECT_EQ(lease.RenewalsDueBy(0), clock.Now() + M(300) + M(900));
  EXPECT_EQ(lease.RenewalsDueBy(2), clock.Now() + M(900) + M(900));
}

}  // namespace
}  // namespace fence
