// Connection reuse by the client library, against real fence-store,
// fence-lockd and fence-worker processes and a scripted HTTP server of the
// test's own: calls share one kept-alive connection, a connection the server
// closed while idle is replaced, `Connection: close` is honoured, and a
// request the server may have read is never sent a second time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "client/lock_backend.h"
#include "client/store_client.h"
#include "common/process.h"
#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using namespace std::chrono_literals;

// One client-side TCP socket (IPv4, /proc/net/tcp) whose peer is a server
// on 127.0.0.1: its local address and its state.
struct ClientSocket {
  std::string local;  // hex "ADDR:PORT" as the kernel prints it
  int state = 0;
};
constexpr int kEstablished = 0x01;
constexpr int kCloseWait = 0x08;  // the peer closed; we have not yet

// Every socket on this machine connected to 127.0.0.1:`port` from the
// client's side: one per connection opened to that port that the kernel
// still remembers, TIME_WAIT included (60 s). The servers' own sockets have
// `port` as their local port and are not counted.
std::vector<ClientSocket> ClientSockets(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  std::vector<ClientSocket> sockets;
  char wanted[16];
  std::snprintf(wanted, sizeof wanted, "0100007F:%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (remote == wanted) sockets.push_back({local, std::stoi(state, nullptr, 16)});
  }
  return sockets;
}

int ConnectionsTo(int port) { return static_cast<int>(ClientSockets(port).size()); }

// Waits (bounded) until the only connection to `port` has been closed by
// the server, as the kernel reports it (our end in CLOSE_WAIT); returns its
// local address, or "" on timeout.
std::string ServerClosedOnlyConnectionWithin(int port, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    const auto sockets = ClientSockets(port);
    if (sockets.size() == 1 && sockets[0].state == kCloseWait) return sockets[0].local;
    std::this_thread::sleep_for(10ms);  // polling the kernel's table: no event to wait on
  }
  return "";
}

// What the scripted server does with the Nth request it reads (counted over
// all connections); requests past the script get kAnswer.
enum class Reply {
  kAnswer,              // 200, connection kept open
  kAnswerWithClose,     // 200 with "Connection: close", connection kept open
  kAnswerThenHangUp,    // 200 without "Connection: close", then close
  kAnswerThenJunk,      // 200, then bytes nobody asked for, connection kept open
  kHangUpUnanswered,    // read the request, close without answering
};

// A tiny HTTP/1.1 server on 127.0.0.1:0 that answers store writes by a
// script and counts what it accepted and read, so a test can tell a reused
// connection from a new one and a retried request from a single one.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<Reply> script) : script_(std::move(script)) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "scripted server could not listen: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& c : conns_) close(c.fd);
    close(listener_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return accepted_; }
  int requests() const { return requests_; }
  // Waits until the server has closed `count` connections itself.
  bool HungUpWithin(int count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return hung_up_cv_.wait_for(lock, timeout, [&] { return hung_up_ >= count; });
  }

 private:
  struct Conn {
    int fd;
    std::string in;
  };

  void Serve() {
    // Bounded: a test's calls take well under this.
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (const auto& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns_.push_back({fd, ""});
          ++accepted_;
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents != 0) ReadFrom(fds[i].fd);
      }
      std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    }
  }

  void ReadFrom(int fd) {
    auto it = std::find_if(conns_.begin(), conns_.end(), [&](const Conn& c) { return c.fd == fd; });
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      close(fd);
      it->fd = -1;
      return;
    }
    it->in.append(buf, static_cast<std::size_t>(n));
    while (it->fd >= 0 && TakeRequest(it->in)) Answer(*it);
  }

  // Removes one whole request (header and Content-Length body) from `in`.
  static bool TakeRequest(std::string& in) {
    const auto end = in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::size_t length = 0;
    std::string lower = in.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (auto at = lower.find("content-length:"); at != std::string::npos) {
      length = std::stoul(lower.substr(at + 15));
    }
    if (in.size() < end + 4 + length) return false;
    in.erase(0, end + 4 + length);
    return true;
  }

  void Answer(Conn& conn) {
    const int n = ++requests_;
    const Reply reply = n <= static_cast<int>(script_.size()) ? script_[n - 1] : Reply::kAnswer;
    const std::string body = R"({"key":"k","token":1,"highest_token":1,"version":1})";
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    if (reply == Reply::kAnswerWithClose) head += "Connection: close\r\n";
    std::string out = head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (reply == Reply::kAnswerThenJunk) out += "HTTP/1.1 408 Request Timeout\r\n\r\n";
    if (reply == Reply::kHangUpUnanswered) out.clear();
    if (!out.empty()) (void)send(conn.fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (reply == Reply::kAnswerThenHangUp || reply == Reply::kHangUpUnanswered) {
      close(conn.fd);
      conn.fd = -1;
      std::lock_guard lock(mu_);
      ++hung_up_;
      hung_up_cv_.notify_all();
    }
  }

  std::vector<Reply> script_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::vector<Conn> conns_;  // the server thread's own
  std::mutex mu_;
  std::condition_variable hung_up_cv_;
  int hung_up_ = 0;  // GUARDED_BY(mu_)
};

// The safety rule: once a request's bytes may have reached the server, a
// failure is reported, never retried; the write's outcome is the caller's
// to judge (a worker steps down).
TEST(HttpClientSafetyTest, RequestTheServerMayHaveReadIsNotSentAgain) {
  ScriptedServer server({Reply::kAnswer, Reply::kHangUpUnanswered});
  client::StoreClient client(server.Url());
  auto first = client.Put("k", "{}", Token(1));
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = client.Put("k", "{}", Token(2));
  ASSERT_FALSE(second.ok()) << "a request nobody answered cannot have succeeded";
  EXPECT_EQ(second.error().code, "unreachable");
  EXPECT_EQ(server.requests(), 2) << "the unanswered write was sent again";
  EXPECT_EQ(server.connections(), 1) << "both writes should have shared one connection";
}

TEST(HttpClientSafetyTest, ConnectionCloseInAnAnswerIsHonoured) {
  ScriptedServer server({Reply::kAnswerWithClose, Reply::kAnswer});
  client::StoreClient client(server.Url());
  ASSERT_TRUE(client.Put("k", "{}", Token(1)).ok());
  auto second = client.Put("k", "{}", Token(2));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(server.connections(), 2) << "a connection the server said it closes was reused";
  EXPECT_EQ(server.requests(), 2);
}

TEST(HttpClientSafetyTest, ConnectionTheServerHungUpOnIsReplaced) {
  ScriptedServer server({Reply::kAnswerThenHangUp, Reply::kAnswer});
  client::StoreClient client(server.Url());
  ASSERT_TRUE(client.Put("k", "{}", Token(1)).ok());
  ASSERT_TRUE(server.HungUpWithin(1, 5s));
  auto second = client.Put("k", "{}", Token(2));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests(), 2) << "exactly one copy of each write";
}

// Bytes nobody asked for on an idle connection (a server's 408 before it
// closes) would be read as the answer to the next request: never reuse it.
TEST(HttpClientSafetyTest, ConnectionWithUnaskedBytesIsReplaced) {
  ScriptedServer server({Reply::kAnswerThenJunk, Reply::kAnswer});
  client::StoreClient client(server.Url());
  ASSERT_TRUE(client.Put("k", "{}", Token(1)).ok());
  auto second = client.Put("k", "{}", Token(2));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(second->accepted());
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests(), 2);
}

TEST(HttpClientReuseTest, StoreClientCallsShareOneConnection) {
  TempDir dir("fence-http-client-test");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_GT(store.port, 0);
  client::StoreClient client(store.Url());
  constexpr int kCalls = 12;
  for (int i = 1; i <= kCalls; ++i) {
    const std::string key = "reuse/" + std::to_string(i % 3);
    auto put = client.Put(key, R"({"n":)" + std::to_string(i) + "}", Token(100 + i));
    ASSERT_TRUE(put.ok()) << put.error().message;
    EXPECT_TRUE(put->accepted());
    auto got = client.Get(key);
    ASSERT_TRUE(got.ok()) << got.error().message;
    auto fence = client.GetFence(key);
    ASSERT_TRUE(fence.ok()) << fence.error().message;
    EXPECT_EQ(fence->highest_token.value(), static_cast<std::uint64_t>(100 + i));
  }
  EXPECT_EQ(ConnectionsTo(store.port), 1) << "36 calls should share one connection";
}

TEST(HttpClientReuseTest, LockdBackendCallsShareOneConnection) {
  TempDir dir("fence-http-client-test");
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd")});
  ASSERT_GT(lockd.port, 0);
  auto backend = client::MakeLockBackend("lockd", {lockd.Url()});
  ASSERT_TRUE(backend.ok()) << backend.error().message;
  for (int term = 0; term < 3; ++term) {
    auto grant = (*backend)->Acquire("reuse", "A", Millis(5000), Millis(0));
    ASSERT_TRUE(grant.ok()) << grant.error().message;
    for (int i = 0; i < 3; ++i) {
      auto renewed = (*backend)->KeepAlive(Millis(5000));
      ASSERT_TRUE(renewed.ok()) << renewed.error().message;
    }
    auto released = (*backend)->Release();
    ASSERT_TRUE(released.ok()) << released.error().message;
  }
  EXPECT_EQ(ConnectionsTo(lockd.port), 1) << "15 calls from one thread should share one";
}

TEST(HttpClientReuseTest, ReconnectsAfterTheServerClosedAnIdleConnection) {
  TempDir dir("fence-http-client-test");
  Daemon store = StartDaemon("fence-store",
                             {"--data-dir", dir.Sub("store"), "--idle-timeout-ms", "200"});
  ASSERT_GT(store.port, 0);
  client::StoreClient client(store.Url());
  auto first = client.Put("idle/k", "{}", Token(1));
  ASSERT_TRUE(first.ok()) << first.error().message;
  const std::string closed = ServerClosedOnlyConnectionWithin(store.port, 10s);
  ASSERT_NE(closed, "") << "the store did not close the idle connection";
  auto second = client.Put("idle/k", "{}", Token(2));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(second->accepted());
  // The closed connection is gone (we closed our end after the server) and
  // the write went over a new one.
  const auto sockets = ClientSockets(store.port);
  ASSERT_EQ(sockets.size(), 1u);
  EXPECT_NE(sockets[0].local, closed);
  EXPECT_EQ(sockets[0].state, kEstablished);
}

// A store killed and started again on the same port: the client's idle
// connection is dead (the kernel closed it with the process) and is replaced.
TEST(HttpClientReuseTest, ReconnectsAfterTheServerRestartedOnItsPort) {
  TempDir dir("fence-http-client-test");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_GT(store.port, 0);
  client::StoreClient client(store.Url());
  ASSERT_TRUE(client.Put("restart/k", "{}", Token(1)).ok());
  store.process->Kill();
  auto again = StartListeningDaemon(
      {{SiblingBinary("fence-store"), "--data-dir", dir.Sub("store")}, "", {}},
      "127.0.0.1:" + std::to_string(store.port));
  ASSERT_TRUE(again.ok()) << again.error().message;
  auto put = client.Put("restart/k", "{}", Token(2));
  ASSERT_TRUE(put.ok()) << put.error().message;
  EXPECT_TRUE(put->accepted());
}

// A stale write is answered 409; whatever the store says about the
// connection, the next write on the same client goes through.
TEST(HttpClientReuseTest, WriteAfterAStaleAnswerSucceeds) {
  TempDir dir("fence-http-client-test");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_GT(store.port, 0);
  client::StoreClient client(store.Url());
  ASSERT_TRUE(client.Put("stale/k", "{}", Token(5)).ok());
  auto stale = client.Put("stale/k", std::string(1000, 'x'), Token(4));
  ASSERT_TRUE(stale.ok()) << stale.error().message;
  EXPECT_TRUE(stale->stale());
  auto next = client.Put("stale/k", "{}", Token(6));
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_TRUE(next->accepted());
}

// fence-worker keeps one store client and one lock backend for its whole
// life: two terms of fence-then-write on three keys use one connection to
// the store, and at most one per thread (main, keep-alive) to lockd.
TEST(HttpClientReuseTest, WorkerReusesItsConnections) {
  TempDir dir("fence-http-client-test");
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd")});
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_GT(lockd.port, 0);
  ASSERT_GT(store.port, 0);
  auto worker = ChildProcess::Start(
      {{SiblingBinary("fence-worker"), "--id", "A", "--backend", "lockd", "--lock-endpoints",
        lockd.Url(), "--lock", "job", "--store", store.Url(), "--key", "out/a", "--key",
        "out/b", "--key", "out/c", "--terms", "2", "--ttl-ms", "1500", "--work-ms", "1000",
        "--acquire-timeout-ms", "20000"},
       "",
       {}});
  ASSERT_TRUE(worker.ok()) << worker.error().message;
  const auto status = (*worker)->WaitExit(60s);
  ASSERT_TRUE(status.has_value()) << (*worker)->OutputTail();
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << (*worker)->OutputTail();
  int renewals = 0;
  for (const auto& line : (*worker)->Lines()) {
    if (line.find("\"event\":\"renewed\"") != std::string::npos) ++renewals;
  }
  EXPECT_EQ(ConnectionsTo(store.port), 1) << "12 store calls over 2 terms";
  EXPECT_LE(ConnectionsTo(lockd.port), 2) << "lockd calls in 2 terms, " << renewals << " renewals";
}

}  // namespace
}  // namespace fence::testing
