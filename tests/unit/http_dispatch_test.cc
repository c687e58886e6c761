// The in-process seam of the HTTP stack (net::DispatchBytes) that the fuzz
// targets use: the same router and limits as a connection, without a socket.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/http_server.h"

namespace fence::net {
namespace {

std::vector<Route> EchoRoutes() {
  Route echo;
  echo.name = "echo";
  echo.method = http::verb::post;
  echo.path = "/echo/";
  echo.prefix = true;
  echo.body_limit = 16;
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

}  // namespace
}  // namespace fence::net
