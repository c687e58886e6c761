#include "core/key_record.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/etag.h"

namespace fence {
namespace {

TEST(KeyRecordTest, RoundTrips) {
  KeyRecord r;
  r.highest_token = Token(18446744073709551615ULL);
  r.has_object = true;
  r.object_token = Token(41);
  r.size = 12;
  r.etag = ComputeEtag("hello world!");
  r.content_type = "text/csv";
  r.version = 1234;
  auto back = DecodeKeyRecord(EncodeKeyRecord(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->highest_token, r.highest_token);
  EXPECT_EQ(back->object_token, r.object_token);
  EXPECT_TRUE(back->has_object);
  EXPECT_EQ(back->size, 12u);
  EXPECT_EQ(back->etag, r.etag);
  EXPECT_EQ(back->content_type, "text/csv");
  EXPECT_FALSE(back->deleted);
  EXPECT_EQ(back->version, 1234u);
}

// The record's bytes on disk are those the first encoder wrote (nlohmann's
// dump of the same members), so stores written before and after read alike
// and `ldb` shows the same text; and a content type that is not UTF-8 is
// replaced instead of thrown on the committer's thread.
TEST(KeyRecordTest, EncodingIsByteForByteWhatDumpOfTheSameMembersWrites) {
  auto dumped = [](const KeyRecord& record) {
    nlohmann::json j = {{"v", 1},
                        {"has_object", record.has_object},
                        {"size", record.size},
                        {"etag", record.etag},
                        {"content_type", record.content_type},
                        {"deleted", record.deleted},
                        {"version", record.version}};
    if (record.highest_token) j["highest_token"] = record.highest_token->value();
    if (record.object_token) j["object_token"] = record.object_token->value();
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  KeyRecord full;
  full.highest_token = Token(18446744073709551615ULL);
  full.has_object = true;
  full.object_token = Token(1);
  full.size = 1ull << 40;
  full.etag = ComputeEtag("x");
  full.content_type = "text/plain; charset=\"utf-8\"\t";
  full.version = 7;
  KeyRecord tombstone;
  tombstone.highest_token = Token(3);
  tombstone.deleted = true;
  KeyRecord odd_type = full;
  odd_type.content_type = "text/\xff\xc3";
  for (const KeyRecord& record : {full, tombstone, KeyRecord{}, odd_type}) {
    EXPECT_EQ(EncodeKeyRecord(record), dumped(record));
    EXPECT_TRUE(DecodeKeyRecord(EncodeKeyRecord(record)).ok()) << EncodeKeyRecord(record);
  }
}

// Records written before keys had versions read as version 0, so the first
// write after an upgrade gets version 1 and the order stays increasing.
TEST(KeyRecordTest, RecordWithoutVersionReadsAsVersionZero) {
  auto old = DecodeKeyRecord(
      R"({"v":1,"has_object":false,"size":0,"etag":"","content_type":"",)"
      R"("deleted":false,"highest_token":5})");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->version, 0u);
  EXPECT_EQ(old->highest_token, Token(5));
}

TEST(KeyRecordTest, TombstoneRoundTripsWithoutObjectToken) {
  KeyRecord r;
  r.highest_token = Token(9);
  r.deleted = true;
  auto back = DecodeKeyRecord(EncodeKeyRecord(r));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->deleted);
  EXPECT_FALSE(back->has_object);
  EXPECT_FALSE(back->object_token.has_value());
}

TEST(KeyRecordTest, CorruptBytesAreAnError) {
  for (const char* bytes : {"", "{", "[]", "{\"v\":2}", "{\"v\":1}",
                            "{\"v\":1,\"has_object\":\"yes\"}"}) {
    auto r = DecodeKeyRecord(bytes);
    ASSERT_FALSE(r.ok()) << bytes;
    EXPECT_EQ(r.error().code, "corrupt_record");
  }
}

// Found by fuzz/key_record_fuzz: a record's numbers must be what the
// encoder writes (unsigned integers, tokens never 0). Before, token 0 was
// taken as a fence, -5 wrapped to 2^64-5 (a fence no writer could pass), a
// fraction was truncated, and 1e300 was converted with undefined behaviour.
TEST(KeyRecordTest, NumbersThatTheEncoderNeverWritesAreCorrupt) {
  const std::string kHead =
      R"({"has_object":false,"etag":"","content_type":"","deleted":false)";
  const std::vector<std::string> bad_fields = {
      R"("v":1,"size":0,"highest_token":0)",
      R"("v":1,"size":0,"object_token":0)",
      R"("v":1,"size":0,"highest_token":-5)",
      R"("v":1,"size":0,"highest_token":7.5)",
      R"("v":1,"size":0,"highest_token":1e30)",
      R"("v":1,"size":-1)",
      R"("v":1,"size":1.5)",
      R"("v":1e300,"size":0)",
      R"("v":1.5,"size":0)",
      R"("v":1,"size":0,"version":-1)",
  };
  for (const std::string& fields : bad_fields) {
    const std::string bytes = kHead + "," + fields + "}";
    auto record = DecodeKeyRecord(bytes);
    if (record.ok()) {
      ADD_FAILURE() << "decoded: " << bytes;
      continue;
    }
    EXPECT_EQ(record.error().code, "corrupt_record") << bytes;
  }
}

TEST(EtagTest, IsQuotedAndDependsOnContent) {
  const std::string a = ComputeEtag("a");
  EXPECT_EQ(a.front(), '"');
  EXPECT_EQ(a.back(), '"');
  EXPECT_EQ(a.size(), 18u);
  EXPECT_NE(a, ComputeEtag("b"));
  EXPECT_EQ(a, ComputeEtag("a"));
  // Published FNV-1a 64 test vector for the empty string.
  EXPECT_EQ(ComputeEtag(""), "\"cbf29ce484222325\"");
}

}  // namespace
}  // namespace fence
