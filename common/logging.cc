#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace fence::log {

void Init(std::string_view component) {
  auto logger = spdlog::stderr_logger_mt("fence");
  // The envelope is the pattern; the event body (already valid JSON members)
  // is the message. Component names are ours, never user input.
  logger->set_pattern(
      R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":")" +
          std::string(component) + R"(",%v})",
      spdlog::pattern_time_type::utc);
  // Tests and operators read the log as events happen.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

std::string FormatEventBody(std::string_view event,
                            const nlohmann::json& fields) {
  nlohmann::ordered_json body;
  body["event"] = event;
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) body[k] = v;
  }
  // Replace invalid UTF-8 instead of throwing: a log line must never take the
  // process down, whatever bytes a client sent.
  std::string text =
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text.substr(1, text.size() - 2);
}

void Event(spdlog::level::level_enum level, std::string_view event,
           const nlohmann::json& fields) {
  spdlog::log(level, "{}", FormatEventBody(event, fields));
}

}  // namespace fence::log
