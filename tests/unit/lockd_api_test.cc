// The validation of lockd's request bodies: every bad value is refused with
// "bad_request" and a sentence saying what was expected.
#include "lockd/http_api.h"

#include <gtest/gtest.h>

namespace fence::lockd {
namespace {

struct BodyRow {
  const char* body;
  bool ok;
  const char* message_part;  // of the error, or "" when ok
};

TEST(LockdApiTest, LockDelayIsValidatedAgainstTheCap) {
  const ApiOptions options{.max_ttl = Millis(5000),
                           .max_wait = Millis(5000),
                           .max_lock_delay = Millis(3000)};
  const BodyRow rows[] = {
      {R"({"owner":"a","ttl_ms":100})", true, ""},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":0})", true, ""},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":3000})", true, ""},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":3001})", false,
       "field 'lock_delay_ms' is 3001; expected an integer number of milliseconds "
       "from 0 to 3000"},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":-1})", false,
       "field 'lock_delay_ms' is -1; expected"},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":1.5})", false,
       "'lock_delay_ms' is not a whole number; expected"},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":"500"})", false,
       "'lock_delay_ms' is a string; expected"},
      {R"({"owner":"a","ttl_ms":100,"lock_delay_ms":18446744073709551615})", false,
       "'lock_delay_ms' is too large"},
  };
  for (const BodyRow& row : rows) {
    SCOPED_TRACE(row.body);
    auto parsed = ParseAcquireBody(row.body, options);
    ASSERT_EQ(parsed.ok(), row.ok) << (parsed.ok() ? "" : parsed.error().message);
    if (!row.ok) {
      EXPECT_EQ(parsed.error().code, "bad_request");
      EXPECT_NE(parsed.error().message.find(row.message_part), std::string::npos)
          << parsed.error().message;
    }
  }
  EXPECT_EQ(ParseAcquireBody(R"({"owner":"a","ttl_ms":100})", options)->lock_delay,
            Millis(0))
      << "no lock-delay unless asked for";
  EXPECT_EQ(ParseAcquireBody(R"({"owner":"a","ttl_ms":1,"lock_delay_ms":250})", options)
                ->lock_delay,
            Millis(250));
}

TEST(LockdApiTest, BreakReasonIsRequiredPrintableAndBounded) {
  const std::string longest(kMaxBreakReasonBytes, 'x');
  const std::string too_long = R"({"reason":")" + longest + R"(x"})";
  const std::string ok_longest = R"({"reason":")" + longest + R"("})";
  const BodyRow rows[] = {
      {R"({"reason":"holder hung, ticket OPS-1"})", true, ""},
      {ok_longest.c_str(), true, ""},
      {"", false, "not valid JSON; expected an object such as {\"reason\""},
      {"[]", false, "is a JSON array; expected"},
      {"{}", false, "field 'reason' is missing; expected"},
      {R"({"reason":""})", false, "field 'reason' is 0 bytes; expected 1 to 256"},
      {too_long.c_str(), false, "field 'reason' is 257 bytes; expected 1 to 256"},
      {R"({"reason":7})", false, "field 'reason' is a number; expected a string"},
      {R"({"reason":"a\nb"})", false, "control character; expected printable text"},
  };
  for (const BodyRow& row : rows) {
    SCOPED_TRACE(std::string(row.body).substr(0, 60));
    auto parsed = ParseBreakBody(row.body);
    ASSERT_EQ(parsed.ok(), row.ok) << (parsed.ok() ? "" : parsed.error().message);
    if (!row.ok) {
      EXPECT_EQ(parsed.error().code, "bad_request");
      EXPECT_NE(parsed.error().message.find(row.message_part), std::string::npos)
          << parsed.error().message;
    }
  }
}

TEST(LockdApiTest, BrokenLeaseIsNotFoundLikeAnUnknownOne) {
  EXPECT_EQ(StatusForError("lease_broken"), net::http::status::not_found);
  EXPECT_EQ(StatusForError("not_held"), net::http::status::not_found);
}

}  // namespace
}  // namespace fence::lockd
