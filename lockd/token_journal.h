// The durable token counter of fence-lockd. Tokens must only go up, across
// restarts and kill -9, so the highest token that may have been handed out is
// on disk (fdatasync) before any token of a new block is issued.
//
// File DATA_DIR/tokens, 8192 bytes: two 4096-byte slots written alternately,
// each on its own page, so a write torn by a crash can damage only the slot
// being written while the other still holds the previous reservation.
// A slot's first 32 bytes:
//   magic "FLKTOKN1" | seq u64 LE | reserved_upto u64 LE | crc32 u32 LE | 0
// where crc32 covers the first 24 bytes; the rest of the slot is zero.
// An all-zero slot has never been written.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/token.h"

namespace fence::lockd {

inline constexpr std::size_t kSlotBytes = 4096;
inline constexpr std::size_t kSlotHeaderBytes = 32;
inline constexpr std::size_t kTokenFileBytes = 2 * kSlotBytes;
// A bound on --token-block. When one slot is unreadable we cannot tell
// whether it was torn mid-write (its block never used) or damaged after it
// was used, so startup skips this many tokens past the readable slot: the
// damaged slot can have reserved at most one block beyond it.
inline constexpr std::uint64_t kMaxTokenBlock = 1'000'000;

struct Slot {
  std::uint64_t seq = 0;            // which write this was; higher is newer
  std::uint64_t reserved_upto = 0;  // every token <= this may have been issued
};

std::uint32_t Crc32(std::string_view bytes);
std::array<char, kSlotHeaderBytes> EncodeSlot(const Slot& slot);

enum class SlotState { kValid, kEmpty, kCorrupt };
struct DecodedSlot {
  SlotState state;
  Slot slot;
};
DecodedSlot DecodeSlot(std::string_view header);

// What the two slots of a token file say about the next token. Errors:
// "corrupt_token_file" when neither slot is valid or the size is wrong.
struct Recovery {
  Slot newest;                 // the slot to continue from
  std::uint64_t floor = 0;     // every token <= floor may have been issued
  bool one_slot_unreadable = false;
};
Result<Recovery> RecoverFromFile(std::string_view contents);

class TokenJournal {
 public:
  // Opens DIR/tokens, creating it (atomically, via a temporary file and a
  // rename) if missing, and takes an exclusive flock so two lockds can never
  // issue tokens from the same counter. `block` tokens are reserved per
  // fdatasync (1..kMaxTokenBlock); a crash skips the unused rest of a block.
  static Result<std::unique_ptr<TokenJournal>> Open(const std::string& dir,
                                                    std::uint64_t block);
  ~TokenJournal();
  TokenJournal(const TokenJournal&) = delete;
  TokenJournal& operator=(const TokenJournal&) = delete;

  // The next token, durable before it is returned. After a failed write or
  // sync every later call fails too ("storage_error"): after a failed fsync
  // the kernel may have dropped the data, and a later "successful" fsync
  // would not prove it is on disk.
  Result<Token> Next();

  bool existed() const { return existed_; }  // false on a brand-new data dir
  bool one_slot_unreadable() const { return one_slot_unreadable_; }
  std::uint64_t floor() const { return floor_; }
  const std::string& path() const { return path_; }

 private:
  TokenJournal() = default;
  Status WriteSlot(const Slot& slot);

  std::string path_;
  int fd_ = -1;
  std::uint64_t block_ = 1;
  Slot current_;  // the newest slot on disk
  std::uint64_t next_ = 1;
  std::uint64_t floor_ = 0;
  bool existed_ = false;
  bool one_slot_unreadable_ = false;
  std::optional<Error> failed_;
};

}  // namespace fence::lockd
