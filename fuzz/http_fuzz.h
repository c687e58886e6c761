// What the two HTTP fuzz targets share: a request's bytes through the
// server's in-process seam (net::DispatchBytes), and the checks every
// response must pass.
#pragma once

#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_server.h"
#include "fuzz/fuzz_check.h"

namespace fence::fuzz {

// Checks that `response`, as written to the wire, is valid HTTP/1.1 that a
// client parses back, and that every error (4xx, 5xx) has a JSON body
// {"error": code, "message": sentence}. Returns the parsed JSON body, if any.
inline nlohmann::json CheckResponse(const net::Response& response, bool is_head) {
  namespace http = boost::beast::http;
  std::ostringstream wire;
  wire << response;
  const std::string bytes = wire.str();
  http::response_parser<http::string_body> parser;
  parser.skip(is_head);  // a HEAD answer declares a length it does not send
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (!ec && !parser.is_done() && used < bytes.size()) {
    const std::size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (n == 0 && !ec) break;
    used += n;
  }
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) {
    Fail("a response is not valid HTTP (" + ec.message() + "):\n" + bytes);
  }
  Check(used == bytes.size() || is_head, "a response has bytes after its end");
  const auto& parsed = parser.get();
  const unsigned status = parsed.result_int();
  Check(status >= 200 && status <= 599, "a response status out of 200..599");
  if (is_head) return nullptr;
  const auto json = nlohmann::json::parse(parsed.body(), nullptr, false);
  if (status >= 400) {
    Check(parsed[http::field::content_type].starts_with("application/json"),
          "an error response is not JSON");
    Check(json.is_object() && json.contains("error") && json["error"].is_string() &&
              json.contains("message") && json["message"].is_string() &&
              !json["message"].get<std::string>().empty(),
          "an error body lacks \"error\" and \"message\"");
  }
  return json.is_discarded() ? nlohmann::json() : json;
}

// Serves the requests in `bytes` one after another as one connection would
// (pipelined), until the connection could not go on. Each response comes
// from whatever thread answers; `step`, when given, is what makes answers
// happen on this thread (running an io_context, advancing fake timers) and
// returns false once it can do nothing more, which means a request was
// never answered. `check` sees each response with its JSON body.
inline void ServePipeline(
    const std::vector<net::Route>& routes, const net::ServerOptions& options,
    std::string_view bytes, const std::function<bool()>& step,
    const std::function<void(const net::Response&, const nlohmann::json&)>& check) {
  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    bool answered = false;                // GUARDED_BY(mu)
    std::optional<net::Response> response;  // GUARDED_BY(mu)
  };
  // Bounded: a fuzz input holds at most a few dozen requests that matter.
  for (int i = 0; i < 64 && !bytes.empty(); ++i) {
    auto answer = std::make_shared<Answer>();
    const bool is_head = bytes.starts_with("HEAD ");
    const std::size_t used =
        net::DispatchBytes(routes, options, bytes, [answer](std::optional<net::Response> r) {
          std::lock_guard lock(answer->mu);
          Check(!answer->answered, "a request answered twice");
          answer->response = std::move(r);
          answer->answered = true;
          answer->cv.notify_all();
        });
    std::unique_lock lock(answer->mu);
    while (!answer->answered) {
      if (!step) {
        answer->cv.wait(lock);
        continue;
      }
      lock.unlock();
      Check(step(), "a request was never answered");
      lock.lock();
    }
    if (!answer->response) return;
    const nlohmann::json body = CheckResponse(*answer->response, is_head);
    // FENCE_FUZZ_TRACE=1 prints each answer, to see what an input reaches.
    static const bool kTrace = std::getenv("FENCE_FUZZ_TRACE") != nullptr;
    if (kTrace) {
      std::fprintf(stderr, "%u %s\n", answer->response->result_int(),
                   answer->response->body().substr(0, 200).c_str());
    }
    check(*answer->response, body);
    if (!answer->response->keep_alive()) return;
    Check(used > 0 && used <= bytes.size(), "a kept-alive request took no bytes");
    bytes.remove_prefix(used);
  }
}

}  // namespace fence::fuzz
