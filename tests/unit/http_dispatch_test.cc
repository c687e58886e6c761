// The in-process seam of the HTTP stack (net::DispatchBytes) that the fuzz
// targets use: the same router and limits as a connection, without a socket.
#include <gtest/gtest.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/http_server.h"

namespace fence::net {
namespace {

// The echo route, whose precheck refuses any tail starting with "no".
std::vector<Route> EchoRoutes() {
  Route echo;
  echo.name = "echo";
  echo.method = http::verb::post;
  echo.path = "/echo/";
  echo.prefix = true;
  echo.body_limit = 16;
  echo.precheck = [](const RequestHeader&, std::string_view tail, PrecheckDone done) {
    if (tail.rfind("no", 0) == 0) {
      return done(Refuse(ErrorResponse(http::status::conflict, "refused", "no")));
    }
    done(Admit());
  };
  echo.handle = [](Request request, Respond respond) {
    respond(JsonResponse(http::status::ok,
                         {{"tail", request.tail}, {"body", request.message.body()}}));
  };
  return {echo};
}

// Serves one request synchronously (the echo route answers at once).
std::pair<std::optional<Response>, std::size_t> Serve(const std::string& bytes) {
  std::optional<Response> answer;
  const std::size_t used = DispatchBytes(EchoRoutes(), ServerOptions{}, bytes,
                                         [&](std::optional<Response> r) { answer = std::move(r); });
  return {std::move(answer), used};
}

// Found by fuzz/lockd_http_fuzz: the seam parsed the body before checking
// the declared length against the route's limit, and Beast's string body
// reserved all 3*10^17 declared bytes. A connection checks the length first.
TEST(HttpDispatchTest, HugeDeclaredLengthIsRefusedWithoutReadingTheBody) {
  auto [answer, used] = Serve(
      "POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000000000029\r\n\r\n{}");
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->result(), http::status::payload_too_large);
  EXPECT_FALSE(answer->keep_alive());
}

TEST(HttpDispatchTest, ServesPipelinedRequestsOneAtATime) {
  const std::string first = "POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  const std::string second = "POST /echo/b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  auto [answer, used] = Serve(first + second);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->result(), http::status::ok);
  EXPECT_NE(answer->body().find(R"("body":"hi")"), std::string::npos) << answer->body();
  EXPECT_TRUE(answer->keep_alive());
  EXPECT_EQ(used, first.size());
}

// As a connection does: a refused request's small body is read and dropped
// and the connection kept; one the client holds back (Expect:
// 100-continue) or a body too large to read closes it.
TEST(HttpDispatchTest, ARefusalKeepsTheConnectionOnlyForASmallBodyOnItsWay) {
  const std::string small = "POST /echo/no HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  auto [kept, kept_used] = Serve(small + "GET /next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->result(), http::status::conflict);
  EXPECT_TRUE(kept->keep_alive());
  EXPECT_EQ(kept_used, small.size());
  auto [held, held_used] = Serve(
      "POST /echo/no HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(held.has_value());
  EXPECT_FALSE(held->keep_alive());
  auto [large, large_used] =
      Serve("POST /echo/no HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n");
  ASSERT_TRUE(large.has_value());
  EXPECT_FALSE(large->keep_alive());
}

TEST(HttpDispatchTest, RequestCutShortIsNotAnswered) {
  auto [answer, used] = Serve("POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab");
  EXPECT_FALSE(answer.has_value());
}

TEST(HttpDispatchTest, MalformedAndUnroutedRequestsGetJsonErrors) {
  auto [bad, bad_used] = Serve("GET / HTTP/9.9\r\n\r\n");
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->result(), http::status::bad_request);
  EXPECT_NE(bad->body().find(R"("error":"bad_request")"), std::string::npos);
  auto [lost, lost_used] = Serve("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->result(), http::status::not_found);
}

// Connections write SerializeHead's text and then the body: it must be what
// Beast's own serializer writes for every kind of answer the daemons give.
TEST(SerializeHeadTest, HeadAndBodyAreWhatBeastsSerializerWrites) {
  std::vector<Response> answers;
  ServerOptions options;
  options.response_headers = {{"Fencing", "off"}};
  answers.push_back(JsonResponse(http::status::ok, {{"key", "k"}, {"token", 7}}));
  answers.push_back(ErrorResponse(http::status::conflict, "stale_token", "token 3 is lower"));
  Response head{http::status::ok, 11};
  head.set(http::field::content_type, "text/plain");
  head.set(http::field::etag, "\"abc\"");
  head.content_length(1234);  // a HEAD answer: the length of a body not sent
  answers.push_back(head);
  Response allow{http::status::method_not_allowed, 11};
  allow.set(http::field::allow, "GET, PUT");
  allow.insert("X-Twice", "1");
  allow.insert("X-Twice", "2");
  answers.push_back(allow);
  Response custom{http::status::service_unavailable, 11};
  custom.reason("Try Later");
  custom.set(http::field::retry_after, "1");
  custom.body() = std::string(300, 'b');
  answers.push_back(custom);
  Response old{http::status::ok, 10};
  old.body() = "x";
  answers.push_back(old);
  for (std::size_t i = 0; i < answers.size(); ++i) {
    for (const bool keep : {true, false}) {
      Response response = answers[i];
      const bool is_head = i == 2;
      FinishResponse(response, options, keep, is_head);
      std::ostringstream beast_wrote;
      beast_wrote << response;
      EXPECT_EQ(SerializeHead(response) + response.body(), beast_wrote.str())
          << "answer " << i << (keep ? " keep-alive" : " close");
    }
  }
}

}  // namespace
}  // namespace fence::net
