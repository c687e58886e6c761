// Recovery of a real RocksDB database after its write-ahead log was damaged:
// a torn tail (a crash mid-write) must open with every acknowledged write; a
// record damaged before the end (bit rot, a bad disk) must never be dropped
// silently, because every write after it was acknowledged too.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <iostream>
#include <map>

#include "server/store_service.h"
#include "tests/harness/daemon.h"
#include "tests/support/wal_files.h"

namespace fence::testing {
namespace {

using store::FencingMode;
using store::OpenRocksStorage;
using store::StoreService;

constexpr int kKeys = 200;

std::string KeyName(int i) { return "wal/" + std::to_string(i); }
// About 1 KiB per write: 200 writes fill several 32 KiB WAL blocks, so a
// damaged block is in the middle, with acknowledged writes after it.
std::string BodyOf(int i) { return std::string(1000, static_cast<char>('a' + i % 26)); }

// The store over a real RocksDB database in `dir`, as fence-store runs it.
struct OpenStore {
  explicit OpenStore(const std::string& dir, store::RocksOptions options = {},
                     std::vector<store::WalDrop>* dropped = nullptr) {
    auto opened = OpenRocksStorage(dir, options, dropped);
    if (!opened.ok()) {
      error = opened.error();
      return;
    }
    storage = std::move(*opened);
    service = std::make_unique<StoreService>(*storage, FencingMode::kOn);
  }
  bool ok() const { return service != nullptr; }

  // Writes keys [from, to); every write is acknowledged.
  void Write(int from, int to) {
    for (int i = from; i < to; ++i) {
      auto put = service->Put(KeyName(i), Token(static_cast<std::uint64_t>(i + 1)),
                              BodyOf(i), "text/plain");
      ASSERT_TRUE(put.ok()) << put.error().message;
    }
  }

  // The acknowledged keys in [from, to) the store does not have.
  std::vector<int> Lost(int from, int to) {
    std::vector<int> lost;
    for (int i = from; i < to; ++i) {
      auto got = service->Get(KeyName(i));
      if (!got.ok() || got->body != BodyOf(i)) lost.push_back(i);
    }
    return lost;
  }

  std::unique_ptr<store::Storage> storage;
  std::unique_ptr<StoreService> service;
  Error error;
};

// kKeys acknowledged writes, then bit rot in the middle of the one WAL;
// returns the WAL's path.
std::string WriteKeysAndDamageTheWal(const std::string& dir) {
  {
    OpenStore store(dir);
    EXPECT_TRUE(store.ok()) << store.error.message;
    if (store.ok()) store.Write(0, kKeys);
  }
  const auto wals = WalFiles(dir);
  EXPECT_EQ(wals.size(), 1u);
  if (wals.empty()) return "";
  FlipBytes(wals[0], FileSize(wals[0]) / 2, 8);
  return wals[0];
}

TEST(StoreWalRecoveryTest, MidWalCorruptionRefusesToOpenAndNamesTheFile) {
  TempDir dir("fence-wal");
  const std::string wal = WriteKeysAndDamageTheWal(dir.path());
  ASSERT_FALSE(wal.empty());

  OpenStore reopened(dir.path());
  if (reopened.ok()) {
    const auto lost = reopened.Lost(0, kKeys);
    FAIL() << "the store opened over a WAL damaged in the middle and silently lost "
           << lost.size() << " of " << kKeys << " acknowledged writes"
           << (lost.empty() ? "" : " (first lost: " + KeyName(lost.front()) + ")");
  }
  EXPECT_EQ(reopened.error.code, "wal_corrupt");
  EXPECT_NE(reopened.error.message.find(wal), std::string::npos) << reopened.error.message;
  EXPECT_EQ(reopened.error.details.value("file", ""), wal);
  EXPECT_GT(reopened.error.details.value("bytes", 0), 0);
}

TEST(StoreWalRecoveryTest, MidWalCorruptionIsSkippedOnlyByChoiceAndReported) {
  TempDir dir("fence-wal");
  const std::string wal = WriteKeysAndDamageTheWal(dir.path());
  ASSERT_FALSE(wal.empty());

  std::vector<store::WalDrop> dropped;
  store::RocksOptions skip;
  skip.wal_recovery = store::WalRecovery::kSkipCorrupted;
  OpenStore reopened(dir.path(), skip, &dropped);
  ASSERT_TRUE(reopened.ok()) << reopened.error.message;
  ASSERT_FALSE(dropped.empty());
  EXPECT_EQ(dropped[0].file, wal);
  EXPECT_GT(dropped[0].bytes, 0u);
  EXPECT_NE(dropped[0].reason.find("Corruption"), std::string::npos) << dropped[0].reason;
  // Only the damaged block is skipped: the writes in later blocks replay
  // (point-in-time recovery would have stopped at the damage).
  const auto lost = reopened.Lost(0, kKeys);
  EXPECT_FALSE(lost.empty());
  EXPECT_LT(lost.size(), static_cast<std::size_t>(kKeys / 4));
  EXPECT_TRUE(reopened.Lost(kKeys - 10, kKeys).empty());
  std::cout << "skip-corrupted dropped " << dropped[0].bytes << " bytes of "
            << dropped[0].file << " (" << dropped[0].reason << "), losing "
            << lost.size() << " of " << kKeys << " writes\n";
}

// A crash in the middle of the last write: the WAL ends inside that
// record. The write was never acknowledged; every earlier one was.
TEST(StoreWalRecoveryTest, TornTailOpensWithEveryAcknowledgedWrite) {
  for (const double cut : {0.1, 0.5, 0.9}) {
    TempDir dir("fence-wal");
    std::string wal;
    std::uint64_t acknowledged_end = 0;
    std::uint64_t torn_end = 0;
    {
      OpenStore store(dir.path());
      ASSERT_TRUE(store.ok()) << store.error.message;
      store.Write(0, kKeys);
      const auto wals = WalFiles(dir.path());
      ASSERT_EQ(wals.size(), 1u);
      wal = wals[0];
      acknowledged_end = FileSize(wal);
      store.Write(kKeys, kKeys + 1);  // the write the crash tears
      torn_end = FileSize(wal);
    }
    ASSERT_GT(torn_end, acknowledged_end);
    TruncateFile(wal, acknowledged_end + static_cast<std::uint64_t>(
                                             cut * static_cast<double>(torn_end - acknowledged_end)));
    OpenStore reopened(dir.path());
    ASSERT_TRUE(reopened.ok()) << "cut at " << cut << ": " << reopened.error.message;
    EXPECT_TRUE(reopened.Lost(0, kKeys).empty()) << "cut at " << cut;
    EXPECT_EQ(reopened.service->Get(KeyName(kKeys)).error().code, "not_found");
  }
}

// A crash after the file grew but before its new blocks were written reads
// back as zeros at the end of the log.
TEST(StoreWalRecoveryTest, ZeroFilledTailOpensWithEveryAcknowledgedWrite) {
  TempDir dir("fence-wal");
  {
    OpenStore store(dir.path());
    ASSERT_TRUE(store.ok()) << store.error.message;
    store.Write(0, kKeys);
  }
  const auto wals = WalFiles(dir.path());
  ASSERT_EQ(wals.size(), 1u);
  AppendZeros(wals[0], 40000);
  OpenStore reopened(dir.path());
  ASSERT_TRUE(reopened.ok()) << reopened.error.message;
  EXPECT_TRUE(reopened.Lost(0, kKeys).empty());
}

// fence-store as a real process over a damaged WAL.
class StoreWalRecoveryProcessTest : public ::testing::Test {
 protected:
  std::string DataDir() const { return dir_.Sub("data"); }

  Daemon Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-dir", DataDir()};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartDaemon("fence-store", args);
  }

  static void Put(const Daemon& store, int from, int to) {
    for (int i = from; i < to; ++i) {
      auto res = Request(net::http::verb::put, store.Url("/v1/objects/" + KeyName(i)),
                         {{"Fencing-Token", std::to_string(i + 1)}}, BodyOf(i));
      ASSERT_EQ(res.result(), net::http::status::ok) << res.body();
    }
  }

  static std::vector<int> Lost(const Daemon& store, int from, int to) {
    std::vector<int> lost;
    for (int i = from; i < to; ++i) {
      auto res = Request(net::http::verb::get, store.Url("/v1/objects/" + KeyName(i)));
      if (res.result() != net::http::status::ok || res.body() != BodyOf(i)) {
        lost.push_back(i);
      }
    }
    return lost;
  }

  TempDir dir_{"fence-wal-process"};
};

TEST_F(StoreWalRecoveryProcessTest, DamagedWalStopsTheStartWithOneLineNamingTheFile) {
  {
    Daemon store = Start();
    Put(store, 0, kKeys);
    const int status = store.process->Stop();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const auto wals = WalFiles(DataDir());
  ASSERT_EQ(wals.size(), 1u);
  FlipBytes(wals[0], FileSize(wals[0]) / 2, 8);

  ChildProcess::Options options;
  options.argv = {SiblingBinary("fence-store"), "--data-dir", DataDir(), "--listen",
                  "127.0.0.1:0"};
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok());
  const auto status = (*child)->WaitExit(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value()) << "the store started over a damaged WAL";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const auto lines = (*child)->Lines();
  ASSERT_EQ(lines.size(), 1u);
  std::cout << "stderr: " << lines[0] << "\n";
  EXPECT_EQ(lines[0].rfind("fence-store: the write-ahead log " + wals[0] +
                               " is damaged before its end",
                           0),
            0u)
      << lines[0];
  EXPECT_NE(lines[0].find("--wal-recovery=skip-corrupted"), std::string::npos);
}

TEST_F(StoreWalRecoveryProcessTest, SkipCorruptedStartsAndLogsWhatWasDropped) {
  {
    Daemon store = Start();
    Put(store, 0, kKeys);
    store.process->Kill();
  }
  const auto wals = WalFiles(DataDir());
  ASSERT_EQ(wals.size(), 1u);
  FlipBytes(wals[0], FileSize(wals[0]) / 2, 8);

  Daemon store = Start({"--wal-recovery", "skip-corrupted"});
  ASSERT_GT(store.port, 0);
  auto line = store.process->WaitForLine(
      [](std::string_view l) { return l.find("\"wal_records_dropped\"") != l.npos; },
      std::chrono::seconds(10));
  ASSERT_TRUE(line.has_value());
  std::cout << "log: " << *line << "\n";
  const auto event = nlohmann::json::parse(*line);
  EXPECT_EQ(event["level"], "warning");
  EXPECT_EQ(event["file"], wals[0]);
  EXPECT_GT(event["bytes"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(Lost(store, 0, 10).empty());
  EXPECT_TRUE(Lost(store, kKeys - 10, kKeys).empty());
  // The skip is a one-off repair: the store then starts strict again.
  store.process->Stop();
  EXPECT_GT(Start().port, 0);
}

TEST_F(StoreWalRecoveryProcessTest, TornTailAfterKillNineKeepsEveryAcknowledgedWrite) {
  std::string wal;
  std::uint64_t acknowledged_end = 0;
  std::uint64_t torn_end = 0;
  {
    Daemon store = Start();
    Put(store, 0, kKeys);
    const auto wals = WalFiles(DataDir());
    ASSERT_EQ(wals.size(), 1u);
    wal = wals[0];
    acknowledged_end = FileSize(wal);
    Put(store, kKeys, kKeys + 1);  // the write the crash tears
    torn_end = FileSize(wal);
    store.process->Kill();
  }
  TruncateFile(wal, (acknowledged_end + torn_end) / 2);
  Daemon store = Start();
  ASSERT_GT(store.port, 0);
  EXPECT_TRUE(Lost(store, 0, kKeys).empty());
  EXPECT_EQ(Request(net::http::verb::get, store.Url("/v1/objects/" + KeyName(kKeys))).result(),
            net::http::status::not_found);
}

}  // namespace
}  // namespace fence::testing
