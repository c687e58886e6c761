// fence-store as a real process on a free loopback port: every row of the
// API table, every error status and body, concurrency, kill -9 durability,
// disk failure, limits, drain and the unfenced mode.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"
#include "tests/harness/raw_socket.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using Headers = std::vector<std::pair<std::string, std::string>>;

nlohmann::json Json(const net::Response& res) { return JsonBody(res); }

std::string Header(const net::Response& res, std::string_view name) {
  return HeaderValue(res, name);
}

Headers Token(std::string value) { return {{"Fencing-Token", std::move(value)}}; }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-dir", dir_.Sub("data")};
    args.insert(args.end(), extra.begin(), extra.end());
    store_ = StartDaemon("fence-store", args);
    ASSERT_GT(store_.port, 0);
  }

  net::Response Put(const std::string& key, const std::string& token,
                    const std::string& body, Headers extra = {}) {
    Headers h = token.empty() ? Headers{} : Token(token);
    h.insert(h.end(), extra.begin(), extra.end());
    return Request(verb::put, store_.Url("/v1/objects/" + key), h, body);
  }
  net::Response Get(const std::string& key) {
    return Request(verb::get, store_.Url("/v1/objects/" + key));
  }

  // True once `event` has been logged with the given field values.
  bool Logged(std::string_view event, const nlohmann::json& fields) {
    return store_.process
        ->WaitForLine(
            [&](std::string_view line) {
              auto j = nlohmann::json::parse(line, nullptr, false);
              if (j.is_discarded() || j.value("event", "") != event) return false;
              for (const auto& [k, v] : fields.items()) {
                if (!j.contains(k) || j[k] != v) return false;
              }
              return true;
            },
            std::chrono::seconds(10))
        .has_value();
  }

  TempDir dir_{"fence-store-test"};
  Daemon store_;
};

TEST_F(StoreTest, PutAnswersWithTheFenceAndGetReturnsTheObject) {
  auto put = Put("result.csv", "7", "a,b\n1,2\n", {{"Content-Type", "text/csv"}});
  ASSERT_EQ(put.result(), status::ok) << put.body();
  auto j = Json(put);
  EXPECT_EQ(j["key"], "result.csv");
  EXPECT_EQ(j["token"], 7);
  EXPECT_EQ(j["highest_token"], 7);
  EXPECT_EQ(j["size"], 8);
  EXPECT_EQ(j["version"], 1);
  ASSERT_TRUE(j["etag"].is_string());

  auto get = Get("result.csv");
  ASSERT_EQ(get.result(), status::ok);
  EXPECT_EQ(get.body(), "a,b\n1,2\n");
  EXPECT_EQ(Header(get, "Fencing-Token"), "7");
  EXPECT_EQ(Header(get, "ETag"), j["etag"].get<std::string>());
  EXPECT_EQ(Header(get, "Content-Type"), "text/csv");
  EXPECT_EQ(Header(get, "Key-Version"), "1");

  auto head = Request(verb::head, store_.Url("/v1/objects/result.csv"));
  ASSERT_EQ(head.result(), status::ok);
  EXPECT_EQ(head.body(), "");
  EXPECT_EQ(Header(head, "Content-Length"), "8");
  EXPECT_EQ(Header(head, "Fencing-Token"), "7");
  EXPECT_TRUE(Logged("write_accepted", {{"key", "result.csv"}, {"token", 7}}));
}

TEST_F(StoreTest, StaleTokenIsRejectedWithBothFiguresAndLogged) {
  ASSERT_EQ(Put("result.csv", "7", "new").result(), status::ok);
  auto stale = Put("result.csv", "3", "old");
  ASSERT_EQ(stale.result(), status::conflict);
  auto j = Json(stale);
  EXPECT_EQ(j["error"], "stale_token");
  EXPECT_EQ(j["key"], "result.csv");
  EXPECT_EQ(j["token"], 3);
  EXPECT_EQ(j["highest_token"], 7);
  EXPECT_TRUE(j["message"].is_string());
  EXPECT_EQ(Get("result.csv").body(), "new");
  EXPECT_TRUE(Logged("write_fenced",
                     {{"key", "result.csv"}, {"token", 3}, {"highest_token", 7}}));
  // Equal token: the same leader writing again.
  EXPECT_EQ(Put("result.csv", "7", "again").result(), status::ok);
  EXPECT_EQ(Get("result.csv").body(), "again");
}

TEST_F(StoreTest, MissingTokenIs428) {
  auto res = Put("k", "", "x");
  ASSERT_EQ(res.result(), status::precondition_required);
  EXPECT_EQ(Json(res)["error"], "missing_token");
  EXPECT_EQ(Get("k").result(), status::not_found);
}

TEST_F(StoreTest, BadTokenSpellingsAre400) {
  for (const char* bad : {"0", "007", "-1", "+1", " 1x", "0x10", "1e3", "",
                          "18446744073709551616", "1.5", "7,8"}) {
    auto res = Put("k", "", "x", Token(bad));
    ASSERT_EQ(res.result(), status::bad_request) << "'" << bad << "': " << res.body();
    EXPECT_EQ(Json(res)["error"], "bad_token") << bad;
  }
  auto two = Put("k", "", "x", {{"Fencing-Token", "5"}, {"Fencing-Token", "5"}});
  ASSERT_EQ(two.result(), status::bad_request);
  EXPECT_EQ(Json(two)["error"], "bad_token");
  EXPECT_EQ(Get("k").result(), status::not_found);
  auto max = Put("k", "18446744073709551615", "x");
  EXPECT_EQ(max.result(), status::ok) << max.body();
}

TEST_F(StoreTest, BadKeysAre400) {
  for (const char* key : {"a/../b", "..", "a//b", "a%00b", "a%0Ab", "%2E%2E", "a/"}) {
    auto res = Put(key, "1", "x");
    ASSERT_EQ(res.result(), status::bad_request) << key << ": " << res.body();
    EXPECT_EQ(Json(res)["error"], "bad_key");
    EXPECT_EQ(Request(verb::get, store_.Url(std::string("/v1/objects/") + key)).result(),
              status::bad_request)
        << key;
  }
  EXPECT_EQ(Put(std::string(513, 'k'), "1", "x").result(), status::bad_request);
  EXPECT_EQ(Put(std::string(512, 'k'), "1", "x").result(), status::ok);
}

TEST_F(StoreTest, NestedAndEncodedKeysWork) {
  ASSERT_EQ(Put("jobs/2026/out%20put.csv", "1", "x").result(), status::ok);
  EXPECT_EQ(Get("jobs/2026/out%20put.csv").body(), "x");
  auto fence = Request(verb::get, store_.Url("/v1/fences/jobs/2026/out%20put.csv"));
  EXPECT_EQ(Json(fence)["key"], "jobs/2026/out put.csv");
}

TEST_F(StoreTest, DeleteLeavesATombstoneThatKeepsTheFence) {
  ASSERT_EQ(Put("k", "5", "x").result(), status::ok);
  auto stale_delete = Request(verb::delete_, store_.Url("/v1/objects/k"), Token("4"));
  EXPECT_EQ(stale_delete.result(), status::conflict);
  EXPECT_EQ(Request(verb::delete_, store_.Url("/v1/objects/k")).result(),
            status::precondition_required);
  auto del = Request(verb::delete_, store_.Url("/v1/objects/k"), Token("6"));
  ASSERT_EQ(del.result(), status::ok) << del.body();
  EXPECT_EQ(Json(del)["highest_token"], 6);
  auto gone = Get("k");
  EXPECT_EQ(gone.result(), status::not_found);
  EXPECT_EQ(Json(gone)["error"], "not_found");
  EXPECT_EQ(Request(verb::head, store_.Url("/v1/objects/k")).result(), status::not_found);
  auto fence = Request(verb::get, store_.Url("/v1/fences/k"));
  ASSERT_EQ(fence.result(), status::ok);
  EXPECT_EQ(Json(fence)["highest_token"], 6);
  EXPECT_EQ(Put("k", "5", "stale").result(), status::conflict);
}

TEST_F(StoreTest, FencesCanBeRaisedWithoutWriting) {
  EXPECT_EQ(Request(verb::get, store_.Url("/v1/fences/k")).result(), status::not_found);
  ASSERT_EQ(Put("k", "5", "x").result(), status::ok);
  auto raised = Request(verb::post, store_.Url("/v1/fences/k"), Token("9"));
  ASSERT_EQ(raised.result(), status::ok) << raised.body();
  EXPECT_EQ(Json(raised)["highest_token"], 9);
  EXPECT_EQ(Json(raised)["version"], 2);
  EXPECT_EQ(Get("k").body(), "x");
  EXPECT_EQ(Header(Get("k"), "Fencing-Token"), "5");
  auto lower = Request(verb::post, store_.Url("/v1/fences/k"), Token("8"));
  ASSERT_EQ(lower.result(), status::conflict);
  EXPECT_EQ(Json(lower)["highest_token"], 9);
  EXPECT_EQ(Put("k", "8", "y").result(), status::conflict);
  auto fence = Request(verb::get, store_.Url("/v1/fences/k"));
  EXPECT_EQ(Json(fence)["highest_token"], 9);
  EXPECT_EQ(Json(fence)["version"], 2);
  EXPECT_EQ(Request(verb::post, store_.Url("/v1/fences/k")).result(),
            status::precondition_required);
}

Headers Scoped(std::string token, std::string scope) {
  return {{"Fencing-Token", std::move(token)}, {"Fencing-Scope", std::move(scope)}};
}

// The new leader raises its job's scope once and never writes "x"; the old
// leader's write to "x" is refused naming the scope's fence, before its body,
// and the refusal is logged and counted. The scope survives kill -9.
TEST_F(StoreTest, ScopeFenceRefusesKeysTheNewLeaderNeverWrote) {
  EXPECT_EQ(Request(verb::get, store_.Url("/v1/scopes/jobs/etl")).result(), status::not_found);
  auto old_write = Request(verb::put, store_.Url("/v1/objects/x"), Scoped("5", "jobs/etl"), "a");
  ASSERT_EQ(old_write.result(), status::ok) << old_write.body();
  EXPECT_EQ(Json(old_write)["scope"], "jobs/etl");
  EXPECT_EQ(Json(old_write)["scope_highest_token"], 5);
  auto raised = Request(verb::post, store_.Url("/v1/scopes/jobs/etl/fence"), Token("6"));
  ASSERT_EQ(raised.result(), status::ok) << raised.body();
  EXPECT_EQ(Json(raised)["scope"], "jobs/etl");
  EXPECT_EQ(Json(raised)["highest_token"], 6);
  EXPECT_TRUE(Logged("scope_fence_raised", {{"scope", "jobs/etl"}, {"token", 6}}));

  auto stale = Request(verb::put, store_.Url("/v1/objects/x"), Scoped("5", "jobs/etl"), "b");
  ASSERT_EQ(stale.result(), status::conflict) << stale.body();
  auto j = Json(stale);
  EXPECT_EQ(j["error"], "stale_token");
  EXPECT_EQ(j["refused_by"], "scope");
  EXPECT_EQ(j["scope"], "jobs/etl");
  EXPECT_EQ(j["scope_highest_token"], 6);
  EXPECT_EQ(j["key"], "x");
  EXPECT_NE(j["message"].get<std::string>().find("scope 'jobs/etl'"), std::string::npos);
  EXPECT_TRUE(Logged("write_fenced", {{"key", "x"}, {"scope", "jobs/etl"},
                                      {"refused_by", "scope"}, {"highest_token", 6}}));
  EXPECT_EQ(Get("x").body(), "a");
  auto lower = Request(verb::post, store_.Url("/v1/scopes/jobs/etl/fence"), Token("4"));
  EXPECT_EQ(lower.result(), status::conflict);
  EXPECT_EQ(Json(lower)["scope_highest_token"], 6);

  auto metrics = Request(verb::get, store_.Url("/metrics")).body();
  EXPECT_NE(metrics.find("fence_store_fenced_writes_total 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("fence_store_scope_fence_raises_total 2"), std::string::npos);
  EXPECT_EQ(metrics.find("scope=\""), std::string::npos) << "no per-scope labels";

  store_.process->Kill();
  Start();
  auto scope = Json(Request(verb::get, store_.Url("/v1/scopes/jobs%2Fetl")));
  EXPECT_EQ(scope, (nlohmann::json{{"scope", "jobs/etl"}, {"highest_token", 6}, {"version", 2}}));
  EXPECT_EQ(Request(verb::delete_, store_.Url("/v1/objects/x"), Scoped("5", "jobs/etl")).result(),
            status::conflict);
}

TEST_F(StoreTest, BadScopesAre400AndAScopeNeedsAToken) {
  for (const std::string& bad : {std::string(""), std::string("a//b"), std::string(".."),
                                 std::string("a%00b"), std::string(257, 's')}) {
    auto res = Request(verb::put, store_.Url("/v1/objects/k"), Scoped("5", bad), "x");
    ASSERT_EQ(res.result(), status::bad_request) << "'" << bad << "': " << res.body();
    EXPECT_EQ(Json(res)["error"], "bad_scope");
    EXPECT_NE(Json(res)["message"].get<std::string>().find("expected"), std::string::npos);
  }
  auto two = Request(verb::put, store_.Url("/v1/objects/k"),
                     {{"Fencing-Token", "5"}, {"Fencing-Scope", "a"}, {"Fencing-Scope", "b"}},
                     "x");
  EXPECT_EQ(Json(two)["error"], "bad_scope");
  auto route = Request(verb::post, store_.Url("/v1/scopes/a//fence"), Token("5"));
  EXPECT_EQ(route.result(), status::bad_request);
  EXPECT_EQ(Json(route)["error"], "bad_scope");
  auto no_suffix = Request(verb::post, store_.Url("/v1/scopes/a"), Token("5"));
  EXPECT_EQ(Json(no_suffix)["error"], "bad_scope");
  EXPECT_EQ(Request(verb::get, store_.Url("/v1/scopes/a//b")).result(), status::bad_request);
  auto tokenless = Request(verb::put, store_.Url("/v1/objects/k"), {{"Fencing-Scope", "a"}}, "x");
  EXPECT_EQ(tokenless.result(), status::precondition_required);
  EXPECT_EQ(Json(tokenless)["error"], "missing_token");
  EXPECT_EQ(Request(verb::post, store_.Url("/v1/scopes/a/fence")).result(),
            status::precondition_required);
  EXPECT_EQ(Get("k").result(), status::not_found);
}

TEST_F(StoreTest, UnknownEndpointsAndMethodsAreJsonErrors) {
  auto missing = Request(verb::get, store_.Url("/v2/nothing"));
  EXPECT_EQ(missing.result(), status::not_found);
  EXPECT_EQ(Json(missing)["error"], "not_found");
  auto method = Request(verb::patch, store_.Url("/v1/objects/k"));
  EXPECT_EQ(method.result(), status::method_not_allowed);
  EXPECT_EQ(Json(method)["error"], "method_not_allowed");
  EXPECT_NE(Header(method, "Allow").find("PUT"), std::string::npos);
}

TEST_F(StoreTest, HealthReadinessAndMetrics) {
  EXPECT_EQ(Request(verb::get, store_.Url("/healthz")).result(), status::ok);
  EXPECT_EQ(Request(verb::get, store_.Url("/readyz")).result(), status::ok);
  auto metrics = Request(verb::get, store_.Url("/metrics"));
  ASSERT_EQ(metrics.result(), status::ok);
  EXPECT_NE(metrics.body().find("fence_store_fenced_writes_total 0"), std::string::npos)
      << "the fenced counter must exist at 0 from the start";
  ASSERT_EQ(Put("k", "7", "x").result(), status::ok);
  ASSERT_EQ(Put("k", "3", "x").result(), status::conflict);
  ASSERT_EQ(Put("k", "", "x").result(), status::precondition_required);
  metrics = Request(verb::get, store_.Url("/metrics"));
  const std::string& text = metrics.body();
  EXPECT_NE(text.find("fence_store_fenced_writes_total 1"), std::string::npos);
  EXPECT_NE(text.find("fence_store_writes_total{result=\"fenced\"} 1"), std::string::npos);
  EXPECT_NE(text.find("fence_store_writes_total{result=\"accepted\"} 1"), std::string::npos);
  EXPECT_NE(text.find("fence_store_writes_total{result=\"missing_token\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("fence_store_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_EQ(text.find("key=\""), std::string::npos) << "no per-key labels";

  ExpectPromtoolAcceptsMetrics(text, dir_.Sub("metrics.txt"));
}

TEST_F(StoreTest, ObjectLargerThanTheLimitIs413BeforeItsBodyIsRead) {
  store_.process->Stop();
  Start({"--max-object-bytes", "1024"});
  EXPECT_EQ(Put("k", "1", std::string(1024, 'x')).result(), status::ok);
  auto big = Put("k", "2", std::string(1025, 'x'));
  ASSERT_EQ(big.result(), status::payload_too_large);
  auto j = Json(big);
  EXPECT_EQ(j["error"], "too_large");
  EXPECT_EQ(j["max_bytes"], 1024);
  EXPECT_EQ(Get("k").body().size(), 1024u);

  // Announced size over the limit: answered from the header, the client is
  // told before it sends a byte of the body.
  RawConnection conn(store_.port);
  ASSERT_TRUE(conn.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 3\r\n"
                        "Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n"));
  bool closed = false;
  const std::string reply = conn.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_EQ(reply.find("100 Continue"), std::string::npos);

  // A chunked body has no announced size: it is cut off at the limit.
  RawConnection chunked(store_.port);
  std::string request =
      "PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) request += "200\r\n" + std::string(512, 'y') + "\r\n";
  request += "0\r\n\r\n";
  ASSERT_TRUE(chunked.Send(request));
  EXPECT_EQ(chunked.ReadUntilClose(std::chrono::seconds(10), &closed).rfind("HTTP/1.1 413", 0),
            0u);
  // Neither refused body reached storage: the object is the one written with token 1.
  auto kept = Get("k");
  EXPECT_EQ(kept.body(), std::string(1024, 'x'));
  EXPECT_EQ(Header(kept, "Fencing-Token"), "1");
  auto metrics = Request(verb::get, store_.Url("/metrics")).body();
  EXPECT_NE(metrics.find("fence_store_writes_total{result=\"too_large\"} 3"), std::string::npos)
      << metrics;
}

TEST_F(StoreTest, StaleWriteIsRefusedWithoutReadingItsBody) {
  ASSERT_EQ(Put("k", "7", "x").result(), status::ok);
  RawConnection conn(store_.port);
  ASSERT_TRUE(conn.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 3\r\n"
                        "Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"));
  bool closed = false;
  const std::string reply = conn.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 409", 0), 0u) << reply;
  EXPECT_NE(reply.find("\"highest_token\":7"), std::string::npos);
  EXPECT_EQ(reply.find("100 Continue"), std::string::npos);
  EXPECT_TRUE(closed) << "an unread body must close the connection";

  // A write that passes the header check is asked for its body.
  RawConnection fresh(store_.port);
  ASSERT_TRUE(fresh.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 8\r\n"
                         "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_NE(fresh.ReadUntil("100 Continue", std::chrono::seconds(10)).find("100 Continue"),
            std::string::npos);
  ASSERT_TRUE(fresh.Send("new"));
  EXPECT_NE(fresh.ReadUntil("\"highest_token\":8", std::chrono::seconds(10))
                .find("HTTP/1.1 200"),
            std::string::npos);
  EXPECT_EQ(Get("k").body(), "new");
}

// A stale write whose small body comes anyway (no Expect) is answered 409
// and its body read and dropped, so the connection serves the next request,
// pipelined or not; a large unread body still closes it.
// The Content-Type is stored in the key's record and sent back on GET: a
// value that is not visible ASCII is refused before anything is written
// (it once reached the record encoder, which threw and took the store down).
TEST_F(StoreTest, ContentTypeThatIsNotVisibleAsciiIs400AndTheStoreLives) {
  RawConnection conn(store_.port);
  ASSERT_TRUE(conn.Send("PUT /v1/objects/ct HTTP/1.1\r\nHost: x\r\nFencing-Token: 9\r\n"
                        "Content-Type: text/\xff\xfe\r\nContent-Length: 2\r\n\r\nhi"));
  auto reply = conn.ReadResponse(std::chrono::seconds(10));
  ASSERT_TRUE(reply.has_value()) << "no answer: the store died or hung";
  EXPECT_EQ(reply->rfind("HTTP/1.1 400", 0), 0u) << *reply;
  EXPECT_NE(reply->find("\"bad_content_type\""), std::string::npos) << *reply;
  EXPECT_EQ(Get("ct").result(), status::not_found);  // nothing was written

  const std::string long_type = "text/" + std::string(300, 'x');
  EXPECT_EQ(Put("ct", "9", "hi", {{"Content-Type", long_type}}).result(), status::bad_request);
  auto put = Put("ct", "9", "hi", {{"Content-Type", "text/plain; charset=utf-8"}});
  ASSERT_EQ(put.result(), status::ok) << put.body();
  EXPECT_EQ(Header(Get("ct"), "Content-Type"), "text/plain; charset=utf-8");
}

TEST_F(StoreTest, StaleWriteWithASmallBodyKeepsTheConnection) {
  ASSERT_EQ(Put("k", "7", "x").result(), status::ok);
  RawConnection conn(store_.port);
  const std::string body(256, 'b');
  const std::string stale = "PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 3\r\n"
                            "Content-Length: 256\r\n\r\n" + body;
  const std::string get = "GET /v1/objects/k HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(conn.Send(stale));
  auto first = conn.ReadResponse(std::chrono::seconds(10));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->rfind("HTTP/1.1 409", 0), 0u) << *first;
  EXPECT_EQ(first->find("Connection: close"), std::string::npos) << *first;
  ASSERT_TRUE(conn.Send(stale + get));  // pipelined: the body, then the next request
  auto second = conn.ReadResponse(std::chrono::seconds(10));
  auto third = conn.ReadResponse(std::chrono::seconds(10));
  ASSERT_TRUE(second.has_value() && third.has_value());
  EXPECT_EQ(second->rfind("HTTP/1.1 409", 0), 0u) << *second;
  EXPECT_EQ(third->rfind("HTTP/1.1 200", 0), 0u) << *third;
  EXPECT_NE(third->find("\r\n\r\nx"), std::string::npos) << *third;
  EXPECT_FALSE(conn.PeerClosed());

  RawConnection large(store_.port);
  ASSERT_TRUE(large.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 3\r\n"
                         "Content-Length: 1000000\r\n\r\n"));
  bool closed = false;
  const std::string reply = large.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 409", 0), 0u) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
  EXPECT_TRUE(closed);
}

TEST_F(StoreTest, OversizedHeaderIs431AndGarbageIs400) {
  RawConnection conn(store_.port);
  ASSERT_TRUE(conn.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                        std::string(64ul * 1024, 'a') + "\r\n\r\n"));
  bool closed = false;
  std::string reply = conn.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 200);
  EXPECT_NE(reply.find("header_too_large"), std::string::npos);

  RawConnection garbage(store_.port);
  ASSERT_TRUE(garbage.Send("THIS IS NOT HTTP\r\n\r\n"));
  reply = garbage.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_NE(reply.find("bad_request"), std::string::npos);
}

TEST_F(StoreTest, SlowAndIdleClientsAreDropped) {
  store_.process->Stop();
  Start({"--idle-timeout-ms", "300", "--request-timeout-ms", "300"});
  bool closed = false;
  RawConnection idle(store_.port);
  idle.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_TRUE(closed) << "an idle connection must be closed";

  RawConnection slow_header(store_.port);
  ASSERT_TRUE(slow_header.Send("GET /healthz HTTP/1.1\r\nHo"));
  slow_header.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_TRUE(closed) << "a header that never completes must not hold the connection";

  RawConnection slow_body(store_.port);
  ASSERT_TRUE(slow_body.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 1\r\n"
                             "Content-Length: 100\r\n\r\nonly-part"));
  slow_body.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_TRUE(closed) << "a body that never completes must not hold the connection";
  EXPECT_EQ(Get("k").result(), status::not_found);
  // The server still serves everyone else.
  EXPECT_EQ(Request(verb::get, store_.Url("/healthz")).result(), status::ok);
}

TEST_F(StoreTest, ConnectionsAboveTheCapGet503) {
  store_.process->Stop();
  Start({"--max-connections", "2"});
  RawConnection first(store_.port);
  RawConnection second(store_.port);
  // Each held connection is served (proves the server registered it).
  for (RawConnection* c : {&first, &second}) {
    ASSERT_TRUE(c->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_NE(c->ReadUntil("\"ok\"", std::chrono::seconds(10)).find("200 OK"), std::string::npos);
  }
  RawConnection third(store_.port);
  bool closed = false;
  const std::string reply = third.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_NE(reply.find("too_many_connections"), std::string::npos);
}

TEST_F(StoreTest, SigtermFinishesTheRequestInFlightThenExitsZero) {
  RawConnection conn(store_.port);
  ASSERT_TRUE(conn.Send("PUT /v1/objects/k HTTP/1.1\r\nHost: x\r\nFencing-Token: 4\r\n"
                        "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"));
  // "100 Continue" says the server has taken the request in: it is in flight.
  ASSERT_NE(conn.ReadUntil("100 Continue", std::chrono::seconds(10)).find("100 Continue"),
            std::string::npos);
  ASSERT_TRUE(conn.Send("01234"));
  ASSERT_TRUE(store_.process->Signal(SIGTERM));
  ASSERT_TRUE(Logged("draining", {}));
  ASSERT_TRUE(conn.Send("56789"));
  bool closed = false;
  const std::string reply = conn.ReadUntilClose(std::chrono::seconds(10), &closed);
  EXPECT_NE(reply.find("HTTP/1.1 200"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos);
  auto status = store_.process->WaitExit(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  Start();
  EXPECT_EQ(Get("k").body(), "0123456789");
}

TEST_F(StoreTest, ConcurrentWritersEndWithTheHighestAcceptedObject) {
  constexpr int kClients = 8;
  constexpr int kWritesPerClient = 40;
  std::mutex mu;
  std::uint64_t max_accepted = 0;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(1000 + c);
      std::uint64_t last_highest_seen = 0;
      for (int i = 0; i < kWritesPerClient; ++i) {
        const std::uint64_t t = 1 + rng() % 500;
        auto res = Put("shared", std::to_string(t), "token " + std::to_string(t));
        auto j = Json(res);
        const std::uint64_t highest = j["highest_token"].get<std::uint64_t>();
        // Through one client's eyes the fence never goes down.
        EXPECT_GE(highest, last_highest_seen);
        last_highest_seen = highest;
        if (res.result() == status::ok) {
          EXPECT_EQ(highest, t);
          std::lock_guard lock(mu);
          max_accepted = std::max(max_accepted, t);
        } else {
          EXPECT_EQ(res.result(), status::conflict) << res.body();
          EXPECT_LT(j["token"].get<std::uint64_t>(), highest);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  auto get = Get("shared");
  ASSERT_EQ(get.result(), status::ok);
  EXPECT_EQ(get.body(), "token " + std::to_string(max_accepted));
  EXPECT_EQ(Header(get, "Fencing-Token"), std::to_string(max_accepted));
  EXPECT_EQ(Json(Request(verb::get, store_.Url("/v1/fences/shared")))["highest_token"],
            max_accepted);
}

TEST_F(StoreTest, KillNineLosesNoAcknowledgedWrite) {
  // A burst of acknowledged writes from several clients, then SIGKILL with
  // no chance to flush anything.
  constexpr int kClients = 4;
  constexpr int kKeysPerClient = 50;
  std::mutex mu;
  std::map<std::string, std::pair<std::uint64_t, std::string>> acknowledged;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kKeysPerClient; ++i) {
        const std::string key = "burst/" + std::to_string(c) + "/" + std::to_string(i);
        const std::uint64_t token = 100 + i;
        const std::string body = key + " @" + std::to_string(token);
        if (Put(key, std::to_string(token), body).result() == status::ok) {
          std::lock_guard lock(mu);
          acknowledged[key] = {token, body};
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_EQ(acknowledged.size(), static_cast<std::size_t>(kClients * kKeysPerClient));
  ASSERT_EQ(Request(verb::post, store_.Url("/v1/fences/fenced-only"), Token("77")).result(),
            status::ok);
  ASSERT_EQ(Request(verb::delete_, store_.Url("/v1/objects/burst/0/0"), Token("500")).result(),
            status::ok);
  store_.process->Kill();

  Start();
  for (const auto& [key, written] : acknowledged) {
    if (key == "burst/0/0") continue;
    auto get = Get(key);
    ASSERT_EQ(get.result(), status::ok) << key;
    EXPECT_EQ(get.body(), written.second);
    EXPECT_EQ(Header(get, "Fencing-Token"), std::to_string(written.first));
  }
  EXPECT_EQ(Get("burst/0/0").result(), status::not_found);
  EXPECT_EQ(Put("burst/0/0", "499", "x").result(), status::conflict);
  EXPECT_EQ(Json(Request(verb::get, store_.Url("/v1/fences/fenced-only")))["highest_token"], 77);
  EXPECT_EQ(Put("fenced-only", "76", "x").result(), status::conflict);
}

TEST_F(StoreTest, UnfencedModeAcceptsStaleWritesAndSaysSoOnEveryResponse) {
  store_.process->Stop();
  Start({"--fencing", "off"});
  auto first = Put("k", "9", "new");
  ASSERT_EQ(first.result(), status::ok);
  EXPECT_EQ(Header(first, "Fencing"), "off");
  auto stale = Put("k", "3", "stale");
  ASSERT_EQ(stale.result(), status::ok);
  EXPECT_EQ(Json(stale)["highest_token"], 9);
  EXPECT_EQ(Get("k").body(), "stale");
  EXPECT_EQ(Header(Get("k"), "Fencing"), "off");
  EXPECT_EQ(Header(Request(verb::get, store_.Url("/nope")), "Fencing"), "off");
  EXPECT_EQ(Put("k", "", "tokenless").result(), status::ok);
  // Turning fencing back on keeps the highest token ever seen.
  store_.process->Stop();
  Start();
  EXPECT_EQ(Put("k", "8", "x").result(), status::conflict);
  EXPECT_EQ(Header(Get("k"), "Fencing"), "");
}

// A real disk failure: the store runs under a file-size limit (RLIMIT_FSIZE,
// set with util-linux prlimit), so a large write fails inside the kernel with
// EFBIG. The client gets 507, nothing is acknowledged, and what was
// acknowledged before is intact.
TEST_F(StoreTest, DiskFailureIs507AndAcknowledgesNothing) {
  store_.process->Stop();
  ChildProcess::Options options;
  options.argv = {"/usr/bin/prlimit", "--fsize=4194304", "--", SiblingBinary("fence-store"),
                  "--data-dir", dir_.Sub("data"), "--listen", "127.0.0.1:0"};
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok());
  store_.process = std::move(*child);
  auto port = store_.process->WaitForListeningPort();
  ASSERT_TRUE(port.ok()) << port.error().message;
  store_.port = *port;

  ASSERT_EQ(Put("small", "1", "kept").result(), status::ok);
  auto big = Put("big", "1", std::string(6ul * 1024 * 1024, 'b'));
  ASSERT_EQ(big.result(), status::insufficient_storage) << big.body();
  EXPECT_EQ(Json(big)["error"], "storage_error");
  EXPECT_EQ(Get("big").result(), status::not_found);
  EXPECT_EQ(Get("small").body(), "kept");
  EXPECT_EQ(Request(verb::get, store_.Url("/readyz")).result(), status::service_unavailable);
  EXPECT_TRUE(Logged("write_failed", {{"key", "big"}}));
  auto metrics = Request(verb::get, store_.Url("/metrics")).body();
  EXPECT_NE(metrics.find("fence_store_writes_total{result=\"storage_error\"} 1"),
            std::string::npos);
  store_.process->Kill();

  Start();
  EXPECT_EQ(Get("small").body(), "kept");
  EXPECT_EQ(Get("big").result(), status::not_found);
}

TEST(StoreCommandLineTest, BadFlagsAndUnusableDataDirsExitWithOneLine) {
  TempDir dir;
  std::ofstream(dir.Sub("a-file")) << "not a directory";
  const std::vector<std::vector<std::string>> kCases = {
      {"--bogus"},
      {"--data-dir", dir.Sub("d"), "--fencing", "maybe"},
      {"--data-dir", dir.Sub("d"), "--listen", "localhost:80"},
      {"--data-dir", dir.Sub("d"), "--listen", "127.0.0.1:99999"},
      {"--data-dir", dir.Sub("d"), "--max-object-bytes", "0"},
      {"--data-dir", dir.Sub("d"), "--wal-recovery", "point-in-time"},
      {"--data-dir", dir.Sub("d"), "--max-inflight-bytes", "1000", "--max-object-bytes", "600"},
      {"--data-dir", dir.Sub("a-file")},
      {},
  };
  for (const auto& args : kCases) {
    ChildProcess::Options options;
    options.argv = {SiblingBinary("fence-store")};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    auto child = ChildProcess::Start(options);
    ASSERT_TRUE(child.ok());
    auto status = (*child)->WaitExit(std::chrono::seconds(20));
    ASSERT_TRUE(status.has_value());
    EXPECT_NE(WEXITSTATUS(*status), 0);
    const auto lines = (*child)->Lines();
    ASSERT_EQ(lines.size(), 1u) << (lines.empty() ? "" : lines[0]);
    EXPECT_EQ(lines[0].rfind("fence-store: ", 0), 0u) << lines[0];
  }
  ChildProcess::Options help;
  help.argv = {SiblingBinary("fence-store"), "--help"};
  auto child = ChildProcess::Start(help);
  ASSERT_TRUE(child.ok());
  auto status = (*child)->WaitExit(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  std::string text;
  for (const auto& l : (*child)->Lines()) text += l + "\n";
  for (const char* flag : {"--max-object-bytes", "--wal-recovery", "--drain-timeout-ms",
                           "--max-inflight-bytes", "--max-storage-queue"}) {
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace fence::testing
