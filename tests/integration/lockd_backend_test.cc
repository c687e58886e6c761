// The lockd lock backend's errors against a real fence-lockd: a keep-alive
// of a lease lockd no longer knows is "lease_lost", and its sentence tells
// an operator's break apart from an expiry or a release.
#include <gtest/gtest.h>

#include <string>

#include "client/lock_backend.h"
#include "client/lockd_backend.h"
#include "common/http_client.h"
#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using std::chrono::milliseconds;

// Ends the backend's lease behind its back with a raw lockd call, then
// returns the backend's keep-alive answer.
Status KeepAliveAfter(const std::string& what) {
  TempDir dir("fence-lockd-backend-test");
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd")});
  if (lockd.port <= 0) return MakeError("setup", "fence-lockd did not start");
  auto backend = client::MakeLockBackend("lockd", {lockd.Url()});
  if (!backend.ok()) return backend.error();
  auto lease = (*backend)->Acquire("job", "A", milliseconds(60000), milliseconds(0));
  if (!lease.ok()) return lease.error();
  const std::string base = lockd.Url() + "/v1/locks/job/";
  auto ended = what == "break"
                   ? net::Call(net::JsonCall(net::http::verb::post, base + "break",
                                             {{"reason", "test: A hung"}}))
                   : net::Call(net::JsonCall(net::http::verb::post, base + "release",
                                             {{"lease_id", lease->lease_id}}));
  if (!ended.ok()) return ended.error();
  if (ended->result_int() != 200) return MakeError("setup", what + ": " + ended->body());
  return (*backend)->KeepAlive(milliseconds(5000));
}

TEST(LockdBackendTest, KeepAliveOfABrokenLeaseSaysAnOperatorBrokeIt) {
  const Status status = KeepAliveAfter("break");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "lease_lost") << status.error().message;
  EXPECT_NE(status.error().message.find("an operator broke it"), std::string::npos)
      << status.error().message;
  EXPECT_EQ(status.error().message.find("expired"), std::string::npos)
      << status.error().message;
}

TEST(LockdBackendTest, KeepAliveOfAReleasedLeaseSaysItExpiredOrWasReleased) {
  const Status status = KeepAliveAfter("release");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, "lease_lost") << status.error().message;
  EXPECT_NE(status.error().message.find("expired (or the lock was released)"),
            std::string::npos)
      << status.error().message;
}

// The backend sends lock_delay_ms with its acquire: A's lease (200 ms TTL,
// 3 s delay, never renewed) expires, and lockd then refuses the lock to
// everyone, saying how much of the delay is left.
TEST(LockdBackendTest, LockDelayIsSentWithTheAcquireSoAnExpiryKeepsTheLockFromEveryone) {
  TempDir dir("fence-lockd-backend-delay");
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd")});
  ASSERT_GT(lockd.port, 0);
  auto a = client::MakeLockBackend("lockd", {lockd.Url()},
                                   client::LockdOptions{milliseconds(3000), ""});
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto lease = (*a)->Acquire("job", "A", milliseconds(200), milliseconds(0));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  auto started = lockd.process->WaitForLine(
      [](std::string_view l) { return l.find("\"lock_delay_started\"") != l.npos; },
      milliseconds(5000));
  ASSERT_TRUE(started.has_value()) << lockd.process->OutputTail();
  EXPECT_EQ(nlohmann::json::parse(*started).value("lock_delay_ms", 0), 3000) << *started;

  auto b = client::MakeLockBackend("lockd", {lockd.Url()});
  ASSERT_TRUE(b.ok());
  auto refused = (*b)->Acquire("job", "B", milliseconds(200), milliseconds(0));
  ASSERT_FALSE(refused.ok()) << "B was granted the lock during A's lock-delay";
  EXPECT_EQ(refused.error().code, "held") << refused.error().message;
  EXPECT_GT(refused.error().details["server_body"].value("lock_delay_remaining_ms", 0), 0)
      << refused.error().details.dump();
}

// A lock-delay is lockd's: the other backends refuse it in words, and lockd
// refuses one no lockd would accept.
TEST(LockdBackendTest, EtcdAndZooKeeperRefuseALockDelayAsALockdFeature) {
  const client::LockdOptions delay{milliseconds(500), ""};
  for (const std::string kind : {"etcd", "zookeeper"}) {
    const std::string endpoint = kind == "etcd" ? "http://127.0.0.1:2379" : "127.0.0.1:2181";
    auto backend = client::MakeLockBackend(kind, {endpoint}, delay);
    ASSERT_FALSE(backend.ok()) << kind << " accepted a lock-delay";
    EXPECT_EQ(backend.error().code, "bad_request");
    EXPECT_NE(backend.error().message.find("is a fence-lockd feature"), std::string::npos)
        << backend.error().message;
    EXPECT_NE(backend.error().message.find("the " + kind + " backend has no lock-delay"),
              std::string::npos)
        << backend.error().message;
    // Without a delay the same backend is made as before.
    EXPECT_TRUE(client::MakeLockBackend(kind, {endpoint}, {}).ok()) << kind;
  }
  for (const std::int64_t ms : {std::int64_t{-1}, client::kMaxLockDelay.count() + 1}) {
    auto lockd = client::MakeLockBackend("lockd", {"http://127.0.0.1:1"},
                                         client::LockdOptions{milliseconds(ms), ""});
    ASSERT_FALSE(lockd.ok()) << ms;
    EXPECT_EQ(lockd.error().code, "bad_request");
    EXPECT_NE(lockd.error().message.find("expected 0 to 3600000 ms"), std::string::npos)
        << lockd.error().message;
  }
}

}  // namespace
}  // namespace fence::testing
