#include "server/store_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "server/memory_storage.h"

namespace fence::store {
namespace {

class StoreServiceTest : public ::testing::Test {
 protected:
  MemoryStorage storage_;
  StoreService service_{storage_, FencingMode::kOn};
};

TEST_F(StoreServiceTest, PutThenGet) {
  auto put = service_.Put("k", Token(7), "v7", "text/plain");
  ASSERT_TRUE(put.ok()) << put.error().message;
  EXPECT_EQ(put->highest_token, Token(7));
  EXPECT_EQ(put->size, 2u);
  auto got = service_.Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->body, "v7");
  EXPECT_EQ(got->record.object_token, Token(7));
  EXPECT_EQ(got->record.content_type, "text/plain");
  EXPECT_EQ(got->record.etag, put->etag);
}

TEST_F(StoreServiceTest, StaleWriteIsRejectedWithBothTokensAndChangesNothing) {
  ASSERT_TRUE(service_.Put("k", Token(7), "new", "").ok());
  const int commits = storage_.CommitCountForTest();
  auto stale = service_.Put("k", Token(3), "old", "");
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, "stale_token");
  EXPECT_EQ(stale.error().details.at("token"), 3);
  EXPECT_EQ(stale.error().details.at("highest_token"), 7);
  EXPECT_EQ(stale.error().details.at("key"), "k");
  EXPECT_EQ(storage_.CommitCountForTest(), commits);
  EXPECT_EQ(service_.Get("k")->body, "new");
}

// The version is the key's commit order: one more per accepted write of any
// kind, unchanged by a refused one, and the object keeps its version.
TEST_F(StoreServiceTest, EveryAcceptedWriteTakesTheNextVersion) {
  EXPECT_EQ(service_.Put("k", Token(3), "a", "")->version, 1u);
  EXPECT_EQ(service_.RaiseFence("k", Token(5))->version, 2u);
  EXPECT_FALSE(service_.Put("k", Token(4), "stale", "").ok());
  EXPECT_EQ(service_.Put("k", Token(5), "b", "")->version, 3u);
  EXPECT_EQ(service_.Get("k")->record.version, 3u);
  EXPECT_EQ(service_.Put("other", Token(1), "c", "")->version, 1u);
  EXPECT_EQ(service_.Delete("k", Token(6))->version, 4u);
  EXPECT_EQ(service_.GetFence("k")->version, 4u);
}

TEST_F(StoreServiceTest, EqualTokenIsTheSameLeaderWritingAgain) {
  ASSERT_TRUE(service_.Put("k", Token(7), "a", "").ok());
  ASSERT_TRUE(service_.Put("k", Token(7), "b", "").ok());
  EXPECT_EQ(service_.Get("k")->body, "b");
}

TEST_F(StoreServiceTest, MissingTokenIsRefusedWhenFencing) {
  auto put = service_.Put("k", std::nullopt, "x", "");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, "missing_token");
  EXPECT_EQ(service_.Get("k").error().code, "not_found");
}

TEST_F(StoreServiceTest, FencesAreIndependentPerKey) {
  ASSERT_TRUE(service_.Put("a", Token(100), "x", "").ok());
  EXPECT_TRUE(service_.Put("b", Token(1), "y", "").ok());
}

TEST_F(StoreServiceTest, DeleteLeavesATombstoneThatKeepsTheFence) {
  ASSERT_TRUE(service_.Put("k", Token(5), "x", "").ok());
  auto del = service_.Delete("k", Token(6));
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(service_.Get("k").error().code, "not_found");
  EXPECT_EQ(service_.GetFence("k")->highest_token, Token(6));
  EXPECT_EQ(service_.Put("k", Token(5), "stale", "").error().code, "stale_token");
  EXPECT_TRUE(service_.Put("k", Token(6), "again", "").ok());
}

TEST_F(StoreServiceTest, StaleDeleteIsRejected) {
  ASSERT_TRUE(service_.Put("k", Token(5), "x", "").ok());
  EXPECT_EQ(service_.Delete("k", Token(4)).error().code, "stale_token");
  EXPECT_EQ(service_.Get("k")->body, "x");
}

TEST_F(StoreServiceTest, RaiseFenceKeepsTheObjectAndBlocksOlderWriters) {
  ASSERT_TRUE(service_.Put("k", Token(5), "x", "").ok());
  auto raised = service_.RaiseFence("k", Token(9));
  ASSERT_TRUE(raised.ok());
  EXPECT_EQ(raised->highest_token, Token(9));
  auto got = service_.Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->body, "x");
  EXPECT_EQ(got->record.object_token, Token(5));
  EXPECT_EQ(service_.Put("k", Token(8), "y", "").error().code, "stale_token");
  EXPECT_EQ(service_.RaiseFence("k", Token(8)).error().code, "stale_token");
  EXPECT_EQ(service_.RaiseFence("k", std::nullopt).error().code, "missing_token");
}

TEST_F(StoreServiceTest, FenceOfANeverWrittenKeyIsNotFound) {
  EXPECT_EQ(service_.GetFence("nope").error().code, "not_found");
}

TEST_F(StoreServiceTest, StorageFailureAcknowledgesNothing) {
  ASSERT_TRUE(service_.Put("k", Token(5), "old", "").ok());
  storage_.FailWritesForTest(true);
  auto put = service_.Put("k", Token(6), "new", "");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, "storage_error");
  EXPECT_FALSE(service_.Healthy());
  EXPECT_EQ(service_.Get("k")->body, "old");
  EXPECT_EQ(service_.GetFence("k")->highest_token, Token(5));
  storage_.FailWritesForTest(false);
  EXPECT_TRUE(service_.Put("k", Token(6), "new", "").ok());
  EXPECT_TRUE(service_.Healthy());
}

TEST_F(StoreServiceTest, PrecheckMatchesTheRule) {
  ASSERT_TRUE(service_.Put("k", Token(5), "x", "").ok());
  EXPECT_TRUE(service_.Precheck("k", Token(5)).ok());
  EXPECT_TRUE(service_.Precheck("k", Token(6)).ok());
  EXPECT_EQ(service_.Precheck("k", Token(4)).error().code, "stale_token");
  EXPECT_EQ(service_.Precheck("k", std::nullopt).error().code, "missing_token");
  EXPECT_TRUE(service_.Precheck("fresh", Token(1)).ok());
}

TEST(StoreServiceUnfencedTest, AcceptsEveryWriteButNeverLowersTheFence) {
  MemoryStorage storage;
  StoreService service(storage, FencingMode::kOff);
  ASSERT_TRUE(service.Put("k", Token(9), "new", "").ok());
  auto stale = service.Put("k", Token(3), "stale", "");
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->highest_token, Token(9));
  EXPECT_TRUE(service.Put("k", std::nullopt, "tokenless", "").ok());
  EXPECT_EQ(service.Get("k")->body, "tokenless");
  EXPECT_EQ(service.GetFence("k")->highest_token, Token(9));
}

// Records the object token of every commit, in the order the storage
// applied them.
class RecordingStorage final : public Storage {
 public:
  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key) override {
    return inner_.LoadRecord(key);
  }
  Result<std::optional<StoredObject>> LoadObject(std::string_view key) override {
    return inner_.LoadObject(key);
  }
  Status Commit(std::string_view key, const Mutation& m) override {
    std::lock_guard lock(mu_);
    committed_.push_back(m.record.object_token->value());
    return inner_.Commit(key, m);
  }
  bool Healthy() const override { return inner_.Healthy(); }
  std::vector<std::uint64_t> committed() {
    std::lock_guard lock(mu_);
    return committed_;
  }

 private:
  MemoryStorage inner_;
  std::mutex mu_;
  std::vector<std::uint64_t> committed_;
};

// Many writers, random tokens, one key: the tokens the storage committed, in
// commit order, never go down; the final object is the highest accepted one.
TEST(StoreServiceConcurrencyTest, CommittedTokensNeverGoDown) {
  RecordingStorage storage;
  StoreService service(storage, FencingMode::kOn);
  std::atomic<int> accepted{0};
  std::atomic<std::uint64_t> max_accepted{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      for (int i = 0; i < 300; ++i) {
        const Token t(1 + rng() % 1000);
        auto r = service.Put("k", t, "w" + std::to_string(w) + "t" + t.ToString(), "");
        if (r.ok()) {
          ++accepted;
          std::uint64_t seen = max_accepted.load();
          while (seen < t.value() && !max_accepted.compare_exchange_weak(seen, t.value())) {
          }
        } else {
          ASSERT_EQ(r.error().code, "stale_token");
          ASSERT_LT(r.error().details.at("token").get<std::uint64_t>(),
                    r.error().details.at("highest_token").get<std::uint64_t>());
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  const auto committed = storage.committed();
  ASSERT_EQ(committed.size(), static_cast<std::size_t>(accepted.load()));
  EXPECT_TRUE(std::is_sorted(committed.begin(), committed.end()));
  auto got = service.Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->record.object_token, Token(max_accepted.load()));
  EXPECT_EQ(service.GetFence("k")->highest_token, Token(max_accepted.load()));
}

}  // namespace
}  // namespace fence::store
