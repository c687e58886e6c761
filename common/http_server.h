// The one HTTP stack of both daemons: a Beast listener and one session per
// connection, a prefix router, bounded buffers and waits, a connection cap,
// request metrics, and a graceful drain.
#pragma once

#include <any>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <prometheus/registry.h>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/http_types.h"
#include "common/tls.h"
#include "core/result.h"

namespace fence::net {

using tcp = boost::asio::ip::tcp;

struct Request {
  http::request<http::string_body> message;
  // The path after the route's prefix, still percent-encoded.
  std::string tail;
  // What the route's precheck parsed from the header and handed on (see
  // Admission), so the handler does not parse it again; empty without one.
  std::any admitted;
  // The peer's "address:port" (for audit logs); empty when unknown, e.g. a
  // request dispatched without a socket.
  std::string remote{};
  // The connection's I/O thread, for a handler answered from another
  // thread that would rather build its answer there (RunOnConnection).
  boost::asio::any_io_executor connection{};
};

// Runs `work` on a request's connection's I/O thread (Request::connection),
// or at once on this thread when the request has none (no socket).
void RunOnConnection(const boost::asio::any_io_executor& connection,
                     std::function<void()> work);

// Answers a request exactly once; may be called from any thread.
using Respond = std::function<void(Response)>;

// A precheck's decision: a refusal ends the request without reading its
// body; otherwise `value` (e.g. the parsed key and token) becomes the
// request's `admitted`.
struct Admission {
  std::optional<Response> refusal;
  std::any value;
};
inline Admission Admit(std::any value = {}) { return {std::nullopt, std::move(value)}; }
inline Admission Refuse(Response response) { return {std::move(response), {}}; }
using PrecheckDone = std::function<void(Admission)>;

struct Route {
  std::string name;  // low-cardinality label for metrics, e.g. "objects"
  http::verb method;
  std::string path;     // exact path, or a prefix when `prefix` is true
  bool prefix = false;  // the prefix must be followed by a non-empty tail
  std::uint64_t body_limit = 64ull * 1024;
  // Decides from the header alone, before the body is read: a Refuse given
  // to `done` ends the request without reading (or waiting for) its body.
  // This is how a stale write is refused before its bytes cross the network.
  // `header` is valid only during the call; `done` may be called later, from
  // any thread, exactly once.
  std::function<void(const RequestHeader&, std::string_view tail, PrecheckDone done)>
      precheck;
  std::function<void(Request, Respond)> handle;
  // Told when the server itself answered for this route without calling
  // `handle` (e.g. 413 body too large, 400 unreadable body), so the route can
  // count it.
  std::function<void(http::status)> on_server_reply;
};

struct ServerOptions {
  std::string metrics_prefix;  // e.g. "fence_store"
  std::size_t max_connections = 1024;
  std::uint32_t max_header_bytes = 16 * 1024;
  // Time allowed for the next request's header to arrive on a connection.
  std::chrono::milliseconds idle_timeout{15000};
  // Time allowed to read a request body and to write a response.
  std::chrono::milliseconds request_timeout{30000};
  // Bytes of request bodies held in memory by requests not yet answered,
  // across all connections (large response bodies count while written). A
  // request whose body does not fit is answered 503 memory_budget with
  // Retry-After at once, never made to wait.
  std::uint64_t max_inflight_body_bytes = 256ull * 1024 * 1024;
  // Added to every response, errors included (e.g. a fencing-off marker).
  std::vector<std::pair<std::string, std::string>> response_headers;
  // Set: every connection is TLS (MakeServerTls); a connection whose
  // handshake fails or does not finish within handshake_timeout is closed,
  // logged (tls_handshake_failed) and counted. Unset: plain HTTP, with no
  // TLS code on its path.
  std::shared_ptr<TlsContext> tls;
  std::chrono::milliseconds handshake_timeout{10000};
};

class Session;
template <class Stream>
class StreamSession;
class ByteBudget;

class HttpServer {
 public:
  // Each connection lives on one of `contexts`, chosen in turn, and each
  // context is run by one thread: a connection's handlers never run
  // concurrently and need no strand, and the threads never hand work to
  // each other (one io_context run by several threads woke them for every
  // completion). The listener lives on the first. The contexts must outlive
  // the server.
  HttpServer(std::vector<boost::asio::io_context*> contexts, ServerOptions options,
             std::vector<Route> routes, prometheus::Registry& registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts accepting. Returns the bound endpoint (port 0
  // binds a free port).
  Result<tcp::endpoint> Listen(const tcp::endpoint& endpoint);

  // Stops accepting, closes idle connections and lets requests in flight
  // finish; their connections close after the response.
  void Shutdown();
  // True once every connection has closed, false on timeout.
  bool WaitDrained(std::chrono::milliseconds timeout);
  // Closes every connection still open (once the drain bound has passed):
  // reads and writes in progress fail at once, a body still arriving is
  // abandoned, and a response that arrives later finds its connection closed.
  // Returns how many were open.
  std::size_t CloseAll();
  std::size_t OpenConnections() const;

 private:
  template <class Stream>
  friend class StreamSession;
  struct Metrics;

  void Accept();
  void OnAccept(boost::system::error_code ec, tcp::socket socket);
  std::vector<std::shared_ptr<Session>> LiveSessions() const;
  void Register(Session* session, const std::shared_ptr<Session>& shared);
  void Unregister(Session* session);

  const std::vector<boost::asio::io_context*> contexts_;
  std::size_t next_context_ = 0;  // confined to the acceptor's context
  const ServerOptions options_;
  const std::vector<Route> routes_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<ByteBudget> budget_;
  tcp::acceptor acceptor_;  // confined to the acceptor's strand
  std::atomic<bool> shutting_down_{false};

  mutable std::mutex mu_;
  std::condition_variable drained_;
  // Live sessions, for the drain; GUARDED_BY(mu_).
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
};

// The router: the route for a request and the tail after its prefix, or the
// error response (404, or 405 with Allow).
std::variant<std::pair<const Route*, std::string>, Response> MatchRoute(
    const std::vector<Route>& routes, http::verb method, std::string_view path);

// Gives the finishing touches every response gets before it is written:
// HTTP/1.1, keep-alive, the server's extra headers, Content-Length, and no
// body for HEAD.
void FinishResponse(Response& response, const ServerOptions& options, bool keep_alive,
                    bool is_head);

// A finished response's status line and fields as written on the wire,
// ending with the empty line; the body follows as it is. Byte for byte what
// Beast's serializer writes for it, without its per-write machinery (a
// tenth of a small answer's instructions).
std::string SerializeHead(const Response& response);

// The in-process seam, for fuzz targets and tests: serves the first request
// in `bytes` without a socket, through the same Beast parser limits, router
// (MatchRoute), precheck, body limit and handler as a connection, and the
// same error responses; it does not model timeouts, the connection cap or
// the memory budget. `done` gets the finished response, or nullopt where a
// connection would close without answering (the bytes end mid-request), at
// most once and possibly from another thread. Returns the bytes the request
// took (all of them when the connection could not go on).
using Dispatched = std::function<void(std::optional<Response>)>;
std::size_t DispatchBytes(const std::vector<Route>& routes, const ServerOptions& options,
                          std::string_view bytes, Dispatched done);

// Parses "HOST:PORT" ("127.0.0.1:8080", "[::1]:0") into an endpoint.
// Only numeric addresses: a daemon must not depend on name resolution.
Result<tcp::endpoint> ParseListenAddress(std::string_view text);

// GET /metrics in the Prometheus text format, from our own registry.
Route MetricsRoute(std::shared_ptr<prometheus::Registry> registry);

}  // namespace fence::net
