// LaunchLockService starts each real lock service on free loopback ports,
// answers only once the service serves, and stops it with the LockService.
#include "tools/services/lock_services.h"

#include <gtest/gtest.h>

#include <optional>

#include "client/lock_backend.h"
#include "common/http_client.h"
#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using std::chrono::milliseconds;

class LockServiceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LockServiceTest, ServesAGrantAndStopsWithTheObject) {
  TempDir dir("fence-lock-service");
  std::vector<std::string> endpoints;
  {
    auto service = tools::LaunchLockService(GetParam(), {dir.path(), "", milliseconds(5000), ""});
    ASSERT_TRUE(service.ok()) << service.error().message;
    EXPECT_EQ(service->kind, GetParam());
    ASSERT_EQ(service->endpoints.size(), 1u);
    ASSERT_FALSE(service->processes.empty());
    endpoints = service->endpoints;
    auto backend = client::MakeLockBackend(GetParam(), endpoints);
    ASSERT_TRUE(backend.ok()) << backend.error().message;
    auto lease = (*backend)->Acquire("probe", "A", milliseconds(2000), milliseconds(0));
    ASSERT_TRUE(lease.ok()) << lease.error().message;
    EXPECT_GT(lease->token.value(), 0u);
    EXPECT_TRUE((*backend)->Release().ok());
  }
  // The service went with the object: nothing answers on its port now.
  auto backend = client::MakeLockBackend(GetParam(), endpoints);
  ASSERT_TRUE(backend.ok());
  auto lease = (*backend)->Acquire("probe", "A", milliseconds(2000), milliseconds(0));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().code, "unavailable") << lease.error().message;
}

INSTANTIATE_TEST_SUITE_P(EveryKind, LockServiceTest,
                         ::testing::Values("lockd", "etcd", "zookeeper"));

TEST(LockServiceConfigTest, RefusesUnknownKindAndMissingDir) {
  auto unknown = tools::LaunchLockService("consul", {"/tmp", "", milliseconds(1000), ""});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "bad_request");
  auto no_dir = tools::LaunchLockService("etcd", {"", "", milliseconds(1000), ""});
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.error().code, "bad_request");
}

}  // namespace
}  // namespace fence::testing
