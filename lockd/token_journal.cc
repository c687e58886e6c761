#include "lockd/token_journal.h"

#include <algorithm>
#include <filesystem>
#include <limits>

namespace fence::lockd {
namespace {

constexpr std::uint64_t kLastToken = std::numeric_limits<std::uint64_t>::max();

std::string Parent(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : ".";
}

// Creates `dir` and any missing parents. Another process creating them at
// the same time is fine. Made durable by SyncPath.
Status CreateDirs(Env& env, const std::string& dir) {
  auto created = env.CreateDir(dir);
  if (!created.ok() && created.error().code == "not_found") {
    Status parent = CreateDirs(env, Parent(dir));
    if (!parent.ok()) return parent;
    created = env.CreateDir(dir);
  }
  return created.ok() ? OkStatus() : Status(created.error());
}

// Makes durable every name from DIR/tokens up to the root: the token file's
// entry in DIR, DIR's in its parent, and so on. At every open, not only
// after creating them: a run that crashed between creating an entry and
// syncing its directory left it only in memory, and the next power cut
// would take the token file (and every token it reserved) with it.
Status SyncPath(Env& env, const std::string& dir) {
  std::string current = dir;
  while (true) {
    Status synced = env.SyncDir(current);
    if (!synced.ok()) return synced;
    const std::string parent = Parent(current);
    if (parent == current) return OkStatus();
    current = parent;
  }
}

// Creates `path` holding a first slot (no token reserved, no lease granted).
// A half-written new file must never be mistaken for a real one: it is built
// aside, synced, then renamed into place (SyncPath makes the name durable).
// Called only under the LOCK, so a leftover temporary file is from a crash.
Status CreateTokenFile(Env& env, const std::string& path) {
  const std::string tmp = path + ".tmp";
  Status removed = env.Remove(tmp);
  if (!removed.ok()) return removed;
  auto file = env.Open(tmp, OpenMode::kCreateExclusive);
  if (!file.ok()) return file.error();
  std::string contents(kTokenFileBytes, '\0');
  const auto first = EncodeSlot(Slot{0, 0, Millis(0)});
  contents.replace(0, first.size(), first.data(), first.size());
  Status written = (*file)->WriteAt(0, contents);
  if (written.ok()) written = (*file)->Sync();
  if (!written.ok()) return written;
  return env.Rename(tmp, path);
}

// The grace period and what the file knew about earlier leases.
Grace GraceFor(bool existed, const Recovery& r, const JournalOptions& options) {
  const Millis assumed_max_ttl = options.assumed_max_ttl;
  if (!existed && options.token_floor) return {assumed_max_ttl, "max_ttl_flag_token_floor"};
  if (!existed) return {Millis(0), "new_token_file"};
  if (!r.newest.max_ttl) return {assumed_max_ttl, "max_ttl_flag_version1_file"};
  if (r.one_slot_unreadable) {
    return {std::max(*r.newest.max_ttl, assumed_max_ttl), "max_ttl_flag_slot_unreadable"};
  }
  return {*r.newest.max_ttl, "recorded_max_ttl"};
}

}  // namespace

Result<std::uint64_t> ParseTokenFloor(std::string_view text) {
  auto token = ParseToken(text);
  if (token.ok() && token->value() < kLastToken) return token->value();
  return MakeError("bad_token_floor",
                   "'" + std::string(text) +
                       "' is not a usable token floor; expected the highest fencing token "
                       "any store reports: a decimal integer from 1 to " +
                       std::to_string(kLastToken - 1) +
                       " with no sign, spaces or leading zeros");
}

Result<std::unique_ptr<TokenJournal>> TokenJournal::Open(Env& env, const std::string& dir,
                                                         const JournalOptions& options) {
  if (options.block < 1 || options.block > kMaxTokenBlock) {
    return MakeError("bad_argument", "token block must be 1.." +
                                         std::to_string(kMaxTokenBlock));
  }
  Status made = CreateDirs(env, dir);
  if (!made.ok()) return made.error();
  std::unique_ptr<TokenJournal> j(new TokenJournal());
  Status locked = j->LockAndOpen(env, dir);
  if (!locked.ok()) return locked.error();
  j->block_ = options.block;
  auto contents = j->file_->ReadAt(0, kTokenFileBytes + 1);
  if (!contents.ok()) return contents.error();
  auto recovery = RecoverFromFile(*contents);
  if (!recovery.ok()) return j->Corrupt(recovery.error());
  if (recovery->floor == kLastToken) {
    return MakeError("corrupt_token_file",
                     "token file " + j->path_ + " says every token up to 2^64-1 "
                     "may have been issued; no higher token exists");
  }
  j->grace_ = GraceFor(j->existed_, *recovery, options);
  // Where the file does not say, the assumption is carried into every later
  // slot: a crash during this grace must not shorten the next one.
  j->current_ = Slot{recovery->newest.seq, recovery->floor,
                     std::max(recovery->newest.max_ttl.value_or(Millis(0)),
                              j->grace_.duration)};
  j->floor_ = recovery->floor;
  j->next_ = recovery->floor + 1;
  j->one_slot_unreadable_ = recovery->one_slot_unreadable;
  if (options.token_floor) {
    Status applied = j->ApplyFloor(*options.token_floor);
    if (!applied.ok()) return applied.error();
  }
  return j;
}

TokenJournal::~TokenJournal() = default;

// DIR/LOCK first: it is created with O_CREAT and never renamed or removed,
// so every lockd on the directory locks the same file however many start at
// once, and only the holder creates or opens the token file.
Status TokenJournal::LockAndOpen(Env& env, const std::string& dir) {
  auto lock = env.LockFile(dir + "/LOCK");
  if (!lock.ok() && lock.error().code == "locked") {
    return MakeError("storage_error",
                     dir + "/LOCK is locked by another running fence-lockd; two "
                           "daemons must never share one token counter");
  }
  if (!lock.ok()) return lock.error();
  lock_ = std::move(*lock);
  path_ = dir + "/tokens";
  auto file = env.Open(path_, OpenMode::kExisting);
  existed_ = file.ok();
  if (!file.ok() && file.error().code != "not_found") return file.error();
  if (!file.ok()) {
    Status created = CreateTokenFile(env, path_);
    if (!created.ok()) return created;
    file = env.Open(path_, OpenMode::kExisting);
    if (!file.ok()) return file.error();
  }
  file_ = std::move(*file);
  return SyncPath(env, dir);
}

Error TokenJournal::Corrupt(const Error& why) const {
  // Never advise restoring a copy: an old copy issues old tokens again.
  return MakeError("corrupt_token_file",
                   "token file " + path_ + " is corrupt: " + why.message +
                       "; refusing to start because tokens could go backwards. "
                       "To recover, move it aside (mv " + path_ + " " + path_ +
                       ".corrupt) and restart with --token-floor N, where N is at "
                       "least the highest fencing token any store reports "
                       "(GET /v1/fences/{key} for every key fenced with this "
                       "lockd's tokens)");
}

Status TokenJournal::ApplyFloor(std::uint64_t requested) {
  floor_applied_ = FloorApplied{requested, floor_, requested > floor_};
  if (!floor_applied_->raised) return OkStatus();
  const Slot slot{current_.seq + 1, requested, current_.max_ttl};
  Status written = WriteSlot(slot);
  if (!written.ok()) return written;
  current_ = slot;
  floor_ = requested;
  next_ = requested + 1;
  return OkStatus();
}

Status TokenJournal::WriteSlot(const Slot& slot) {
  const auto header = EncodeSlot(slot);
  Status written = file_->WriteAt((slot.seq % 2) * kSlotBytes,
                                  std::string_view(header.data(), header.size()));
  if (!written.ok()) return written;
  return file_->Sync();
}

Result<Token> TokenJournal::Issue(Millis ttl) {
  if (exhausted_) return *exhausted_;
  const bool new_block = next_ > current_.reserved_upto;
  const bool longer_ttl = ttl > *current_.max_ttl;
  if (new_block || longer_ttl) {
    if (new_block && current_.reserved_upto == kLastToken) {
      exhausted_ = MakeError("storage_error", "the token counter is exhausted");
      return *exhausted_;
    }
    const std::uint64_t grow =
        new_block ? std::min(block_, kLastToken - current_.reserved_upto) : 0;
    const Slot slot{current_.seq + 1, current_.reserved_upto + grow,
                    std::max(*current_.max_ttl, ttl)};
    // On failure current_ stays the last slot known durable; the next call
    // writes this slot number again, into the same (older) position.
    Status written = WriteSlot(slot);
    if (!written.ok()) return written.error();
    current_ = slot;
  }
  const std::uint64_t token = next_;
  if (token == kLastToken) {
    exhausted_ = MakeError("storage_error", "the token counter is exhausted");
  } else {
    ++next_;
  }
  return Token(token);
}

}  // namespace fence::lockd
