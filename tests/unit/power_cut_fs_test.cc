// The power-cut file system on real files in a temp dir: what survives a cut
// is exactly what was synced, and directory entries only what a directory
// fsync made durable.
#include "tests/support/power_cut_fs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using rocksdb::FileOptions;
using rocksdb::IOOptions;

class StorePowerCutFileSystemTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.Sub(name); }

  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    EXPECT_TRUE(fs_->NewWritableFile(Path(name), FileOptions(), &file, nullptr).ok());
    return file;
  }
  static void Append(rocksdb::FSWritableFile& file, const std::string& data) {
    ASSERT_TRUE(file.Append(data, IOOptions(), nullptr).ok());
  }
  static void Sync(rocksdb::FSWritableFile& file) {
    ASSERT_TRUE(file.Sync(IOOptions(), nullptr).ok());
  }
  void SyncDirectory() {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    ASSERT_TRUE(fs_->NewDirectory(dir_.path(), IOOptions(), &dir, nullptr).ok());
    ASSERT_TRUE(dir->Fsync(IOOptions(), nullptr).ok());
  }
  // Cuts the power with `files` still open, closes them, and restores the
  // durable state.
  void PowerCut(std::vector<std::unique_ptr<rocksdb::FSWritableFile>*> files = {}) {
    fs_->CutPower();
    for (auto* f : files) {
      (void)(*f)->Close(IOOptions(), nullptr);
      f->reset();
    }
    fs_->LoseUnsyncedData();
  }
  // RocksDB's way to replace CURRENT: a durable "MANIFEST-1" is replaced by
  // a synced (but never directory-synced) temp file renamed over it.
  void ReplaceCurrentByRename() {
    std::ofstream(Path("CURRENT")) << "MANIFEST-1\n";
    auto tmp = Create("CURRENT.dbtmp");
    Append(*tmp, "MANIFEST-2\n");
    Sync(*tmp);
    tmp.reset();
    ASSERT_TRUE(
        fs_->RenameFile(Path("CURRENT.dbtmp"), Path("CURRENT"), IOOptions(), nullptr).ok());
  }

  std::optional<std::string> Content(const std::string& name) const {
    if (!std::filesystem::exists(Path(name))) return std::nullopt;
    std::ifstream in(Path(name), std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  TempDir dir_{"fence-powercut"};
  std::shared_ptr<PowerCutFileSystem> fs_ = std::make_shared<PowerCutFileSystem>();
};

TEST_F(StorePowerCutFileSystemTest, OnlySyncedBytesSurvive) {
  auto file = Create("wal");
  SyncDirectory();
  Append(*file, "acked;");
  Sync(*file);
  Append(*file, "flushed-not-synced;");
  ASSERT_TRUE(file->Flush(IOOptions(), nullptr).ok());
  ASSERT_TRUE(file->RangeSync(0, 100, IOOptions(), nullptr).ok());
  Append(*file, "closed-not-synced");
  PowerCut({&file});
  EXPECT_EQ(Content("wal"), "acked;");
  EXPECT_EQ(fs_->stats().bytes_dropped, 36u);
}

TEST_F(StorePowerCutFileSystemTest, CloseMakesNothingDurable) {
  auto file = Create("sst");
  SyncDirectory();
  Append(*file, "data");
  ASSERT_TRUE(file->Close(IOOptions(), nullptr).ok());
  file.reset();
  PowerCut();
  EXPECT_EQ(Content("sst"), "");
}

TEST_F(StorePowerCutFileSystemTest, ANewFileNeedsItsDirectorySynced) {
  auto early = Create("early");
  Append(*early, "x");
  Sync(*early);
  auto kept = Create("kept");
  Append(*kept, "y");
  Sync(*kept);
  SyncDirectory();
  auto late = Create("late");  // after the directory fsync
  Append(*late, "z");
  Sync(*late);
  PowerCut({&early, &kept, &late});
  EXPECT_EQ(Content("early"), "x");  // created before the fsync
  EXPECT_EQ(Content("kept"), "y");
  EXPECT_EQ(Content("late"), std::nullopt);
}

TEST_F(StorePowerCutFileSystemTest, ARenameWithoutADirectorySyncIsUndone) {
  std::ofstream(Path("CURRENT")) << "MANIFEST-1\n";  // durable before power-up
  auto tmp = Create("CURRENT.dbtmp");
  SyncDirectory();
  Append(*tmp, "MANIFEST-2\n");
  Sync(*tmp);
  ASSERT_TRUE(tmp->Close(IOOptions(), nullptr).ok());
  tmp.reset();
  ASSERT_TRUE(fs_->RenameFile(Path("CURRENT.dbtmp"), Path("CURRENT"), IOOptions(), nullptr).ok());
  EXPECT_EQ(Content("CURRENT"), "MANIFEST-2\n");
  PowerCut();
  EXPECT_EQ(Content("CURRENT"), "MANIFEST-1\n");
  EXPECT_EQ(Content("CURRENT.dbtmp"), "MANIFEST-2\n");
  EXPECT_EQ(fs_->stats().renames_undone, 1u);
}

TEST_F(StorePowerCutFileSystemTest, ARenameOfANeverDurableFileLeavesNothing) {
  ReplaceCurrentByRename();
  PowerCut();
  EXPECT_EQ(Content("CURRENT"), "MANIFEST-1\n");
  EXPECT_EQ(Content("CURRENT.dbtmp"), std::nullopt);
}

TEST_F(StorePowerCutFileSystemTest, ARenameMadeDurableStays) {
  ReplaceCurrentByRename();
  SyncDirectory();
  PowerCut();
  EXPECT_EQ(Content("CURRENT"), "MANIFEST-2\n");
  EXPECT_EQ(Content("CURRENT.dbtmp"), std::nullopt);
}

TEST_F(StorePowerCutFileSystemTest, EveryMutationFailsFromTheCutOn) {
  auto file = Create("wal");
  fs_->CutPowerAfter(2);
  EXPECT_TRUE(file->Append("a", IOOptions(), nullptr).ok());
  EXPECT_FALSE(file->Append("b", IOOptions(), nullptr).ok());
  EXPECT_TRUE(fs_->power_cut());
  EXPECT_FALSE(file->Sync(IOOptions(), nullptr).ok());
  std::unique_ptr<rocksdb::FSWritableFile> other;
  EXPECT_FALSE(fs_->NewWritableFile(Path("x"), FileOptions(), &other, nullptr).ok());
  EXPECT_FALSE(fs_->RenameFile(Path("wal"), Path("y"), IOOptions(), nullptr).ok());
  EXPECT_FALSE(fs_->DeleteFile(Path("wal"), IOOptions(), nullptr).ok());
  PowerCut({&file});
  EXPECT_FALSE(fs_->power_cut());
  EXPECT_EQ(Content("wal"), std::nullopt);  // its entry was never made durable
  EXPECT_EQ(fs_->stats().power_cuts, 1u);
}

}  // namespace
}  // namespace fence::testing
