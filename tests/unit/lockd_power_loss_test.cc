// The token journal under simulated power loss (tests/support/sim_env.h):
// many rounds of open, issue, cut the power at a random operation, reboot
// (dropping everything not yet durable, sometimes keeping a torn prefix),
// reopen, and check that nothing answered before the cut was lost.
//
// FENCE_SEED and FENCE_POWER_CUTS override the seed and the number of cuts
// (default 2000, about 0.1 s) for long runs; the seed is printed.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "lockd/token_journal.h"
#include "tests/support/sim_env.h"

namespace fence::lockd {
namespace {

using fence::testing::SimEnv;

constexpr const char* kDir = "/srv/lockd/data";

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::strtoull(value, nullptr, 10) : fallback;
}

// What lockd answered before the power went: every grant answered must
// survive it.
struct Answered {
  std::uint64_t highest_token = 0;
  Millis max_ttl{0};
  std::uint64_t grants = 0;
};

struct Tally {
  int cuts = 0, crashes = 0, cut_while_opening = 0, torn_slots = 0, fresh_files = 0;
};

// After a reopen: no answered TTL may be shorter than the grace, and the
// next token must be above every answered token.
void CheckReopened(const TokenJournal& journal, const Answered& answered) {
  EXPECT_GE(journal.grace().duration, answered.max_ttl)
      << "grace " << journal.grace().duration.count() << " ms (" << journal.grace().source
      << ") but a " << answered.max_ttl.count() << " ms lease was granted";
  EXPECT_GE(journal.max_ttl(), answered.max_ttl);
  EXPECT_GT(journal.floor() + 1, answered.highest_token);
}

// Issues tokens as the lock service would (a TTL per grant, answered only
// once Issue returned) until the power goes or `grants` are done.
void IssueUntilTheCut(TokenJournal& journal, std::mt19937_64& rng, int grants,
                      Answered& answered) {
  for (int i = 0; i < grants; ++i) {
    // Mostly short leases, now and then a longer one, so that both a new
    // block and a new longest TTL make the journal write.
    const Millis ttl(rng() % 4 == 0 ? 1 + rng() % 600000 : 1 + rng() % 2000);
    auto token = journal.Issue(ttl);
    if (!token.ok()) return;
    ASSERT_GT(token->value(), answered.highest_token) << "token not above one answered before";
    answered.highest_token = token->value();
    answered.max_ttl = std::max(answered.max_ttl, ttl);
    ++answered.grants;
  }
}

// One life of one machine: open, check, issue, lose the power (or crash).
void OneLife(SimEnv& env, std::mt19937_64& rng, Answered& answered, Tally& tally) {
  env.CutPowerAfter(rng() % 48);
  JournalOptions options;
  options.block = 1 + rng() % 4;
  options.assumed_max_ttl = Millis(10 + rng() % 1000);
  auto journal = TokenJournal::Open(env, kDir, options);
  if (journal.ok()) {
    CheckReopened(**journal, answered);
    tally.torn_slots += (*journal)->one_slot_unreadable();
    tally.fresh_files += !(*journal)->existed();
    IssueUntilTheCut(**journal, rng, static_cast<int>(rng() % 30), answered);
  } else {
    ASSERT_TRUE(env.power_is_cut()) << "open failed without a power cut: "
                                    << journal.error().message;
    ++tally.cut_while_opening;
  }
  if (rng() % 8 == 0) {
    env.Crash();  // kill -9: the page cache survives
    ++tally.crashes;
  } else {
    env.Reboot(rng() % 2 == 0 ? &rng : nullptr);
    ++tally.cuts;
  }
}

TEST(LockdPowerLossTest, AnsweredTokensAndTtlsSurviveRandomPowerCuts) {
  const std::uint64_t seed = EnvOr("FENCE_SEED", std::random_device{}());
  const std::uint64_t cuts = EnvOr("FENCE_POWER_CUTS", 2000);
  std::printf("power loss: seed %llu, %llu cuts (override with FENCE_SEED, FENCE_POWER_CUTS)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(cuts));
  std::mt19937_64 rng(seed);
  Tally tally;
  std::uint64_t grants = 0;
  while (static_cast<std::uint64_t>(tally.cuts) < cuts && !HasFailure()) {
    // A new machine every few lives, so creating the directories and the
    // token file is cut as often as issuing from it.
    SimEnv env;
    Answered answered;
    for (int life = 0; life < 6 && !HasFailure(); ++life) OneLife(env, rng, answered, tally);
    grants += answered.grants;
  }
  std::printf("power loss: %d cuts (%d while opening), %d crashes, %llu grants answered, "
              "%d opens found a torn slot, %d created the token file\n",
              tally.cuts, tally.cut_while_opening, tally.crashes,
              static_cast<unsigned long long>(grants), tally.torn_slots, tally.fresh_files);
  EXPECT_GT(tally.torn_slots, 0) << "the run never tore a slot: it proves less than it should";
  if (HasFailure()) std::printf("power loss: FAILED with seed %llu\n", static_cast<unsigned long long>(seed));
}

// Deterministic, at every step of creating a data directory: the process
// dies there (kill -9, nothing lost from memory), the next run opens and
// grants, then the power goes. Whatever the dead run created but had not
// synced must be made durable by the next open before it grants.
TEST(LockdPowerLossTest, KillAtAnyStepOfCreationThenPowerCutLosesNothing) {
  for (std::uint64_t step = 0; step < 40; ++step) {
    SCOPED_TRACE("killed after " + std::to_string(step) + " operations");
    SimEnv env;
    env.CutPowerAfter(step);
    const bool opened = TokenJournal::Open(env, kDir, {}).ok();
    env.Crash();
    Answered answered;
    {
      auto journal = TokenJournal::Open(env, kDir, {.block = 1});
      ASSERT_TRUE(journal.ok()) << journal.error().message;
      for (Millis ttl : {Millis(100), Millis(5000), Millis(200)}) {
        auto token = (*journal)->Issue(ttl);
        ASSERT_TRUE(token.ok());
        answered.highest_token = token->value();
        answered.max_ttl = std::max(answered.max_ttl, ttl);
      }
    }
    env.Reboot(nullptr);
    auto journal = TokenJournal::Open(env, kDir, {.block = 1});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    CheckReopened(**journal, answered);
    if (opened) break;  // the first open got through: every step was covered
  }
}

// A disk that runs out of space, over SimEnv (our own seam): while `full`,
// every write fails, or (`sync_fails`) writes land in the cache and their
// sync fails, as ENOSPC from a copy-on-write or thin-provisioned volume.
class FullDiskEnv final : public Env {
 public:
  explicit FullDiskEnv(SimEnv& disk) : disk_(disk) {}
  bool full = false;
  bool sync_fails = false;

  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override {
    auto file = disk_.Open(path, mode);
    if (!file.ok()) return file.error();
    return std::unique_ptr<File>(new FullDiskFile(*this, std::move(*file)));
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return disk_.LockFile(path);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return disk_.Rename(from, to);
  }
  Status Remove(const std::string& path) override { return disk_.Remove(path); }
  Result<bool> CreateDir(const std::string& path) override { return disk_.CreateDir(path); }
  Status SyncDir(const std::string& path) override { return disk_.SyncDir(path); }

 private:
  class FullDiskFile final : public File {
   public:
    FullDiskFile(FullDiskEnv& env, std::unique_ptr<File> inner)
        : env_(env), inner_(std::move(inner)) {}
    Result<std::string> ReadAt(std::uint64_t offset, std::size_t n) override {
      return inner_->ReadAt(offset, n);
    }
    Status WriteAt(std::uint64_t offset, std::string_view data) override {
      if (env_.full && !env_.sync_fails) return NoSpace();
      return inner_->WriteAt(offset, data);
    }
    Status Sync() override {
      if (env_.full) return NoSpace();
      return inner_->Sync();
    }

   private:
    static Error NoSpace() {
      return MakeError("storage_error", "No space left on device", {{"errno", ENOSPC}});
    }
    FullDiskEnv& env_;
    std::unique_ptr<File> inner_;
  };

  SimEnv& disk_;
};

// A journal whose writes (or syncs) fail issues nothing, and issues again
// once they work, without a reopen; after a power cut the next token is
// above every token issued, the ones before and after the full disk.
TEST(LockdPowerLossTest, FullDiskIssuesNothingThenResumesWithoutReopen) {
  for (const bool sync_fails : {false, true}) {
    SCOPED_TRACE(sync_fails ? "the sync fails" : "the write fails");
    SimEnv disk;
    FullDiskEnv env(disk);
    env.sync_fails = sync_fails;
    Answered answered;
    {
      auto journal = TokenJournal::Open(env, kDir, {.block = 1});
      ASSERT_TRUE(journal.ok()) << journal.error().message;
      ASSERT_TRUE((*journal)->Issue(Millis(100)).ok());
      answered.highest_token = 1;
      answered.max_ttl = Millis(100);
      env.full = true;
      for (int i = 0; i < 3; ++i) {
        auto refused = (*journal)->Issue(Millis(100));
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error().details.value("errno", 0), ENOSPC);
      }
      env.full = false;
      auto token = (*journal)->Issue(Millis(100));
      ASSERT_TRUE(token.ok()) << token.error().message;
      EXPECT_GT(token->value(), answered.highest_token);
      answered.highest_token = token->value();
    }
    disk.Reboot(nullptr);
    auto journal = TokenJournal::Open(env, kDir, {.block = 1});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    CheckReopened(**journal, answered);
  }
}

// The simulation itself: what a reboot keeps and drops.
TEST(SimEnvTest, UnsyncedWritesAreLostAndSyncedOnesKept) {
  SimEnv env;
  ASSERT_TRUE(env.CreateDir("/d").ok());
  ASSERT_TRUE(env.SyncDir("/").ok());
  auto file = env.Open("/d/f", OpenMode::kCreateExclusive);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(env.SyncDir("/d").ok());
  ASSERT_TRUE((*file)->WriteAt(0, "synced").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->WriteAt(0, "lost!!").ok());
  EXPECT_EQ(env.Contents("/d/f"), "lost!!");
  env.Reboot(nullptr);
  EXPECT_EQ(env.Contents("/d/f"), "synced");
  EXPECT_FALSE((*file)->WriteAt(0, "x").ok()) << "a handle from before the cut is dead";
}

TEST(SimEnvTest, TornWriteKeepsAPrefixOfTheUnsyncedBytes) {
  std::mt19937_64 rng(7);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    SimEnv env;
    auto file = env.Open("/f", OpenMode::kCreateExclusive);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE(env.SyncDir("/").ok());
    ASSERT_TRUE((*file)->WriteAt(0, "aaaa").ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE((*file)->WriteAt(0, "bb").ok());
    ASSERT_TRUE((*file)->WriteAt(2, "cc").ok());
    env.Reboot(&rng);
    const std::optional<std::string> contents = env.Contents("/f");
    ASSERT_TRUE(contents.has_value());
    const std::string& after = *contents;
    EXPECT_TRUE(after == "aaaa" || after == "baaa" || after == "bbaa" || after == "bbca" ||
                after == "bbcc")
        << after;
    seen.insert(after);
  }
  EXPECT_EQ(seen.size(), 5u) << "every prefix length happens";
}

TEST(SimEnvTest, CreationsAndRenamesNeedADirectorySync) {
  SimEnv env;
  ASSERT_TRUE(env.CreateDir("/d").ok());
  ASSERT_TRUE(env.Open("/d/kept", OpenMode::kCreateExclusive).ok());
  ASSERT_TRUE(env.SyncDir("/d").ok());
  env.Reboot(nullptr);
  EXPECT_FALSE(env.Contents("/d/kept").has_value()) << "/d itself was never made durable";

  ASSERT_TRUE(env.CreateDir("/d").ok());
  ASSERT_TRUE(env.SyncDir("/").ok());
  ASSERT_TRUE(env.Open("/d/a", OpenMode::kCreateExclusive).ok());
  ASSERT_TRUE(env.SyncDir("/d").ok());
  ASSERT_TRUE(env.Rename("/d/a", "/d/b").ok());
  env.Reboot(nullptr);
  EXPECT_TRUE(env.Contents("/d/a").has_value()) << "the rename was not durable";
  EXPECT_FALSE(env.Contents("/d/b").has_value());
}

TEST(SimEnvTest, LocksArePerFileAndDieWithTheProcess) {
  SimEnv env;
  auto first = env.LockFile("/LOCK");
  ASSERT_TRUE(first.ok());
  auto second = env.LockFile("/LOCK");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, "locked");
  env.Crash();
  EXPECT_TRUE(env.LockFile("/LOCK").ok());
}

TEST(SimEnvTest, EveryOperationFailsFromTheCutOn) {
  SimEnv env;
  env.CutPowerAfter(2);
  EXPECT_TRUE(env.CreateDir("/a").ok());
  EXPECT_TRUE(env.CreateDir("/b").ok());
  EXPECT_FALSE(env.CreateDir("/c").ok());
  EXPECT_TRUE(env.power_is_cut());
  EXPECT_FALSE(env.SyncDir("/").ok());
  env.Reboot(nullptr);
  EXPECT_TRUE(env.CreateDir("/c").ok());
}

// The journal's own open sequence on the simulation: a second journal on a
// locked directory is refused, and a crash releases the lock.
TEST(SimEnvTest, SecondJournalOnALockedDirectoryIsRefused) {
  SimEnv env;
  auto first = TokenJournal::Open(env, kDir, {});
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = TokenJournal::Open(env, kDir, {});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("locked by another running fence-lockd"),
            std::string::npos);
  env.Crash();
  EXPECT_TRUE(TokenJournal::Open(env, kDir, {}).ok());
}

}  // namespace
}  // namespace fence::lockd
