#include "lockd/token_journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

namespace fence::lockd {
namespace {

constexpr char kMagicV1[8] = {'F', 'L', 'K', 'T', 'O', 'K', 'N', '1'};
constexpr char kMagicV2[8] = {'F', 'L', 'K', 'T', 'O', 'K', 'N', '2'};
constexpr std::size_t kV1HeaderBytes = 32;

void PutU64(char* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void PutU32(char* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
std::uint64_t GetU64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}
std::uint32_t GetU32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

Status WriteAll(int fd, const char* data, std::size_t size, off_t offset,
                const std::string& path) {
  while (size > 0) {
    const ssize_t n = pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return MakeError("storage_error", Errno("cannot write " + path));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return OkStatus();
}

}  // namespace

std::uint32_t Crc32(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (char c : bytes) {
    crc ^= static_cast<std::uint8_t>(c);
    for (int k = 0; k < 8; ++k) {
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
  }
  return ~crc;
}

std::array<char, kSlotHeaderBytes> EncodeSlot(const Slot& slot) {
  std::array<char, kSlotHeaderBytes> out{};
  std::memcpy(out.data(), kMagicV2, 8);
  PutU64(out.data() + 8, slot.seq);
  PutU64(out.data() + 16, slot.reserved_upto);
  PutU64(out.data() + 24, static_cast<std::uint64_t>(slot.max_ttl.value_or(Millis(0)).count()));
  PutU32(out.data() + 32, Crc32(std::string_view(out.data(), 32)));
  return out;
}

namespace {

// A TTL beyond this cannot have been granted (--max-ttl-ms allows one day);
// a larger value with a valid checksum is not ours.
constexpr std::uint64_t kMaxRecordedTtlMs = 1ull << 40;

DecodedSlot DecodeV1(std::string_view header) {
  const char* p = header.data();
  if (GetU32(p + 24) != Crc32(header.substr(0, 24)) || GetU32(p + 28) != 0) {
    return {SlotState::kCorrupt, {}};
  }
  return {SlotState::kValid, Slot{GetU64(p + 8), GetU64(p + 16), std::nullopt}};
}

DecodedSlot DecodeV2(std::string_view header) {
  if (header.size() < kSlotHeaderBytes) return {SlotState::kCorrupt, {}};
  const char* p = header.data();
  const std::uint64_t max_ttl_ms = GetU64(p + 24);
  if (GetU32(p + 32) != Crc32(header.substr(0, 32)) || GetU32(p + 36) != 0 ||
      max_ttl_ms > kMaxRecordedTtlMs) {
    return {SlotState::kCorrupt, {}};
  }
  return {SlotState::kValid,
          Slot{GetU64(p + 8), GetU64(p + 16), Millis(static_cast<std::int64_t>(max_ttl_ms))}};
}

}  // namespace

DecodedSlot DecodeSlot(std::string_view header) {
  if (header.size() < kV1HeaderBytes) return {SlotState::kCorrupt, {}};
  bool all_zero = true;
  for (char c : header) all_zero = all_zero && c == 0;
  if (all_zero) return {SlotState::kEmpty, {}};
  if (std::memcmp(header.data(), kMagicV2, 8) == 0) return DecodeV2(header);
  if (std::memcmp(header.data(), kMagicV1, 8) == 0) return DecodeV1(header);
  return {SlotState::kCorrupt, {}};
}

Result<Recovery> RecoverFromFile(std::string_view contents) {
  if (contents.size() != kTokenFileBytes) {
    return MakeError("corrupt_token_file",
                     "the token file is " + std::to_string(contents.size()) +
                         " bytes, expected " + std::to_string(kTokenFileBytes));
  }
  const DecodedSlot a = DecodeSlot(contents.substr(0, kSlotBytes));
  const DecodedSlot b = DecodeSlot(contents.substr(kSlotBytes, kSlotBytes));
  const bool a_ok = a.state == SlotState::kValid;
  const bool b_ok = b.state == SlotState::kValid;
  if (!a_ok && !b_ok) {
    return MakeError("corrupt_token_file",
                     "neither slot of the token file has a valid checksum, so "
                     "the highest token already issued is unknown");
  }
  Recovery r;
  if (a_ok && b_ok) {
    r.newest = a.slot.seq >= b.slot.seq ? a.slot : b.slot;
  } else {
    r.newest = a_ok ? a.slot : b.slot;
    r.one_slot_unreadable = (a_ok ? b.state : a.state) == SlotState::kCorrupt;
  }
  r.floor = r.newest.reserved_upto;
  if (r.one_slot_unreadable) {
    if (r.floor > std::numeric_limits<std::uint64_t>::max() - kMaxTokenBlock) {
      return MakeError("corrupt_token_file", "the token counter is exhausted");
    }
    r.floor += kMaxTokenBlock;
  }
  return r;
}

Result<std::uint64_t> ParseTokenFloor(std::string_view text) {
  auto token = ParseToken(text);
  constexpr std::uint64_t kLast = std::numeric_limits<std::uint64_t>::max();
  if (token.ok() && token->value() < kLast) return token->value();
  return MakeError("bad_token_floor",
                   "'" + std::string(text) +
                       "' is not a usable token floor; expected the highest fencing token "
                       "any store reports: a decimal integer from 1 to " +
                       std::to_string(kLast - 1) +
                       " with no sign, spaces or leading zeros");
}

namespace {

Status SyncDir(const std::string& dir) {
  const int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0 || fsync(d) != 0) {
    Error error = MakeError("storage_error", Errno("cannot sync directory " + dir));
    if (d >= 0) close(d);
    return error;
  }
  close(d);
  return OkStatus();
}

// Creates `dir` and any missing parents, syncing each parent after creating
// its child so the new directory survives a power cut. Another process
// creating it at the same time is fine (EEXIST).
Status CreateDirs(const std::filesystem::path& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return OkStatus();
    return MakeError("storage_error", dir.string() + " exists and is not a directory");
  }
  const std::filesystem::path parent =
      dir.has_parent_path() ? dir.parent_path() : std::filesystem::path(".");
  Status made = CreateDirs(parent);
  if (!made.ok()) return made;
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return MakeError("storage_error", Errno("cannot create data directory " + dir.string()));
  }
  return SyncDir(parent.string());
}

// Takes DIR/LOCK: an exclusive flock held for the journal's life. The file
// is opened with O_CREAT and never renamed or removed, so every lockd on the
// directory locks the same inode, however many start at once.
Result<int> LockDataDir(const std::string& dir) {
  const std::string path = dir + "/LOCK";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return MakeError("storage_error", Errno("cannot open " + path));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    Error error = MakeError(
        "storage_error",
        errno == EWOULDBLOCK
            ? path + " is locked by another running fence-lockd; two daemons "
                     "must never share one token counter"
            : Errno("cannot lock " + path));
    close(fd);
    return error;
  }
  return fd;
}

// Creates `path` holding a first slot (no token reserved, no lease granted).
// A half-written new file must never be mistaken for a real one: it is built
// aside, synced, then renamed into place and the directory synced. Called
// only under the LOCK, so a leftover temporary file is from a crash.
Status CreateTokenFile(const std::string& dir, const std::string& path) {
  const std::string tmp = path + ".tmp";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return MakeError("storage_error", Errno("cannot remove " + tmp));
  }
  const int t = open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (t < 0) return MakeError("storage_error", Errno("cannot create " + tmp));
  std::string contents(kTokenFileBytes, '\0');
  const auto first = EncodeSlot(Slot{0, 0, Millis(0)});
  std::memcpy(contents.data(), first.data(), first.size());
  Status written = WriteAll(t, contents.data(), contents.size(), 0, tmp);
  if (written.ok() && fsync(t) != 0) {
    written = MakeError("storage_error", Errno("cannot sync " + tmp));
  }
  close(t);
  if (!written.ok()) return written;
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return MakeError("storage_error", Errno("cannot rename " + tmp));
  }
  return SyncDir(dir);
}

Result<std::string> ReadWhole(int fd, const std::string& path) {
  std::string contents(kTokenFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < contents.size()) {
    const ssize_t n = pread(fd, contents.data() + got, contents.size() - got,
                            static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError("storage_error", Errno("cannot read " + path));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  contents.resize(got);
  return contents;
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

Result<std::unique_ptr<TokenJournal>> TokenJournal::Open(const std::string& dir,
                                                         const JournalOptions& options) {
  if (options.block < 1 || options.block > kMaxTokenBlock) {
    return MakeError("bad_argument", "token block must be 1.." +
                                         std::to_string(kMaxTokenBlock));
  }
  Status made = CreateDirs(dir);
  if (!made.ok()) return made.error();
  std::unique_ptr<TokenJournal> j(new TokenJournal());
  auto lock = LockDataDir(dir);
  if (!lock.ok()) return lock.error();
  j->lock_fd_ = *lock;
  j->path_ = dir + "/tokens";
  j->block_ = options.block;
  j->fd_ = open(j->path_.c_str(), O_RDWR | O_CLOEXEC);
  j->existed_ = j->fd_ >= 0;
  if (j->fd_ < 0 && errno != ENOENT) {
    return MakeError("storage_error", Errno("cannot open " + j->path_));
  }
  if (j->fd_ < 0) {
    Status created = CreateTokenFile(dir, j->path_);
    if (!created.ok()) return created.error();
    j->fd_ = open(j->path_.c_str(), O_RDWR | O_CLOEXEC);
    if (j->fd_ < 0) {
      return MakeError("storage_error", Errno("cannot open " + j->path_));
    }
  }
  auto contents = ReadWhole(j->fd_, j->path_);
  if (!contents.ok()) return contents.error();
  auto recovery = RecoverFromFile(*contents);
  if (!recovery.ok()) {
    // Never advise restoring a copy: an old copy issues old tokens again.
    return MakeError("corrupt_token_file",
                     "token file " + j->path_ + " is corrupt: " +
                         recovery.error().message +
                         "; refusing to start because tokens could go "
                         "backwards. To recover, move it aside (mv " + j->path_ +
                         " " + j->path_ + ".corrupt) and restart with "
                         "--token-floor N, where N is at least the highest "
                         "fencing token any store reports (GET /v1/fences/{key} "
                         "for every key fenced with this lockd's tokens)");
  }
  if (recovery->floor == std::numeric_limits<std::uint64_t>::max()) {
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

TokenJournal::~TokenJournal() {
  if (fd_ >= 0) close(fd_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

Status TokenJournal::WriteSlot(const Slot& slot) {
  const auto header = EncodeSlot(slot);
  const off_t offset = static_cast<off_t>((slot.seq % 2) * kSlotBytes);
  Status written = WriteAll(fd_, header.data(), header.size(), offset, path_);
  if (!written.ok()) return written;
  if (fdatasync(fd_) != 0) {
    return MakeError("storage_error", Errno("cannot sync " + path_));
  }
  return OkStatus();
}

Result<Token> TokenJournal::Issue(Millis ttl) {
  if (failed_) return *failed_;
  const bool new_block = next_ > current_.reserved_upto;
  const bool longer_ttl = ttl > *current_.max_ttl;
  if (new_block || longer_ttl) {
    constexpr std::uint64_t kLast = std::numeric_limits<std::uint64_t>::max();
    if (new_block && current_.reserved_upto == kLast) {
      failed_ = MakeError("storage_error", "the token counter is exhausted");
      return *failed_;
    }
    const std::uint64_t grow =
        new_block ? std::min(block_, kLast - current_.reserved_upto) : 0;
    const Slot slot{current_.seq + 1, current_.reserved_upto + grow,
                    std::max(*current_.max_ttl, ttl)};
    Status written = WriteSlot(slot);
    if (!written.ok()) {
      failed_ = written.error();
      return *failed_;
    }
    current_ = slot;
  }
  const std::uint64_t token = next_;
  if (token == std::numeric_limits<std::uint64_t>::max()) {
    failed_ = MakeError("storage_error", "the token counter is exhausted");
  } else {
    ++next_;
  }
  return Token(token);
}

}  // namespace fence::lockd
