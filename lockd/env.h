// Every file and directory operation of the token journal goes through an
// Env (LevelDB's idea): PosixEnv in the daemon; tests swap in a simulated
// file system (tests/support/sim_env.h) that can cut the power and drop
// whatever was not yet durable.
//
// Durability contract, as POSIX gives it and the simulation enforces it:
// file contents are durable after File::Sync; a file's creation, rename or
// removal is durable after SyncDir of its directory; a directory's creation
// after SyncDir of its parent. A lock is held until its FileLock is
// destroyed or the process dies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace fence::lockd {

class File {
 public:
  virtual ~File() = default;
  // Up to `n` bytes at `offset`; fewer at the end of the file.
  virtual Result<std::string> ReadAt(std::uint64_t offset, std::size_t n) = 0;
  virtual Status WriteAt(std::uint64_t offset, std::string_view data) = 0;
  // fdatasync: the contents written so far are durable.
  virtual Status Sync() = 0;
};

// An exclusive lock on a file, released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class OpenMode {
  kExisting,         // error "not_found" if missing
  kCreateExclusive,  // error "exists" if present (O_CREAT | O_EXCL)
};

// Errors carry code "storage_error" unless stated otherwise, and a sentence
// naming the path and the system's reason.
class Env {
 public:
  virtual ~Env() = default;
  virtual Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) = 0;
  // Opens `path`, creating it if missing (never renaming it), and takes an
  // exclusive lock without waiting: error "locked" if another holds it.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;  // a missing file is fine
  // True if created, false if it already was a directory. Error "not_found"
  // if the parent does not exist.
  virtual Result<bool> CreateDir(const std::string& path) = 0;
  virtual Status SyncDir(const std::string& path) = 0;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override;
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Result<bool> CreateDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
};

}  // namespace fence::lockd
