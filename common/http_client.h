// The one HTTP client: synchronous, one connection per call, every step
// bounded by a deadline. Used by the worker, the demo, backends and tests.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>
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

// A response whose body is a stream that may never end (etcd's /v3/watch).
struct StreamedResponse {
  Response head;           // status and headers; the body went to the reader
  bool timed_out = false;  // call.timeout passed while the body was arriving
  bool stopped = false;    // the reader returned false
};

// Like Call, but hands each piece of the body to `reader` as it arrives,
// until the reader returns false, the body ends or call.timeout passes (which
// is not an Error once the header has arrived: a watch that saw nothing is a
// normal outcome). Transport failures before that are Errors as in Call.
Result<StreamedResponse> CallStreaming(
    const HttpCall& call, const std::function<bool(std::string_view)>& reader);

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
