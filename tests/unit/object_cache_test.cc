#include "server/object_cache.h"

#include <gtest/gtest.h>

namespace fence::store {
namespace {

CachedKey Object(std::uint64_t token, std::string body) {
  KeyRecord record;
  record.has_object = true;
  record.highest_token = Token(token);
  record.object_token = Token(token);
  record.size = body.size();
  return {record, std::make_shared<const std::string>(std::move(body))};
}

TEST(ObjectCacheTest, FindsWhatWasPutAndTheLatestReplacement) {
  ObjectCache cache(1 << 20, 1024);
  EXPECT_FALSE(cache.Find("k").has_value());
  cache.Put("k", Object(3, "three"));
  cache.Put("k", Object(5, "five"));
  auto found = cache.Find("k");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->record.highest_token, Token(5));
  EXPECT_EQ(*found->body, "five");
}

TEST(ObjectCacheTest, ABodyOverTheLimitIsDroppedButItsRecordKept) {
  ObjectCache cache(1 << 20, 4);
  cache.Put("k", Object(1, "too long"));
  auto found = cache.Find("k");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->record.highest_token, Token(1));
  EXPECT_EQ(found->body, nullptr);
}

TEST(ObjectCacheTest, ARecordWithoutAnObjectKeepsNoBody) {
  ObjectCache cache(1 << 20, 1024);
  CachedKey tombstone = Object(2, "stale bytes");
  tombstone.record.has_object = false;
  cache.Put("k", tombstone);
  EXPECT_EQ(cache.Find("k")->body, nullptr);
}

// However many keys are put, the bytes held stay within the bound, and the
// entry just put is always kept.
TEST(ObjectCacheTest, StaysWithinItsBytesAndKeepsTheNewestEntry) {
  constexpr std::uint64_t kMax = std::uint64_t{64} * 1024;
  ObjectCache cache(kMax, 1024);
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "key/" + std::to_string(i);
    cache.Put(key, Object(static_cast<std::uint64_t>(i), std::string(300, 'x')));
    ASSERT_LE(cache.bytes(), kMax) << i;
    ASSERT_TRUE(cache.Find(key).has_value()) << i;
  }
  EXPECT_GT(cache.bytes(), kMax / 2);
}

TEST(ObjectCacheTest, ZeroBytesDisablesIt) {
  ObjectCache cache(0, 1024);
  cache.Put("k", Object(1, "x"));
  EXPECT_FALSE(cache.Find("k").has_value());
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace fence::store
