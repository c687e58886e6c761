// JSON text appended to a string, byte for byte what nlohmann::json's
// dump(-1, ' ', false, error_handler_t::replace) writes, without building a
// json value or a serializer per call. Logs, error answers and key records
// are written on every request; dump's per-call allocations were a tenth of
// the store's CPU on a refused write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace fence {

// `text` as a quoted JSON string: '"', '\\' and control characters escaped,
// other bytes kept; each invalid UTF-8 sequence becomes U+FFFD as
// nlohmann's replace handler makes it, so any bytes a client sent give valid
// JSON and nothing throws.
void AppendJsonString(std::string& out, std::string_view text);

void AppendJsonNumber(std::string& out, std::uint64_t value);

// Any json value, in dump's order (objects by sorted key). Floating point
// and binary values are left to dump itself.
void AppendJsonValue(std::string& out, const nlohmann::json& value);

}  // namespace fence
