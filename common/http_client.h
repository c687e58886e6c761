// The one HTTP client: synchronous, one connection per call, every step
// bounded by a deadline. Used by the worker, the demo, backends and tests.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/http_types.h"
#include "core/result.h"

namespace fence::net {

struct HttpCall {
  http::verb method = http::verb::get;
  std::string url;  // http://HOST:PORT/path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
};

// Any answered status is a value; only transport failures are Errors (code
// "unreachable" or "bad_url").
Result<Response> Call(const HttpCall& call);

struct Url {
  std::string host;
  std::string port;
  std::string target;  // path and query, starting with '/'
};
Result<Url> ParseUrl(std::string_view url);

// Shorthand for the common case of a JSON body.
inline HttpCall JsonCall(http::verb method, std::string url,
                         const nlohmann::json& body) {
  HttpCall call{method, std::move(url), {{"Content-Type", "application/json"}},
                body.dump()};
  return call;
}

}  // namespace fence::net
