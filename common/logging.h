// One logger setup for every binary: JSON lines on stderr with ts (RFC 3339,
// ms, UTC), level, component, event and the facts of the event.
#pragma once

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string_view>

#include "core/json_text.h"

namespace fence::log {

// How lines reach stderr. kEachLine writes and flushes each line on the
// calling thread. kBatched (the daemons, at thousands of events a second)
// formats on the calling thread and hands the line to one writer thread,
// which writes every line gathered in one write(2), at least every
// millisecond while lines come: a line is out within about 1 ms (so a
// kill -9 loses at most that much), and the lines pending are bounded (a
// caller waits when 8 MiB are). Not for a process that forks and logs in
// the child.
enum class Writes { kEachLine, kBatched };

// Call once at the start of main. `component` is e.g. "store", "lockd".
void Init(std::string_view component, Writes writes = Writes::kEachLine);

void Event(spdlog::level::level_enum level, std::string_view event,
           const nlohmann::json& fields = nlohmann::json::object());

inline void Info(std::string_view event,
                 const nlohmann::json& fields = nlohmann::json::object()) {
  Event(spdlog::level::info, event, fields);
}
inline void Warn(std::string_view event,
                 const nlohmann::json& fields = nlohmann::json::object()) {
  Event(spdlog::level::warn, event, fields);
}
inline void Error(std::string_view event,
                  const nlohmann::json& fields = nlohmann::json::object()) {
  Event(spdlog::level::err, event, fields);
}

// The same, for an event whose fields are already JSON text (a hot path).
void Event(spdlog::level::level_enum level, std::string_view event,
           const JsonMembers& fields);
inline void Info(std::string_view event, const JsonMembers& fields) {
  Event(spdlog::level::info, event, fields);
}

// The body of a log line without the envelope: "event" first, then fields.
// Exposed for tests of the format.
std::string FormatEventBody(std::string_view event,
                            const nlohmann::json& fields);

}  // namespace fence::log
