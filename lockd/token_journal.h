// The durable token counter of fence-lockd. Tokens must only go up, across
// restarts and kill -9, so the highest token that may have been handed out is
// on disk (fdatasync) before any token of a new block is issued. It also
// records the largest TTL ever granted, durably before the grant that raises
// it is answered: after a restart, that is how long a lease granted before
// the crash can still be live (the grace period).
//
// File DATA_DIR/tokens, 8192 bytes: two 4096-byte slots written alternately,
// each on its own page, so a write torn by a crash can damage only the slot
// being written while the other still holds the previous reservation.
// A slot's first 40 bytes (version 2, the only one written):
//   magic "FLKTOKN2" | seq u64 LE | reserved_upto u64 LE | max_ttl_ms u64 LE
//   | crc32 u32 LE | 0 u32
// where crc32 covers the first 32 bytes; the rest of the slot is zero.
// Version 1 (still read; its max TTL is unknown) has 32 bytes:
//   magic "FLKTOKN1" | seq u64 LE | reserved_upto u64 LE | crc32 u32 LE | 0
// with crc32 over the first 24 bytes.
// An all-zero slot has never been written.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "core/token.h"

namespace fence::lockd {

inline constexpr std::size_t kSlotBytes = 4096;
inline constexpr std::size_t kSlotHeaderBytes = 40;  // version 2
inline constexpr std::size_t kTokenFileBytes = 2 * kSlotBytes;
// A bound on --token-block. When one slot is unreadable we cannot tell
// whether it was torn mid-write (its block never used) or damaged after it
// was used, so startup skips this many tokens past the readable slot: the
// damaged slot can have reserved at most one block beyond it.
inline constexpr std::uint64_t kMaxTokenBlock = 1'000'000;

struct Slot {
  std::uint64_t seq = 0;            // which write this was; higher is newer
  std::uint64_t reserved_upto = 0;  // every token <= this may have been issued
  // Every lease granted so far had a TTL <= this; nullopt in a version-1
  // slot, which did not record it.
  std::optional<Millis> max_ttl = Millis(0);
};

std::uint32_t Crc32(std::string_view bytes);
// Always version 2; a slot without max_ttl is written with 0.
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

// How long lockd must grant nothing after opening its journal, and why.
struct Grace {
  Millis duration{0};
  // "new_token_file": nothing was ever granted from this data directory;
  // "recorded_max_ttl": the largest TTL ever granted, from the file;
  // "max_ttl_flag_version1_file": a version-1 file has no record, so the
  //   current --max-ttl-ms is assumed;
  // "max_ttl_flag_slot_unreadable": one slot was unreadable and may have
  //   recorded more, so the larger of the record and --max-ttl-ms;
  // "max_ttl_flag_token_floor": a new file given --token-floor replaces one
  //   whose record is lost, so --max-ttl-ms.
  std::string source;
};

struct JournalOptions {
  std::uint64_t block = 1000;  // tokens reserved per fdatasync
  // Assumed as the largest TTL ever granted where the file does not say
  // (version 1, one slot unreadable, or a new file given a token floor):
  // the current --max-ttl-ms.
  Millis assumed_max_ttl{60000};
  // --token-floor: every token issued from now on is above this. Raised
  // durably at open when the file holds less; never lowers the file.
  std::optional<std::uint64_t> token_floor = std::nullopt;
};

// What --token-floor did at open.
struct FloorApplied {
  std::uint64_t requested = 0;
  std::uint64_t journal_floor = 0;  // what the file held before
  bool raised = false;              // false: the file already held as much
};

// Parses a --token-floor value: a token (1*DIGIT, no sign or leading zero)
// below 2^64-1, so that a token can still be issued above it. Errors have
// code "bad_token_floor" and say what was expected.
Result<std::uint64_t> ParseTokenFloor(std::string_view text);
Result<Recovery> RecoverFromFile(std::string_view contents);

class TokenJournal {
 public:
  // Creates DIR if missing, takes an exclusive flock on DIR/LOCK (so two
  // lockds can never issue tokens from the same counter), then opens
  // DIR/tokens, creating it (atomically, via a temporary file and a rename)
  // if missing. `block` tokens are reserved per
  // fdatasync (1..kMaxTokenBlock); a crash skips the unused rest of a block.
  static Result<std::unique_ptr<TokenJournal>> Open(const std::string& dir,
                                                    const JournalOptions& options);
  ~TokenJournal();
  TokenJournal(const TokenJournal&) = delete;
  TokenJournal& operator=(const TokenJournal&) = delete;

  // The next token for a lease of `ttl`. Both the token's block and a TTL
  // above every one recorded are durable before it returns. After a failed
  // write or sync every later call fails too ("storage_error"): after a
  // failed fsync the kernel may have dropped the data, and a later
  // "successful" fsync would not prove it is on disk.
  Result<Token> Issue(Millis ttl);

  bool existed() const { return existed_; }  // false on a brand-new data dir
  bool one_slot_unreadable() const { return one_slot_unreadable_; }
  std::uint64_t floor() const { return floor_; }
  // Every lease granted from this file had a TTL <= this (assumed where the
  // file does not say).
  Millis max_ttl() const { return *current_.max_ttl; }
  const Grace& grace() const { return grace_; }
  const std::optional<FloorApplied>& floor_applied() const { return floor_applied_; }
  const std::string& path() const { return path_; }

 private:
  TokenJournal() = default;
  Status WriteSlot(const Slot& slot);
  Status ApplyFloor(std::uint64_t requested);

  std::string path_;
  int fd_ = -1;
  int lock_fd_ = -1;  // DIR/LOCK, flocked while open
  std::uint64_t block_ = 1;
  Slot current_;  // the newest slot on disk
  std::uint64_t next_ = 1;
  std::uint64_t floor_ = 0;
  bool existed_ = false;
  bool one_slot_unreadable_ = false;
  Grace grace_;
  std::optional<FloorApplied> floor_applied_;
  std::optional<Error> failed_;
};

}  // namespace fence::lockd
