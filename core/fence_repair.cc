#include "core/fence_repair.h"

#include <nlohmann/json.hpp>

namespace fence {
namespace {

constexpr char kShape[] =
    "expected a JSON object {\"expected\": N, \"new\": M, \"reason\": \"...\"} with N the "
    "key's current fence, M a lower token and the reason for the audit log";

Error BadRepair(const std::string& what) {
  return MakeError("bad_repair", what + "; " + kShape);
}

Result<Token> TokenField(const nlohmann::json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return BadRepair(std::string("field '") + name + "' is missing");
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0) {
    return BadRepair(std::string("field '") + name +
                     "' is not a token (an integer from 1 to 18446744073709551615)");
  }
  return Token(it->get<std::uint64_t>());
}

}  // namespace

Result<RepairRequest> ParseRepairBody(std::string_view text) {
  auto body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return BadRepair("the body is not a JSON object");
  for (const auto& [name, value] : body.items()) {
    if (name != "expected" && name != "new" && name != "reason") {
      return BadRepair("unknown field '" + name + "'");
    }
  }
  auto expected = TokenField(body, "expected");
  if (!expected.ok()) return expected.error();
  auto lowered = TokenField(body, "new");
  if (!lowered.ok()) return lowered.error();
  if (*lowered >= *expected) {
    return BadRepair("'new' (" + lowered->ToString() + ") is not below 'expected' (" +
                     expected->ToString() + "): a repair only lowers a fence; a leader "
                     "raises one with POST /v1/fences/{key} and its token");
  }
  auto reason = body.find("reason");
  if (reason == body.end() || !reason->is_string() || reason->get<std::string>().empty() ||
      reason->get<std::string>().size() > kMaxRepairReasonBytes) {
    return BadRepair("field 'reason' must be a string of 1 to 256 bytes");
  }
  const std::string& why = reason->get_ref<const std::string&>();
  for (unsigned char c : why) {
    if (c < 0x20 || c == 0x7f) return BadRepair("field 'reason' holds a control character");
  }
  return RepairRequest{*expected, *lowered, why};
}

RepairDecision DecideRepair(std::optional<Token> current, const RepairRequest& request) {
  if (!current) return RepairDecision::kNotFenced;
  if (*current != request.expected) return RepairDecision::kMoved;
  return RepairDecision::kRepair;
}

}  // namespace fence
