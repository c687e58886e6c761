#include "tests/support/power_cut_fs.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fence::testing {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

namespace {

std::string ParentOf(const std::string& path) {
  return std::filesystem::path(path).lexically_normal().parent_path().string();
}

std::string Normal(const std::string& path) {
  return std::filesystem::path(path).lexically_normal().string();
}

IOStatus Unsupported(const char* what) {
  return IOStatus::NotSupported(std::string("PowerCutFileSystem does not track ") + what);
}

// A file being written: every byte it appends is reported, and Sync/Fsync
// report how much is durable.
class TrackedFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> target, PowerCutFileSystem& fs,
              std::string path, std::uint64_t size)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(target)),
        fs_(fs),
        path_(std::move(path)),
        size_(size) {}

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    return Write(data, [&] { return target()->Append(data, options, dbg); });
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    return Write(data, [&] { return target()->Append(data, options, info, dbg); });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options, IODebugContext* dbg) override {
    return Write(data, [&] { return target()->PositionedAppend(data, offset, options, dbg); },
                 offset);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return Write(
        data, [&] { return target()->PositionedAppend(data, offset, options, info, dbg); },
        offset);
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_.BeginMutation();
    if (s.ok()) s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      size_ = size;
      fs_.FileResized(path_, size_);
    }
    return s;
  }
  // The real sync is skipped: SyncFile records what a real one would make
  // durable (everything appended before the call).
  IOStatus Sync(const IOOptions&, IODebugContext*) override {
    return fs_.SyncFile(path_, CurrentSize());
  }
  IOStatus Fsync(const IOOptions&, IODebugContext*) override {
    return fs_.SyncFile(path_, CurrentSize());
  }
  // sync_file_range gives no durability guarantee.
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
    return fs_.BeginMutation();
  }
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_.BeginMutation();
    return s.ok() ? target()->Flush(options, dbg) : s;
  }
  // Closing makes nothing durable; the real descriptor is released even
  // after a power cut so the database can be torn down.
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus cut = fs_.BeginMutation();
    IOStatus closed = target()->Close(options, dbg);
    return cut.ok() ? closed : cut;
  }
  bool IsSyncThreadSafe() const override { return true; }

 private:
  template <typename Op>
  IOStatus Write(const Slice& data, Op op, std::optional<uint64_t> offset = std::nullopt) {
    IOStatus s = fs_.BeginMutation();
    if (!s.ok()) return s;
    s = op();
    // Recorded even if the power went out meanwhile: the bytes are in the
    // real file and must be dropped with the rest.
    if (s.ok()) {
      std::lock_guard lock(mu_);
      const uint64_t end = (offset ? *offset : size_) + data.size();
      size_ = std::max(size_, end);
      fs_.FileResized(path_, size_);
    }
    return s;
  }

  std::uint64_t CurrentSize() const {
    std::lock_guard lock(mu_);
    return size_;
  }

  PowerCutFileSystem& fs_;
  const std::string path_;
  mutable std::mutex mu_;
  std::uint64_t size_;  // GUARDED_BY(mu_)
};

class TrackedDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  TrackedDirectory(std::unique_ptr<rocksdb::FSDirectory> target, PowerCutFileSystem& fs,
                   std::string path)
      : rocksdb::FSDirectoryWrapper(std::move(target)), fs_(fs), path_(std::move(path)) {}

  IOStatus Fsync(const IOOptions&, IODebugContext*) override {
    return fs_.SyncDirectory(path_);
  }
  IOStatus FsyncWithDirOptions(const IOOptions&, IODebugContext*,
                               const rocksdb::DirFsyncOptions&) override {
    return fs_.SyncDirectory(path_);
  }

 private:
  PowerCutFileSystem& fs_;
  const std::string path_;
};

}  // namespace

PowerCutFileSystem::PowerCutFileSystem(std::shared_ptr<rocksdb::FileSystem> target)
    : rocksdb::FileSystemWrapper(target) {}

void PowerCutFileSystem::CutPower() {
  std::lock_guard lock(mu_);
  if (!cut_) ++stats_.power_cuts;
  cut_ = true;
}

void PowerCutFileSystem::CutPowerAfter(std::uint64_t calls) {
  std::lock_guard lock(mu_);
  calls_to_cut_ = calls;
}

bool PowerCutFileSystem::power_cut() const {
  std::lock_guard lock(mu_);
  return cut_;
}

PowerCutFileSystem::Stats PowerCutFileSystem::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void PowerCutFileSystem::IgnoreDirectorySyncsForTest(bool ignore) {
  std::lock_guard lock(mu_);
  ignore_dir_syncs_ = ignore;
}

IOStatus PowerCutFileSystem::BeginMutation() {
  std::lock_guard lock(mu_);
  if (!cut_ && calls_to_cut_ > 0 && --calls_to_cut_ == 0) {
    cut_ = true;
    ++stats_.power_cuts;
  }
  if (cut_) return IOStatus::IOError("simulated power cut: the machine is off");
  return IOStatus::OK();
}

void PowerCutFileSystem::FileResized(const std::string& path, std::uint64_t size) {
  std::lock_guard lock(mu_);
  auto [it, added] = files_.try_emplace(path);
  // A file untouched since the last power-up is durable as it is.
  if (added) it->second.synced = size;
  it->second.size = size;
  it->second.synced = std::min(it->second.synced, size);
}

IOStatus PowerCutFileSystem::SyncFile(const std::string& path, std::uint64_t size) {
  IOStatus s = BeginMutation();
  if (!s.ok()) return s;
  std::lock_guard lock(mu_);
  // The power may have gone out since BeginMutation: then this sync never
  // reached the disk.
  if (cut_) return IOStatus::IOError("simulated power cut: the machine is off");
  FileState& file = files_[path];
  file.synced = std::max(file.synced, std::min(size, file.size));
  return IOStatus::OK();
}

IOStatus PowerCutFileSystem::SyncDirectory(const std::string& dir) {
  IOStatus s = BeginMutation();
  if (!s.ok()) return s;
  std::lock_guard lock(mu_);
  if (cut_) return IOStatus::IOError("simulated power cut: the machine is off");
  if (ignore_dir_syncs_) return IOStatus::OK();
  const std::string normal = Normal(dir);
  for (auto it = new_entries_.begin(); it != new_entries_.end();) {
    it = ParentOf(*it) == normal ? new_entries_.erase(it) : std::next(it);
  }
  for (auto it = renames_.begin(); it != renames_.end();) {
    it->dirs_to_sync.erase(normal);
    it = it->dirs_to_sync.empty() ? renames_.erase(it) : std::next(it);
  }
  return IOStatus::OK();
}

bool PowerCutFileSystem::Exists(const std::string& path) {
  return target()->FileExists(path, IOOptions(), nullptr).ok();
}

IOStatus PowerCutFileSystem::TrackNewFile(const std::string& fname, bool existed,
                                          std::uint64_t size,
                                          std::unique_ptr<rocksdb::FSWritableFile>* result) {
  const std::string path = Normal(fname);
  {
    std::lock_guard lock(mu_);
    FileState& file = files_[path];
    // Truncating an existing file (size 0) loses its synced bytes too.
    file.size = size;
    file.synced = std::min(file.synced, size);
    if (!existed) {
      file.synced = 0;
      new_entries_.insert(path);
    }
  }
  *result = std::make_unique<TrackedFile>(std::move(*result), *this, path, size);
  return IOStatus::OK();
}

IOStatus PowerCutFileSystem::NewWritableFile(const std::string& fname,
                                             const rocksdb::FileOptions& options,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  if (!s.ok()) return s;
  const bool existed = Exists(fname);
  s = target()->NewWritableFile(fname, options, result, dbg);
  if (!s.ok()) return s;
  return TrackNewFile(fname, existed, 0, result);
}

IOStatus PowerCutFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  if (!s.ok()) return s;
  const bool existed = Exists(fname);
  std::uint64_t size = 0;
  if (existed) {
    s = target()->GetFileSize(fname, IOOptions(), &size, dbg);
    if (!s.ok()) return s;
  }
  s = target()->ReopenWritableFile(fname, options, result, dbg);
  if (!s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    // Content from before this power-up is durable as it is.
    if (existed && files_.find(Normal(fname)) == files_.end()) {
      files_[Normal(fname)] = {size, size};
    }
  }
  return TrackNewFile(fname, existed, size, result);
}

IOStatus PowerCutFileSystem::ReuseWritableFile(const std::string&, const std::string&,
                                               const rocksdb::FileOptions&,
                                               std::unique_ptr<rocksdb::FSWritableFile>*,
                                               IODebugContext*) {
  return Unsupported("recycled files");
}

IOStatus PowerCutFileSystem::NewRandomRWFile(const std::string&, const rocksdb::FileOptions&,
                                             std::unique_ptr<rocksdb::FSRandomRWFile>*,
                                             IODebugContext*) {
  return Unsupported("random-access writes");
}

IOStatus PowerCutFileSystem::LinkFile(const std::string&, const std::string&,
                                      const IOOptions&, IODebugContext*) {
  return Unsupported("hard links");
}

IOStatus PowerCutFileSystem::NewDirectory(const std::string& name, const IOOptions& io_opts,
                                          std::unique_ptr<rocksdb::FSDirectory>* result,
                                          IODebugContext* dbg) {
  IOStatus s = target()->NewDirectory(name, io_opts, result, dbg);
  if (s.ok()) *result = std::make_unique<TrackedDirectory>(std::move(*result), *this, name);
  return s;
}

IOStatus PowerCutFileSystem::DeleteFile(const std::string& fname, const IOOptions& options,
                                        IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  if (s.ok()) s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    files_.erase(Normal(fname));
    new_entries_.erase(Normal(fname));
  }
  return s;
}

IOStatus PowerCutFileSystem::RenameFile(const std::string& src, const std::string& dst,
                                        const IOOptions& options, IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  if (!s.ok()) return s;
  PendingRename rename;
  rename.from = Normal(src);
  rename.to = Normal(dst);
  {
    std::lock_guard lock(mu_);
    if (Exists(dst) && new_entries_.count(rename.to) == 0) {
      // Only small files (CURRENT, IDENTITY, OPTIONS) are renamed over.
      std::ifstream in(dst, std::ios::binary);
      std::ostringstream content;
      content << in.rdbuf();
      rename.old_to = content.str();
    }
  }
  s = target()->RenameFile(src, dst, options, dbg);
  if (!s.ok()) return s;
  std::lock_guard lock(mu_);
  if (auto it = files_.find(rename.from); it != files_.end()) {
    files_[rename.to] = it->second;
    files_.erase(it);
  }
  rename.from_was_new = new_entries_.erase(rename.from) > 0;
  new_entries_.erase(rename.to);
  rename.dirs_to_sync = {ParentOf(rename.from), ParentOf(rename.to)};
  renames_.push_back(std::move(rename));
  return IOStatus::OK();
}

IOStatus PowerCutFileSystem::Truncate(const std::string& fname, size_t size,
                                      const IOOptions& options, IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  if (s.ok()) s = target()->Truncate(fname, size, options, dbg);
  if (s.ok()) FileResized(Normal(fname), size);
  return s;
}

IOStatus PowerCutFileSystem::CreateDir(const std::string& dirname, const IOOptions& options,
                                       IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  return s.ok() ? target()->CreateDir(dirname, options, dbg) : s;
}

IOStatus PowerCutFileSystem::CreateDirIfMissing(const std::string& dirname,
                                                const IOOptions& options,
                                                IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  return s.ok() ? target()->CreateDirIfMissing(dirname, options, dbg) : s;
}

IOStatus PowerCutFileSystem::DeleteDir(const std::string& dirname, const IOOptions& options,
                                       IODebugContext* dbg) {
  IOStatus s = BeginMutation();
  return s.ok() ? target()->DeleteDir(dirname, options, dbg) : s;
}

void PowerCutFileSystem::UndoRename(const PendingRename& rename) {
  std::error_code ec;
  if (std::filesystem::exists(rename.to, ec)) {
    if (rename.from_was_new) {
      std::filesystem::remove(rename.to, ec);
    } else {
      std::filesystem::rename(rename.to, rename.from, ec);
      if (auto it = files_.find(rename.to); it != files_.end()) {
        files_[rename.from] = it->second;
        files_.erase(it);
      }
    }
  }
  files_.erase(rename.to);
  if (rename.old_to) {
    std::ofstream(rename.to, std::ios::binary | std::ios::trunc) << *rename.old_to;
  }
  ++stats_.renames_undone;
}

void PowerCutFileSystem::LoseUnsyncedData() {
  std::lock_guard lock(mu_);
  for (auto it = renames_.rbegin(); it != renames_.rend(); ++it) UndoRename(*it);
  std::error_code ec;
  for (const std::string& path : new_entries_) {
    if (std::filesystem::remove(path, ec)) ++stats_.files_deleted;
    files_.erase(path);
  }
  for (const auto& [path, file] : files_) {
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size <= file.synced) continue;
    std::filesystem::resize_file(path, file.synced, ec);
    if (!ec) stats_.bytes_dropped += size - file.synced;
  }
  files_.clear();
  new_entries_.clear();
  renames_.clear();
  cut_ = false;
  calls_to_cut_ = 0;
}

}  // namespace fence::testing
