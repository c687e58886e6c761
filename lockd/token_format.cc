#include "lockd/token_format.h"

#include <cstring>
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

}  // namespace fence::lockd
