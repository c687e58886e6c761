// The pure parts of the partition experiment: iptables rules of a cut, the
// namespace naming that lets a later run clean up after a crashed one, and
// the naive primary/standby fallback (over fake backends).
#include <gtest/gtest.h>

#include <algorithm>

#include "tools/partition/partition_backend.h"
#include "tools/partition/partition_net.h"

namespace fence::tools::partition {
namespace {

const std::vector<Role> kRoles = {{"m1", 61001, "127.0.0.1"},
                                  {"m3", 61003, "127.0.0.3"},
                                  {"A", 61011, ""},
                                  {"store", 61010, "127.0.0.10"}};

TEST(PartitionRulesTest, MarksEveryRolesNewConnections) {
  const std::string rules = MarkRules(kRoles);
  EXPECT_EQ(rules.rfind("*mangle\n", 0), 0u);
  EXPECT_NE(rules.find("--ctstate NEW -m owner --gid-owner 61011 "), std::string::npos);
  EXPECT_NE(rules.find("-j CONNMARK --set-mark 61011\n"), std::string::npos);
  EXPECT_NE(rules.find("COMMIT\n"), std::string::npos);
}

TEST(PartitionRulesTest, DropsConnectionsAcrossTheCutBothWays) {
  auto rules = CutRules(kRoles, {"t", {{"m3", "A"}, {"m1"}}});
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  // m3 and A may not reach m1; m1 may not reach m3.
  EXPECT_NE(rules->find("--mark 61003 -m conntrack --ctorigdst 127.0.0.1 "), std::string::npos);
  EXPECT_NE(rules->find("--mark 61011 -m conntrack --ctorigdst 127.0.0.1 "), std::string::npos);
  EXPECT_NE(rules->find("--mark 61001 -m conntrack --ctorigdst 127.0.0.3 "), std::string::npos);
  // Within a side, to a pure client, and to a role on no side: nothing.
  EXPECT_EQ(rules->find("--mark 61011 -m conntrack --ctorigdst 127.0.0.3 "), std::string::npos);
  EXPECT_EQ(rules->find("127.0.0.10"), std::string::npos);
  EXPECT_EQ(std::count(rules->begin(), rules->end(), '\n'), 5);  // *filter, 3 rules, COMMIT
}

TEST(PartitionRulesTest, RejectsUnknownOrDoubledRoles) {
  EXPECT_EQ(CutRules(kRoles, {"t", {{"m9"}, {"m1"}}}).error().code, "bad_cut");
  EXPECT_EQ(CutRules(kRoles, {"t", {{"m1"}, {"m1"}}}).error().code, "bad_cut");
}

TEST(PartitionNamespaceTest, NameCarriesTheOwnerPid) {
  EXPECT_EQ(NamespaceName(4242), "fence-part-4242");
  EXPECT_EQ(NamespaceOwnerPid("fence-part-4242"), 4242);
  EXPECT_EQ(NamespaceOwnerPid("fence-part-"), std::nullopt);
  EXPECT_EQ(NamespaceOwnerPid("fence-part-12x"), std::nullopt);
  EXPECT_EQ(NamespaceOwnerPid("fence-part-0123"), std::nullopt);
  EXPECT_EQ(NamespaceOwnerPid("other-4242"), std::nullopt);
}

class FakeBackend final : public client::LockBackend {
 public:
  explicit FakeBackend(Result<client::LockGrant> answer) : answer_(std::move(answer)) {}
  std::string_view kind() const override { return "lockd"; }
  Result<client::LockGrant> Acquire(const std::string&, const std::string&, Millis, Millis) override {
    ++acquires;
    return answer_;
  }
  Status KeepAlive(Millis) override {
    ++keepalives;
    return OkStatus();
  }
  Status Release() override {
    ++releases;
    return OkStatus();
  }
  int acquires = 0, keepalives = 0, releases = 0;

 private:
  Result<client::LockGrant> answer_;
};

client::LockGrant LeaseWith(std::uint64_t token) { return client::LockGrant{"leader", "B", Token(token), "l1", Millis(1000), {}}; }

TEST(FallbackLockBackendTest, FallsBackOnlyWhenThePrimaryIsUnavailable) {
  auto primary = std::make_unique<FakeBackend>(MakeError("unavailable", "timeout"));
  auto standby = std::make_unique<FakeBackend>(LeaseWith(1));
  FakeBackend* p = primary.get();
  FakeBackend* s = standby.get();
  FallbackLockBackend backend(std::move(primary), "primary", std::move(standby), "standby");
  auto lease = backend.Acquire("leader", "B", Millis(1000), Millis(0));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->token.value(), 1u);
  EXPECT_EQ(backend.granted_by(), "standby");
  ASSERT_TRUE(backend.KeepAlive(Millis(1000)).ok());
  EXPECT_EQ(s->keepalives, 1);  // renewals go where the lease came from
  EXPECT_EQ(p->keepalives, 0);
  ASSERT_TRUE(backend.Release().ok());
  EXPECT_EQ(s->releases, 1);
  EXPECT_EQ(backend.granted_by(), "");
}

TEST(FallbackLockBackendTest, AHeldAnswerIsNotAReasonToFallBack) {
  auto primary = std::make_unique<FakeBackend>(MakeError("held", "held by A"));
  auto standby = std::make_unique<FakeBackend>(LeaseWith(1));
  FakeBackend* s = standby.get();
  FallbackLockBackend backend(std::move(primary), "primary", std::move(standby), "standby");
  auto lease = backend.Acquire("leader", "B", Millis(1000), Millis(0));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().code, "held");
  EXPECT_EQ(s->acquires, 0);
  EXPECT_EQ(backend.KeepAlive(Millis(1000)).error().code, "lease_lost");
}

}  // namespace
}  // namespace fence::tools::partition
