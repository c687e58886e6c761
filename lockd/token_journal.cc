#include "lockd/token_journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace fence::lockd {
namespace {

constexpr char kMagic[8] = {'F', 'L', 'K', 'T', 'O', 'K', 'N', '1'};

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
  std::memcpy(out.data(), kMagic, 8);
  PutU64(out.data() + 8, slot.seq);
  PutU64(out.data() + 16, slot.reserved_upto);
  PutU32(out.data() + 24, Crc32(std::string_view(out.data(), 24)));
  return out;
}

DecodedSlot DecodeSlot(std::string_view header) {
  if (header.size() < kSlotHeaderBytes) return {SlotState::kCorrupt, {}};
  bool all_zero = true;
  for (char c : header) all_zero = all_zero && c == 0;
  if (all_zero) return {SlotState::kEmpty, {}};
  const char* p = header.data();
  if (std::memcmp(p, kMagic, 8) != 0 ||
      GetU32(p + 24) != Crc32(header.substr(0, 24)) || GetU32(p + 28) != 0) {
    return {SlotState::kCorrupt, {}};
  }
  return {SlotState::kValid, Slot{GetU64(p + 8), GetU64(p + 16)}};
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

Result<std::unique_ptr<TokenJournal>> TokenJournal::Open(const std::string& dir,
                                                         std::uint64_t block) {
  if (block < 1 || block > kMaxTokenBlock) {
    return MakeError("bad_argument", "token block must be 1.." +
                                         std::to_string(kMaxTokenBlock));
  }
  std::unique_ptr<TokenJournal> j(new TokenJournal());
  j->path_ = dir + "/tokens";
  j->block_ = block;
  j->fd_ = open(j->path_.c_str(), O_RDWR | O_CLOEXEC);
  j->existed_ = j->fd_ >= 0;
  if (j->fd_ < 0 && errno != ENOENT) {
    return MakeError("storage_error", Errno("cannot open " + j->path_));
  }
  if (j->fd_ < 0) {
    // A half-written new file must never be mistaken for a real one: build
    // it aside, sync it, then rename it into place and sync the directory.
    const std::string tmp = j->path_ + ".tmp";
    const int t = open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (t < 0) return MakeError("storage_error", Errno("cannot create " + tmp));
    std::string contents(kTokenFileBytes, '\0');
    const auto first = EncodeSlot(Slot{0, 0});
    std::memcpy(contents.data(), first.data(), first.size());
    Status written = WriteAll(t, contents.data(), contents.size(), 0, tmp);
    if (written.ok() && fsync(t) != 0) {
      written = MakeError("storage_error", Errno("cannot sync " + tmp));
    }
    close(t);
    if (!written.ok()) return written.error();
    if (rename(tmp.c_str(), j->path_.c_str()) != 0) {
      return MakeError("storage_error", Errno("cannot rename " + tmp));
    }
    const int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 || fsync(d) != 0) {
      if (d >= 0) close(d);
      return MakeError("storage_error", Errno("cannot sync directory " + dir));
    }
    close(d);
    j->fd_ = open(j->path_.c_str(), O_RDWR | O_CLOEXEC);
    if (j->fd_ < 0) {
      return MakeError("storage_error", Errno("cannot open " + j->path_));
    }
  }
  if (flock(j->fd_, LOCK_EX | LOCK_NB) != 0) {
    return MakeError("storage_error",
                     errno == EWOULDBLOCK
                         ? j->path_ + " is locked by another running "
                                      "fence-lockd; two daemons must never "
                                      "share one token counter"
                         : Errno("cannot lock " + j->path_));
  }
  std::string contents(kTokenFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < contents.size()) {
    const ssize_t n = pread(j->fd_, contents.data() + got, contents.size() - got,
                            static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError("storage_error", Errno("cannot read " + j->path_));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  contents.resize(got);
  auto recovery = RecoverFromFile(contents);
  if (!recovery.ok()) {
    return MakeError("corrupt_token_file",
                     "token file " + j->path_ + " is corrupt: " +
                         recovery.error().message +
                         "; refusing to start because tokens could go "
                         "backwards (restore the file from a backup, or set "
                         "it aside only if every resource fenced by this "
                         "lockd is fenced anew)");
  }
  j->current_ = Slot{recovery->newest.seq, recovery->floor};
  j->floor_ = recovery->floor;
  j->next_ = recovery->floor + 1;
  j->one_slot_unreadable_ = recovery->one_slot_unreadable;
  return j;
}

TokenJournal::~TokenJournal() {
  if (fd_ >= 0) close(fd_);
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

Result<Token> TokenJournal::Next() {
  if (failed_) return *failed_;
  if (next_ > current_.reserved_upto) {
    if (current_.reserved_upto > std::numeric_limits<std::uint64_t>::max() - block_) {
      failed_ = MakeError("storage_error", "the token counter is exhausted");
      return *failed_;
    }
    const Slot slot{current_.seq + 1, current_.reserved_upto + block_};
    Status written = WriteSlot(slot);
    if (!written.ok()) {
      failed_ = written.error();
      return *failed_;
    }
    current_ = slot;
  }
  return Token(next_++);
}

}  // namespace fence::lockd
