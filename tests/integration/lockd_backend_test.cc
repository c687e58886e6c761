// The lockd lock backend's errors against a real fence-lockd: a keep-alive
// of a lease lockd no longer knows is "lease_lost", and its sentence tells
// an operator's break apart from an expiry or a release.
#include <gtest/gtest.h>

#include <string>

#include "client/lock_backend.h"
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

}  // namespace
}  // namespace fence::testing
