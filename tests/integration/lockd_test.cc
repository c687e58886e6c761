// fence-lockd as a real process: started on a free loopback port, driven
// over HTTP with the project's client, killed with real signals.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/http_client.h"
#include "common/process.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence {
namespace {

namespace http = net::http;
using json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;
using std::chrono::milliseconds;

SteadyTime Now() { return std::chrono::steady_clock::now(); }

ChildProcess::Options Args(std::vector<std::string> argv) {
  ChildProcess::Options options;
  options.argv = std::move(argv);
  return options;
}

net::HttpCall Call(http::verb method, std::string url, std::string body = "",
                   milliseconds timeout = milliseconds(5000)) {
  net::HttpCall call;
  call.method = method;
  call.url = std::move(url);
  call.body = std::move(body);
  call.timeout = timeout;
  return call;
}

class Lockd {
 public:
  // Starts fence-lockd on a free port; fails the test if it does not listen.
  static std::unique_ptr<Lockd> Start(const std::string& data_dir,
                                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-dir", data_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    testing::Daemon daemon = testing::StartDaemon("fence-lockd", std::move(args));
    if (daemon.port == 0) return nullptr;
    auto lockd = std::unique_ptr<Lockd>(new Lockd());
    lockd->process = std::move(daemon.process);
    lockd->base = daemon.Url();
    return lockd;
  }

  std::unique_ptr<ChildProcess> process;
  std::string base;

 private:
  Lockd() = default;
};

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  std::string retry_after;
};

Reply Send(const net::HttpCall& call) {
  auto response = net::Call(call);
  EXPECT_TRUE(response.ok()) << (response.ok() ? "" : response.error().message);
  Reply reply;
  if (!response.ok()) return reply;
  reply.status = static_cast<int>(response->result_int());
  reply.raw = response->body();
  reply.body = json::parse(reply.raw, nullptr, false);
  reply.retry_after =
      std::string(net::FromBeast((*response)[http::field::retry_after]));
  return reply;
}

Reply PostRaw(const std::string& url, std::string body,
              milliseconds timeout = milliseconds(10000)) {
  return Send(Call(http::verb::post, url, std::move(body), timeout));
}

Reply Post(const std::string& url, const json& body,
           milliseconds timeout = milliseconds(10000)) {
  auto call = net::JsonCall(http::verb::post, url, body);
  call.timeout = timeout;
  return Send(call);
}

Reply Get(const std::string& url) {
  return Send(Call(http::verb::get, url));
}

Reply Acquire(const Lockd& lockd, const std::string& name, const std::string& owner,
              int ttl_ms, int wait_ms = 0) {
  return Post(lockd.base + "/v1/locks/" + name + "/acquire",
              {{"owner", owner}, {"ttl_ms", ttl_ms}, {"wait_ms", wait_ms}},
              milliseconds(wait_ms + 10000));
}

// One scratch directory per test process, removed when the process exits.
const fence::testing::TempDir& Scratch() {
  static const fence::testing::TempDir scratch("lockd-it");
  return scratch;
}

std::string TempDir(const std::string& tag) {
  std::string dir = Scratch().Sub(tag);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The lockd log events (granted/expired/released) of one lock, in the order
// lockd wrote them (all of them are written from its one lease strand).
std::vector<json> LockEvents(const ChildProcess& process, const std::string& name) {
  std::vector<json> events;
  for (const std::string& line : process.Lines()) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("name", "") != name) continue;
    const std::string event = j.value("event", "");
    if (event == "granted" || event == "expired" || event == "released") {
      events.push_back(std::move(j));
    }
  }
  return events;
}

// lockd logs a grant before answering it, but the test reads its output on
// another thread: waits until the `granted` event of `lease_id` is read.
bool WaitForGrantLogged(const Lockd& lockd, const std::string& lease_id) {
  return lockd.process
      ->WaitForLine(
          [&](std::string_view l) {
            return l.find("\"granted\"") != l.npos && l.find(lease_id) != l.npos;
          },
          milliseconds(5000))
      .has_value();
}

// Replays a lock's history: at most one live lease at any point of lockd's
// own order, every end matches the current lease, tokens strictly increase.
void ExpectOneHolderAtATime(const std::vector<json>& events) {
  std::optional<std::uint64_t> holder;
  std::uint64_t last_token = 0;
  for (const json& e : events) {
    const std::string event = e["event"];
    const std::uint64_t token = e["token"];
    if (event == "granted") {
      ASSERT_FALSE(holder.has_value())
          << "token " << token << " granted while token " << *holder
          << " was still live";
      ASSERT_GT(token, last_token) << "tokens must strictly increase";
      holder = token;
      last_token = token;
    } else {
      ASSERT_EQ(holder, std::optional<std::uint64_t>(token))
          << event << " of a lease that was not the holder";
      holder.reset();
    }
  }
}

TEST(LockdTest, HelpAndBadFlags) {
  auto help = ChildProcess::Start(Args({SiblingBinary("fence-lockd"), "--help"}));
  ASSERT_TRUE(help.ok());
  auto status = (*help)->WaitExit(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  const auto lines = (*help)->Lines();
  for (const char* flag : {"--max-ttl-ms", "--idle-timeout-ms", "--request-timeout-ms",
                           "--drain-timeout-ms", "--max-lock-delay-ms"}) {
    EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [flag](const std::string& l) {
      return l.find(flag) != std::string::npos;
    })) << flag;
  }

  for (const auto& [flag, value] : {std::pair{"--max-ttl-ms", "0"},
                                    std::pair{"--idle-timeout-ms", "5"},
                                    std::pair{"--max-lock-delay-ms", "-1"}}) {
    auto bad = ChildProcess::Start(
        Args({SiblingBinary("fence-lockd"), "--data-dir", TempDir("badflag"), flag, value}));
    ASSERT_TRUE(bad.ok());
    status = (*bad)->WaitExit(milliseconds(10000));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << flag;
    EXPECT_EQ((*bad)->LineCount(), 1u) << flag;
  }
}

// The issue's "done when": A holds; B is told who holds and for how long;
// once A's TTL passes without a keep-alive, B gets a higher token.
TEST(LockdTest, SecondOwnerGetsHigherTokenAfterTtl) {
  auto lockd = Lockd::Start(TempDir("done-when"), {"--max-ttl-ms", "5000"});
  ASSERT_TRUE(lockd);
  Reply a = Acquire(*lockd, "job-leader", "A", 2000);
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["name"], "job-leader");
  EXPECT_EQ(a.body["owner"], "A");
  EXPECT_EQ(a.body["ttl_ms"], 2000);
  const std::uint64_t token_a = a.body["token"];
  EXPECT_GE(token_a, 1u);
  const std::string lease_a = a.body["lease_id"];
  EXPECT_EQ(lease_a.size(), 16u);

  Reply status = Get(lockd->base + "/v1/locks/job-leader");
  ASSERT_EQ(status.status, 200) << status.raw;
  EXPECT_EQ(status.body["holder"], "A");
  EXPECT_EQ(status.body["token"], token_a);
  EXPECT_FALSE(status.body.contains("lease_id")) << "GET must not reveal the capability";
  EXPECT_EQ(status.raw.find(lease_a), std::string::npos);

  Reply b = Acquire(*lockd, "job-leader", "B", 2000);
  ASSERT_EQ(b.status, 409) << b.raw;
  EXPECT_EQ(b.body["error"], "held");
  EXPECT_EQ(b.body["holder"], "A");
  EXPECT_EQ(b.body["token"], token_a);
  const std::int64_t expires_in = b.body["expires_in_ms"];
  EXPECT_GE(expires_in, 0);
  EXPECT_LE(expires_in, 2000);
  EXPECT_FALSE(b.body["message"].get<std::string>().empty());

  // B long-polls: answered when A's lease expires, not before.
  Reply b2 = Acquire(*lockd, "job-leader", "B", 2000, 10000);
  ASSERT_EQ(b2.status, 200) << b2.raw;
  EXPECT_EQ(b2.body["owner"], "B");
  EXPECT_GT(b2.body["token"].get<std::uint64_t>(), token_a);
  ASSERT_TRUE(WaitForGrantLogged(*lockd, b2.body["lease_id"]));
  const auto events = LockEvents(*lockd->process, "job-leader");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1]["event"], "expired");
  EXPECT_EQ(events[1]["token"], token_a);
  ExpectOneHolderAtATime(events);

  Reply old = Post(lockd->base + "/v1/leases/" + lease_a + "/keepalive", json::object());
  EXPECT_EQ(old.status, 404) << old.raw;
  EXPECT_EQ(old.body["error"], "unknown_lease");
  Reply steal = Post(lockd->base + "/v1/locks/job-leader/release", {{"lease_id", lease_a}});
  EXPECT_EQ(steal.status, 409) << steal.raw;
  EXPECT_EQ(steal.body["error"], "not_holder");
  EXPECT_EQ(Get(lockd->base + "/v1/locks/job-leader").body["holder"], "B");
}

TEST(LockdTest, KeepAliveAndRelease) {
  auto lockd = Lockd::Start(TempDir("keepalive"), {"--max-ttl-ms", "5000"});
  ASSERT_TRUE(lockd);
  Reply a = Acquire(*lockd, "a/b", "A", 5000);
  ASSERT_EQ(a.status, 200) << a.raw;
  const std::string lease = a.body["lease_id"];
  EXPECT_EQ(a.body["name"], "a/b");

  Reply renewed = Post(lockd->base + "/v1/leases/" + lease + "/keepalive", json::object());
  ASSERT_EQ(renewed.status, 200) << renewed.raw;
  EXPECT_EQ(renewed.body["ttl_ms"], 5000);
  // An empty body is fine for a keep-alive too.
  EXPECT_EQ(PostRaw(lockd->base + "/v1/leases/" + lease + "/keepalive", "").status, 200);

  Reply other = Acquire(*lockd, "other", "B", 5000);
  ASSERT_EQ(other.status, 200);
  Reply wrong = Post(lockd->base + "/v1/locks/a%2Fb/release",
                     {{"lease_id", other.body["lease_id"]}});
  EXPECT_EQ(wrong.status, 409) << wrong.raw;
  EXPECT_EQ(wrong.body["error"], "not_holder");

  Reply released = Post(lockd->base + "/v1/locks/a/b/release", {{"lease_id", lease}});
  ASSERT_EQ(released.status, 200) << released.raw;
  EXPECT_EQ(released.body["token"], a.body["token"]);
  EXPECT_EQ(Get(lockd->base + "/v1/locks/a/b").status, 404);
  Reply again = Post(lockd->base + "/v1/locks/a/b/release", {{"lease_id", lease}});
  EXPECT_EQ(again.status, 404) << again.raw;
  EXPECT_EQ(again.body["error"], "unknown_lease");
  Reply gone = Post(lockd->base + "/v1/leases/" + lease + "/keepalive", json::object());
  EXPECT_EQ(gone.status, 404) << gone.raw;

  Reply next = Acquire(*lockd, "a/b", "C", 1000);
  ASSERT_EQ(next.status, 200);
  EXPECT_GT(next.body["token"].get<std::uint64_t>(),
            other.body["token"].get<std::uint64_t>())
      << "one counter across all locks";
}

// A request lockd must refuse, and the status and error code it must get.
struct BadRequestRow {
  std::string what;
  std::string url;
  std::string body;
  int status;
  std::string error;
};

// Every row is refused with its status and code and a sentence (the
// message), never taken as a request.
void ExpectClearErrors(const std::vector<BadRequestRow>& rows) {
  for (const BadRequestRow& row : rows) {
    SCOPED_TRACE(row.what);
    Reply reply = PostRaw(row.url, row.body);
    EXPECT_EQ(reply.status, row.status) << reply.raw;
    ASSERT_TRUE(reply.body.is_object()) << reply.raw;
    EXPECT_EQ(reply.body.value("error", ""), row.error) << reply.raw;
    EXPECT_GT(reply.body.value("message", "").size(), 10u) << reply.raw;
  }
}

TEST(LockdTest, BadInputGetsAClearError) {
  auto lockd = Lockd::Start(TempDir("bad-input"), {"--max-ttl-ms", "5000",
                                                   "--max-wait-ms", "8000"});
  ASSERT_TRUE(lockd);
  const std::string acquire = lockd->base + "/v1/locks/job/acquire";
  const std::string long_owner(129, 'o');
  const std::string long_name(257, 'n');
  const std::vector<BadRequestRow> rows = {
      {"not JSON", acquire, "owner=A", 400, "bad_request"},
      {"JSON but not an object", acquire, "[1,2]", 400, "bad_request"},
      {"empty body", acquire, "", 400, "bad_request"},
      {"missing owner", acquire, R"({"ttl_ms":1000})", 400, "bad_request"},
      {"owner not a string", acquire, R"({"owner":7,"ttl_ms":1000})", 400, "bad_request"},
      {"empty owner", acquire, R"({"owner":"","ttl_ms":1000})", 400, "bad_request"},
      {"owner too long", acquire, json{{"owner", long_owner}, {"ttl_ms", 1000}}.dump(), 400, "bad_request"},
      {"owner with control character", acquire, R"({"owner":"a\nb","ttl_ms":1000})", 400, "bad_request"},
      {"missing ttl", acquire, R"({"owner":"A"})", 400, "bad_request"},
      {"ttl a string", acquire, R"({"owner":"A","ttl_ms":"1000"})", 400, "bad_request"},
      {"ttl fractional", acquire, R"({"owner":"A","ttl_ms":1000.5})", 400, "bad_request"},
      {"ttl zero", acquire, R"({"owner":"A","ttl_ms":0})", 400, "bad_request"},
      {"ttl negative", acquire, R"({"owner":"A","ttl_ms":-5})", 400, "bad_request"},
      {"ttl above max", acquire, R"({"owner":"A","ttl_ms":5001})", 400, "bad_request"},
      {"ttl huge", acquire, R"({"owner":"A","ttl_ms":18446744073709551615})", 400, "bad_request"},
      {"wait negative", acquire, R"({"owner":"A","ttl_ms":1000,"wait_ms":-1})", 400, "bad_request"},
      {"wait above max", acquire, R"({"owner":"A","ttl_ms":1000,"wait_ms":8001})", 400, "bad_request"},
      {"wait a bool", acquire, R"({"owner":"A","ttl_ms":1000,"wait_ms":true})", 400, "bad_request"},
      {"lock name too long", lockd->base + "/v1/locks/" + long_name + "/acquire",
       R"({"owner":"A","ttl_ms":1000})", 400, "bad_lock_name"},
      {"lock name with dot segment", lockd->base + "/v1/locks/a/../acquire",
       R"({"owner":"A","ttl_ms":1000})", 400, "bad_lock_name"},
      {"lock name with control character", lockd->base + "/v1/locks/a%01b/acquire",
       R"({"owner":"A","ttl_ms":1000})", 400, "bad_lock_name"},
      {"no action", lockd->base + "/v1/locks/job", R"({})", 404, "not_found"},
      {"unknown action", lockd->base + "/v1/locks/job/steal", R"({})", 404, "not_found"},
      {"body too large", acquire,
       json{{"owner", "A"}, {"ttl_ms", 1000}, {"pad", std::string(5000, 'x')}}.dump(),
       413, "too_large"},
      {"release without lease id", lockd->base + "/v1/locks/job/release", R"({})", 400, "bad_request"},
      {"release lease id a number", lockd->base + "/v1/locks/job/release",
       R"({"lease_id":12})", 400, "bad_request"},
      {"release malformed lease id", lockd->base + "/v1/locks/job/release",
       R"({"lease_id":"xyz"})", 400, "bad_lease_id"},
      {"release unknown lease", lockd->base + "/v1/locks/job/release",
       R"({"lease_id":"0123456789abcdef"})", 404, "unknown_lease"},
      {"keepalive malformed lease id", lockd->base + "/v1/leases/nothex/keepalive", "", 400, "bad_lease_id"},
      {"keepalive unknown lease", lockd->base + "/v1/leases/0123456789abcdef/keepalive", "", 404, "unknown_lease"},
      {"keepalive wrong suffix", lockd->base + "/v1/leases/0123456789abcdef/renew", "", 404, "not_found"},
  };
  ExpectClearErrors(rows);
  Reply get_bad = Get(lockd->base + "/v1/locks/" + long_name);
  EXPECT_EQ(get_bad.status, 400) << get_bad.raw;
  Reply wrong_method = Send(Call(http::verb::delete_, acquire));
  EXPECT_EQ(wrong_method.status, 405);
  // None of the above took or disturbed the lock.
  EXPECT_EQ(Get(lockd->base + "/v1/locks/job").status, 404);
  ASSERT_EQ(Acquire(*lockd, "job", "A", 1000).status, 200);

  Reply metrics = Get(lockd->base + "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.raw.find("fence_lockd_refusals_total{reason=\"bad_request\"} 0\n"),
            std::string::npos)
      << "bad requests must be counted";
}

// A grant as one client saw it, and a certainly-live interval of it from
// the client's side: it started no later than the grant's answer arrived,
// and lasted at least until (send time of the last successful acquire or
// keep-alive) + TTL, or until the release was sent. With long waits the
// interval is often empty (the acquire was sent long before the grant).
struct Held {
  std::string owner;
  std::uint64_t token;
  std::string lease_id;
  SteadyTime from;
  SteadyTime until;
};

struct Contention {
  std::vector<Held> history;
  int transport_errors = 0;
  int unexpected = 0;
};

// `clients` threads compete for one lock with `ttl` leases for about three
// seconds: after a grant some release, some renew once and then stop, some
// just let the lease run out.
Contention Contend(const Lockd& lockd, int clients, milliseconds ttl) {
  const auto deadline = Now() + milliseconds(3000);
  std::mutex mu;
  Contention out;  // GUARDED_BY(mu)
  auto client = [&](int n) {
    const std::string owner = "client-" + std::to_string(n);
    for (int round = 0; Now() < deadline && round < 200; ++round) {
      const SteadyTime sent = Now();
      auto response = net::Call(net::JsonCall(
          http::verb::post, lockd.base + "/v1/locks/shared/acquire",
          {{"owner", owner}, {"ttl_ms", ttl.count()}, {"wait_ms", 1000}}));
      const SteadyTime received = Now();
      if (!response.ok() || (response->result_int() != 200 && response->result_int() != 409)) {
        std::lock_guard lock(mu);
        ++(response.ok() ? out.unexpected : out.transport_errors);
        continue;
      }
      if (response->result_int() == 409) continue;
      const json grant = json::parse(response->body());
      const std::string lease = grant["lease_id"];
      SteadyTime valid_until = sent + ttl;
      if ((n + round) % 3 == 0) {  // work a little, then release
        std::this_thread::sleep_for(milliseconds(20));
        const SteadyTime release_sent = Now();
        auto r = net::Call(net::JsonCall(http::verb::post,
                                         lockd.base + "/v1/locks/shared/release",
                                         {{"lease_id", lease}}));
        if (r.ok() && r->result_int() == 200) valid_until = std::min(valid_until, release_sent);
      } else if ((n + round) % 3 == 1) {  // renew once, then stop renewing
        std::this_thread::sleep_for(milliseconds(60));
        const SteadyTime renew_sent = Now();
        auto r = net::Call(
            Call(http::verb::post, lockd.base + "/v1/leases/" + lease + "/keepalive"));
        if (r.ok() && r->result_int() == 200) valid_until = renew_sent + ttl;
      }
      std::lock_guard lock(mu);
      out.history.push_back({owner, grant["token"], lease, received, valid_until});
    }
  };
  std::vector<std::thread> threads;
  for (int n = 0; n < clients; ++n) threads.emplace_back(client, n);
  for (auto& t : threads) t.join();
  return out;
}

// Order comes from lockd's own log and the tokens, never from client clocks,
// so no pair is skipped: every grant a client received is a `granted` event
// of lockd's (same lease id, owner, token), each exactly once, and lockd's
// grants in the order it made them have strictly increasing tokens, each
// after the end of the one before (ExpectOneHolderAtATime).
void ExpectEveryGrantInLockdOrder(const std::vector<Held>& history,
                                  const std::vector<json>& events) {
  std::map<std::string, const Held*> by_lease;
  for (const Held& h : history) {
    EXPECT_TRUE(by_lease.emplace(h.lease_id, &h).second) << "lease " << h.lease_id << " twice";
  }
  std::size_t grants = 0, order_checked = 0, matched = 0;
  std::uint64_t previous = 0;
  for (const json& e : events) {
    if (e["event"] != "granted") continue;
    const std::uint64_t token = e["token"];
    if (grants++ > 0) {
      EXPECT_GT(token, previous) << "lockd granted token " << token << " after " << previous;
      ++order_checked;
    }
    previous = token;
    auto it = by_lease.find(e.value("lease_id", ""));
    if (it == by_lease.end()) continue;
    ++matched;
    EXPECT_EQ(it->second->token, token) << e.dump();
    EXPECT_EQ(it->second->owner, e.value("owner", "")) << e.dump();
  }
  EXPECT_EQ(matched, history.size()) << "a client holds a grant lockd did not log";
  EXPECT_EQ(grants, history.size()) << "lockd logged a grant no client received";
  ExpectOneHolderAtATime(events);
  std::printf("order: %zu grants; token order checked for %zu of %zu hand-offs in lockd's "
              "order; %zu of %zu client grants matched to lockd's log\n",
              grants, order_checked, grants > 0 ? grants - 1 : 0, matched, history.size());
}

// The clients' own clocks: certainly-live intervals never overlap. lockd
// measures leases in whole milliseconds (a lease granted at 1000.9 ms is
// recorded at 1000), so a lease may end up to 1 ms before the client's
// send time + TTL: each interval is shortened by that resolution.
void ExpectCertainIntervalsNeverOverlap(const std::vector<Held>& history) {
  constexpr milliseconds kLockdResolution(1);
  std::size_t certain = 0;
  for (std::size_t i = 0; i < history.size(); ++i) {
    const Held& a = history[i];
    if (a.from >= a.until - kLockdResolution) continue;
    ++certain;
    for (std::size_t j = i + 1; j < history.size(); ++j) {
      const Held& b = history[j];
      if (b.from >= b.until - kLockdResolution) continue;
      EXPECT_FALSE(b.from < a.until - kLockdResolution && a.from < b.until - kLockdResolution)
          << a.owner << " (token " << a.token << ") and " << b.owner << " (token " << b.token
          << ") held the lock at the same time";
    }
  }
  std::printf("overlap: %zu of %zu grants have a certain interval on the client's clock\n",
              certain, history.size());
}

// 16 clients compete for one lock with short TTLs and long waits.
TEST(LockdTest, SixteenClientsNeverHoldTheLockTogether) {
  auto lockd = Lockd::Start(TempDir("contention"), {"--max-ttl-ms", "2000"});
  ASSERT_TRUE(lockd);
  const Contention run = Contend(*lockd, 16, milliseconds(150));
  EXPECT_EQ(run.transport_errors, 0);
  EXPECT_EQ(run.unexpected, 0);
  ASSERT_GE(run.history.size(), 16u) << "too few grants to say anything";

  for (const Held& h : run.history) {
    EXPECT_TRUE(WaitForGrantLogged(*lockd, h.lease_id)) << "no granted event for " << h.lease_id;
  }
  const auto events = LockEvents(*lockd->process, "shared");
  ExpectEveryGrantInLockdOrder(run.history, events);
  ExpectCertainIntervalsNeverOverlap(run.history);
  std::size_t grants = 0, expirations = 0, releases = 0, handoffs = 0;
  for (const json& e : events) {
    if (e["event"] == "granted") {
      ++grants;
      if (e.contains("waited_ms")) ++handoffs;
    }
    if (e["event"] == "expired") ++expirations;
    if (e["event"] == "released") ++releases;
  }
  std::printf("contention: %zu grants, %zu expirations, %zu releases, %zu handoffs to waiters\n",
              grants, expirations, releases, handoffs);
  EXPECT_GT(expirations, 0u);
  EXPECT_GT(releases, 0u);
  EXPECT_GT(handoffs, 0u) << "waiters must have been woken by a free lock";

  Reply metrics = Get(lockd->base + "/metrics");
  EXPECT_NE(metrics.raw.find("fence_lockd_grants_total " + std::to_string(grants) + "\n"),
            std::string::npos)
      << metrics.raw;
}

TEST(LockdTest, KillNineThenRestartNeverReusesTokensOrGrantsInGrace) {
  const std::string dir = TempDir("kill9");
  const std::vector<std::string> flags = {"--max-ttl-ms", "3000", "--token-block", "1"};
  std::uint64_t highest = 0;
  {
    auto lockd = Lockd::Start(dir, flags);
    ASSERT_TRUE(lockd);
    for (int i = 0; i < 5; ++i) {
      Reply r = Acquire(*lockd, "lock-" + std::to_string(i), "A", 3000);
      ASSERT_EQ(r.status, 200) << r.raw;
      highest = std::max<std::uint64_t>(highest, r.body["token"]);
    }
    lockd->process->Kill();
  }
  auto lockd = Lockd::Start(dir, flags);
  ASSERT_TRUE(lockd);
  const SteadyTime refused_sent = Now();
  Reply early = Acquire(*lockd, "lock-0", "B", 3000);
  ASSERT_EQ(early.status, 503) << early.raw;
  EXPECT_EQ(early.body["error"], "starting");
  const std::int64_t retry_after_ms = early.body["retry_after_ms"];
  EXPECT_GT(retry_after_ms, 0);
  EXPECT_LE(retry_after_ms, 3000);
  EXPECT_FALSE(early.retry_after.empty());
  Reply health = Get(lockd->base + "/healthz");
  EXPECT_EQ(health.body["granting"], false) << health.raw;
  EXPECT_EQ(Get(lockd->base + "/readyz").status, 503);

  // A wait longer than the grace is queued and answered after it ends.
  Reply later = Acquire(*lockd, "lock-0", "B", 3000, 10000);
  const SteadyTime granted_received = Now();
  ASSERT_EQ(later.status, 200) << later.raw;
  EXPECT_GT(later.body["token"].get<std::uint64_t>(), highest);
  EXPECT_GE(granted_received + milliseconds(1),
            refused_sent + milliseconds(retry_after_ms))
      << "granted before the grace period ended";

  ASSERT_TRUE(WaitForGrantLogged(*lockd, later.body["lease_id"]));
  const auto lines = lockd->process->Lines();
  auto index_of = [&](const std::string& event) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find("\"event\":\"" + event + "\"") != std::string::npos) return i;
    }
    return lines.size();
  };
  EXPECT_LT(index_of("grace_ended"), index_of("granted"));
  EXPECT_LT(index_of("granted"), lines.size());
  EXPECT_EQ(Get(lockd->base + "/readyz").status, 200);
}

// The grace after a restart must cover the longest lease ever granted, not
// whatever --max-ttl-ms the restart happens to use: lowering the flag and
// restarting must not let a new holder in beside a lease that is still live.
TEST(LockdTest, RestartWithLowerMaxTtlStillWaitsOutTheLongestLease) {
  const std::string dir = TempDir("lower-ttl");
  SteadyTime granted_sent;
  {
    auto lockd = Lockd::Start(dir, {"--max-ttl-ms", "60000"});
    ASSERT_TRUE(lockd);
    granted_sent = Now();
    Reply a = Acquire(*lockd, "job", "A", 60000);
    ASSERT_EQ(a.status, 200) << a.raw;
    lockd->process->Kill();
  }
  auto lockd = Lockd::Start(dir, {"--max-ttl-ms", "1000"});
  ASSERT_TRUE(lockd);
  Reply b = Acquire(*lockd, "job", "B", 1000, 3000);
  const auto a_live_for = milliseconds(60000) -
      std::chrono::duration_cast<milliseconds>(Now() - granted_sent);
  ASSERT_GT(a_live_for.count(), 0);
  EXPECT_NE(b.status, 200) << "B was granted while A's 60 s lease may still be live: "
                           << b.raw;
  EXPECT_EQ(b.body.value("error", ""), "starting") << b.raw;
  EXPECT_GE(b.body.value("retry_after_ms", std::int64_t{0}), a_live_for.count()) << b.raw;
  auto grace = lockd->process->WaitForLine(
      [](std::string_view l) { return l.find("\"grace_started\"") != l.npos; },
      milliseconds(1));
  ASSERT_TRUE(grace.has_value());
  const json started = json::parse(*grace);
  EXPECT_EQ(started.value("grace_ms", 0), 60000) << *grace;
  EXPECT_EQ(started.value("source", ""), "recorded_max_ttl") << *grace;
}

// Two lockds started at the same instant on one fresh data directory:
// exactly one serves; the other exits non-zero with one line saying that the
// directory is locked by another fence-lockd. Repeated (FENCE_LOCKD_RACE_ROUNDS,
// default 50) because the window is narrow; even rounds use an existing
// empty directory, odd rounds one that neither has created yet.
TEST(LockdTest, TwoLockdsOnOneFreshDirectoryNeverBothServe) {
  const char* env = std::getenv("FENCE_LOCKD_RACE_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 50;
  int both_served = 0, clear_refusals = 0, other_refusals = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string dir = TempDir("race-" + std::to_string(round));
    if (round % 2 == 1) dir += "/data";
    std::vector<std::unique_ptr<ChildProcess>> lockds;
    for (int i = 0; i < 2; ++i) {
      auto child = ChildProcess::Start(Args({SiblingBinary("fence-lockd"), "--listen",
                                             "127.0.0.1:0", "--data-dir", dir}));
      ASSERT_TRUE(child.ok());
      lockds.push_back(std::move(*child));
    }
    int serving = 0;
    for (auto& lockd : lockds) {
      if (lockd->WaitForLine([](std::string_view l) { return l.find("\"listening\"") != l.npos; },
                             milliseconds(20000))) {
        ++serving;
        continue;
      }
      const auto status = lockd->WaitExit(milliseconds(10000));
      ASSERT_TRUE(status.has_value()) << "neither listening nor exited";
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << *status;
      const auto lines = lockd->Lines();
      EXPECT_EQ(lines.size(), 1u) << "one line of reason";
      const bool clear = !lines.empty() &&
                         lines.back().find("locked by another running fence-lockd") !=
                             std::string::npos;
      EXPECT_TRUE(clear) << (lines.empty() ? "" : lines.back());
      ++(clear ? clear_refusals : other_refusals);
    }
    EXPECT_EQ(serving, 1);
    if (serving == 2) ++both_served;
    for (auto& lockd : lockds) lockd->Kill();
  }
  std::printf("race: %d rounds, both served in %d, refused clearly in %d, otherwise in %d\n",
              rounds, both_served, clear_refusals, other_refusals);
}

// Runs fence-lockd with `args` expecting it to refuse: exits with
// `expected_code` after exactly one line, which is returned.
std::string RefusedStartLine(std::vector<std::string> args, int expected_code) {
  args.insert(args.begin(), SiblingBinary("fence-lockd"));
  auto child = ChildProcess::Start(Args(args));
  EXPECT_TRUE(child.ok());
  if (!child.ok()) return "";
  auto status = (*child)->WaitExit(milliseconds(10000));
  EXPECT_TRUE(status.has_value());
  if (!status) return "";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == expected_code) << *status;
  const auto lines = (*child)->Lines();
  EXPECT_EQ(lines.size(), 1u) << "a one-line reason";
  return lines.empty() ? "" : lines.back();
}

std::uint64_t GrantedToken(const Lockd& lockd, const std::string& name) {
  Reply r = Acquire(lockd, name, "A", 100, 10000);
  EXPECT_EQ(r.status, 200) << r.raw;
  return r.status == 200 ? r.body["token"].get<std::uint64_t>() : 0;
}

// A corrupt token file stops startup with the safe procedure in its message
// (never "restore a backup": an old copy issues old tokens again); following
// it, the next token is above the floor given.
TEST(LockdTest, CorruptTokenFileRefusesAndTokenFloorRecovers) {
  const std::string dir = TempDir("corrupt");
  {
    auto lockd = Lockd::Start(dir);
    ASSERT_TRUE(lockd);
    ASSERT_EQ(Acquire(*lockd, "x", "A", 1000).status, 200);
    lockd->process->Kill();
  }
  {
    std::ofstream f(dir + "/tokens", std::ios::binary | std::ios::trunc);
    f << std::string(8192, '\x42');
  }
  const std::string line = RefusedStartLine(
      {"--listen", "127.0.0.1:0", "--data-dir", dir}, 1);
  for (const char* expected : {"corrupt", "refusing to start", "move it aside",
                               "--token-floor N", "highest fencing token any store reports",
                               "GET /v1/fences/"}) {
    EXPECT_NE(line.find(expected), std::string::npos) << expected << " in: " << line;
  }
  EXPECT_EQ(line.find("backup"), std::string::npos) << line;

  std::filesystem::rename(dir + "/tokens", dir + "/tokens.corrupt");
  auto lockd = Lockd::Start(dir, {"--token-floor", "5000", "--max-ttl-ms", "300"});
  ASSERT_TRUE(lockd);
  EXPECT_EQ(GrantedToken(*lockd, "x"), 5001u);
}

TEST(LockdTest, TokenFloorOnAFreshDirectoryMakesTheFirstTokenAboveIt) {
  const std::string dir = TempDir("floor-fresh");
  {
    auto lockd = Lockd::Start(dir, {"--token-floor", "41", "--max-ttl-ms", "300"});
    ASSERT_TRUE(lockd);
    EXPECT_EQ(GrantedToken(*lockd, "x"), 42u);
    EXPECT_TRUE(lockd->process->WaitForLine(
        [](std::string_view l) { return l.find("\"token_floor_raised\"") != l.npos; },
        milliseconds(1)));
    lockd->process->Kill();
  }
  // The floor is durable: no flag needed after it.
  auto lockd = Lockd::Start(dir, {"--token-block", "1"});
  ASSERT_TRUE(lockd);
  EXPECT_GT(GrantedToken(*lockd, "x"), 42u);
}

TEST(LockdTest, TokenFloorBelowTheJournalDoesNotLowerIt) {
  const std::string dir = TempDir("floor-below");
  std::uint64_t highest = 0;
  {
    auto lockd = Lockd::Start(dir, {"--token-block", "1"});
    ASSERT_TRUE(lockd);
    for (int i = 0; i < 5; ++i) highest = GrantedToken(*lockd, "x" + std::to_string(i));
    lockd->process->Kill();
  }
  auto lockd = Lockd::Start(dir, {"--token-floor", "2", "--token-block", "1",
                                  "--max-ttl-ms", "1000"});
  ASSERT_TRUE(lockd);
  auto below = lockd->process->WaitForLine(
      [](std::string_view l) { return l.find("\"token_floor_below_journal\"") != l.npos; },
      milliseconds(1));
  ASSERT_TRUE(below.has_value()) << "the operator is told the flag changed nothing";
  EXPECT_NE(below->find("\"journal_floor\":" + std::to_string(highest)), std::string::npos)
      << *below;
  EXPECT_EQ(GrantedToken(*lockd, "x0"), highest + 1);
}

TEST(LockdTest, BadTokenFloorIsRejectedClearly) {
  const std::string dir = TempDir("floor-bad");
  for (const std::string bad : {"", "abc", "-1", "+5", "0", "007", "1e6", " 5", "5 ",
                                "18446744073709551615", "18446744073709551616",
                                "99999999999999999999999"}) {
    SCOPED_TRACE("'" + bad + "'");
    const std::string line = RefusedStartLine(
        {"--listen", "127.0.0.1:0", "--data-dir", dir, "--token-floor", bad}, 2);
    EXPECT_NE(line.find("--token-floor"), std::string::npos) << line;
    EXPECT_NE(line.find("18446744073709551614"), std::string::npos)
        << "says what is expected: " << line;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/tokens")) << "nothing was opened";
}

TEST(LockdTest, TornSlotIsSurvivedWithTokensStillRising) {
  const std::string dir = TempDir("torn");
  std::uint64_t highest = 0;
  {
    auto lockd = Lockd::Start(dir, {"--max-ttl-ms", "200", "--token-block", "1"});
    ASSERT_TRUE(lockd);
    for (int i = 0; i < 3; ++i) {
      Reply r = Acquire(*lockd, "x" + std::to_string(i), "A", 200);
      ASSERT_EQ(r.status, 200);
      highest = r.body["token"];
    }
    lockd->process->Kill();
  }
  {
    // Tear the slot written last (seq 3, at offset 4096): as if the crash
    // had hit that write.
    std::fstream f(dir + "/tokens", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 12);
    f << "torn";
  }
  auto lockd = Lockd::Start(dir, {"--max-ttl-ms", "200", "--token-block", "1"});
  ASSERT_TRUE(lockd);
  EXPECT_TRUE(lockd->process->WaitForLine(
      [](std::string_view l) { return l.find("token_slot_unreadable") != l.npos; },
      milliseconds(1)));
  Reply r = Acquire(*lockd, "x0", "B", 200, 5000);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_GT(r.body["token"].get<std::uint64_t>(), highest);
}

TEST(LockdTest, MetricsPassPromtoolAndTrackHolders) {
  const std::string dir = TempDir("metrics");
  auto lockd = Lockd::Start(dir, {"--max-ttl-ms", "5000"});
  ASSERT_TRUE(lockd);
  Reply a = Acquire(*lockd, "m1", "A", 5000);
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(Acquire(*lockd, "m2", "A", 5000).status, 200);
  ASSERT_EQ(Acquire(*lockd, "m1", "B", 5000).status, 409);
  ASSERT_EQ(Post(lockd->base + "/v1/leases/" + a.body["lease_id"].get<std::string>() +
                     "/keepalive", json::object()).status, 200);
  ASSERT_EQ(Post(lockd->base + "/v1/locks/m2/release", {{"lease_id", "0123456789abcdef"}}).status, 409);

  Reply metrics = Get(lockd->base + "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.raw;
  for (const std::string expected : {
           "fence_lockd_grants_total 2\n",
           "fence_lockd_keepalives_total 1\n",
           "fence_lockd_expirations_total 0\n",
           "fence_lockd_releases_total 0\n",
           "fence_lockd_refusals_total{reason=\"held\"} 1\n",
           "fence_lockd_refusals_total{reason=\"not_holder\"} 1\n",
           "fence_lockd_refusals_total{reason=\"grace\"} 0\n",
           "fence_lockd_refusals_total{reason=\"unknown_lease\"} 0\n",
           "fence_lockd_holders 2\n",
           "fence_lockd_last_token 2\n",
           "fence_lockd_http_request_duration_seconds_bucket",
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }

  fence::testing::ExpectPromtoolAcceptsMetrics(text, dir + "/metrics.txt");

  // Lock names are chosen by clients: no series may carry one.
  EXPECT_EQ(text.find("m1"), std::string::npos) << text;
  EXPECT_EQ(text.find("fence_lockd_lock_token"), std::string::npos) << text;
  ASSERT_EQ(Post(lockd->base + "/v1/locks/m1/release", {{"lease_id", a.body["lease_id"]}}).status, 200);
  Reply after = Get(lockd->base + "/metrics");
  EXPECT_NE(after.raw.find("fence_lockd_holders 1\n"), std::string::npos);
}

TEST(LockdTest, SigtermAnswersWaitersAndExitsCleanly) {
  auto lockd = Lockd::Start(TempDir("sigterm"), {"--max-ttl-ms", "20000"});
  ASSERT_TRUE(lockd);
  ASSERT_EQ(Acquire(*lockd, "busy", "A", 20000).status, 200);
  Reply waited;
  std::thread waiter([&] { waited = Acquire(*lockd, "busy", "B", 20000, 20000); });
  // The waiter is queued once lockd reports it in the lock's status.
  for (int i = 0; i < 200; ++i) {
    if (Get(lockd->base + "/v1/locks/busy").body.value("waiters", 0) == 1) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(Get(lockd->base + "/v1/locks/busy").body.value("waiters", 0), 1);
  const int status = lockd->process->Stop(std::chrono::seconds(10));
  waiter.join();
  EXPECT_EQ(waited.status, 503) << waited.raw;
  EXPECT_EQ(waited.body.value("error", ""), "shutting_down");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// The first line of lockd's output that is event `event` with every field
// of `match`, waiting up to 5 s for it (lockd logs before it answers, but
// the test reads its output on another thread). Null when there is none.
json WaitForEvent(const Lockd& lockd, const std::string& event, const json& match) {
  auto matches = [&](std::string_view line) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("event", "") != event) return false;
    for (const auto& [field, value] : match.items()) {
      if (!j.contains(field) || j[field] != value) return false;
    }
    return true;
  };
  auto line = lockd.process->WaitForLine(matches, milliseconds(5000));
  return line ? json::parse(*line) : json();
}

// Milliseconds since the epoch of a log line's "ts" (UTC, millisecond
// resolution, as common/logging writes it).
std::int64_t LogMillis(const json& line) {
  const std::string ts = line.value("ts", "");
  std::tm tm{};
  int ms = 0;
  EXPECT_EQ(std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%d", &tm.tm_year, &tm.tm_mon,
                        &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
            7)
      << ts;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

struct Failover {
  std::int64_t ttl_ms;
  std::int64_t lock_delay_ms;
  std::int64_t by_log_ms;     // lockd's log: A granted -> B granted
  std::int64_t after_expiry_ms;  // lockd's log: A expired -> B granted
  std::int64_t by_client_ms;  // test's clock: A's acquire sent -> B's answer
};

// A takes `lock` with `ttl` and `lock_delay` and never renews; B waits for
// it. Checks that B is granted no earlier than expiry + lock-delay, by
// lockd's own clock and by the test's, and returns the figures. No upper
// bound is asserted: how late B gets it depends on the machine.
Failover MeasureFailover(const Lockd& lockd, const std::string& lock, int ttl,
                         int lock_delay) {
  Failover f{ttl, lock_delay, 0, 0, 0};
  const SteadyTime sent = Now();
  Reply a = Post(lockd.base + "/v1/locks/" + lock + "/acquire",
                 {{"owner", "A"}, {"ttl_ms", ttl}, {"lock_delay_ms", lock_delay}});
  EXPECT_EQ(a.status, 200) << a.raw;
  Reply b = Acquire(lockd, lock, "B", 1000, 20000);
  const SteadyTime answered = Now();
  EXPECT_EQ(b.status, 200) << b.raw;
  if (a.status != 200 || b.status != 200) return f;
  EXPECT_GT(b.body["token"].get<std::uint64_t>(), a.body["token"].get<std::uint64_t>());
  f.by_client_ms = std::chrono::duration_cast<milliseconds>(answered - sent).count();
  // lockd reads its clock in whole milliseconds, so a lease may end up to
  // 1 ms before send time + TTL (docs/lockd.md, Guarantees); never sooner.
  EXPECT_GE(f.by_client_ms, ttl + lock_delay - 1);

  const json granted_a = WaitForEvent(lockd, "granted", {{"lease_id", a.body["lease_id"]}});
  const json expired_a = WaitForEvent(lockd, "expired", {{"lease_id", a.body["lease_id"]}});
  const json granted_b = WaitForEvent(lockd, "granted", {{"lease_id", b.body["lease_id"]}});
  EXPECT_TRUE(granted_a.is_object() && expired_a.is_object() && granted_b.is_object());
  if (!granted_b.is_object()) return f;
  f.by_log_ms = LogMillis(granted_b) - LogMillis(granted_a);
  f.after_expiry_ms = LogMillis(granted_b) - LogMillis(expired_a);
  // Every line up to B's grant has been read: a delay would come before it.
  const auto lines = lockd.process->Lines();
  auto at = [&](const json& e) {
    return std::find_if(lines.begin(), lines.end(), [&](const std::string& l) {
             return json::parse(l, nullptr, false) == e;
           }) - lines.begin();
  };
  if (lock_delay == 0) {
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
                return l.find("lock_delay_started") != l.npos && l.find(lock) != l.npos;
              }), 0) << "no lock-delay unless asked for";
    return f;
  }
  const json started = WaitForEvent(lockd, "lock_delay_started", {{"lease_id", a.body["lease_id"]}});
  const json ended = WaitForEvent(lockd, "lock_delay_ended", {{"lease_id", a.body["lease_id"]}});
  EXPECT_EQ(started.value("token", 0u), a.body["token"]) << started;
  EXPECT_EQ(started.value("lock_delay_ms", 0), lock_delay) << started;
  EXPECT_EQ(ended.value("token", 0u), a.body["token"]) << ended;
  EXPECT_EQ(ended.value("lock_delay_ms", 0), lock_delay) << ended;
  EXPECT_GE(ended.value("since_expiry_ms", -1), lock_delay) << "lockd's clock: " << ended;
  // lockd's order of events: expired, delay started, delay ended, granted.
  EXPECT_LT(at(expired_a), at(started));
  EXPECT_LT(at(started), at(ended));
  EXPECT_LT(at(ended), at(granted_b));
  return f;
}

// Failover = TTL + lock-delay. Short by default; FENCE_LOCKD_FAILOVER_TABLE=1
// measures the rows of docs/lockd.md.
TEST(LockdTest, LockDelayKeepsTheLockFromEveryoneAfterAnExpiry) {
  auto lockd = Lockd::Start(TempDir("lock-delay"), {"--max-ttl-ms", "5000",
                                                    "--max-lock-delay-ms", "5000"});
  ASSERT_TRUE(lockd);
  std::vector<std::pair<int, int>> rows = {{500, 0}, {500, 1000}};
  if (std::getenv("FENCE_LOCKD_FAILOVER_TABLE") != nullptr) {
    rows = {{1000, 0}, {1000, 500}, {1000, 1000}, {1000, 2000}, {2000, 0}, {2000, 2000}};
  }
  int n = 0;
  for (const auto& [ttl, delay] : rows) {
    SCOPED_TRACE("ttl " + std::to_string(ttl) + " lock-delay " + std::to_string(delay));
    const Failover f = MeasureFailover(*lockd, "failover-" + std::to_string(n++), ttl, delay);
    std::printf("failover ttl_ms=%lld lock_delay_ms=%lld by_log_ms=%lld "
                "after_expiry_ms=%lld by_client_ms=%lld\n",
                static_cast<long long>(f.ttl_ms), static_cast<long long>(f.lock_delay_ms),
                static_cast<long long>(f.by_log_ms), static_cast<long long>(f.after_expiry_ms),
                static_cast<long long>(f.by_client_ms));
  }
}

// During the delay a newcomer is told why, and how long is left.
TEST(LockdTest, AcquireDuringTheLockDelayIsHeldWithTheRemainingDelay) {
  auto lockd = Lockd::Start(TempDir("lock-delay-409"), {"--max-ttl-ms", "5000",
                                                        "--max-lock-delay-ms", "3000"});
  ASSERT_TRUE(lockd);
  Reply a = Post(lockd->base + "/v1/locks/job/acquire",
                 {{"owner", "A"}, {"ttl_ms", 200}, {"lock_delay_ms", 3000}});
  ASSERT_EQ(a.status, 200) << a.raw;
  ASSERT_TRUE(WaitForEvent(*lockd, "lock_delay_started", {{"name", "job"}}).is_object());
  Reply c = Acquire(*lockd, "job", "C", 1000);
  ASSERT_EQ(c.status, 409) << c.raw;
  EXPECT_EQ(c.body["error"], "held");
  const std::int64_t remaining = c.body.value("lock_delay_remaining_ms", -1);
  EXPECT_GT(remaining, 0) << c.raw;
  EXPECT_LE(remaining, 3000) << c.raw;
  EXPECT_NE(c.body["message"].get<std::string>().find("lock-delay"), std::string::npos);
  EXPECT_FALSE(c.body.contains("holder")) << "nobody holds it during the delay";
  Reply status = Get(lockd->base + "/v1/locks/job");
  EXPECT_EQ(status.status, 404) << status.raw;
  EXPECT_GT(status.body.value("lock_delay_remaining_ms", -1), 0) << status.raw;
  Reply too_long = Post(lockd->base + "/v1/locks/other/acquire",
                        {{"owner", "A"}, {"ttl_ms", 200}, {"lock_delay_ms", 3001}});
  EXPECT_EQ(too_long.status, 400) << too_long.raw;
  EXPECT_NE(too_long.body.value("message", "").find("from 0 to 3000"), std::string::npos)
      << too_long.raw;
}

// The audited break: the holder loses the lease at once and is told why,
// the next holder's token is higher, and the log says who, what and why.
TEST(LockdTest, BreakEndsTheLeaseAtOnceAndIsAudited) {
  auto lockd = Lockd::Start(TempDir("break"), {"--max-ttl-ms", "60000"});
  ASSERT_TRUE(lockd);
  const std::string brk = lockd->base + "/v1/locks/job/break";
  Reply none = Post(brk, {{"reason", "nothing held yet"}});
  EXPECT_EQ(none.status, 404) << none.raw;
  EXPECT_EQ(none.body.value("error", ""), "not_held");

  Reply a = Post(lockd->base + "/v1/locks/job/acquire",
                 {{"owner", "A"}, {"ttl_ms", 60000}, {"lock_delay_ms", 60000}});
  ASSERT_EQ(a.status, 200) << a.raw;
  const std::string lease_a = a.body["lease_id"];
  Reply broken = Post(brk, {{"reason", "A hung in GC, ticket OPS-42"}});
  ASSERT_EQ(broken.status, 200) << broken.raw;
  EXPECT_EQ(broken.body["owner"], "A");
  EXPECT_EQ(broken.body["token"], a.body["token"]);
  EXPECT_EQ(broken.body["lease_id"], lease_a);

  Reply renew = Post(lockd->base + "/v1/leases/" + lease_a + "/keepalive", json::object());
  EXPECT_EQ(renew.status, 404) << renew.raw;
  EXPECT_EQ(renew.body.value("error", ""), "lease_broken") << renew.raw;
  Reply next = Acquire(*lockd, "job", "B", 1000);
  ASSERT_EQ(next.status, 200) << "no lock-delay after a break: " << next.raw;
  EXPECT_GT(next.body["token"].get<std::uint64_t>(), a.body["token"].get<std::uint64_t>());

  const json line = WaitForEvent(*lockd, "lease_broken", {{"lease_id", lease_a}});
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line.value("name", ""), "job");
  EXPECT_EQ(line.value("owner", ""), "A");
  EXPECT_EQ(line["token"], a.body["token"]);
  EXPECT_EQ(line.value("reason", ""), "A hung in GC, ticket OPS-42");
  EXPECT_EQ(line.value("caller", "").rfind("127.0.0.1:", 0), 0u) << line;
  EXPECT_EQ(line.value("level", ""), "warning") << line;
  Reply metrics = Get(lockd->base + "/metrics");
  EXPECT_NE(metrics.raw.find("fence_lockd_leases_broken_total 1\n"), std::string::npos)
      << metrics.raw;
}

TEST(LockdTest, BadBreakRequestsGetAClearError) {
  auto lockd = Lockd::Start(TempDir("break-bad"), {"--max-ttl-ms", "60000"});
  ASSERT_TRUE(lockd);
  Reply a = Acquire(*lockd, "job", "A", 60000);
  ASSERT_EQ(a.status, 200) << a.raw;
  const std::string brk = lockd->base + "/v1/locks/job/break";
  const std::vector<BadRequestRow> rows = {
      {"empty body", brk, "", 400, "bad_request"},
      {"not JSON", brk, "reason=x", 400, "bad_request"},
      {"no reason", brk, "{}", 400, "bad_request"},
      {"empty reason", brk, R"({"reason":""})", 400, "bad_request"},
      {"reason a number", brk, R"({"reason":1})", 400, "bad_request"},
      {"reason too long", brk, json{{"reason", std::string(257, 'r')}}.dump(), 400,
       "bad_request"},
      {"reason with a newline", brk, R"({"reason":"a\nb"})", 400, "bad_request"},
      {"bad lock name", lockd->base + "/v1/locks/a/../break", R"({"reason":"x"})", 400,
       "bad_lock_name"},
  };
  ExpectClearErrors(rows);
  EXPECT_EQ(Get(lockd->base + "/v1/locks/job").body.value("holder", ""), "A")
      << "a refused break leaves the lease alone";
}

// Why a break is safe: the next holder's token is higher, and once it
// raises the fence the broken holder's writes are refused by the store.
TEST(LockdTest, BrokenHoldersWritesAreFencedOnceTheNextHolderRaisesTheFence) {
  const std::string dir = TempDir("break-fence");
  auto lockd = Lockd::Start(dir + "/lockd", {"--max-ttl-ms", "60000"});
  ASSERT_TRUE(lockd);
  fence::testing::Daemon store =
      fence::testing::StartDaemon("fence-store", {"--data-dir", dir + "/store"});
  ASSERT_NE(store.port, 0);
  const std::string object = store.Url() + "/v1/objects/job/result";
  auto write = [&](const json& token, const std::string& body) {
    return fence::testing::Request(http::verb::put, object,
                                   {{"Fencing-Token", std::to_string(token.get<std::uint64_t>())}},
                                   body);
  };

  Reply a = Acquire(*lockd, "job", "A", 60000);
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(write(a.body["token"], "A's result").result_int(), 200u);
  ASSERT_EQ(Post(lockd->base + "/v1/locks/job/break", {{"reason", "A hung"}}).status, 200);
  Reply b = Acquire(*lockd, "job", "B", 60000);
  ASSERT_EQ(b.status, 200) << b.raw;
  auto raised = fence::testing::Request(
      http::verb::post, store.Url() + "/v1/fences/job/result",
      {{"Fencing-Token", std::to_string(b.body["token"].get<std::uint64_t>())}});
  ASSERT_EQ(raised.result_int(), 200u) << raised.body();

  auto stale = write(a.body["token"], "A again, after the break");
  EXPECT_EQ(stale.result_int(), 409u) << stale.body();
  EXPECT_NE(stale.body().find("stale_token"), std::string::npos) << stale.body();
  EXPECT_EQ(write(b.body["token"], "B's result").result_int(), 200u);
}

}  // namespace
}  // namespace fence
