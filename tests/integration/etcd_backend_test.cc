// The etcd backend against a real etcd started on free loopback ports: the
// contract of backend_contract.h, and what is particular to etcd.
#include <gtest/gtest.h>

#include "client/etcd_backend.h"
#include "tests/integration/backend_contract.h"

namespace fence::testing::backends {
namespace {

struct Etcd {
  static constexpr const char* kName = "etcd";
};
INSTANTIATE_TYPED_TEST_SUITE_P(Etcd, BackendContractTest, Etcd);

using EtcdBackendTest = LockServiceSuite<Etcd>;

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
  const auto unused = PickFreeLoopbackPort();
  ASSERT_TRUE(unused.ok()) << unused.error().message;
  const std::string dead = "http://127.0.0.1:" + std::to_string(*unused);
  auto backend = MakeBackend("etcd", {dead, endpoints()[0]});
  ASSERT_TRUE(backend);
  auto lease = backend->Acquire("failover", "A", milliseconds(2000), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_TRUE(backend->KeepAlive(milliseconds(2000)).ok());
  EXPECT_TRUE(backend->Release().ok());
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
