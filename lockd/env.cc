#include "lockd/env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fence::lockd {
namespace {

// `errno` is kept as a figure so that callers can tell a full disk
// (ENOSPC) from a failing one without parsing the sentence.
Error SystemError(const std::string& what, int error) {
  return MakeError("storage_error", what + ": " + std::strerror(error), {{"errno", error}});
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<std::string> ReadAt(std::uint64_t offset, std::size_t n) override {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return SystemError("cannot read " + path_, errno);
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return out;
  }

  Status WriteAt(std::uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return SystemError("cannot write " + path_, n < 0 ? errno : EIO);
      data.remove_prefix(static_cast<std::size_t>(n));
      offset += static_cast<std::uint64_t>(n);
    }
    return OkStatus();
  }

  Status Sync() override {
    if (fdatasync(fd_) != 0) return SystemError("cannot sync " + path_, errno);
    return OkStatus();
  }

 private:
  const int fd_;
  const std::string path_;
};

class PosixLock final : public FileLock {
 public:
  explicit PosixLock(int fd) : fd_(fd) {}
  ~PosixLock() override { close(fd_); }  // closing the last descriptor unlocks
  PosixLock(const PosixLock&) = delete;
  PosixLock& operator=(const PosixLock&) = delete;

 private:
  const int fd_;
};

}  // namespace

Result<std::unique_ptr<File>> PosixEnv::Open(const std::string& path, OpenMode mode) {
  const int flags = O_RDWR | O_CLOEXEC | (mode == OpenMode::kCreateExclusive ? O_CREAT | O_EXCL : 0);
  const int fd = open(path.c_str(), flags, 0644);
  if (fd < 0 && errno == ENOENT && mode == OpenMode::kExisting) {
    return MakeError("not_found", path + " does not exist");
  }
  if (fd < 0 && errno == EEXIST) return MakeError("exists", path + " already exists");
  if (fd < 0) return SystemError("cannot open " + path, errno);
  return std::unique_ptr<File>(new PosixFile(fd, path));
}

Result<std::unique_ptr<FileLock>> PosixEnv::LockFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return SystemError("cannot open " + path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) return MakeError("locked", path + " is locked");
    return SystemError("cannot lock " + path, error);
  }
  return std::unique_ptr<FileLock>(new PosixLock(fd));
}

Status PosixEnv::Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return SystemError("cannot rename " + from + " to " + to, errno);
  }
  return OkStatus();
}

Status PosixEnv::Remove(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return SystemError("cannot remove " + path, errno);
  }
  return OkStatus();
}

Result<bool> PosixEnv::CreateDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0) return true;
  const int error = errno;
  if (error == ENOENT) return MakeError("not_found", "the parent of " + path + " does not exist");
  struct stat st {};
  if (error == EEXIST && stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return false;
  if (error == EEXIST) return MakeError("storage_error", path + " exists and is not a directory");
  return SystemError("cannot create directory " + path, error);
}

Status PosixEnv::SyncDir(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SystemError("cannot open directory " + path, errno);
  const int synced = fsync(fd);
  const int error = errno;
  close(fd);
  if (synced != 0) return SystemError("cannot sync directory " + path, error);
  return OkStatus();
}

}  // namespace fence::lockd
