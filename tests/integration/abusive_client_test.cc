// Abusive clients against the real fence-store and fence-lockd (each started
// on a free loopback port): trickled headers, thousands of idle connections,
// a keep-alive flood, a client that never reads, pipelining, malformed and
// oversized requests and lying Content-Lengths. Throughout each, the
// daemon's VmRSS and thread count are sampled from /proc/PID/status and
// asserted bounded, and a well-behaved client keeps being answered.
//
// Every test prints one "abuse-figures" line (daemon, client, peaks) that
// docs/reliability.md's "Abusive clients" table is taken from.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "tests/harness/daemon.h"
#include "tests/harness/proc_status.h"
#include "tests/harness/raw_socket.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMiB = 1024ull * 1024;

enum class Kind { kStore, kLockd };

std::string KindName(Kind kind) { return kind == Kind::kStore ? "store" : "lockd"; }
void PrintTo(Kind kind, std::ostream* os) { *os << KindName(kind); }

// What differs between the two daemons: how a write looks on the wire and
// how to see whether it was applied.
struct Target {
  Kind kind;

  // A write of `name` whose header declares `content_length` and which
  // carries `body` (a lying client makes them differ).
  std::string Write(const std::string& name, const std::string& body,
                    std::size_t content_length) const {
    const std::string target = kind == Kind::kStore ? "PUT /v1/objects/" + name
                                                    : "POST /v1/locks/" + name + "/acquire";
    return target + " HTTP/1.1\r\nHost: x\r\nFencing-Token: 1\r\nContent-Length: " +
           std::to_string(content_length) + "\r\n\r\n" + body;
  }
  std::string Write(const std::string& name) const {
    return Write(name, ValidBody(), ValidBody().size());
  }
  // A body the daemon accepts for a write.
  std::string ValidBody() const {
    return kind == Kind::kStore ? "abc" : R"({"owner":"abuse","ttl_ms":60000})";
  }
  // Where a GET answers 200 once the write of `name` was applied.
  std::string ReadPath(const std::string& name) const {
    return (kind == Kind::kStore ? "/v1/objects/" : "/v1/locks/") + name;
  }
};

// GETs /healthz over a fresh connection every 20 ms on its own thread and
// counts the answers: abuse on other connections must not starve it.
class WellBehavedClient {
 public:
  explicit WellBehavedClient(std::string url)
      : url_(std::move(url)), thread_([this] { Run(); }) {}
  ~WellBehavedClient() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int answered() const { return answered_; }
  int failed() const { return failed_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void Run() {
    // Bounded in time by the test's Stop() and in count here.
    for (int i = 0; i < 10000 && !stop_; ++i) {
      net::HttpCall call;
      call.url = url_;
      call.timeout = std::chrono::seconds(5);
      auto res = net::Call(call);
      if (res.ok() && res->result() == status::ok) {
        ++answered_;
      } else {
        if (failed_++ == 0) {
          first_failure_ = res.ok() ? res->body() : res.error().message;
        }
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  const std::string url_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::atomic<int> failed_{0};
  std::string first_failure_;  // written by the thread before join
  std::thread thread_;
};

class AbusiveClientTest : public ::testing::TestWithParam<Kind> {
 protected:
  Target target() const { return Target{GetParam()}; }

  // Starts the daemon with `flags` and takes the baseline after a warm-up,
  // so allocator arenas and lazily started threads already exist.
  void Start(std::vector<std::string> flags) {
    std::vector<std::string> args = {"--data-dir", dir_.Sub("data")};
    if (GetParam() == Kind::kStore) {
      // The same body limit as lockd's (4096), and few storage threads.
      args.insert(args.end(), {"--storage-threads", "2", "--max-object-bytes", "4096"});
    }
    args.insert(args.end(), flags.begin(), flags.end());
    daemon_ = StartDaemon(GetParam() == Kind::kStore ? "fence-store" : "fence-lockd", args);
    ASSERT_GT(daemon_.port, 0);
    for (int i = 0; i < 5; ++i) {
      RawConnection warm(daemon_.port);
      ASSERT_TRUE(warm.Send(target().Write("warm-" + std::to_string(i))));
      const auto reply = warm.ReadResponse(std::chrono::seconds(10));
      ASSERT_TRUE(reply && reply->rfind("HTTP/1.1 200", 0) == 0) << reply.value_or("");
    }
    EXPECT_EQ(Request(verb::get, daemon_.Url("/healthz")).result(), status::ok);
    baseline_rss_ = ProcStatusField(pid(), "VmRSS");
    baseline_threads_ = ProcStatusField(pid(), "Threads");
    sampler_ = std::make_unique<ProcessSampler>(pid());
    client_ = std::make_unique<WellBehavedClient>(daemon_.Url("/healthz"));
  }

  pid_t pid() const { return daemon_.process->pid(); }

  // Stops sampling and the well-behaved client; asserts the peaks stayed
  // within the baseline plus `rss_allowance`, and that thread counts did not
  // grow with connections (`thread_allowance`: RocksDB starts its
  // background threads lazily), and that the well-behaved client was
  // answered every time.
  void ExpectBounded(const std::string& client, std::uint64_t rss_allowance,
                     std::uint64_t thread_allowance = 0) {
    client_->Stop();
    sampler_->Stop();
    const std::uint64_t peak_rss = sampler_->peak_rss();
    const std::uint64_t peak_threads = sampler_->peak_threads();
    std::cout << "abuse-figures daemon=" << KindName(GetParam()) << " client=" << client
              << " baseline_rss_kib=" << baseline_rss_ / 1024
              << " peak_rss_kib=" << peak_rss / 1024
              << " baseline_threads=" << baseline_threads_
              << " peak_threads=" << peak_threads << " samples=" << sampler_->samples()
              << " well_behaved_answered=" << client_->answered() << "\n";
    EXPECT_LE(peak_rss, baseline_rss_ + rss_allowance)
        << "peak VmRSS " << peak_rss / 1024 << " KiB, baseline " << baseline_rss_ / 1024;
    EXPECT_LE(peak_threads, baseline_threads_ + (GetParam() == Kind::kStore ? thread_allowance : 0));
    EXPECT_GT(sampler_->samples(), 1);
    EXPECT_GT(client_->answered(), 0) << "the well-behaved client was never answered";
    EXPECT_EQ(client_->failed(), 0) << client_->first_failure();
  }

  bool Applied(const std::string& name) {
    return Request(verb::get, daemon_.Url(target().ReadPath(name))).result() == status::ok;
  }

  TempDir dir_{"fence-abuse"};
  Daemon daemon_;
  std::uint64_t baseline_rss_ = 0;
  std::uint64_t baseline_threads_ = 0;
  std::unique_ptr<ProcessSampler> sampler_;
  std::unique_ptr<WellBehavedClient> client_;
};

// Memory a test may add above the warm baseline. Sessions cost a few KiB
// each; 32 MiB is far below what holding declared bodies, unread responses
// or one buffer per request would take, and far above allocator noise.
constexpr std::uint64_t kRssAllowance = 32 * kMiB;
// RocksDB starts its flush/compaction threads on first use.
constexpr std::uint64_t kStoreThreadAllowance = 2;

// 50 connections each send a valid header one byte every 20 ms, so it
// would take over 4 s to complete; the header deadline (500 ms) drops every
// one unanswered, and well within a few deadlines.
TEST_P(AbusiveClientTest, TrickledHeadersAreDroppedAtTheHeaderDeadline) {
  constexpr int kIdleMs = 500;
  Start({"--idle-timeout-ms", std::to_string(kIdleMs)});
  const std::string header =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
  std::vector<std::unique_ptr<RawConnection>> trickles;
  for (int i = 0; i < 50; ++i) trickles.push_back(std::make_unique<RawConnection>(daemon_.port));
  const auto start = Clock::now();
  std::vector<std::optional<milliseconds>> dropped_after(trickles.size());
  std::size_t dropped = 0;
  for (std::size_t byte = 0; byte < header.size() && dropped < trickles.size(); ++byte) {
    for (std::size_t i = 0; i < trickles.size(); ++i) {
      if (dropped_after[i]) continue;
      if (trickles[i]->PeerClosed()) {
        dropped_after[i] = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
        ++dropped;
        continue;
      }
      (void)trickles[i]->SendWithin(header.substr(byte, 1), milliseconds(100));
    }
    std::this_thread::sleep_for(milliseconds(20));  // the abuse: one byte per 20 ms
  }
  ExpectBounded("trickled-headers", kRssAllowance, kStoreThreadAllowance);
  for (std::size_t i = 0; i < trickles.size(); ++i) {
    ASSERT_TRUE(dropped_after[i].has_value()) << "connection " << i << " was never dropped";
    EXPECT_GE(dropped_after[i]->count(), kIdleMs - 50) << i;
    EXPECT_LE(dropped_after[i]->count(), 4 * kIdleMs) << i;
    EXPECT_EQ(trickles[i]->ReadUntil("HTTP/", milliseconds(0)), "")
        << "a header that never completed must get no answer";
  }
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(BothDaemons, AbusiveClientTest,
                         ::testing::Values(Kind::kStore, Kind::kLockd),
                         [](const ::testing::TestParamInfo<Kind>& param) {
                           return param.param == Kind::kStore ? std::string("Store")
                                                              : std::string("Lockd");
                         });

}  // namespace fence::testing
