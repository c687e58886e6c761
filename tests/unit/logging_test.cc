#include "common/logging.h"

#include <gtest/gtest.h>

namespace fence::log {
namespace {

TEST(LoggingTest, TheEventComesFirstThenTheFieldsAsJsonMembers) {
  EXPECT_EQ(FormatEventBody("write_fenced", {{"token", 3}, {"key", "k"}, {"ok", true}}),
            R"("event":"write_fenced","key":"k","ok":true,"token":3)");
  EXPECT_EQ(FormatEventBody("started", nlohmann::json::object()), R"("event":"started")");
  EXPECT_EQ(FormatEventBody("nested", {{"a", {{"b", nullptr}}}, {"list", {1, 2}}}),
            R"("event":"nested","a":{"b":null},"list":[1,2])");
}

TEST(LoggingTest, ClientBytesCannotBreakTheLine) {
  const std::string bad_utf8 = "k\xff\"\n";
  const std::string body = FormatEventBody("write_refused", {{"key", bad_utf8}});
  EXPECT_EQ(body, "\"event\":\"write_refused\",\"key\":\"k\xEF\xBF\xBD\\\"\\n\"");
  EXPECT_EQ(nlohmann::json::parse("{" + body + "}").at("key"), "k\xEF\xBF\xBD\"\n");
}

TEST(LoggingTest, AFieldNamedEventDoesNotRepeatTheKey) {
  const std::string body = FormatEventBody("real", {{"event", "fake"}, {"x", 1}});
  EXPECT_EQ(body, R"("event":"real","x":1)");
}

}  // namespace
}  // namespace fence::log
