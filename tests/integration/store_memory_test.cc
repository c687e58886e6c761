// Memory held by request bodies is bounded by --max-inflight-bytes: many
// connections trickling huge declared bodies hold only what they sent, and a
// flood of large fast bodies is refused with 503 + Retry-After once the
// budget is used, while the store's resident memory (VmRSS, sampled
// throughout) stays under the budget plus 64 MiB.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <iostream>
#include <thread>

#include "tests/harness/daemon.h"
#include "tests/harness/proc_status.h"
#include "tests/harness/raw_socket.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;

constexpr std::uint64_t kMiB = 1024ull * 1024;
constexpr std::uint64_t kBudget = 32 * kMiB;
constexpr std::uint64_t kSlack = 64 * kMiB;
// Under AddressSanitizer (deploy/sanitize.sh) VmRSS measures ASan's own
// allocator: freed memory held in its quarantine (256 MiB by default) to catch
// use after free, redzones, shadow memory; 516 MiB in the flood below. The
// bound is checked in the normal build; the rest of each test runs under ASan.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssIsTheStores = false;
#else
constexpr bool kRssIsTheStores = true;
#endif

std::string UploadHeader(const std::string& key, std::uint64_t length) {
  return "PUT /v1/objects/" + key + " HTTP/1.1\r\nHost: x\r\nFencing-Token: 1\r\n" +
         "Content-Length: " + std::to_string(length) + "\r\n\r\n";
}

std::string MiB(std::uint64_t bytes) { return std::to_string(bytes / kMiB) + " MiB"; }

class StoreMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = StartDaemon("fence-store", {"--data-dir", dir_.Sub("data"), "--max-inflight-bytes",
                                         std::to_string(kBudget), "--storage-threads", "2"});
    ASSERT_GT(store_.port, 0);
    // Warm up, so the allocator's arenas exist before the baseline.
    for (int i = 0; i < 20; ++i) ASSERT_EQ(SmallWrite("warm" + std::to_string(i)), status::ok);
  }

  status SmallWrite(const std::string& key) {
    return Request(verb::put, store_.Url("/v1/objects/" + key), {{"Fencing-Token", "1"}},
                   std::string(100, 's'))
        .result();
  }

  std::optional<std::uint64_t> Metric(const std::string& name) {
    const std::string text = Request(verb::get, store_.Url("/metrics")).body();
    const auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) return std::nullopt;
    return static_cast<std::uint64_t>(std::stod(text.substr(at + name.size() + 2)));
  }

  TempDir dir_{"fence-memory"};
  Daemon store_;
};

// 200 connections each declare a 16 MiB body and send one byte a second:
// the store must not set aside what has not arrived, and everyone else's
// small writes keep succeeding.
TEST_F(StoreMemoryTest, TrickledUploadsHoldOnlyWhatTheySent) {
  constexpr int kConnections = 200;
  constexpr int kSeconds = 3;
  const std::uint64_t vm_before = ProcStatusField(store_.process->pid(), "VmSize");
  ProcessSampler sampler(store_.process->pid(), std::chrono::milliseconds(20));
  std::vector<std::unique_ptr<RawConnection>> trickles;
  for (int i = 0; i < kConnections; ++i) {
    trickles.push_back(std::make_unique<RawConnection>(store_.port));
    ASSERT_TRUE(trickles.back()->Send(UploadHeader("trickle/" + std::to_string(i), 16 * kMiB)));
  }
  for (int second = 0; second < kSeconds; ++second) {
    for (auto& c : trickles) EXPECT_TRUE(c->Send("x"));
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(SmallWrite("small/" + std::to_string(second) + "/" + std::to_string(i)),
                status::ok);
    }
    // The load itself: one byte per connection per second.
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  sampler.Stop();
  const std::uint64_t vm_growth = sampler.peak_vm() - vm_before;
  std::cout << kConnections << " trickling uploads of a declared 16 MiB: peak VmRSS "
            << MiB(sampler.peak_rss()) << ", VmSize grew by " << MiB(vm_growth) << "\n";
  if (kRssIsTheStores) {
    EXPECT_LE(sampler.peak_rss(), kBudget + kSlack);
  }
  // Reserving every declared body commits 200 x 16 MiB of address space
  // (which strict overcommit or RLIMIT_AS refuses) even before a page is
  // touched.
  EXPECT_LT(vm_growth, 1024 * kMiB);
}

// 24 connections send 16 MiB bodies as fast as they can but hold back the
// last byte: without a budget the store would hold them all in memory.
TEST_F(StoreMemoryTest, AFloodOfLargeBodiesGets503WithRetryAfterOnceTheBudgetIsUsed) {
  constexpr int kConnections = 24;
  constexpr std::uint64_t kBody = 16 * kMiB;
  ProcessSampler sampler(store_.process->pid(), std::chrono::milliseconds(20));
  std::vector<std::unique_ptr<RawConnection>> floods;
  std::vector<std::thread> senders;
  for (int i = 0; i < kConnections; ++i) {
    floods.push_back(std::make_unique<RawConnection>(store_.port));
    senders.emplace_back([c = floods.back().get(), i] {
      // Fails once the store has refused and closed: that is expected.
      (void)c->Send(UploadHeader("flood/" + std::to_string(i), kBody) +
                    std::string(kBody - 1, 'f'));
    });
  }
  for (auto& t : senders) t.join();
  int refused = 0;
  for (auto& c : floods) {
    bool closed = false;
    const std::string reply = c->ReadUntilClose(std::chrono::seconds(2), &closed);
    if (reply.rfind("HTTP/1.1 503", 0) == 0) {
      ++refused;
      EXPECT_NE(reply.find("Retry-After: 1"), std::string::npos) << reply;
      EXPECT_NE(reply.find("\"error\":\"memory_budget\""), std::string::npos) << reply;
    } else {
      EXPECT_EQ(reply, "") << "a held-back upload must not be answered yet";
    }
  }
  sampler.Stop();
  std::cout << kConnections << " uploads of 16 MiB, all but the last byte sent: peak VmRSS "
            << MiB(sampler.peak_rss()) << ", " << refused << " refused with 503\n";
  if (kRssIsTheStores) {
    EXPECT_LE(sampler.peak_rss(), kBudget + kSlack);
  }
  EXPECT_GE(refused, kConnections - static_cast<int>(kBudget / kBody));
  EXPECT_GE(Metric("fence_store_http_body_budget_refusals_total").value_or(0),
            static_cast<std::uint64_t>(refused));
  EXPECT_GT(refused, 0);

  // Hanging up releases what the held-back uploads were charged.
  floods.clear();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Metric("fence_store_http_body_bytes_in_flight") != 0u &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Metric("fence_store_http_body_bytes_in_flight"), 0u) << "bytes in flight";
  EXPECT_EQ(SmallWrite("after-the-flood"), status::ok);
}

// Room for one write waiting for the committer: concurrent writes beyond it
// are refused at once with 503 overloaded and Retry-After; every write
// answered 200 is stored.
TEST(StoreOverloadTest, AFullWriteQueueAnswers503WithRetryAfter) {
  TempDir dir("fence-overload");
  Daemon store =
      StartDaemon("fence-store", {"--data-dir", dir.Sub("data"), "--max-queued-writes", "1"});
  ASSERT_GT(store.port, 0);
  constexpr int kClients = 16;
  int refused = 0;
  std::vector<std::string> stored;
  // Rounds of simultaneous writes, until one finds the queue full (bounded).
  for (int round = 0; round < 20 && refused == 0; ++round) {
    std::vector<std::future<net::Response>> replies;
    for (int c = 0; c < kClients; ++c) {
      const std::string key = "r" + std::to_string(round) + "c" + std::to_string(c);
      replies.push_back(std::async(std::launch::async, [&store, key] {
        return Request(verb::put, store.Url("/v1/objects/" + key), {{"Fencing-Token", "1"}},
                       std::string(64ul * 1024, 'q'));
      }));
    }
    for (int c = 0; c < kClients; ++c) {
      const net::Response res = replies[static_cast<std::size_t>(c)].get();
      if (res.result() == status::ok) {
        stored.push_back("r" + std::to_string(round) + "c" + std::to_string(c));
        continue;
      }
      ASSERT_EQ(res.result(), status::service_unavailable) << res.body();
      EXPECT_NE(res.body().find("\"error\":\"overloaded\""), std::string::npos) << res.body();
      EXPECT_EQ(res[net::http::field::retry_after], "1");
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  std::cout << refused << " writes refused with 503 overloaded, " << stored.size()
            << " stored\n";
  for (const auto& key : stored) {
    EXPECT_EQ(Request(verb::get, store.Url("/v1/objects/" + key)).result(), status::ok) << key;
  }
  const std::string metrics = Request(verb::get, store.Url("/metrics")).body();
  EXPECT_NE(metrics.find("fence_store_writes_total{result=\"overloaded\"} " +
                         std::to_string(refused)),
            std::string::npos);
  EXPECT_NE(metrics.find("fence_store_storage_queue_refusals_total " + std::to_string(refused)),
            std::string::npos);
}

}  // namespace
}  // namespace fence::testing
