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

Result<Response> Call(const HttpCall& call) {
  auto url = ParseUrl(call.url);
  if (!url.ok()) return url.error();
  auto fail = [&](const std::string& step, const beast::error_code& ec) {
    return MakeError("unreachable",
                     std::string(http::to_string(call.method)) + " " +
                         call.url + " failed while " + step + ": " +
                         ec.message(),
                     {{"url", call.url}});
  };
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(url->host, url->port, ec);
  if (ec) return fail("resolving the host", ec);

  http::request<http::string_body> req{call.method, url->target, 11};
  req.set(http::field::host, url->host + ":" + url->port);
  req.set(http::field::user_agent, "fence-client");
  for (const auto& [name, value] : call.headers) req.insert(name, value);
  req.body() = call.body;
  if (!call.body.empty() || call.method == http::verb::put ||
      call.method == http::verb::post) {
    req.prepare_payload();
  }

  // Asynchronous operations on a private io_context give each step a real
  // deadline; synchronous socket calls cannot be bounded.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull * 1024 * 1024);
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
