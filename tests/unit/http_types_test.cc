#include "common/http_types.h"

#include <gtest/gtest.h>

namespace fence::net {
namespace {

TEST(ErrorResponseTest, CodeFirstThenFiguresThenTheSentence) {
  const Response res = ErrorResponse(
      http::status::conflict,
      MakeError("stale_token", "token 3 is lower", {{"token", 3}, {"key", "k\xff"}}));
  EXPECT_EQ(res.result(), http::status::conflict);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res.body(),
            "{\"error\":\"stale_token\",\"key\":\"k\xEF\xBF\xBD\",\"token\":3,"
            "\"message\":\"token 3 is lower\"}\n");
}

TEST(ErrorResponseTest, DetailsCannotRepeatTheCodeOrTheMessage) {
  const Response res = ErrorResponse(
      http::status::bad_request,
      MakeError("bad_key", "why", {{"error", "other"}, {"message", "other"}}));
  const auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body.at("error"), "bad_key");
  EXPECT_EQ(body.at("message"), "why");
  EXPECT_EQ(body.size(), 2u);
}

}  // namespace
}  // namespace fence::net
