// Shared HTTP vocabulary of both daemons: responses, JSON bodies and errors.
#pragma once

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"

namespace fence::net {

namespace http = boost::beast::http;

using Response = http::response<http::string_body>;
using RequestHeader = http::request_header<>;

inline constexpr std::string_view kJsonContentType = "application/json";

// Beast 1.74 speaks boost::string_view; these convert at the boundary.
inline boost::beast::string_view ToBeast(std::string_view s) {
  return {s.data(), s.size()};
}
inline std::string_view FromBeast(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

Response JsonResponse(http::status status, const nlohmann::json& body);

// Every error is JSON: {"error":code,"message":sentence, ...figures}.
Response ErrorResponse(http::status status, const Error& error);
Response ErrorResponse(http::status status, std::string code,
                       std::string message,
                       nlohmann::json details = nlohmann::json::object());

// The values of one header field, in the order received.
std::vector<std::string_view> HeaderValues(const RequestHeader& header,
                                           std::string_view name);

}  // namespace fence::net
