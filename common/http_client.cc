#include "common/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>

namespace fence::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

Result<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return MakeError("bad_url", "URL '" + std::string(url) +
                                    "' does not start with http://; expected "
                                    "http://HOST:PORT/PATH");
  }
  std::string_view rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  Url out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view host = authority;
  std::string_view port = "80";
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return MakeError("bad_url", "URL '" + std::string(url) +
                                      "' has an unterminated IPv6 address");
    }
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':');
             colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || port.empty()) {
    return MakeError("bad_url", "URL '" + std::string(url) +
                                    "' has no host or port; expected "
                                    "http://HOST:PORT/PATH");
  }
  out.host = std::string(host);
  out.port = std::string(port);
  return out;
}

namespace {

Error TransportError(const HttpCall& call, const std::string& step,
                     const beast::error_code& ec) {
  return MakeError("unreachable",
                   std::string(http::to_string(call.method)) + " " + call.url +
                       " failed while " + step + ": " + ec.message(),
                   {{"url", call.url}});
}

http::request<http::string_body> BuildRequest(const HttpCall& call, const Url& url) {
  http::request<http::string_body> req{call.method, url.target, 11};
  req.set(http::field::host, url.host + ":" + url.port);
  req.set(http::field::user_agent, "fence-client");
  for (const auto& [name, value] : call.headers) req.insert(name, value);
  req.body() = call.body;
  if (!call.body.empty() || call.method == http::verb::put ||
      call.method == http::verb::post) {
    req.prepare_payload();
  }
  return req;
}

}  // namespace

Result<Response> Call(const HttpCall& call) {
  auto url = ParseUrl(call.url);
  if (!url.ok()) return url.error();
  auto fail = [&](const std::string& step, const beast::error_code& ec) {
    return TransportError(call, step, ec);
  };
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(url->host, url->port, ec);
  if (ec) return fail("resolving the host", ec);

  auto req = BuildRequest(call, *url);

  // Asynchronous operations on a private io_context give each step a real
  // deadline; synchronous socket calls cannot be bounded.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull * 1024 * 1024);
  // A response to HEAD announces a length but carries no body.
  parser.skip(call.method == http::verb::head);
  std::string step = "connecting";
  stream.expires_after(call.timeout);
  stream.async_connect(endpoints, [&](beast::error_code cec, const tcp::endpoint&) {
    if (cec) {
      ec = cec;
      return;
    }
    step = "sending the request";
    http::async_write(stream, req, [&](beast::error_code, std::size_t) {
      // A server may answer before reading the whole body (a stale write is
      // refused from its header) and close; its answer is still readable.
      step = "reading the response";
      http::async_read(stream, buffer, parser,
                       [&](beast::error_code rec, std::size_t) { ec = rec; });
    });
  });
  ioc.run();
  if (ec) return fail(step, ec);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return parser.release();
}

}  // namespace fence::net

namespace fence::net {

namespace {

// Runs whatever was queued on `ioc` to completion (the stream's deadline
// bounds it) and makes the context reusable for the next step.
void RunStep(asio::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

}  // namespace

Result<StreamedResponse> CallStreaming(
    const HttpCall& call, const std::function<bool(std::string_view)>& reader) {
  auto url = ParseUrl(call.url);
  if (!url.ok()) return url.error();
  auto fail = [&](const std::string& step, const beast::error_code& ec) {
    return TransportError(call, step, ec);
  };
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(url->host, url->port, ec);
  if (ec) return fail("resolving the host", ec);

  auto req = BuildRequest(call, *url);

  stream.expires_after(call.timeout);
  stream.async_connect(endpoints,
                       [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  RunStep(ioc);
  if (ec) return fail("connecting", ec);
  http::async_write(stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
  RunStep(ioc);
  if (ec) return fail("sending the request", ec);

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // The reader consumes the body as it comes; the cap only stops a runaway
  // stream within the call's deadline.
  parser.body_limit(64ull * 1024 * 1024);
  http::async_read_header(stream, buffer, parser,
                          [&](beast::error_code e, std::size_t) { ec = e; });
  RunStep(ioc);
  if (ec) return fail("reading the response header", ec);

  StreamedResponse out;
  out.head = Response(parser.get().base());
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    http::async_read(stream, buffer, parser,
                     [&](beast::error_code e, std::size_t) { ec = e; });
    RunStep(ioc);
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = sizeof chunk - parser.get().body().size;
    if (got > 0 && !reader(std::string_view(chunk, got))) {
      out.stopped = true;
      break;
    }
    if (ec == beast::error::timeout) {
      out.timed_out = true;
      break;
    }
    if (ec) return fail("reading the response body", ec);
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

}  // namespace fence::net
