#include "common/http_types.h"

#include "core/json_text.h"

namespace fence::net {

Response JsonResponse(http::status status, const nlohmann::json& body) {
  Response res{status, 11};
  res.set(http::field::content_type, ToBeast(kJsonContentType));
  AppendJsonValue(res.body(), body);
  res.body().push_back('\n');
  return res;
}

Response ErrorResponse(http::status status, const Error& error) {
  // Code first, figures next, the sentence last: the order a reader scans.
  // Written member by member: a busy store answers many 409s.
  std::string text = "{\"error\":";
  AppendJsonString(text, error.code);
  if (error.details.is_object()) {
    for (const auto& [k, v] : error.details.items()) {
      if (k == "error" || k == "message") continue;
      text += ',';
      AppendJsonString(text, k);
      text += ':';
      AppendJsonValue(text, v);
    }
  }
  text += ",\"message\":";
  AppendJsonString(text, error.message);
  text += "}\n";
  Response res{status, 11};
  res.set(http::field::content_type, ToBeast(kJsonContentType));
  res.body() = std::move(text);
  return res;
}

Response ErrorResponse(http::status status, std::string code,
                       std::string message, nlohmann::json details) {
  return ErrorResponse(
      status, MakeError(std::move(code), std::move(message), std::move(details)));
}

std::vector<std::string_view> HeaderValues(const RequestHeader& header,
                                           std::string_view name) {
  std::vector<std::string_view> values;
  auto range = header.equal_range(ToBeast(name));
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->value().data(), it->value().size());
  }
  return values;
}

}  // namespace fence::net
