#include "server/store_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
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

// The HTTP layer refuses such a type (bad_content_type); if one got
// through, the committer must store it, not throw (it once did, and took
// the store down). MemoryStorage keeps encoded records, as RocksDB does.
TEST_F(StoreServiceTest, AContentTypeThatIsNotUtf8IsStoredWithoutThrowing) {
  auto put = service_.Put("k", Token(7), "v", "text/\xff");
  ASSERT_TRUE(put.ok()) << put.error().message;
  StoreService fresh(storage_, FencingMode::kOn);  // an empty cache: reads the stored bytes
  auto got = fresh.Get("k");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->record.content_type, "text/\xEF\xBF\xBD");
  EXPECT_EQ(got->body, "v");
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

// A MemoryStorage seen through a subclass that watches its commits: reads
// and health go straight to it.
class WatchedStorage : public Storage {
 public:
  Result<std::optional<KeyRecord>> LoadRecord(std::string_view key, ReadFrom from) override {
    return inner_.LoadRecord(key, from);
  }
  Result<std::optional<KeyRecord>> LoadScope(std::string_view name, ReadFrom from) override {
    return inner_.LoadScope(name, from);
  }
  Result<std::optional<StoredObject>> LoadObject(std::string_view key, ReadFrom from) override {
    return inner_.LoadObject(key, from);
  }
  bool Healthy() const override { return inner_.Healthy(); }
  MemoryStorage& inner() { return inner_; }

 protected:
  MemoryStorage inner_;
};

// Records the object token of every commit, in the order the storage
// applied them.
class RecordingStorage final : public WatchedStorage {
 public:
  Status CommitGroup(const std::vector<KeyMutation>& group) override {
    std::lock_guard lock(mu_);
    for (const KeyMutation& km : group) committed_.push_back(km.mutation.record.object_token->value());
    return inner_.CommitGroup(group);
  }
  std::vector<std::uint64_t> committed() {
    std::lock_guard lock(mu_);
    return committed_;
  }

 private:
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

// A storage whose first group commit waits until the test opens the gate,
// so the test can queue writes behind it and know they form one group.
class GatedStorage final : public WatchedStorage {
 public:
  Status CommitGroup(const std::vector<KeyMutation>& group) override {
    std::unique_lock lock(mu_);
    groups_.push_back(group.size());
    entered_.notify_all();
    opened_.wait(lock, [this] { return open_; });
    lock.unlock();
    return inner_.CommitGroup(group);
  }

  void WaitForFirstGroup() {
    std::unique_lock lock(mu_);
    entered_.wait(lock, [this] { return !groups_.empty(); });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    opened_.notify_all();
  }
  std::vector<std::size_t> groups() {
    std::lock_guard lock(mu_);
    return groups_;
  }

 private:
  std::mutex mu_;
  std::condition_variable entered_;
  std::condition_variable opened_;
  bool open_ = false;                 // GUARDED_BY(mu_)
  std::vector<std::size_t> groups_;  // GUARDED_BY(mu_)
};

// Collects the outcomes of asynchronous writes in submission slots.
class Outcomes {
 public:
  explicit Outcomes(std::size_t n) : results_(n) {}
  WriteDone Slot(std::size_t i) {
    return [this, i](Result<WriteReceipt> r) {
      std::lock_guard lock(mu_);
      results_[i] = std::move(r);
      ++done_;
      changed_.notify_all();
    };
  }
  const std::vector<std::optional<Result<WriteReceipt>>>& WaitAll() {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [this] { return done_ == results_.size(); });
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::optional<Result<WriteReceipt>>> results_;  // GUARDED_BY(mu_)
  std::size_t done_ = 0;                                        // GUARDED_BY(mu_)
};

WriteRequest PutOf(const std::string& key, std::uint64_t token, std::string body) {
  return {WriteKind::kPut, key, Token(token), std::move(body), ""};
}

// Every write queued while a sync is in progress shares the next sync: one
// group, one commit, however many writers and whether or not they write the
// same key.
TEST(StoreServiceGroupCommitTest, WritesQueuedDuringASyncShareTheNextOne) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn);
  constexpr std::size_t kWrites = 100;
  Outcomes outcomes(kWrites);
  service.Write(PutOf("first", 1, "x"), outcomes.Slot(0));
  storage.WaitForFirstGroup();
  for (std::size_t i = 1; i < kWrites; ++i) {
    service.Write(PutOf(i % 2 == 0 ? "hot" : "k" + std::to_string(i), 5, "v"),
                  outcomes.Slot(i));
  }
  storage.Open();
  for (const auto& r : outcomes.WaitAll()) ASSERT_TRUE(r->ok()) << r->error().message;
  EXPECT_EQ(storage.groups(), (std::vector<std::size_t>{1, kWrites - 1}));
  // The hot key took 49 writes, in order, in one sync.
  EXPECT_EQ(service.GetFence("hot")->version, (kWrites - 1) / 2);
}

// Within one group the rule sees the group's earlier writes: a lower token
// after a higher one is refused, equal tokens take the next versions, and
// only accepted writes reach the storage.
TEST(StoreServiceGroupCommitTest, TheRuleAppliesInArrivalOrderInsideAGroup) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn);
  Outcomes outcomes(5);
  service.Write(PutOf("other", 1, "x"), outcomes.Slot(0));
  storage.WaitForFirstGroup();
  service.Write(PutOf("k", 5, "five"), outcomes.Slot(1));
  service.Write(PutOf("k", 3, "three"), outcomes.Slot(2));
  service.Write(PutOf("k", 7, "seven"), outcomes.Slot(3));
  service.Write({WriteKind::kRaiseFence, "k", Token(7), {}, {}}, outcomes.Slot(4));
  storage.Open();
  const auto& r = outcomes.WaitAll();
  EXPECT_EQ((*r[1])->version, 1u);
  ASSERT_FALSE(r[2]->ok());
  EXPECT_EQ(r[2]->error().code, "stale_token");
  EXPECT_EQ(r[2]->error().details.at("highest_token"), 5);
  EXPECT_EQ((*r[3])->version, 2u);
  EXPECT_EQ((*r[4])->version, 3u);
  EXPECT_EQ(storage.groups(), (std::vector<std::size_t>{1, 3}));
  EXPECT_EQ(service.Get("k")->body, "seven");
  EXPECT_EQ(service.GetFence("k")->version, 3u);
}

// A failed sync acknowledges none of its group's writes, and changes nothing.
TEST(StoreServiceGroupCommitTest, AFailedSyncFailsEveryWriteOfItsGroup) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn);
  Outcomes outcomes(4);
  service.Write(PutOf("k", 1, "one"), outcomes.Slot(0));
  storage.WaitForFirstGroup();
  service.Write(PutOf("k", 2, "two"), outcomes.Slot(1));
  service.Write(PutOf("j", 2, "two"), outcomes.Slot(2));
  service.Write(PutOf("k", 1, "stale"), outcomes.Slot(3));
  storage.inner().FailWritesForTest(true);
  storage.Open();
  const auto& r = outcomes.WaitAll();
  for (std::size_t i : {0, 1, 2}) EXPECT_EQ(r[i]->error().code, "storage_error") << i;
  EXPECT_EQ(r[3]->error().code, "stale_token");
  storage.inner().FailWritesForTest(false);
  EXPECT_EQ(service.Get("k").error().code, "not_found");
  EXPECT_EQ(service.Get("j").error().code, "not_found");
}

// The queue is bounded: a write beyond it is refused at once, not made to
// wait; Close answers every write it had admitted.
TEST(StoreServiceGroupCommitTest, AFullQueueRefusesAndCloseAnswersEveryQueuedWrite) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn, {.max_queued_writes = 2});
  Outcomes outcomes(5);
  service.Write(PutOf("a", 1, "x"), outcomes.Slot(0));
  storage.WaitForFirstGroup();
  service.Write(PutOf("b", 1, "x"), outcomes.Slot(1));
  service.Write(PutOf("c", 1, "x"), outcomes.Slot(2));
  service.Write(PutOf("d", 1, "x"), outcomes.Slot(3));
  std::thread closer([&] { service.Close(); });
  storage.Open();
  closer.join();
  service.Write(PutOf("e", 1, "x"), outcomes.Slot(4));
  const auto& r = outcomes.WaitAll();
  for (std::size_t i : {0, 1, 2}) EXPECT_TRUE(r[i]->ok()) << i;
  EXPECT_EQ(r[3]->error().code, "overloaded");
  EXPECT_EQ(r[3]->error().details.at("max_queued_writes"), 2);
  EXPECT_EQ(r[4]->error().code, "shutting_down");
}

// Reads answer the same whether the cache holds the object, only its
// record (a body over its limit), or nothing (disabled); a fence raise and a
// delete leave each kind right.
TEST(StoreServiceCacheTest, ReadsAreTheSameWithAndWithoutTheCache) {
  for (const std::uint64_t cache_bytes : {std::uint64_t{0}, std::uint64_t{1} << 20}) {
    SCOPED_TRACE(cache_bytes);
    MemoryStorage storage;
    StoreService service(storage, FencingMode::kOn,
                         {.cache_bytes = cache_bytes, .cache_max_body_bytes = 8});
    const std::string large = "longer than eight bytes";
    ASSERT_TRUE(service.Put("small", Token(1), "tiny", "").ok());
    ASSERT_TRUE(service.Put("large", Token(1), large, "").ok());
    ASSERT_TRUE(service.RaiseFence("small", Token(4)).ok());
    ASSERT_TRUE(service.RaiseFence("large", Token(4)).ok());
    EXPECT_EQ(service.Get("small")->body, "tiny");
    EXPECT_EQ(service.Get("large")->body, large);
    EXPECT_EQ(service.Get("large")->record.highest_token, Token(4));
    EXPECT_EQ(service.Precheck("small", Token(3)).error().code, "stale_token");
    ASSERT_TRUE(service.Delete("small", Token(5)).ok());
    EXPECT_EQ(service.Get("small").error().code, "not_found");
    EXPECT_EQ(service.GetFence("small")->highest_token, Token(5));
    EXPECT_EQ(service.Get("never").error().code, "not_found");
    EXPECT_EQ(service.GetFence("never").error().code, "not_found");
  }
}

}  // namespace
}  // namespace fence::store

namespace fence::store {
namespace {

const std::optional<std::string> kJob = "jobs/etl";

// The case scope fencing exists for: the new leader raised the job's scope
// and never wrote key x; the old leader's write to x is refused, names the
// scope's fence, and changes nothing.
TEST_F(StoreServiceTest, ScopeFenceRefusesAKeyTheNewLeaderNeverWrote) {
  ASSERT_TRUE(service_.Put("x", Token(5), "old leader", "", kJob).ok());
  auto raised = service_.RaiseScope(*kJob, Token(6));
  ASSERT_TRUE(raised.ok()) << raised.error().message;
  EXPECT_EQ(raised->scope_highest_token, Token(6));
  const int commits = storage_.CommitCountForTest();
  auto stale = service_.Put("x", Token(5), "split brain", "", kJob);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, "stale_token");
  EXPECT_EQ(stale.error().details.at("refused_by"), "scope");
  EXPECT_EQ(stale.error().details.at("scope"), *kJob);
  EXPECT_EQ(stale.error().details.at("scope_highest_token"), 6);
  EXPECT_EQ(stale.error().details.at("key"), "x");
  EXPECT_NE(stale.error().message.find("scope 'jobs/etl'"), std::string::npos);
  EXPECT_EQ(service_.Delete("x", Token(5), kJob).error().code, "stale_token");
  EXPECT_EQ(service_.RaiseFence("x", Token(5), kJob).error().code, "stale_token");
  EXPECT_EQ(storage_.CommitCountForTest(), commits);
  EXPECT_EQ(service_.Get("x")->body, "old leader");
  EXPECT_EQ(service_.GetFence("x")->highest_token, Token(5));
  // The new leader writes x with its own token.
  EXPECT_TRUE(service_.Put("x", Token(6), "new leader", "", kJob).ok());
}

// A scoped write raises the key's and the scope's fence in one commit; the
// scope's record is written only when its fence moves (or on a raise).
TEST_F(StoreServiceTest, ScopedWriteRaisesBothFencesInOneCommit) {
  const int commits = storage_.CommitCountForTest();
  auto put = service_.Put("a", Token(4), "v", "", kJob);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(storage_.CommitCountForTest(), commits + 1);
  EXPECT_TRUE(put->scope_raised);
  EXPECT_EQ(put->highest_token, Token(4));
  EXPECT_EQ(put->scope_highest_token, Token(4));
  EXPECT_EQ(service_.GetScope(*kJob)->version, 1u);
  EXPECT_FALSE(service_.Put("a", Token(4), "again", "", kJob)->scope_raised);
  EXPECT_EQ(service_.GetScope(*kJob)->version, 1u);
  EXPECT_EQ(service_.Put("b", Token(9), "v", "", kJob)->scope_version, 2u);
  EXPECT_EQ(service_.RaiseScope(*kJob, Token(9))->scope_version, 3u);
  EXPECT_EQ(service_.GetScope(*kJob)->highest_token, Token(9));
  // The scope's fence refuses "a" although a's own fence is 4.
  EXPECT_EQ(service_.Put("a", Token(5), "v", "", kJob).error().details.at("refused_by"),
            "scope");
  // Scopes are independent, and an unscoped write is decided per key only.
  EXPECT_TRUE(service_.Put("a", Token(5), "v", "", "other").ok());
  EXPECT_TRUE(service_.Put("a", Token(5), "v", "").ok());
}

TEST_F(StoreServiceTest, ScopeRaiseFollowsTheRuleAndNeedsAToken) {
  EXPECT_EQ(service_.GetScope("never").error().code, "not_found");
  EXPECT_EQ(service_.RaiseScope(*kJob, std::nullopt).error().code, "missing_token");
  ASSERT_TRUE(service_.RaiseScope(*kJob, Token(8)).ok());
  auto lower = service_.RaiseScope(*kJob, Token(7));
  ASSERT_FALSE(lower.ok());
  EXPECT_EQ(lower.error().code, "stale_token");
  EXPECT_FALSE(lower.error().details.contains("key"));
  EXPECT_EQ(service_.RaiseScope(*kJob, Token(8))->scope_version, 2u);
  // When both fences refuse, the key's is named.
  ASSERT_TRUE(service_.Put("k", Token(9), "v", "").ok());
  EXPECT_EQ(service_.Put("k", Token(3), "v", "", kJob).error().details.at("refused_by"),
            "key");
}

TEST_F(StoreServiceTest, PrecheckChecksTheScope) {
  ASSERT_TRUE(service_.RaiseScope(*kJob, Token(6)).ok());
  EXPECT_EQ(service_.Precheck("x", Token(5), kJob).error().details.at("refused_by"), "scope");
  EXPECT_EQ(service_.Precheck("", Token(5), kJob).error().code, "stale_token");
  EXPECT_TRUE(service_.Precheck("x", Token(6), kJob).ok());
  EXPECT_TRUE(service_.Precheck("", Token(7), kJob).ok());
  EXPECT_TRUE(service_.Precheck("x", Token(5)).ok());
  EXPECT_EQ(service_.Precheck("x", std::nullopt, kJob).error().code, "missing_token");
}

// The scope's fence is in the storage, not only in the service's cache.
TEST_F(StoreServiceTest, ScopeFenceSurvivesANewService) {
  ASSERT_TRUE(service_.RaiseScope(*kJob, Token(6)).ok());
  service_.Close();
  StoreService reopened(storage_, FencingMode::kOn);
  EXPECT_EQ(reopened.GetScope(*kJob)->highest_token, Token(6));
  EXPECT_EQ(reopened.Put("x", Token(5), "v", "", kJob).error().code, "stale_token");
}

TEST(StoreServiceUnfencedTest, ScopeIsRememberedButNotEnforced) {
  MemoryStorage storage;
  StoreService service(storage, FencingMode::kOff);
  ASSERT_TRUE(service.RaiseScope(*kJob, Token(9)).ok());
  EXPECT_TRUE(service.Put("x", Token(3), "v", "", kJob).ok());
  EXPECT_EQ(service.GetScope(*kJob)->highest_token, Token(9));
  EXPECT_EQ(service.Put("x", std::nullopt, "v", "", kJob).error().code, "missing_token");
}

WriteRequest ScopedPut(const std::string& key, std::uint64_t token) {
  return {WriteKind::kPut, key, Token(token), "v" + std::to_string(token), "", kJob};
}

// Inside one group, a scope raise by an earlier write applies to the later
// ones, on every key, as if they had been synced one by one.
TEST(StoreServiceGroupCommitTest, ScopeRaisesApplyToLaterWritesOfTheGroup) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn);
  Outcomes outcomes(5);
  service.Write(PutOf("other", 1, "x"), outcomes.Slot(0));
  storage.WaitForFirstGroup();
  service.Write(ScopedPut("a", 5), outcomes.Slot(1));
  service.Write({WriteKind::kRaiseScope, {}, Token(7), {}, {}, kJob}, outcomes.Slot(2));
  service.Write(ScopedPut("b", 6), outcomes.Slot(3));  // b never saw token 7
  service.Write(ScopedPut("a", 7), outcomes.Slot(4));
  storage.Open();
  const auto& r = outcomes.WaitAll();
  ASSERT_TRUE(r[1]->ok());
  EXPECT_EQ((*r[1])->scope_version, 1u);
  EXPECT_EQ((*r[2])->scope_version, 2u);
  ASSERT_FALSE(r[3]->ok());
  EXPECT_EQ(r[3]->error().details.at("refused_by"), "scope");
  EXPECT_EQ(r[3]->error().details.at("scope_highest_token"), 7);
  ASSERT_TRUE(r[4]->ok());
  EXPECT_FALSE((*r[4])->scope_raised);
  // One sync for the group: a's record and the scope's (twice), then a's.
  EXPECT_EQ(storage.groups(), (std::vector<std::size_t>{1, 4}));
  EXPECT_EQ(service.GetFence("b").error().code, "not_found");
  EXPECT_EQ(storage.inner().LoadScope(*kJob, ReadFrom::kAnywhere)->value().highest_token,
            Token(7));
}

}  // namespace
}  // namespace fence::store

namespace fence::store {
namespace {

constexpr std::uint64_t kForged = 18446744073709551615ull;

TEST_F(StoreServiceTest, RepairLowersAMistakenFenceAndKeepsTheObject) {
  ASSERT_TRUE(service_.Put("k", Token(5), "v5", "").ok());
  ASSERT_TRUE(service_.RaiseFence("k", Token(kForged)).ok());
  ASSERT_EQ(service_.Put("k", Token(6), "v6", "").error().code, "stale_token");
  auto repaired = service_.RepairFence("k", Token(kForged), Token(5));
  ASSERT_TRUE(repaired.ok()) << repaired.error().message;
  EXPECT_EQ(repaired->highest_token, Token(5));
  EXPECT_EQ(repaired->version, 3u);
  EXPECT_EQ(service_.Get("k")->body, "v5");
  // The honest next leader writes again; the rule holds from the new fence.
  ASSERT_TRUE(service_.Put("k", Token(6), "v6", "").ok());
  EXPECT_EQ(service_.Put("k", Token(5), "old", "").error().code, "stale_token");
  StoreService fresh(storage_, FencingMode::kOn);  // durable, not only cached
  EXPECT_EQ(fresh.GetFence("k")->highest_token, Token(6));
}

TEST_F(StoreServiceTest, RepairOfAFenceThatMovedChangesNothing) {
  ASSERT_TRUE(service_.RaiseFence("k", Token(70)).ok());
  ASSERT_TRUE(service_.RaiseFence("k", Token(71)).ok());  // a leader, after the admin looked
  const int commits = storage_.CommitCountForTest();
  auto moved = service_.RepairFence("k", Token(70), Token(7));
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.error().code, "fence_moved");
  EXPECT_EQ(moved.error().details.at("highest_token"), 71);
  EXPECT_EQ(moved.error().details.at("expected"), 70);
  EXPECT_EQ(storage_.CommitCountForTest(), commits);
  EXPECT_EQ(service_.GetFence("k")->highest_token, Token(71));
  auto missing = service_.RepairFence("never", Token(70), Token(7));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "not_found");
}

// A leader's raise queued before the repair, in the same group, wins: the
// committer decides the repair against the raised fence.
TEST(StoreServiceGroupCommitTest, ARepairQueuedAfterARaiseInOneGroupIsRefused) {
  GatedStorage storage;
  StoreService service(storage, FencingMode::kOn);
  Outcomes outcomes(3);
  service.Write({WriteKind::kRaiseFence, "k", Token(70), {}, {}}, outcomes.Slot(0));
  storage.WaitForFirstGroup();
  service.Write({WriteKind::kRaiseFence, "k", Token(71), {}, {}}, outcomes.Slot(1));
  service.Write({WriteKind::kRepairFence, "k", Token(7), {}, {}, std::nullopt, Token(70)},
                outcomes.Slot(2));
  storage.Open();
  const auto& r = outcomes.WaitAll();
  ASSERT_TRUE(r[1]->ok());
  ASSERT_FALSE(r[2]->ok());
  EXPECT_EQ(r[2]->error().code, "fence_moved");
  EXPECT_EQ(service.GetFence("k")->highest_token, Token(71));
}

}  // namespace
}  // namespace fence::store
