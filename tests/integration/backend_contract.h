// The checks every external lock backend (etcd, ZooKeeper) must pass against
// a real server started by LaunchLockService, and real fence-worker and
// fence-store processes where a holder or a store is needed: a typed test
// suite, instantiated by etcd_backend_test.cc and zookeeper_backend_test.cc
// with a Kind (a struct whose kName is "etcd" or "zookeeper"), plus the
// fixture their own tests share.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/lock_backend.h"
#include "tools/services/lock_services.h"
#include "common/process.h"
#include "tests/harness/daemon.h"

namespace fence::testing::backends {

using json = nlohmann::json;
using std::chrono::milliseconds;

inline std::unique_ptr<client::LockBackend> MakeBackend(
    std::string_view kind, const std::vector<std::string>& endpoints) {
  auto backend = client::MakeLockBackend(kind, endpoints);
  EXPECT_TRUE(backend.ok()) << (backend.ok() ? "" : backend.error().message);
  return backend.ok() ? std::move(*backend) : nullptr;
}

inline std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

// The first log line of `child` at index >= from whose event is `event`.
inline std::optional<json> WaitForEvent(ChildProcess& child, std::string_view event,
                                        milliseconds timeout, std::size_t from = 0) {
  std::optional<json> found;
  child.WaitForLine(
      [&](std::string_view line) {
        if (line.find(event) == std::string_view::npos) return false;
        json parsed = json::parse(line, nullptr, false);
        if (!parsed.is_object() || parsed.value("event", "") != event) return false;
        found = std::move(parsed);
        return true;
      },
      timeout, from);
  return found;
}

// One real lock service of Kind::kName for all the tests of a suite, on free
// loopback ports, stopped after the suite.
template <typename Kind>
class LockServiceSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("fence-" + std::string(Kind::kName));
    auto service = tools::LaunchLockService(Kind::kName, {dir_->path(), "", milliseconds(60000), ""});
    ASSERT_TRUE(service.ok()) << service.error().message;
    service_ = new tools::LaunchedLockService(std::move(*service));
  }
  static void TearDownTestSuite() {
    delete service_;  // stops the server
    service_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(service_, nullptr) << Kind::kName << " did not start"; }
  const std::vector<std::string>& endpoints() const { return service_->endpoints; }
  const TempDir& dir() const { return *dir_; }

  static inline TempDir* dir_ = nullptr;
  static inline tools::LaunchedLockService* service_ = nullptr;
};

inline std::unique_ptr<ChildProcess> StartWorker(std::string_view kind,
                                                 const std::vector<std::string>& endpoints,
                                                 const std::string& id, const std::string& lock,
                                                 const std::string& store_url,
                                                 const std::string& key, int ttl_ms,
                                                 std::vector<std::string> extra) {
  std::vector<std::string> argv = {SiblingBinary("fence-worker"),
                                   "--id", id,
                                   "--backend", std::string(kind),
                                   "--lock-endpoints", Join(endpoints),
                                   "--lock", lock,
                                   "--store", store_url,
                                   "--key", key,
                                   "--ttl-ms", std::to_string(ttl_ms),
                                   "--terms", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = ChildProcess::Start({argv, "", {}});
  EXPECT_TRUE(child.ok()) << (child.ok() ? "" : child.error().message);
  return child.ok() ? std::move(*child) : nullptr;
}

// Successive grants, alternating between two clients, carry strictly
// increasing tokens; a held lease renews; a released one does not.
inline void ExpectTokensStrictlyIncrease(std::string_view kind,
                                         const std::vector<std::string>& endpoints) {
  auto a = MakeBackend(kind, endpoints);
  auto b = MakeBackend(kind, endpoints);
  ASSERT_TRUE(a && b);
  std::optional<Token> previous;
  for (int round = 0; round < 6; ++round) {
    client::LockBackend& backend = round % 2 == 0 ? *a : *b;
    const std::string owner = round % 2 == 0 ? "A" : "B";
    auto lease = backend.Acquire("tokens", owner, milliseconds(3000), milliseconds(5000));
    ASSERT_TRUE(lease.ok()) << lease.error().code << ": " << lease.error().message;
    EXPECT_EQ(lease->owner, owner);
    EXPECT_GT(lease->ttl.count(), 0);
    if (previous) {
      EXPECT_GT(lease->token, *previous) << "round " << round;
    }
    previous = lease->token;
    auto renewed = backend.KeepAlive(milliseconds(2000));
    EXPECT_TRUE(renewed.ok()) << renewed.error().message;
    ASSERT_TRUE(backend.Release().ok());
    auto after = backend.KeepAlive(milliseconds(2000));
    ASSERT_FALSE(after.ok());
    EXPECT_EQ(after.error().code, "lease_lost");
  }
}

// While A holds, B is refused with "held" naming A; once A releases, B gets
// a higher token.
inline void ExpectSecondOwnerRefused(std::string_view kind,
                                     const std::vector<std::string>& endpoints) {
  auto a = MakeBackend(kind, endpoints);
  auto b = MakeBackend(kind, endpoints);
  ASSERT_TRUE(a && b);
  auto held = a->Acquire("refuse", "A", milliseconds(5000), milliseconds(0));
  ASSERT_TRUE(held.ok()) << held.error().message;

  auto refused = b->Acquire("refuse", "B", milliseconds(5000), milliseconds(300));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "held") << refused.error().message;
  EXPECT_EQ(refused.error().details.value("holder", ""), "A") << refused.error().details;
  // B holds nothing after the refusal; A's hold is untouched by it.
  auto b_renewed = b->KeepAlive(milliseconds(2000));
  ASSERT_FALSE(b_renewed.ok());
  EXPECT_EQ(b_renewed.error().code, "lease_lost");
  EXPECT_TRUE(a->KeepAlive(milliseconds(2000)).ok());

  ASSERT_TRUE(a->Release().ok());
  auto next = b->Acquire("refuse", "B", milliseconds(5000), milliseconds(5000));
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_GT(next->token, held->token);
  EXPECT_TRUE(b->Release().ok());
}

// A real holder process (fence-worker) is SIGSTOPped while it holds: its
// lease runs out at the server, a waiting client gets the lock with a higher
// token, and the holder, resumed, learns its lease is gone.
inline void ExpectLeaseExpiresWhenHolderStopped(std::string_view kind,
                                                const std::vector<std::string>& endpoints,
                                                const TempDir& dir) {
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store-stop")});
  ASSERT_GT(store.port, 0);
  auto holder = StartWorker(kind, endpoints, "A", "stopped", store.Url(""), "stopped-key",
                            1000, {"--work-ms", "60000"});
  ASSERT_TRUE(holder);
  auto elected = WaitForEvent(*holder, "elected", milliseconds(20000));
  ASSERT_TRUE(elected) << holder->OutputTail();
  const std::uint64_t token_a = elected->value("token", std::uint64_t{0});
  ASSERT_GT(token_a, 0u);

  ASSERT_TRUE(holder->Signal(SIGSTOP));
  auto b = MakeBackend(kind, endpoints);
  ASSERT_TRUE(b);
  // Waits (by watch) well past A's TTL; it can only succeed once the server
  // has expired the stopped holder's lease.
  auto lease = b->Acquire("stopped", "B", milliseconds(2000), milliseconds(20000));
  ASSERT_TRUE(lease.ok()) << lease.error().code << ": " << lease.error().message;
  EXPECT_GT(lease->token.value(), token_a);

  const std::size_t seen = holder->LineCount();
  ASSERT_TRUE(holder->Signal(SIGCONT));
  auto lost = WaitForEvent(*holder, "lease_lost", milliseconds(15000), seen);
  EXPECT_TRUE(lost) << holder->OutputTail();
  holder->Stop();
  EXPECT_TRUE(b->Release().ok());
  store.process->Stop();
}

// The split-brain run with two real workers and the store: A is elected,
// pauses (SIGSTOP) before its write, B is elected after A's lease runs out
// and writes; A resumes and writes with its old token: the store answers
// 409, A logs `fenced`, and B's object stands.
inline void ExpectFencedScenario(std::string_view kind,
                                 const std::vector<std::string>& endpoints,
                                 const TempDir& dir) {
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store-fenced")});
  ASSERT_GT(store.port, 0);
  // A's pause (its own SIGSTOP, undone by its resumer process) must outlast
  // its 1 s lease and B's election and write; B needs about 2 s for that, so
  // 8 s leaves room on a loaded machine. The test checks that order below
  // instead of assuming it.
  constexpr int kPauseMs = 8000;
  auto a = StartWorker(kind, endpoints, "A", "fenced", store.Url(""), "fenced-key", 1000,
                       {"--inject-pause", "before-write:" + std::to_string(kPauseMs) + "ms",
                        "--payload", "from-A"});
  ASSERT_TRUE(a);
  auto elected_a = WaitForEvent(*a, "elected", milliseconds(20000));
  ASSERT_TRUE(elected_a) << a->OutputTail();
  ASSERT_TRUE(WaitForEvent(*a, "pause_injected", milliseconds(20000))) << a->OutputTail();
  const std::uint64_t token_a = elected_a->value("token", std::uint64_t{0});

  auto b = StartWorker(kind, endpoints, "B", "fenced", store.Url(""), "fenced-key", 1000,
                       {"--payload", "from-B", "--acquire-timeout-ms", "30000"});
  ASSERT_TRUE(b);
  auto written_b = WaitForEvent(*b, "write_done", milliseconds(30000));
  ASSERT_TRUE(written_b) << b->OutputTail();
  const std::uint64_t token_b = written_b->value("token", std::uint64_t{0});
  EXPECT_GT(token_b, token_a);

  ASSERT_FALSE(WaitForEvent(*a, "resumed", milliseconds(0)))
      << "A resumed before B wrote; the schedule needs a longer pause on this machine";
  auto fenced = WaitForEvent(*a, "fenced", milliseconds(kPauseMs + 15000));
  ASSERT_TRUE(fenced) << a->OutputTail();
  EXPECT_EQ(fenced->value("token", std::uint64_t{0}), token_a);
  EXPECT_EQ(fenced->value("highest_token", std::uint64_t{0}), token_b);
  EXPECT_NE(fenced->dump().find("stale_token"), std::string::npos) << fenced->dump();
  EXPECT_FALSE(WaitForEvent(*a, "write_done", milliseconds(0)));

  auto object = Request(net::http::verb::get, store.Url("/v1/objects/fenced-key"));
  ASSERT_EQ(object.result_int(), 200u);
  EXPECT_EQ(json::parse(object.body(), nullptr, false).value("owner", ""), "B")
      << object.body();
  EXPECT_EQ(object[net::ToBeast(kFencingTokenHeader)].to_string(), std::to_string(token_b));
  a->Stop();
  b->Stop();
  store.process->Stop();
}

// A lock service that is down answers "unavailable", not a hang or a token.
inline void ExpectDownServiceUnavailable(std::string_view kind, const TempDir& dir) {
  auto service = tools::LaunchLockService(kind, {dir.Sub("down"), "", milliseconds(60000), ""});
  ASSERT_TRUE(service.ok()) << service.error().message;
  auto backend = MakeBackend(kind, service->endpoints);
  ASSERT_TRUE(backend);
  for (auto& process : service->processes) process->Kill();
  auto lease = backend->Acquire("down", "A", milliseconds(2000), milliseconds(0));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().code, "unavailable") << lease.error().message;
  auto renewed = backend->KeepAlive(milliseconds(2000));
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, "lease_lost");
}

// The contract, for each Kind.
template <typename Kind>
class BackendContractTest : public LockServiceSuite<Kind> {};
TYPED_TEST_SUITE_P(BackendContractTest);

TYPED_TEST_P(BackendContractTest, TokensStrictlyIncrease) {
  ExpectTokensStrictlyIncrease(TypeParam::kName, this->endpoints());
}

TYPED_TEST_P(BackendContractTest, SecondOwnerIsRefusedWhileFirstHolds) {
  ExpectSecondOwnerRefused(TypeParam::kName, this->endpoints());
}

TYPED_TEST_P(BackendContractTest, LeaseExpiresWhenHolderIsStopped) {
  ExpectLeaseExpiresWhenHolderStopped(TypeParam::kName, this->endpoints(), this->dir());
}

TYPED_TEST_P(BackendContractTest, FencedScenarioKeepsNewLeadersObject) {
  ExpectFencedScenario(TypeParam::kName, this->endpoints(), this->dir());
}

TYPED_TEST_P(BackendContractTest, DownServiceIsUnavailable) {
  ExpectDownServiceUnavailable(TypeParam::kName, this->dir());
}

REGISTER_TYPED_TEST_SUITE_P(BackendContractTest, TokensStrictlyIncrease,
                            SecondOwnerIsRefusedWhileFirstHolds,
                            LeaseExpiresWhenHolderIsStopped,
                            FencedScenarioKeepsNewLeadersObject, DownServiceIsUnavailable);

}  // namespace fence::testing::backends
