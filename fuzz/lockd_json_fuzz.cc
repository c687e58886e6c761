// Fuzzes lockd's request-body and path parsing (lockd/http_api, core/lease_table):
// the acquire body (ParseAcquireBody), the lock name (ParseLockName) and
// the lease id of keepalive and release (ParseLeaseId). What is accepted
// lies within the documented bounds; what is refused carries its code and
// a sentence.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/lease_table.h"
#include "fuzz/fuzz_check.h"
#include "lockd/http_api.h"

namespace {

using fence::fuzz::Check;

void CheckAcquire(std::string_view body) {
  const fence::lockd::ApiOptions options;
  const auto parsed = fence::lockd::ParseAcquireBody(body, options);
  if (!parsed.ok()) {
    Check(parsed.error().code == "bad_request", "acquire refusal without bad_request");
    Check(!parsed.error().message.empty(), "acquire refusal without a sentence");
    return;
  }
  Check(!parsed->owner.empty() && parsed->owner.size() <= fence::lockd::kMaxOwnerBytes,
        "owner length out of bounds");
  for (char c : parsed->owner) {
    Check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F, "owner with a control byte");
  }
  Check(parsed->ttl.count() >= 1 && parsed->ttl <= options.max_ttl, "ttl_ms out of bounds");
  Check(parsed->wait.count() >= 0 && parsed->wait <= options.max_wait, "wait_ms out of bounds");
  Check(parsed->lock_delay.count() >= 0 && parsed->lock_delay <= options.max_lock_delay,
        "lock_delay_ms out of bounds");
}

void CheckLockName(std::string_view encoded) {
  const auto name = fence::lockd::ParseLockName(encoded);
  if (!name.ok()) {
    Check(name.error().code == "bad_lock_name", "lock name refusal without bad_lock_name");
    return;
  }
  Check(!name->empty() && name->size() <= fence::lockd::kMaxLockNameBytes,
        "lock name length out of bounds");
}

void CheckLeaseId(std::string_view text) {
  const auto id = fence::ParseLeaseId(text);
  if (!id.ok()) {
    Check(id.error().code == "bad_lease_id", "lease id refusal without bad_lease_id");
    return;
  }
  Check(id->value() != 0, "lease id 0 accepted");
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  Check(id->ToString() == lower, "a lease id does not spell back to its input");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckAcquire(text);
  CheckLockName(text);
  CheckLeaseId(text);
  return 0;
}
