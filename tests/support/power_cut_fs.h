// A rocksdb::FileSystem (public RocksDB 7.8 API) that keeps track of what a
// real disk would still hold after losing power, and can lose power.
//
// What makes data durable, as on Linux:
//  - file bytes: FSWritableFile::Sync or Fsync (fdatasync/fsync) makes every
//    byte appended before the call durable. Flush only hands bytes to the OS;
//    RangeSync (sync_file_range) starts write-back without any guarantee;
//    Close makes nothing durable.
//  - directory entries: a file created, or a rename, becomes durable only
//    when its directory is fsynced (FSDirectory::Fsync/FsyncWithDirOptions).
// A power cut makes every later write, sync, create, rename and delete fail;
// once the database is closed, LoseUnsyncedData() turns the files into what
// the disk would hold: renames not made durable are undone (an overwritten
// target gets its old content back), files whose entry was never made
// durable are deleted, and every tracked file is cut back to its last
// synced size.
//
// Writes go straight to the real files (they play the page cache); real
// syncs are skipped, since durability is modelled here, not measured.
// Not modelled: deletes are durable at once (an undone delete would only
// bring back an obsolete file), and directory creation.
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace fence::testing {

class PowerCutFileSystem : public rocksdb::FileSystemWrapper {
 public:
  struct Stats {
    std::uint64_t power_cuts = 0;
    std::uint64_t bytes_dropped = 0;
    std::uint64_t files_deleted = 0;
    std::uint64_t renames_undone = 0;
  };

  explicit PowerCutFileSystem(
      std::shared_ptr<rocksdb::FileSystem> target = rocksdb::FileSystem::Default());
  const char* Name() const override { return "PowerCutFileSystem"; }

  // The power goes out now: every later mutating call fails. Reads still
  // work, so the database can be closed.
  void CutPower();
  // The power goes out when the n-th mutating call from now (n >= 1)
  // begins; that call fails.
  void CutPowerAfter(std::uint64_t calls);
  bool power_cut() const;
  // Call with the database closed: leaves on disk only what was durable,
  // then powers up again (everything now on disk counts as durable).
  void LoseUnsyncedData();
  Stats stats() const;

  // Mutation testing of the power-cut test itself: directory fsyncs no
  // longer make anything durable, as if the store never issued them.
  void IgnoreDirectorySyncsForTest(bool ignore);

  rocksdb::IOStatus NewWritableFile(const std::string& fname,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname,
                                      const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;

  // Called by the files and directories this file system hands out.
  rocksdb::IOStatus BeginMutation();
  // The file is now `size` bytes long (written or truncated).
  void FileResized(const std::string& path, std::uint64_t size);
  rocksdb::IOStatus SyncFile(const std::string& path, std::uint64_t size);
  rocksdb::IOStatus SyncDirectory(const std::string& dir);

 private:
  struct FileState {
    std::uint64_t size = 0;    // bytes written (in the "page cache")
    std::uint64_t synced = 0;  // bytes that survive a power cut
  };
  struct PendingRename {
    std::string from;
    std::string to;
    bool from_was_new = false;           // `from` itself was never durable
    std::optional<std::string> old_to;   // durable content `to` replaced
    std::set<std::string> dirs_to_sync;  // fsyncs that make it durable
  };

  bool Exists(const std::string& path);
  rocksdb::IOStatus TrackNewFile(const std::string& fname, bool existed,
                                 std::uint64_t size,
                                 std::unique_ptr<rocksdb::FSWritableFile>* result);
  void UndoRename(const PendingRename& rename);

  mutable std::mutex mu_;
  bool cut_ = false;                 // GUARDED_BY(mu_)
  std::uint64_t calls_to_cut_ = 0;   // GUARDED_BY(mu_); 0: not armed
  bool ignore_dir_syncs_ = false;    // GUARDED_BY(mu_)
  // Files written since the last power-up; the others are durable as they
  // are. GUARDED_BY(mu_)
  std::map<std::string, FileState> files_;
  // Files created since their directory's last fsync. GUARDED_BY(mu_)
  std::set<std::string> new_entries_;
  std::vector<PendingRename> renames_;  // oldest first; GUARDED_BY(mu_)
  Stats stats_;                         // GUARDED_BY(mu_)
};

}  // namespace fence::testing
