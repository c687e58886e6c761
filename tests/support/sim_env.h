// A simulated file system behind lockd's Env, for power-loss tests.
//
// Per file it keeps the contents as written (what a reader sees now), the
// contents as of its last Sync (what the disk surely holds) and the writes
// made since, in order; per directory, its entries now and as of its last
// SyncDir. CutPowerAfter(n) lets n more operations (any Env or File call)
// succeed and fails every one after, as a machine losing power mid-run.
// Reboot() is what the next boot finds: each file's synced contents plus,
// if asked, a random prefix of the bytes written since its sync (a torn
// write); file creations, renames, removals and directory creations not
// made durable by a SyncDir of their directory undone; every lock released;
// every handle from before dead. Crash() is a process death without power
// loss: locks released, handles dead, nothing lost.
//
// Not thread-safe: one test thread drives it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lockd/env.h"

namespace fence::testing {

class SimEnv final : public lockd::Env {
 public:
  SimEnv();  // an empty file system whose root "/" exists durably

  Result<std::unique_ptr<lockd::File>> Open(const std::string& path,
                                            lockd::OpenMode mode) override;
  Result<std::unique_ptr<lockd::FileLock>> LockFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Result<bool> CreateDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;

  void CutPowerAfter(std::uint64_t operations);
  bool power_is_cut() const { return cut_at_ && operations_ > *cut_at_; }
  // `torn`: draws how many unsynced bytes of each file survive; nullptr
  // keeps none.
  void Reboot(std::mt19937_64* torn);
  void Crash();

  std::uint64_t operations() const { return operations_; }
  // The contents of `path` as a reader sees them now, if it exists.
  std::optional<std::string> Contents(const std::string& path) const;

 private:
  friend class SimFile;
  friend class SimLock;
  struct Inode {
    std::string data;    // as written
    std::string synced;  // as of the last Sync
    std::vector<std::pair<std::uint64_t, std::string>> unsynced;  // writes since
  };

  // Counts an operation; fails it once the power is cut.
  Status Step();
  Status Alive(std::uint64_t generation) const;
  bool HasDir(const std::string& path) const { return dirs_.count(path) > 0; }
  static void ApplyPrefix(Inode& inode, std::uint64_t keep);
  void DropOrphans();

  std::map<std::uint64_t, Inode> inodes_;
  std::map<std::string, std::uint64_t> names_;          // file path -> inode, now
  std::map<std::string, std::uint64_t> durable_names_;  // as of directory syncs
  std::set<std::string> dirs_;
  std::set<std::string> durable_dirs_;
  std::set<std::uint64_t> locked_;  // inodes under an exclusive lock
  std::uint64_t next_inode_ = 1;
  std::uint64_t generation_ = 0;  // bumped by Reboot and Crash: old handles die
  std::uint64_t operations_ = 0;
  std::optional<std::uint64_t> cut_at_;
};

}  // namespace fence::testing
