// The timestamps of our logs ("ts", RFC 3339 with milliseconds, as the
// logger writes them: 2024-05-01T12:00:00.123+00:00), for every tool that
// orders log lines in time: fence-logscan, fence-demo, fence-partition. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace fence::tools::logscan {

using EpochMillis = std::int64_t;

// RFC 3339 with a 'Z' or ±HH:MM offset and an optional fraction ->
// milliseconds since the epoch. Fractions beyond milliseconds are truncated.
// No time zone database or libc call is involved.
Result<EpochMillis> ParseTimestamp(std::string_view text);
// Milliseconds since the epoch -> "2024-05-01T12:00:00.123Z".
std::string FormatTimestamp(EpochMillis ms);

}  // namespace fence::tools::logscan
