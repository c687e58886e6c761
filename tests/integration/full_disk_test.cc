// A full disk, for real: each test mounts its own small tmpfs (root only, as
// CI runs), puts a daemon's data directory on it, fills it up with the
// daemon's own writes, and frees space again the way an operator does, by
// deleting another file on the same volume. tmpfs keeps its files across
// process restarts, so kill -9 and a restart on the same volume show what
// was durable.
#include <fcntl.h>
#include <linux/falloc.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint64_t kMiB = std::uint64_t{1024} * 1024;

// A tmpfs of `bytes` mounted on a fresh directory, unmounted on every path
// (after the daemons, which are declared after it, have been killed).
class Tmpfs {
 public:
  explicit Tmpfs(std::uint64_t bytes) {
    if (geteuid() != 0) return;
    const std::string options = "size=" + std::to_string(bytes);
    if (mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = std::string("mount -t tmpfs failed: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~Tmpfs() {
    // MNT_DETACH: a file still open by a dying child must not leave the
    // mount behind.
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::string Sub(std::string_view name) const { return dir_.Sub(name); }

 private:
  TempDir dir_{"fence-full-disk"};
  bool mounted_ = false;
  std::string error_ = "not root: mounting a tmpfs needs root (CI runs as root)";
};

// Writes `bytes` of data to `path` (a filler another program left on the
// volume). Returns the bytes written: fewer when the volume filled up.
std::uint64_t WriteFiller(const std::string& path, std::uint64_t bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  const std::string chunk(std::size_t{64} * 1024, 'f');
  std::uint64_t written = 0;
  while (written < bytes) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), bytes - written));
    const ssize_t n = write(fd, chunk.data(), want);
    if (n <= 0) break;
    written += static_cast<std::uint64_t>(n);
  }
  close(fd);
  return written;
}

nlohmann::json Json(const net::Response& res) {
  return nlohmann::json::parse(res.body(), nullptr, false);
}

bool IsEvent(std::string_view line, std::string_view event) {
  return line.find("\"event\":\"" + std::string(event) + "\"") != std::string_view::npos;
}

// --- the store ----------------------------------------------------------

class StoreFullDiskTest : public ::testing::Test {
 protected:
  // 32 MiB: fillers of 1 and 19 MiB, which the test deletes to free space,
  // and about 12 MiB for the store to fill. 1 MiB is too little for RocksDB
  // to flush its memtable into; 20 MiB is enough.
  static constexpr std::uint64_t kVolume = 32 * kMiB;
  static constexpr std::uint64_t kSmallFiller = 1 * kMiB;
  static constexpr std::uint64_t kFiller = 19 * kMiB;
  static constexpr std::size_t kBodyBytes = std::size_t{256} * 1024;
  static constexpr std::uint64_t kMaxWrites = 200;  // 50 MiB: well past the volume

  void SetUp() override {
    if (!volume_.mounted()) {
      if (geteuid() != 0) GTEST_SKIP() << volume_.error();
      FAIL() << volume_.error();
    }
    ASSERT_EQ(WriteFiller(volume_.Sub("small-filler"), kSmallFiller), kSmallFiller);
    ASSERT_EQ(WriteFiller(volume_.Sub("filler"), kFiller), kFiller);
    data_ = volume_.Sub("store");
    Start();
  }

  void Start() {
    store_ = StartDaemon("fence-store", {"--data-dir", data_});
    ASSERT_NE(store_.port, 0);
  }

  net::Response Put(const std::string& key, std::uint64_t token, std::string body) {
    return Request(verb::put, store_.Url("/v1/objects/" + key),
                   {{"Fencing-Token", std::to_string(token)}}, std::move(body));
  }
  net::Response Get(const std::string& path) { return Request(verb::get, store_.Url(path)); }

  // PUTs random objects with rising tokens until the store refuses one;
  // remembers every one it acknowledged. Returns the refusal.
  net::Response FillWithWrites() {
    std::mt19937_64 rng(seed_);
    std::cout << "seed " << seed_ << "\n";
    for (std::uint64_t i = 0; i < kMaxWrites; ++i) {
      std::string body(kBodyBytes, '\0');
      for (char& c : body) c = static_cast<char>(rng());
      const std::string key = "full/" + std::to_string(i);
      auto res = Put(key, i + 1, body);
      if (res.result() != status::ok) return res;
      acked_[key] = {i + 1, std::move(body)};
    }
    ADD_FAILURE() << kMaxWrites << " writes of " << kBodyBytes
                  << " bytes all succeeded on a " << kVolume << "-byte volume";
    return {};
  }

  // The same from `threads` clients at once, each on its own keys, so that
  // RocksDB groups their WAL writes: a failed group write fails each of
  // them. Returns the first refusal each client got.
  std::vector<net::Response> FillConcurrently(int threads) {
    std::mutex mu;
    std::vector<net::Response> refusals;
    std::vector<std::thread> clients;
    for (int t = 0; t < threads; ++t) {
      clients.emplace_back([&, t] {
        std::mt19937_64 rng(seed_ + static_cast<std::uint64_t>(t));
        for (std::uint64_t i = 0; i < kMaxWrites / 4; ++i) {
          std::string body(kBodyBytes / 4, '\0');
          for (char& c : body) c = static_cast<char>(rng());
          const std::string key = "c" + std::to_string(t) + "/" + std::to_string(i);
          auto res = Put(key, i + 1, body);
          std::lock_guard lock(mu);
          if (res.result() != status::ok) {
            refusals.push_back(std::move(res));
            return;
          }
          acked_[key] = {i + 1, std::move(body)};
        }
      });
    }
    for (auto& c : clients) c.join();
    return refusals;
  }

  // Every acknowledged write reads back whole, with its token as the fence.
  void ExpectEveryAcknowledgedWrite() {
    for (const auto& [key, write] : acked_) {
      auto got = Get("/v1/objects/" + key);
      ASSERT_EQ(got.result(), status::ok) << key << ": " << got.body();
      EXPECT_TRUE(got.body() == write.body) << key << " does not read back as written";
      EXPECT_EQ(got["Fencing-Highest-Token"], std::to_string(write.token)) << key;
    }
  }

  bool WaitForEvent(std::string_view event, milliseconds timeout, std::size_t from = 0) {
    return store_.process->WaitForLine([&](std::string_view l) { return IsEvent(l, event); },
                                       timeout, from)
        .has_value();
  }

  struct Acked {
    std::uint64_t token;
    std::string body;
  };
  const std::uint64_t seed_ = 15004;
  Tmpfs volume_{kVolume};
  std::string data_;
  Daemon store_;  // after volume_: killed before it is unmounted
  std::map<std::string, Acked> acked_;
};

// Fill the volume: 507 with a clear error, reads and the fence rule keep
// working, /readyz says not ready; delete the filler and the store writes
// again by itself, no restart; then kill -9 and a restart keep everything
// that was ever acknowledged.
TEST_F(StoreFullDiskTest, RefusesWritesWhenFullAndResumesWithoutRestart) {
  auto refused = FillWithWrites();
  ASSERT_EQ(refused.result(), status::insufficient_storage) << refused.body();
  ASSERT_GE(acked_.size(), 10u) << "the volume filled before the store took any writes";
  const auto error = Json(refused);
  EXPECT_EQ(error["error"], "storage_error") << refused.body();
  EXPECT_EQ(error["cause"], "disk_full") << refused.body();
  EXPECT_NE(error.value("message", "").find("Free space"), std::string::npos) << refused.body();

  // Full: even a tiny write is refused, and nothing refused is readable.
  EXPECT_EQ(Put("tiny", 1, "x").result(), status::insufficient_storage);
  EXPECT_EQ(Get("/v1/objects/tiny").result(), status::not_found);
  EXPECT_EQ(Get("/readyz").result(), status::service_unavailable);
  ExpectEveryAcknowledgedWrite();
  // A stale write is still refused as stale: the fence is read, not written.
  EXPECT_EQ(Put("full/5", 1, "stale").result(), status::conflict);

  const auto metrics = Get("/metrics").body();
  EXPECT_NE(metrics.find("fence_store_writes_total{result=\"storage_error\"}"),
            std::string::npos);
  EXPECT_EQ(metrics.find("fence_store_writes_total{result=\"storage_error\"} 0"),
            std::string::npos);

  // Too little space to flush: recovery is tried, fails, and is retried.
  std::size_t mark = store_.process->LineCount();
  ASSERT_TRUE(std::filesystem::remove(volume_.Sub("small-filler")));
  ASSERT_TRUE(WaitForEvent("storage_recovery_failed", seconds(10), mark));
  EXPECT_EQ(Put("tiny", 1, "x").result(), status::insufficient_storage);
  EXPECT_EQ(Get("/readyz").result(), status::service_unavailable);

  mark = store_.process->LineCount();
  ASSERT_TRUE(std::filesystem::remove(volume_.Sub("filler")));
  ASSERT_TRUE(WaitForEvent("storage_recovered", seconds(15), mark))
      << "no recovery within 15 s of freeing " << kFiller << " bytes:\n"
      << store_.process->OutputTail();
  EXPECT_EQ(Get("/readyz").result(), status::ok);
  auto again = Put("after", 1000, "written after space was freed");
  ASSERT_EQ(again.result(), status::ok) << again.body();
  acked_["after"] = {1000, "written after space was freed"};
  // full/5 was written with token 6: the same token is the same leader.
  EXPECT_EQ(Put("full/5", 6, "rewritten").result(), status::ok);
  acked_["full/5"] = {6, "rewritten"};
  EXPECT_EQ(Put("full/6", 2, "stale").result(), status::conflict);
  ExpectEveryAcknowledgedWrite();

  store_.process->Kill();
  Start();
  ExpectEveryAcknowledgedWrite();
  EXPECT_EQ(Get("/v1/objects/tiny").result(), status::not_found);
}

// kill -9 while the volume is full (four clients writing at once): what was acknowledged survives; a
// restart on the still-full volume either serves it or refuses to start
// with one clear line; once space is freed the store starts and has it all.
TEST_F(StoreFullDiskTest, KillNineWhileFullLosesNoAcknowledgedWrite) {
  const auto refusals = FillConcurrently(4);
  ASSERT_EQ(refusals.size(), 4u) << "a client never got a refusal";
  for (const auto& refused : refusals) {
    EXPECT_EQ(refused.result(), status::insufficient_storage) << refused.body();
  }
  ASSERT_GE(acked_.size(), 10u);
  store_.process->Kill();

  ChildProcess::Options options;
  options.argv = {SiblingBinary("fence-store"), "--data-dir", data_};
  auto full = StartListeningDaemon(options, "127.0.0.1:0", Millis(20000));
  if (full.ok()) {
    store_ = std::move(*full);
    ExpectEveryAcknowledgedWrite();
    store_.process->Kill();
  } else {
    std::cout << "restart on the full volume refused: " << full.error().message << "\n";
    EXPECT_NE(full.error().message.find("No space left on device"), std::string::npos)
        << full.error().message;
  }
  ASSERT_TRUE(std::filesystem::remove(volume_.Sub("filler")));
  Start();
  ExpectEveryAcknowledgedWrite();
}


// --- lockd --------------------------------------------------------------

// lockd's token file is written once at full size and then overwritten in
// place, so on a file system that overwrites in place (tmpfs, ext4, XFS) a
// full disk never stops it. A copy-on-write file system (btrfs, ZFS) must
// find a new block for every overwrite and can answer ENOSPC to it; the
// test makes tmpfs do the same for the one page lockd writes next by
// punching it out of the file (the page holds the older of the two slots,
// which lockd no longer needs).
class LockdFullDiskTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kVolume = 1 * kMiB;
  static constexpr std::int64_t kTtlMs = 300;

  void SetUp() override {
    if (!volume_.mounted()) {
      if (geteuid() != 0) GTEST_SKIP() << volume_.error();
      FAIL() << volume_.error();
    }
    data_ = volume_.Sub("lockd");
  }

  void Start() {
    // --token-block 1: every grant writes the token file.
    lockd_ = StartDaemon("fence-lockd", {"--data-dir", data_, "--token-block", "1"});
    ASSERT_NE(lockd_.port, 0);
  }

  net::Response Acquire(const std::string& lock, std::int64_t wait_ms = 0) {
    const nlohmann::json body = {{"owner", "t"}, {"ttl_ms", kTtlMs}, {"wait_ms", wait_ms}};
    return Request(verb::post, lockd_.Url("/v1/locks/" + lock + "/acquire"), {}, body.dump());
  }

  // Acquires and releases `lock`; returns the token, 0 if not granted.
  std::uint64_t Grant(const std::string& lock, std::int64_t wait_ms = 0) {
    auto res = Acquire(lock, wait_ms);
    EXPECT_EQ(res.result(), status::ok) << res.body();
    if (res.result() != status::ok) return 0;
    const auto grant = Json(res);
    const nlohmann::json release = {{"lease_id", grant["lease_id"]}};
    EXPECT_EQ(Request(verb::post, lockd_.Url("/v1/locks/" + lock + "/release"), {},
                      release.dump())
                  .result(),
              status::ok);
    return grant["token"].get<std::uint64_t>();
  }

  // Fills the volume to its last byte; true if a new file then gets ENOSPC.
  bool FillVolume() {
    WriteFiller(volume_.Sub("filler"), kVolume);
    const int fd = open(volume_.Sub("probe").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    const bool full = fd >= 0 && write(fd, "x", 1) < 0 && errno == ENOSPC;
    if (fd >= 0) close(fd);
    return full;
  }

  Tmpfs volume_{kVolume};
  std::string data_;
  Daemon lockd_;  // after volume_: killed before it is unmounted
};

TEST_F(LockdFullDiskTest, KeepsGrantingOnAFullDiskBecauseItsJournalNeverGrows) {
  Start();
  std::uint64_t last = Grant("a");
  ASSERT_TRUE(FillVolume());
  for (int i = 0; i < 5; ++i) {
    const std::uint64_t token = Grant("a");
    ASSERT_GT(token, last);
    last = token;
  }
  lockd_.process->Kill();
  Start();  // the full volume does not stop a restart either
  // The restart's grace is the largest TTL granted; a waiter is served after it.
  EXPECT_GT(Grant("a", 5000), last);
}

TEST_F(LockdFullDiskTest, FirstStartOnAFullDiskExitsWithOneClearLine) {
  ASSERT_TRUE(FillVolume());
  ChildProcess::Options options;
  options.argv = {SiblingBinary("fence-lockd"), "--data-dir", data_, "--listen", "127.0.0.1:0"};
  auto run = RunToCompletion(options, Millis(20000));
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->exit_code, 1) << run->Output();
  EXPECT_NE(run->Output().find("No space left on device"), std::string::npos) << run->Output();
  ASSERT_TRUE(std::filesystem::remove(volume_.Sub("filler")));
  Start();
  EXPECT_EQ(Grant("a"), 1u);
}

TEST_F(LockdFullDiskTest, RefusesGrantsWhileItsJournalCannotBeWrittenAndResumesWithoutRestart) {
  Start();
  const std::uint64_t first = Grant("a");  // writes slot 1, the page at 4096
  ASSERT_EQ(first, 1u);
  const int fd = open((data_ + "/tokens").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0)
      << std::strerror(errno);  // slot 0, older: lockd writes slot 2 there
  close(fd);
  ASSERT_TRUE(FillVolume());

  for (int i = 0; i < 3; ++i) {
    auto refused = Acquire("b");
    ASSERT_EQ(refused.result(), status::service_unavailable) << refused.body();
    const auto error = Json(refused);
    EXPECT_EQ(error["error"], "storage_error") << refused.body();
    EXPECT_EQ(error["cause"], "disk_full") << refused.body();
    EXPECT_NE(error.value("message", "").find("free space"), std::string::npos) << refused.body();
  }
  EXPECT_EQ(Request(verb::get, lockd_.Url("/v1/locks/b")).result(), status::not_found);

  ASSERT_TRUE(std::filesystem::remove(volume_.Sub("filler")));
  const std::uint64_t second = Grant("b");
  EXPECT_GT(second, first);
  const std::uint64_t third = Grant("c");
  EXPECT_GT(third, second);
  lockd_.process->Kill();
  Start();
  EXPECT_GT(Grant("a", 5000), third);
}

}  // namespace
}  // namespace fence::testing
