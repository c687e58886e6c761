#include "common/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <cerrno>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <optional>
#include <sys/socket.h>

namespace fence::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

Result<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  constexpr std::string_view kTlsScheme = "https://";
  Url out;
  std::string_view rest;
  if (url.substr(0, kScheme.size()) == kScheme) {
    rest = url.substr(kScheme.size());
  } else if (url.substr(0, kTlsScheme.size()) == kTlsScheme) {
    rest = url.substr(kTlsScheme.size());
    out.tls = true;
  } else {
    return MakeError("bad_url", "URL '" + std::string(url) +
                                    "' does not start with http:// or https://; expected "
                                    "http://HOST:PORT/PATH");
  }
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view host = authority;
  std::string_view port = out.tls ? "443" : "80";
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
                     const beast::error_code& ec, const std::string& reason = "") {
  const std::string why = reason.empty() ? ec.message() : reason;
  Error error = MakeError("unreachable",
                          std::string(http::to_string(call.method)) + " " + call.url +
                              " failed while " + step + ": " + why,
                          {{"url", call.url}});
  if (ec.category() == asio::error::get_ssl_category() || !reason.empty()) {
    error.details["tls_error"] = why;
  }
  return error;
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
  HttpClient client;
  return client.Call(call);
}

namespace detail {

// The io_context is declared first so it outlives the stream bound to it,
// and the TLS layer (over `stream`) comes after the stream it uses.
struct KeptConnection {
  explicit KeptConnection(std::string origin_in)
      : stream(ioc), origin(std::move(origin_in)) {}
  asio::io_context ioc;
  beast::tcp_stream stream;
  std::shared_ptr<TlsContext> tls_context;  // https:// only; outlives `tls`
  std::optional<asio::ssl::stream<beast::tcp_stream&>> tls;
  std::string origin;  // "scheme://host:port" it is connected to
  std::chrono::steady_clock::time_point idle_since;
};

}  // namespace detail

namespace {

using detail::KeptConnection;
using Deadline = std::chrono::steady_clock::time_point;

// Runs whatever was queued on `ioc` to completion (the stream's deadline
// bounds it) and makes the context reusable for the next step.
void RunStep(asio::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

// The pre-use check of an idle connection, without blocking: usable only if
// there is nothing to read. End of stream or a reset means the server closed
// it; bytes nobody asked for (a 408 sent before closing) would be taken for
// the answer to the next request.
bool IdleAndOpen(KeptConnection& connection) {
  char byte = 0;
  const ssize_t got = ::recv(connection.stream.socket().native_handle(), &byte, 1,
                             MSG_PEEK | MSG_DONTWAIT);
  return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// What one step of a call came to.
struct Exchange {
  beast::error_code ec;
  std::string step;       // what failed, for the error sentence
  std::string reason;     // a clearer sentence than ec's, when there is one
  bool unsent = false;    // failed with no byte of the request sent: may retry
  bool reusable = false;  // both sides are at a message boundary
  Response response;
};

Exchange Connect(KeptConnection& connection, const Url& url, Deadline deadline) {
  Exchange out;
  tcp::resolver resolver(connection.ioc);
  const auto endpoints = resolver.resolve(url.host, url.port, out.ec);
  if (out.ec) {
    out.step = "resolving the host";
    return out;
  }
  // Asynchronous operations on the connection's own io_context give each
  // step a real deadline; synchronous socket calls cannot be bounded.
  connection.stream.expires_at(deadline);
  connection.stream.async_connect(
      endpoints, [&](beast::error_code ec, const tcp::endpoint&) { out.ec = ec; });
  RunStep(connection.ioc);
  if (out.ec) out.step = "connecting";
  return out;
}

// The server's certificate must name the host dialled: an IP SAN for a
// numeric host, else a DNS name (also sent as SNI). Without this, any
// certificate from the CA would do for any server.
bool ExpectServerName(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  beast::error_code not_ip;
  asio::ip::make_address(host, not_ip);
  if (!not_ip) return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 &&
         X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) == 1;
}

// TLS over the connected stream, within the call's deadline.
Exchange Handshake(KeptConnection& connection, const Url& url, Deadline deadline,
                   std::shared_ptr<TlsContext> context) {
  Exchange out;
  out.step = "the TLS handshake";
  connection.tls_context = std::move(context);
  auto& tls = connection.tls.emplace(connection.stream, *connection.tls_context);
  if (!ExpectServerName(tls.native_handle(), url.host)) {
    out.ec = asio::error::invalid_argument;
    out.reason = "cannot check the server's certificate against host '" + url.host + "'";
    return out;
  }
  connection.stream.expires_at(deadline);
  tls.async_handshake(asio::ssl::stream_base::client,
                      [&](beast::error_code ec) { out.ec = ec; });
  RunStep(connection.ioc);
  if (!out.ec) return out;
  const long verify = SSL_get_verify_result(tls.native_handle());
  if (verify != X509_V_OK) {
    out.reason = std::string("the server's certificate was refused: ") +
                 X509_verify_cert_error_string(verify);
  } else {
    out.reason = out.ec.message();
  }
  return out;
}

template <class Stream>
Exchange SendOn(KeptConnection& connection, Stream& stream,
                const http::request<http::string_body>& req, Deadline deadline) {
  Exchange out;
  beast::error_code write_ec;
  std::size_t sent = 0;
  connection.stream.expires_at(deadline);
  http::async_write(stream, req, [&](beast::error_code ec, std::size_t n) {
    write_ec = ec;
    sent = n;
  });
  RunStep(connection.ioc);
  if (write_ec && (sent == 0 || write_ec == beast::error::timeout)) {
    out.ec = write_ec;
    out.step = "sending the request";
    // Only a connection the peer had already closed fails this way with
    // nothing sent: the server cannot have read a byte of this request.
    out.unsent = sent == 0 && (write_ec == asio::error::broken_pipe ||
                               write_ec == asio::error::connection_reset);
    return out;
  }
  // A server may answer before reading the whole body (a stale write is
  // refused from its header) and close; its answer is still readable.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull * 1024 * 1024);
  // A response to HEAD announces a length but carries no body.
  parser.skip(req.method() == http::verb::head);
  connection.stream.expires_at(deadline);
  http::async_read(stream, buffer, parser,
                   [&](beast::error_code ec, std::size_t) { out.ec = ec; });
  RunStep(connection.ioc);
  if (out.ec) {
    out.step = "reading the response";
    return out;
  }
  // Reused only if the whole request went out, the server did not say it
  // closes (Connection: close), and nothing arrived past the answer.
  out.reusable = !write_ec && parser.keep_alive() && buffer.size() == 0;
  out.response = parser.release();
  return out;
}

// One request and its answer, over TLS when the connection has it.
Exchange Send(KeptConnection& connection, const http::request<http::string_body>& req,
              Deadline deadline) {
  if (connection.tls) return SendOn(connection, *connection.tls, req, deadline);
  return SendOn(connection, connection.stream, req, deadline);
}

void Close(KeptConnection& connection) {
  beast::error_code ignored;
  connection.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.stream.close();
}

}  // namespace

HttpClient::HttpClient(std::shared_ptr<TlsContext> tls) : tls_(std::move(tls)) {}

HttpClient::~HttpClient() {
  for (auto& connection : idle_) Close(*connection);
}

std::unique_ptr<HttpClient::Connection> HttpClient::TakeIdle(const std::string& origin) {
  std::vector<std::unique_ptr<Connection>> dead;
  std::unique_ptr<Connection> found;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = idle_.end(); it != idle_.begin() && !found;) {
      --it;
      if ((*it)->origin != origin) continue;
      auto candidate = std::move(*it);
      it = idle_.erase(it);
      if (now - candidate->idle_since < kMaxIdleTime && IdleAndOpen(*candidate)) {
        found = std::move(candidate);
      } else {
        dead.push_back(std::move(candidate));
      }
    }
  }
  for (auto& connection : dead) Close(*connection);
  return found;
}

void HttpClient::PutIdle(std::unique_ptr<Connection> connection) {
  connection->stream.expires_never();
  connection->idle_since = std::chrono::steady_clock::now();
  std::unique_ptr<Connection> evicted;
  {
    std::lock_guard lock(mu_);
    if (idle_.size() >= kMaxIdle) {
      evicted = std::move(idle_.front());
      idle_.erase(idle_.begin());
    }
    idle_.push_back(std::move(connection));
  }
  if (evicted) Close(*evicted);
}

Result<Response> HttpClient::Call(const HttpCall& call) {
  auto url = ParseUrl(call.url);
  if (!url.ok()) return url.error();
  const Deadline deadline = std::chrono::steady_clock::now() + call.timeout;
  const std::string origin =
      std::string(url->tls ? "https://" : "http://") + url->host + ":" + url->port;
  std::shared_ptr<TlsContext> tls = tls_;
  if (url->tls && !tls) {
    auto system_trust = MakeClientTls({});
    if (!system_trust.ok()) return system_trust.error();
    tls = *system_trust;
  }
  const auto req = BuildRequest(call, *url);

  std::unique_ptr<Connection> connection = TakeIdle(origin);
  Exchange done;
  if (connection) done = Send(*connection, req, deadline);
  // A new connection when none was idle, or when the reused one proved
  // closed before the server could read any of this request: the only case
  // in which a request is sent again.
  if (!connection || done.unsent) {
    if (connection) Close(*connection);
    connection = std::make_unique<Connection>(origin);
    done = Connect(*connection, *url, deadline);
    if (!done.ec && url->tls) done = Handshake(*connection, *url, deadline, tls);
    if (!done.ec) done = Send(*connection, req, deadline);
  }
  if (done.ec) return TransportError(call, done.step, done.ec, done.reason);
  if (done.reusable) {
    PutIdle(std::move(connection));
  } else {
    Close(*connection);
  }
  return std::move(done.response);
}

Result<StreamedResponse> CallStreaming(
    const HttpCall& call, const std::function<bool(std::string_view)>& reader) {
  auto url = ParseUrl(call.url);
  if (!url.ok()) return url.error();
  if (url->tls) {
    return MakeError("bad_url", "streaming calls speak plain http:// only; got '" + call.url + "'");
  }
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
