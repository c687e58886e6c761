// SIGTERM while a client is still uploading: both daemons share RunDaemon,
// whose drain is bounded. When the bound passes, the connection still open
// must be closed and every thread that could touch the server stopped before
// the server is destroyed: exit 0, and no invalid memory access (run this
// under AddressSanitizer to see one).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "tests/harness/daemon.h"
#include "tests/harness/raw_socket.h"
#include "tests/harness/store_storage.h"

namespace fence::testing {
namespace {

struct Upload {
  std::string binary;
  std::string request_line;  // of a route that reads a body
  std::vector<std::string> flags;
  std::chrono::seconds exits_within;  // the drain bound plus a margin
};

// Names the parameter in test listings (ctest shows GetParam()).
void PrintTo(const Upload& upload, std::ostream* out) { *out << upload.binary; }

// The daemon's output from its first sanitizer report on (the report and
// its stack; at most 60 lines), empty if there is none.
std::vector<std::string> SanitizerReport(const ChildProcess& process) {
  std::vector<std::string> report;
  for (const auto& line : process.Lines()) {
    if (report.empty() && line.find("Sanitizer") == std::string::npos &&
        line.find("runtime error:") == std::string::npos) {
      continue;
    }
    if (report.size() < 60) report.push_back(line);
  }
  return report;
}

class DaemonShutdownTest : public ::testing::TestWithParam<Upload> {
 protected:
  TempDir dir_{"fence-shutdown"};
};

TEST_P(DaemonShutdownTest, SigtermDuringASlowUploadExitsZeroWithoutInvalidAccess) {
  const Upload& upload = GetParam();
  std::vector<std::string> args = {"--data-dir", dir_.Sub("data")};
  args.insert(args.end(), upload.flags.begin(), upload.flags.end());
  Daemon daemon = StartDaemon(upload.binary, args);
  ASSERT_GT(daemon.port, 0);

  RawConnection conn(daemon.port);
  ASSERT_TRUE(conn.Send(upload.request_line + "\r\nHost: x\r\n" +
                        (upload.binary == "fence-store" ? "Fencing-Token: 5\r\n" : "") +
                        "Content-Length: 4000\r\nExpect: 100-continue\r\n\r\n"));
  // "100 Continue": the server has taken the request in and reads its body.
  ASSERT_NE(conn.ReadUntil("100 Continue", std::chrono::seconds(10)).find("100 Continue"),
            std::string::npos);
  ASSERT_TRUE(conn.Send(std::string(100, '{')));  // part of the body, then silence

  const auto signalled = std::chrono::steady_clock::now();
  ASSERT_TRUE(daemon.process->Signal(SIGTERM));
  const auto status = daemon.process->WaitExit(upload.exits_within);
  ASSERT_TRUE(status.has_value()) << upload.binary << " did not exit after SIGTERM";
  std::cout << upload.binary << " exited "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - signalled)
                   .count()
            << " ms after SIGTERM\n";
  const auto report = SanitizerReport(*daemon.process);
  for (const auto& line : report) std::cout << line << "\n";
  EXPECT_TRUE(report.empty()) << "sanitizer report above";
  EXPECT_TRUE(WIFEXITED(*status)) << "raw status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Daemons, DaemonShutdownTest,
    ::testing::Values(Upload{"fence-store", "PUT /v1/objects/k HTTP/1.1",
                             {"--drain-timeout-ms", "500"}, std::chrono::seconds(10)},
                      // fence-lockd has no drain flag: the default 10 s bound.
                      Upload{"fence-lockd", "POST /v1/locks/l/acquire HTTP/1.1", {},
                             std::chrono::seconds(20)}),
    [](const ::testing::TestParamInfo<Upload>& param) {
      return param.param.binary == "fence-store" ? std::string("Store") : std::string("Lockd");
    });

// SIGTERM with writes in flight and no drain at all: every connection is
// closed at once while storage threads are mid-write. Whatever was
// acknowledged must be on disk after a restart; nothing may touch freed
// memory. (Runs on RocksDB and, as StoreShutdownTestOnPostgres, on
// PostgreSQL: there "on disk" is "committed".)
TEST(StoreShutdownTest, SigtermDuringConcurrentWritesKeepsEveryAcknowledgedWrite) {
  TempDir dir("fence-shutdown");
  std::vector<std::string> args = StoreStorageArgs(dir);
  args.insert(args.end(), {"--drain-timeout-ms", "0"});
  Daemon store = StartDaemon("fence-store", args);
  ASSERT_GT(store.port, 0);
  constexpr int kClients = 8;
  constexpr int kAckedBeforeSignal = 40;
  std::mutex mu;
  std::condition_variable enough;
  std::map<std::string, std::string> acknowledged;  // GUARDED_BY(mu)
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      // Bounded: the store stops answering within a few writes of SIGTERM.
      for (int i = 0; i < 2000; ++i) {
        const std::string key = "k" + std::to_string(c) + "-" + std::to_string(i);
        net::HttpCall call;
        call.method = net::http::verb::put;
        call.url = store.Url("/v1/objects/" + key);
        call.headers = {{"Fencing-Token", "1"}};
        call.body = std::string(1000 + i, 'x');
        call.timeout = std::chrono::seconds(10);
        auto res = net::Call(call);
        if (!res.ok() || res->result() != net::http::status::ok) return;
        std::lock_guard lock(mu);
        acknowledged[key] = call.body;
        enough.notify_all();
      }
    });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(enough.wait_for(lock, std::chrono::seconds(30),
                                [&] { return acknowledged.size() >= kAckedBeforeSignal; }));
  }
  ASSERT_TRUE(store.process->Signal(SIGTERM));
  const auto status = store.process->WaitExit(std::chrono::seconds(20));
  for (auto& t : clients) t.join();
  ASSERT_TRUE(status.has_value());
  const auto report = SanitizerReport(*store.process);
  for (const auto& line : report) std::cout << line << "\n";
  EXPECT_TRUE(report.empty()) << "sanitizer report above";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "raw status " << *status;

  Daemon again = StartDaemon("fence-store", StoreStorageArgs(dir));
  std::cout << acknowledged.size() << " writes acknowledged before the store stopped\n";
  for (const auto& [key, body] : acknowledged) {
    auto res = Request(net::http::verb::get, again.Url("/v1/objects/" + key));
    ASSERT_EQ(res.result(), net::http::status::ok) << key;
    EXPECT_EQ(res.body(), body) << key;
  }
}

}  // namespace
}  // namespace fence::testing
