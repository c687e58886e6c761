#include "tests/support/sim_env.h"

#include <algorithm>
#include <filesystem>

namespace fence::testing {
namespace {

std::string Parent(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : ".";
}

Error PowerError() {
  return MakeError("storage_error", "simulated power cut: the disk is gone");
}

}  // namespace

class SimFile final : public lockd::File {
 public:
  SimFile(SimEnv& env, std::uint64_t inode)
      : env_(env), inode_(inode), generation_(env.generation_) {}

  Result<std::string> ReadAt(std::uint64_t offset, std::size_t n) override {
    Status ok = Ready();
    if (!ok.ok()) return ok.error();
    const std::string& data = env_.inodes_.at(inode_).data;
    if (offset >= data.size()) return std::string();
    return data.substr(offset, n);
  }
  Status WriteAt(std::uint64_t offset, std::string_view bytes) override {
    Status ok = Ready();
    if (!ok.ok()) return ok;
    SimEnv::Inode& inode = env_.inodes_.at(inode_);
    if (inode.data.size() < offset + bytes.size()) inode.data.resize(offset + bytes.size(), '\0');
    inode.data.replace(offset, bytes.size(), bytes);
    inode.unsynced.emplace_back(offset, std::string(bytes));
    return OkStatus();
  }
  Status Sync() override {
    Status ok = Ready();
    if (!ok.ok()) return ok;
    SimEnv::Inode& inode = env_.inodes_.at(inode_);
    inode.synced = inode.data;
    inode.unsynced.clear();
    return OkStatus();
  }

 private:
  Status Ready() {
    Status step = env_.Step();
    return step.ok() ? env_.Alive(generation_) : step;
  }

  SimEnv& env_;
  const std::uint64_t inode_;
  const std::uint64_t generation_;
};

class SimLock final : public lockd::FileLock {
 public:
  SimLock(SimEnv& env, std::uint64_t inode)
      : env_(env), inode_(inode), generation_(env.generation_) {}
  ~SimLock() override {
    if (env_.generation_ == generation_) env_.locked_.erase(inode_);
  }
  SimLock(const SimLock&) = delete;
  SimLock& operator=(const SimLock&) = delete;

 private:
  SimEnv& env_;
  const std::uint64_t inode_;
  const std::uint64_t generation_;
};

SimEnv::SimEnv() {
  dirs_.insert("/");
  durable_dirs_.insert("/");
}

Status SimEnv::Step() {
  ++operations_;
  return power_is_cut() ? Status(PowerError()) : OkStatus();
}

Status SimEnv::Alive(std::uint64_t generation) const {
  if (generation == generation_) return OkStatus();
  return MakeError("storage_error", "a handle from before a crash was used");
}

Result<std::unique_ptr<lockd::File>> SimEnv::Open(const std::string& path,
                                                  lockd::OpenMode mode) {
  Status step = Step();
  if (!step.ok()) return step.error();
  auto it = names_.find(path);
  if (mode == lockd::OpenMode::kExisting) {
    if (it == names_.end()) return MakeError("not_found", path + " does not exist");
    return std::unique_ptr<lockd::File>(new SimFile(*this, it->second));
  }
  if (it != names_.end()) return MakeError("exists", path + " already exists");
  if (!HasDir(Parent(path))) return MakeError("storage_error", "no directory for " + path);
  const std::uint64_t inode = next_inode_++;
  inodes_[inode];
  names_[path] = inode;
  return std::unique_ptr<lockd::File>(new SimFile(*this, inode));
}

Result<std::unique_ptr<lockd::FileLock>> SimEnv::LockFile(const std::string& path) {
  Status step = Step();
  if (!step.ok()) return step.error();
  if (!HasDir(Parent(path))) return MakeError("storage_error", "no directory for " + path);
  auto it = names_.find(path);
  if (it == names_.end()) {
    it = names_.emplace(path, next_inode_++).first;
    inodes_[it->second];
  }
  if (!locked_.insert(it->second).second) return MakeError("locked", path + " is locked");
  return std::unique_ptr<lockd::FileLock>(new SimLock(*this, it->second));
}

Status SimEnv::Rename(const std::string& from, const std::string& to) {
  Status step = Step();
  if (!step.ok()) return step;
  auto it = names_.find(from);
  if (it == names_.end()) return MakeError("storage_error", from + " does not exist");
  const std::uint64_t inode = it->second;
  names_.erase(it);
  names_[to] = inode;
  return OkStatus();
}

Status SimEnv::Remove(const std::string& path) {
  Status step = Step();
  if (!step.ok()) return step;
  names_.erase(path);
  return OkStatus();
}

Result<bool> SimEnv::CreateDir(const std::string& path) {
  Status step = Step();
  if (!step.ok()) return step.error();
  if (HasDir(path)) return false;
  if (names_.count(path) > 0) return MakeError("storage_error", path + " is a file");
  if (!HasDir(Parent(path))) return MakeError("not_found", "no parent for " + path);
  dirs_.insert(path);
  return true;
}

Status SimEnv::SyncDir(const std::string& path) {
  Status step = Step();
  if (!step.ok()) return step;
  if (!HasDir(path)) return MakeError("storage_error", "no directory " + path);
  std::erase_if(durable_names_, [&](const auto& e) { return Parent(e.first) == path; });
  for (const auto& [name, inode] : names_) {
    if (Parent(name) == path) durable_names_[name] = inode;
  }
  std::erase_if(durable_dirs_, [&](const std::string& d) { return d != "/" && Parent(d) == path; });
  for (const std::string& d : dirs_) {
    if (d != "/" && Parent(d) == path) durable_dirs_.insert(d);
  }
  return OkStatus();
}

void SimEnv::CutPowerAfter(std::uint64_t operations) { cut_at_ = operations_ + operations; }

void SimEnv::ApplyPrefix(Inode& inode, std::uint64_t keep) {
  std::string data = inode.synced;
  for (const auto& [offset, bytes] : inode.unsynced) {
    if (keep == 0) break;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(keep, bytes.size()));
    if (data.size() < offset + n) data.resize(offset + n, '\0');
    data.replace(offset, n, bytes, 0, n);
    keep -= n;
  }
  inode.data = inode.synced = data;
  inode.unsynced.clear();
}

void SimEnv::Reboot(std::mt19937_64* torn) {
  for (auto& [id, inode] : inodes_) {
    std::uint64_t unsynced = 0;
    for (const auto& write : inode.unsynced) unsynced += write.second.size();
    const std::uint64_t keep =
        torn == nullptr ? 0 : std::uniform_int_distribution<std::uint64_t>(0, unsynced)(*torn);
    ApplyPrefix(inode, keep);
  }
  names_ = durable_names_;
  dirs_ = durable_dirs_;
  DropOrphans();
  Crash();
}

void SimEnv::Crash() {
  locked_.clear();
  ++generation_;
  cut_at_.reset();
}

// A durable entry in a directory whose own creation was not durable is gone
// with its directory.
void SimEnv::DropOrphans() {
  std::vector<std::string> by_depth(dirs_.begin(), dirs_.end());
  std::sort(by_depth.begin(), by_depth.end(),
            [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
  for (const std::string& d : by_depth) {
    if (d != "/" && !HasDir(Parent(d))) dirs_.erase(d);
  }
  durable_dirs_ = dirs_;
  std::erase_if(names_, [&](const auto& e) { return !HasDir(Parent(e.first)); });
  durable_names_ = names_;
  std::set<std::uint64_t> used;
  for (const auto& [name, inode] : names_) used.insert(inode);
  std::erase_if(inodes_, [&](const auto& e) { return used.count(e.first) == 0; });
}

std::optional<std::string> SimEnv::Contents(const std::string& path) const {
  auto it = names_.find(path);
  if (it == names_.end()) return std::nullopt;
  return inodes_.at(it->second).data;
}

}  // namespace fence::testing
