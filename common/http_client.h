// The one HTTP client: synchronous, every step bounded by a deadline. An
// HttpClient keeps its connection open between calls (HTTP/1.1 keep-alive);
// the free Call is one connection per call. Used by the worker, the demo,
// backends and tests.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "common/http_types.h"
#include "common/tls.h"
#include "core/result.h"

namespace fence::net {

namespace detail {
struct KeptConnection;  // a socket and its own io_context (http_client.cc)
}  // namespace detail

struct HttpCall {
  http::verb method = http::verb::get;
  std::string url;  // http://HOST:PORT/path or https://HOST:PORT/path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
};

// Any answered status is a value; only transport failures are Errors (code
// "unreachable" or "bad_url"). A TLS failure (the server's certificate did
// not verify or does not name the host, or the server refused ours) is
// "unreachable" too, its sentence says which, and details["tls_error"] holds
// OpenSSL's reason. One connection, closed after the answer; https:// uses
// DefaultClientTls().
Result<Response> Call(const HttpCall& call);

// Sends calls over kept-alive connections: sequential calls from one thread
// share one TCP connection (and its io_context) for the client's life.
//
// Thread-safe. mu_ guards only the list of idle connections; a call takes a
// connection out of it and uses it alone, so concurrent calls (a worker's
// long-poll acquire and its keep-alive thread) each get their own and never
// wait for each other. At most kMaxIdle connections are kept.
//
// Never sends a request twice without knowing: an idle connection is checked
// (a non-blocking peek) before it is used, and replaced when the server has
// closed it or sent bytes nobody asked for. A call that fails once its
// request may have reached the server is reported as an Error exactly as
// Call reports it (the outcome is unknown to the caller) and never retried.
// Only a failure proven to precede the server reading anything (the first
// write on a reused connection failed with EPIPE or ECONNRESET with no byte
// sent) is tried once more on a new connection, within the same deadline.
// An answer with "Connection: close" (or HTTP/1.0 without keep-alive)
// closes the connection after it is read.
class HttpClient {
 public:
  // `tls` verifies https:// servers (MakeClientTls); nullptr: the system
  // trust store, with no client certificate.
  explicit HttpClient(std::shared_ptr<TlsContext> tls = DefaultClientTls());
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // As the free Call, over a kept-alive connection to the call's host:port.
  Result<Response> Call(const HttpCall& call);

  // A connection idle longer than this is closed rather than reused: the
  // daemons close idle connections after 15 s (--idle-timeout-ms), and a
  // write sent just as the server closes fails with an unknown outcome.
  static constexpr std::chrono::milliseconds kMaxIdleTime{10000};
  static constexpr std::size_t kMaxIdle = 4;

 private:
  using Connection = detail::KeptConnection;
  // An open connection to `origin` from the idle list that passed the
  // pre-use check, or nullptr. Closes the idle ones that failed it.
  std::unique_ptr<Connection> TakeIdle(const std::string& origin);
  void PutIdle(std::unique_ptr<Connection> connection);

  const std::shared_ptr<TlsContext> tls_;
  std::mutex mu_;
  // Most recently used last; each confined to the thread that took it out.
  std::vector<std::unique_ptr<Connection>> idle_;  // GUARDED_BY(mu_)
};

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
// Plain http:// only (it serves the etcd watch).
Result<StreamedResponse> CallStreaming(
    const HttpCall& call, const std::function<bool(std::string_view)>& reader);

struct Url {
  bool tls = false;  // https://
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
