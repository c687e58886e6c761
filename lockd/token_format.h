// The format of fence-lockd's token file, as pure functions (no I/O): slot
// encoding and what two slots say after a crash.
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
#include <optional>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

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

Result<Recovery> RecoverFromFile(std::string_view contents);

}  // namespace fence::lockd
