// The ZooKeeper backend against a real ZooKeeper started on a free loopback
// port: the contract of backend_contract.h, and what is particular to
// ZooKeeper.
#include <gtest/gtest.h>

#include "client/zookeeper_backend.h"
#include "tests/integration/backend_contract.h"

namespace fence::testing::backends {
namespace {

struct ZooKeeper {
  static constexpr const char* kName = "zookeeper";
};
INSTANTIATE_TYPED_TEST_SUITE_P(ZooKeeper, BackendContractTest, ZooKeeper);

using ZooKeeperBackendTest = LockServiceSuite<ZooKeeper>;

TEST_F(ZooKeeperBackendTest, SessionTimeoutIsTheNegotiatedTtl) {
  auto backend = MakeBackend("zookeeper", endpoints());
  ASSERT_TRUE(backend);
  // tickTime=200 in the generated zoo.cfg: 400 ms is the server's minimum.
  auto lease = backend->Acquire("ttl", "A", milliseconds(100), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(lease->ttl, milliseconds(400));
  EXPECT_TRUE(backend->Release().ok());
  auto longer = backend->Acquire("ttl", "A", milliseconds(1500), milliseconds(0));
  ASSERT_TRUE(longer.ok()) << longer.error().message;
  EXPECT_EQ(longer->ttl, milliseconds(1500));
  EXPECT_GT(longer->token, lease->token);
  EXPECT_TRUE(backend->Release().ok());
}

TEST_F(ZooKeeperBackendTest, RefusedWaiterLeavesTheQueue) {
  auto a = MakeBackend("zookeeper", endpoints());
  auto b = MakeBackend("zookeeper", endpoints());
  ASSERT_TRUE(a && b);
  auto first = a->Acquire("queue", "A", milliseconds(3000), milliseconds(0));
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto refused = b->Acquire("queue", "B", milliseconds(3000), milliseconds(200));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "held");
  // The refused waiter left the queue: after A releases, the lock is free
  // for B at once rather than stuck behind B's old znode.
  ASSERT_TRUE(a->Release().ok());
  auto second = b->Acquire("queue", "B", milliseconds(3000), milliseconds(0));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_GT(second->token, first->token);
  EXPECT_TRUE(b->Release().ok());
}

TEST_F(ZooKeeperBackendTest, RejectsLockNamesThatAreNotZnodeNames) {
  auto backend = MakeBackend("zookeeper", endpoints());
  ASSERT_TRUE(backend);
  for (const std::string& bad : std::vector<std::string>{"", "a/b", "..", std::string("a\x01", 2)}) {
    auto lease = backend->Acquire(bad, "A", milliseconds(1000), milliseconds(0));
    ASSERT_FALSE(lease.ok()) << bad;
    EXPECT_EQ(lease.error().code, "bad_request");
  }
}

}  // namespace
}  // namespace fence::testing::backends
