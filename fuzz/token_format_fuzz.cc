// Fuzzes the parser of lockd's token file (lockd/token_format), the file
// that must never let a token be issued twice. The first input byte picks
// how the rest becomes a file: as is (any size), or as two slot headers
// laid out in a file of the right size (so checksums and slot logic are
// reached). Invariants: a valid slot re-encodes to a slot that decodes
// equal; a recovery continues from a valid slot and never below it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "lockd/token_format.h"

namespace {

using fence::fuzz::Check;
namespace lockd = fence::lockd;

bool SameSlot(const lockd::Slot& a, const lockd::Slot& b) {
  return a.seq == b.seq && a.reserved_upto == b.reserved_upto &&
         a.max_ttl.value_or(fence::Millis(0)) == b.max_ttl.value_or(fence::Millis(0));
}

void CheckSlot(std::string_view header) {
  const lockd::DecodedSlot decoded = lockd::DecodeSlot(header);
  if (decoded.state != lockd::SlotState::kValid) return;
  const auto encoded = lockd::EncodeSlot(decoded.slot);
  const lockd::DecodedSlot again =
      lockd::DecodeSlot(std::string_view(encoded.data(), encoded.size()));
  Check(again.state == lockd::SlotState::kValid, "a re-encoded slot is not valid");
  Check(SameSlot(decoded.slot, again.slot), "a re-encoded slot decodes different");
}

void CheckRecovery(std::string_view file) {
  const auto recovery = lockd::RecoverFromFile(file);
  if (!recovery.ok()) {
    Check(recovery.error().code == "corrupt_token_file", "refusal without corrupt_token_file");
    return;
  }
  Check(file.size() == lockd::kTokenFileBytes, "a file of the wrong size recovered");
  const auto a = lockd::DecodeSlot(file.substr(0, lockd::kSlotBytes));
  const auto b = lockd::DecodeSlot(file.substr(lockd::kSlotBytes, lockd::kSlotBytes));
  const bool a_ok = a.state == lockd::SlotState::kValid;
  const bool b_ok = b.state == lockd::SlotState::kValid;
  Check(a_ok || b_ok, "recovered from a file without a valid slot");
  Check((a_ok && SameSlot(recovery->newest, a.slot)) ||
            (b_ok && SameSlot(recovery->newest, b.slot)),
        "recovery continues from a slot that is not in the file");
  if (a_ok && b_ok) {
    Check(recovery->newest.seq == std::max(a.slot.seq, b.slot.seq),
          "recovery did not continue from the newer slot");
  }
  Check(recovery->floor >= recovery->newest.reserved_upto, "floor below the newest slot");
  if (recovery->one_slot_unreadable) {
    Check(recovery->floor - recovery->newest.reserved_upto == lockd::kMaxTokenBlock,
          "an unreadable slot did not skip a whole block");
  }
}

// Two slot headers from the input, each at the start of its 4096-byte slot.
std::string FileFromHeaders(std::string_view rest) {
  std::string file(lockd::kTokenFileBytes, '\0');
  const std::size_t first = std::min(rest.size(), lockd::kSlotHeaderBytes);
  std::memcpy(file.data(), rest.data(), first);
  rest.remove_prefix(first);
  std::memcpy(file.data() + lockd::kSlotBytes, rest.data(),
              std::min(rest.size(), lockd::kSlotBytes));
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  CheckSlot(rest);
  if (data[0] % 2 == 0) {
    CheckRecovery(rest);
  } else {
    CheckRecovery(FileFromHeaders(rest));
  }
  return 0;
}
