// The etcd backend against a real etcd started on free loopback ports.
#include <gtest/gtest.h>

#include "client/etcd_backend.h"
#include "tests/integration/backend_contract.h"

namespace fence::testing::backends {
namespace {

class EtcdBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("fence-etcd");
    auto service = tools::LaunchLockService("etcd", {dir_->path(), "", milliseconds(60000)});
    ASSERT_TRUE(service.ok()) << service.error().message;
    service_ = new tools::LaunchedLockService(std::move(*service));
  }
  static void TearDownTestSuite() {
    delete service_;  // stops etcd
    service_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(service_, nullptr) << "etcd did not start"; }
  const std::vector<std::string>& endpoints() const { return service_->endpoints; }

  static TempDir* dir_;
  static tools::LaunchedLockService* service_;
};
TempDir* EtcdBackendTest::dir_ = nullptr;
tools::LaunchedLockService* EtcdBackendTest::service_ = nullptr;

TEST_F(EtcdBackendTest, TokensStrictlyIncrease) {
  ExpectTokensStrictlyIncrease("etcd", endpoints());
}

TEST_F(EtcdBackendTest, SecondOwnerIsRefusedWhileFirstHolds) {
  ExpectSecondOwnerRefused("etcd", endpoints());
}

TEST_F(EtcdBackendTest, LeaseExpiresWhenHolderIsStopped) {
  ExpectLeaseExpiresWhenHolderStopped("etcd", endpoints(), *dir_);
}

TEST_F(EtcdBackendTest, FencedScenarioKeepsNewLeadersObject) {
  ExpectFencedScenario("etcd", endpoints(), *dir_);
}

TEST_F(EtcdBackendTest, TokenIsTheLockKeysCreateRevision) {
  auto backend = MakeBackend("etcd", endpoints());
  ASSERT_TRUE(backend);
  auto lease = backend->Acquire("revision", "A", milliseconds(3000), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  // Read the key back through the gateway ourselves.
  std::string key64;
  {
    const std::string key = client::EtcdLockKey("revision");
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : key) {
      acc = (acc << 8) | c;
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        key64 += kAlphabet[(acc >> bits) & 63];
      }
    }
    if (bits > 0) key64 += kAlphabet[(acc << (6 - bits)) & 63];
    while (key64.size() % 4 != 0) key64 += '=';
  }
  auto answer = Request(net::http::verb::post, endpoints()[0] + "/v3/kv/range",
                        {{"Content-Type", "application/json"}},
                        json{{"key", key64}}.dump());
  ASSERT_EQ(answer.result_int(), 200u) << answer.body();
  const json range = json::parse(answer.body());
  ASSERT_EQ(range["kvs"].size(), 1u) << answer.body();
  EXPECT_EQ(range["kvs"][0]["create_revision"].get<std::string>(),
            lease->token.ToString());
  EXPECT_EQ(range["kvs"][0]["lease"].get<std::string>(), lease->lease_id);
  // TTLs are whole seconds: 3000 ms is granted as 3 s.
  EXPECT_EQ(lease->ttl, milliseconds(3000));
  EXPECT_TRUE(backend->Release().ok());
}

TEST_F(EtcdBackendTest, SubSecondTtlIsRoundedUpToWholeSeconds) {
  auto backend = MakeBackend("etcd", endpoints());
  ASSERT_TRUE(backend);
  auto lease = backend->Acquire("rounding", "A", milliseconds(300), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_GE(lease->ttl, milliseconds(1000));
  EXPECT_EQ(lease->ttl.count() % 1000, 0);
  EXPECT_TRUE(backend->Release().ok());
}

TEST_F(EtcdBackendTest, FailsOverFromADeadEndpoint) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(UnusedPort());
  auto backend = MakeBackend("etcd", {dead, endpoints()[0]});
  ASSERT_TRUE(backend);
  auto lease = backend->Acquire("failover", "A", milliseconds(2000), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_TRUE(backend->KeepAlive(milliseconds(2000)).ok());
  EXPECT_TRUE(backend->Release().ok());
}

TEST_F(EtcdBackendTest, DemoFencedRunKeepsNewLeadersObject) {
  ExpectDemoFencedRun("etcd", *dir_);
}

TEST_F(EtcdBackendTest, DownServiceIsUnavailable) {
  ExpectDownServiceUnavailable("etcd", *dir_);
}

TEST(EtcdBackendConfigTest, RejectsEndpointsThatAreNotBaseUrls) {
  for (const std::string bad : {"127.0.0.1:2379", "http://127.0.0.1:2379/v3", "ftp://x:1"}) {
    auto backend = client::MakeLockBackend("etcd", {bad});
    ASSERT_FALSE(backend.ok()) << bad;
    EXPECT_EQ(backend.error().code, "bad_request");
  }
}

}  // namespace
}  // namespace fence::testing::backends
