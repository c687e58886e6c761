#include "common/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/text_serializer.h>
#include <array>
#include <limits>
#include <sstream>

#include "common/logging.h"

namespace fence::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;

// Request bodies arrive in pieces of at most this size: a body holds what
// has arrived plus less than one piece, whatever length it declares.
constexpr std::uint64_t kBodyPieceBytes = 64ull * 1024;
// Responses larger than this (object reads) are charged while being written.
constexpr std::uint64_t kChargedResponseBytes = 64ull * 1024;
// A body up to this size, sent with a request refused from its header, is
// read and dropped so that the connection stays open.
constexpr std::uint64_t kDiscardableBodyBytes = 64ull * 1024;

namespace {

// Whether the connection of a request refused from its header can carry the
// next request: it has no body, or a small declared one the client is
// sending anyway (without Expect: 100-continue it does not wait for our
// word), which is read and dropped, as nginx does. A large or unsized body
// is not worth the wait: the connection closes after the answer.
bool RefusalKeepsConnection(const RequestHeader& header, bool body_pending,
                            const boost::optional<std::uint64_t>& length) {
  if (!body_pending) return true;
  return length && *length <= kDiscardableBodyBytes &&
         !beast::iequals(header[http::field::expect], "100-continue");
}

// The answers to a request the server gives itself, shared by Session and
// DispatchBytes.
Response HeaderError(beast::error_code ec, std::uint32_t max_header_bytes) {
  if (ec == http::error::header_limit) {
    return ErrorResponse(http::status::request_header_fields_too_large, "header_too_large",
                         "the request header is larger than " +
                             std::to_string(max_header_bytes) + " bytes");
  }
  return ErrorResponse(http::status::bad_request, "bad_request",
                       "the request is not valid HTTP/1.1: " + ec.message());
}

Response BodyUnreadable(beast::error_code ec) {
  return ErrorResponse(http::status::bad_request, "bad_request",
                       "the request body could not be read: " + ec.message());
}

Response BodyTooLarge(const Route& route) {
  return ErrorResponse(http::status::payload_too_large, "too_large",
                       "the request body is larger than the limit of " +
                           std::to_string(route.body_limit) + " bytes",
                       {{"max_bytes", route.body_limit}});
}

}  // namespace

// The bytes of request (and large response) bodies held in memory by
// requests not yet answered, against --max-inflight-bytes. Never blocks: a
// charge that does not fit is refused and its request answered 503 at once,
// so no request ever waits for memory that only other waiting requests
// could free, and every refusal frees what that request held.
class ByteBudget {
 public:
  ByteBudget(std::uint64_t limit, prometheus::Gauge& in_flight)
      : limit_(limit), in_flight_(in_flight) {}

  bool TryCharge(std::uint64_t bytes) {
    std::uint64_t used = used_.load();
    do {
      if (bytes > limit_ - used) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes));
    in_flight_.Increment(static_cast<double>(bytes));
    return true;
  }
  void Release(std::uint64_t bytes) {
    used_ -= bytes;
    in_flight_.Decrement(static_cast<double>(bytes));
  }
  std::uint64_t limit() const { return limit_; }

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
  prometheus::Gauge& in_flight_;
};

// A Beast body that stores what arrives in pieces of at most
// kBodyPieceBytes, each charged before it is kept. Beast's string_body
// reserves the whole declared Content-Length up front instead.
struct PiecewiseBody {
  struct value_type {
    std::vector<std::string> pieces;
    std::uint64_t size = 0;
    // Charges the budget for a new piece's capacity; false refuses the body.
    std::function<bool(std::uint64_t)> charge;
  };

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      declared_ = length;
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t taken = 0;
      for (const auto buffer : beast::buffers_range_ref(buffers)) {
        const char* data = static_cast<const char*>(buffer.data());
        std::size_t left = buffer.size();
        while (left > 0) {
          if ((body_.pieces.empty() || Full(body_.pieces.back())) && !AddPiece()) {
            ec = boost::system::errc::make_error_code(boost::system::errc::not_enough_memory);
            return taken;
          }
          std::string& piece = body_.pieces.back();
          const std::size_t n = std::min(left, piece.capacity() - piece.size());
          piece.append(data, n);
          data += n;
          left -= n;
          taken += n;
          body_.size += n;
        }
      }
      ec = {};
      return taken;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    static bool Full(const std::string& piece) { return piece.size() == piece.capacity(); }

    bool AddPiece() {
      std::uint64_t size = kBodyPieceBytes;
      if (declared_ && *declared_ > body_.size) size = std::min(size, *declared_ - body_.size);
      std::string piece;
      piece.reserve(size);
      if (!body_.charge(piece.capacity())) return false;
      body_.pieces.push_back(std::move(piece));
      return true;
    }

    value_type& body_;
    boost::optional<std::uint64_t> declared_;
  };
};

struct HttpServer::Metrics {
  prometheus::Family<prometheus::Histogram>& durations;
  prometheus::Gauge& open_connections;
  prometheus::Counter& refused_connections;
  prometheus::Gauge& body_bytes_in_flight;
  prometheus::Counter& body_budget_refusals;
  // Keyed by route name + method; built up front so the hot path only reads.
  // Keyed by the Route in HttpServer::routes_ (fixed for the server's life),
  // so a request finds its series without building a string.
  std::unordered_map<const Route*, prometheus::Histogram*> by_route;
  prometheus::Histogram* unmatched;
  // Registered only for a TLS server.
  prometheus::Counter* tls_handshake_timeouts = nullptr;
  prometheus::Counter* tls_handshake_errors = nullptr;

  static const prometheus::Histogram::BucketBoundaries& Buckets() {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    return kBuckets;
  }

  Metrics(const std::string& prefix, const std::vector<Route>& routes,
          prometheus::Registry& registry)
      : durations(prometheus::BuildHistogram()
                      .Name(prefix + "_http_request_duration_seconds")
                      .Help("Time from a request's header to its response "
                            "written, by route and method.")
                      .Register(registry)),
        open_connections(prometheus::BuildGauge()
                             .Name(prefix + "_http_open_connections")
                             .Help("Connections currently open.")
                             .Register(registry)
                             .Add({})),
        refused_connections(
            prometheus::BuildCounter()
                .Name(prefix + "_http_refused_connections_total")
                .Help("Connections refused because the connection cap was "
                      "reached.")
                .Register(registry)
                .Add({})),
        body_bytes_in_flight(
            prometheus::BuildGauge()
                .Name(prefix + "_http_body_bytes_in_flight")
                .Help("Bytes of request bodies (and large response bodies) held in "
                      "memory by requests not yet answered; at most "
                      "--max-inflight-bytes.")
                .Register(registry)
                .Add({})),
        body_budget_refusals(
            prometheus::BuildCounter()
                .Name(prefix + "_http_body_budget_refusals_total")
                .Help("Requests answered 503 memory_budget because their body did "
                      "not fit in --max-inflight-bytes.")
                .Register(registry)
                .Add({})) {
    for (const Route& route : routes) {
      const std::string method(http::to_string(route.method));
      by_route[&route] = &durations.Add(
          {{"route", route.name}, {"method", method}}, Buckets());
    }
    unmatched =
        &durations.Add({{"route", "unmatched"}, {"method", "any"}}, Buckets());
  }

  void AddTls(const std::string& prefix, prometheus::Registry& registry) {
    auto& failures =
        prometheus::BuildCounter()
            .Name(prefix + "_tls_handshake_failures_total")
            .Help("TLS handshakes that failed (cause=error: a bad or missing "
                  "certificate, plain HTTP, a protocol error) or did not finish within "
                  "--tls-handshake-timeout-ms (cause=timeout); each also logged as "
                  "tls_handshake_failed.")
            .Register(registry);
    tls_handshake_timeouts = &failures.Add({{"cause", "timeout"}});
    tls_handshake_errors = &failures.Add({{"cause", "error"}});
  }

  prometheus::Counter& TlsFailure(bool timed_out) {
    return timed_out ? *tls_handshake_timeouts : *tls_handshake_errors;
  }

  prometheus::Histogram& For(const Route* route) {
    if (route == nullptr) return *unmatched;
    auto it = by_route.find(route);
    return it == by_route.end() ? *unmatched : *it->second;
  }
};

// Asio's SSL stream, not beast::ssl_stream: with Beast 1.74's, our gathered
// write (SerializeHead's head, then the body) completed after sending only
// the head whenever the two together exceeded 16 KiB (its flat_stream's
// flattening limit), so a large answer never left (found by tls_test:
// /metrics over TLS).
using TlsStream = asio::ssl::stream<beast::tcp_stream>;

// What the server asks of a connection, whatever its stream.
class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session() = default;
  virtual void Start() = 0;
  // Used when the connection cap is reached: answers 503 and closes (a TLS
  // connection is closed at once).
  virtual void Refuse() = 0;
  // The drain bound has passed: pending reads and writes fail with
  // operation_aborted, which ends the session once nothing else holds it.
  virtual void ForceClose() = 0;
  virtual void Drain() = 0;
};

// One connection over a plain beast::tcp_stream or, with ServerOptions::tls,
// a TlsStream over one: a template, so the plain path has no TLS branch in
// it. Owned by shared_from_this; every member is confined to the stream's
// strand.
template <class Stream>
class StreamSession final : public Session {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  // `context...` is the TLS context for a TlsStream, nothing for plain.
  template <class... Context>
  StreamSession(tcp::socket socket, HttpServer& server, Context&... context)
      : server_(server), registration_{server, this}, stream_(std::move(socket), context...) {}

  ~StreamSession() override { ReleaseCharge(); }

  void Start() override {
    server_.Register(this, shared_from_this());
    asio::dispatch(stream_.get_executor(), [self = Self()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->ReadHeader();
      }
    });
  }

  void Refuse() override {
    server_.Register(this, shared_from_this());
    asio::dispatch(stream_.get_executor(), [self = Self()] {
      self->keep_alive_ = false;
      if constexpr (kTls) {
        // A 503 would cost a whole handshake of a server already at its
        // limit; the client sees the connection close and retries.
        return self->Close();
      }
      Response res = ErrorResponse(http::status::service_unavailable, "too_many_connections",
                                   "the server is at its connection limit; retry with backoff");
      res.set(http::field::retry_after, "1");
      self->Send(std::move(res));
    });
  }

  void ForceClose() override {
    asio::dispatch(stream_.get_executor(), [self = Self()] {
      self->draining_ = true;
      self->body_pending_ = false;  // nothing left to discard
      beast::get_lowest_layer(self->stream_).close();
    });
  }

  void Drain() override {
    asio::dispatch(stream_.get_executor(), [self = Self()] {
      self->draining_ = true;
      // An idle connection is waiting for a header that may never come;
      // cancelling the read closes it. A busy one closes after its response.
      if (!self->busy_) beast::get_lowest_layer(self->stream_).cancel();
    });
  }

 private:
  std::shared_ptr<StreamSession> Self() {
    return std::static_pointer_cast<StreamSession>(shared_from_this());
  }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  // Bounded by handshake_timeout: a client that connects and sends nothing
  // (or stalls mid-handshake) holds a connection slot only that long.
  void Handshake() {
    Lowest().expires_after(server_.options_.handshake_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = Self()](beast::error_code ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(beast::error_code ec) {
    if (!ec) return ReadHeader();
    if (draining_ && ec == asio::error::operation_aborted) return Close();
    const bool timed_out = ec == beast::error::timeout;
    server_.metrics_->TlsFailure(timed_out).Increment();
    log::Warn("tls_handshake_failed",
              {{"peer", PeerAddress()},
               {"reason", timed_out ? "no handshake within " +
                                          std::to_string(server_.options_.handshake_timeout.count()) +
                                          " ms"
                                    : ec.message()}});
    Close();
  }

  void ReadHeader() {
    if (draining_) return Close();
    header_parser_.emplace();
    header_parser_->header_limit(server_.options_.max_header_bytes);
    // The route's own limit applies once the route is known (AfterPrecheck).
    // Not boost::none: Beast 1.74 compares `length > none` as true.
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    route_ = nullptr;
    admitted_.reset();
    is_head_ = false;
    Lowest().expires_after(server_.options_.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *header_parser_,
        [self = Self()](beast::error_code ec, std::size_t) {
          self->OnHeader(ec);
        });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset) {
      return Close();
    }
    busy_ = true;
    started_ = Clock::now();
    keep_alive_ = false;
    body_pending_ = true;
    if (ec) return Send(HeaderError(ec, server_.options_.max_header_bytes));
    const RequestHeader& header = header_parser_->get().base();
    if (header.find(http::field::transfer_encoding) != header.end() &&
        !header_parser_->chunked()) {
      // RFC 9112 6.3: without chunked as the final coding a request's body
      // length cannot be known. Beast reads it as bodiless, which would
      // apply an empty write and take its body for the next request.
      return Send(ErrorResponse(
          http::status::bad_request, "bad_request",
          "Transfer-Encoding must end in 'chunked' (RFC 9112 6.3); got '" +
              std::string(header[http::field::transfer_encoding]) + "'"));
    }
    keep_alive_ = header_parser_->keep_alive();
    body_pending_ = !header_parser_->is_done();
    is_head_ = header.method() == http::verb::head;

    std::string_view target(header.target().data(), header.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    auto match = MatchRoute(server_.routes_, header.method(), path);
    if (auto* response = std::get_if<Response>(&match)) {
      return Send(std::move(*response));
    }
    auto& [route, tail] = std::get<0>(match);
    route_ = route;
    tail_ = std::move(tail);

    if (!route_->precheck) return AfterPrecheck(Admit());
    // dispatch: a precheck decided on this thread goes on at once; one
    // decided on a storage thread comes back to the connection's strand.
    route_->precheck(header, tail_, [self = Self()](Admission a) {
      asio::dispatch(self->stream_.get_executor(),
                     [self, a = std::move(a)]() mutable {
                       self->AfterPrecheck(std::move(a));
                     });
    });
  }

  void AfterPrecheck(Admission admission) {
    if (admission.refusal) return RefuseBeforeBody(std::move(*admission.refusal));
    admitted_ = std::move(admission.value);
    if (const auto length = header_parser_->content_length();
        length && *length > route_->body_limit) {
      return ServerReply(BodyTooLarge(*route_));
    }
    body_parser_.emplace(std::move(*header_parser_));
    header_parser_.reset();
    body_parser_->body_limit(route_->body_limit);
    body_parser_->get().body().charge = [this](std::uint64_t bytes) { return Charge(bytes); };

    const auto& expect = body_parser_->get()[http::field::expect];
    if (body_pending_ && beast::iequals(expect, "100-continue")) {
      // The client waits for our word before sending the body: the precheck
      // above has passed, so ask for it.
      auto interim = std::make_shared<http::response<http::empty_body>>(
          http::status::continue_, 11);
      Lowest().expires_after(server_.options_.request_timeout);
      return http::async_write(
          stream_, *interim,
          [self = Self(), interim](beast::error_code wec,
                                               std::size_t) {
            if (wec) return self->Close();
            self->ReadBody();
          });
    }
    ReadBody();
  }

  void ReadBody() {
    Lowest().expires_after(server_.options_.request_timeout);
    http::async_read(
        stream_, buffer_, *body_parser_,
        [self = Self()](beast::error_code ec, std::size_t) {
          self->OnBody(ec);
        });
  }

  void OnBody(beast::error_code ec) {
    if (ec == http::error::body_limit) return ServerReply(BodyTooLarge(*route_));
    if (ec == boost::system::errc::not_enough_memory) return RefuseOverBudget();
    if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
        ec == http::error::partial_message || ec == asio::error::operation_aborted) {
      log::Warn("request_abandoned", {{"route", route_->name}, {"reason", AbandonReason(ec)}});
      return Close();
    }
    if (ec) return ServerReply(BodyUnreadable(ec));
    body_pending_ = false;
    Lowest().expires_never();
    auto body = TakeBody();
    if (!body) return RefuseOverBudget();
    Request request{http::request<http::string_body>(std::move(body_parser_->get().base()),
                                                      std::move(*body)),
                    std::move(tail_), std::move(admitted_), PeerAddress(),
                    stream_.get_executor()};
    body_parser_.reset();
    route_->handle(std::move(request),
                   [self = Self()](Response response) {
                     asio::dispatch(self->stream_.get_executor(),
                                    [self, r = std::move(response)]() mutable {
                                      self->Send(std::move(r));
                                    });
                   });
  }

  // Answers a request refused from its header, first reading and dropping
  // a body that RefusalKeepsConnection allows (Send closes the connection
  // while a body is pending).
  void RefuseBeforeBody(Response response) {
    const auto length = header_parser_->content_length();
    if (!body_pending_ || draining_ ||
        !RefusalKeepsConnection(header_parser_->get(), body_pending_, length)) {
      return Send(std::move(response));
    }
    const std::size_t buffered = std::min<std::uint64_t>(buffer_.size(), *length);
    buffer_.consume(buffered);
    DiscardBody(*length - buffered, std::make_shared<Response>(std::move(response)));
  }

  void DiscardBody(std::uint64_t remaining, std::shared_ptr<Response> response) {
    if (remaining == 0) {
      body_pending_ = false;
      return Send(std::move(*response));
    }
    if (!discard_) discard_ = std::make_shared<std::array<char, 16ul * 1024>>();
    Lowest().expires_after(server_.options_.request_timeout);
    const std::size_t chunk = std::min<std::uint64_t>(remaining, discard_->size());
    asio::async_read(stream_, asio::buffer(discard_->data(), chunk),
                     [self = Self(), remaining, response](
                         beast::error_code ec, std::size_t n) {
                       if (ec) return self->Close();
                       self->DiscardBody(remaining - n, response);
                     });
  }

  // Joins the pieces into the one string a handler gets. One piece is
  // moved; several are copied into a string of the exact size, charged
  // before it is allocated, each piece released once copied. nullopt: the
  // joined string did not fit in the budget.
  std::optional<std::string> TakeBody() {
    auto& body = body_parser_->get().body();
    if (body.pieces.empty()) return std::string();
    if (body.pieces.size() == 1) return std::move(body.pieces.front());
    if (!Charge(body.size)) return std::nullopt;
    std::string joined;
    joined.reserve(body.size);
    for (std::string& piece : body.pieces) {
      joined.append(piece);
      const std::uint64_t capacity = piece.capacity();
      std::string().swap(piece);
      Uncharge(capacity);
    }
    return joined;
  }

  bool Charge(std::uint64_t bytes) {
    if (!server_.budget_->TryCharge(bytes)) return false;
    charged_ += bytes;
    return true;
  }
  void Uncharge(std::uint64_t bytes) {
    server_.budget_->Release(bytes);
    charged_ -= bytes;
  }
  void ReleaseCharge() { Uncharge(charged_); }

  // The body does not fit in the budget: drop what arrived and answer at
  // once (the rest of the body is discarded as the connection closes).
  void RefuseOverBudget() {
    body_parser_.reset();
    ReleaseCharge();
    server_.metrics_->body_budget_refusals.Increment();
    ServerReply(OverBudget());
  }

  Response OverBudget() const {
    const std::uint64_t limit = server_.budget_->limit();
    Response res = ErrorResponse(
        http::status::service_unavailable, "memory_budget",
        "the server already holds its limit of " + std::to_string(limit) +
            " bytes of request bodies in memory (--max-inflight-bytes); retry "
            "after the Retry-After delay",
        {{"max_inflight_bytes", limit}});
    res.set(http::field::retry_after, "1");
    return res;
  }

  static const char* AbandonReason(beast::error_code ec) {
    if (ec == beast::error::timeout) return "body not received in time";
    if (ec == asio::error::operation_aborted) {
      return "the server shut down before the body arrived";
    }
    return "client closed the connection mid-body";
  }

  void ServerReply(Response response) {
    if (route_->on_server_reply) route_->on_server_reply(response.result());
    Send(std::move(response));
  }

  void Send(Response response) {
    // The request is answered: its body no longer counts. A large response
    // (an object read) counts while it is written to a possibly slow reader.
    ReleaseCharge();
    if (!is_head_ && response.body().size() > kChargedResponseBytes &&
        !Charge(response.body().capacity())) {
      server_.metrics_->body_budget_refusals.Increment();
      response = OverBudget();
    }
    // A body we did not read is still in the stream: the connection cannot
    // carry another request.
    const bool keep = keep_alive_ && !body_pending_ && !draining_;
    FinishResponse(response, server_.options_, keep, is_head_);
    if (route_ != nullptr || busy_) {
      server_.metrics_->For(route_).Observe(
          std::chrono::duration<double>(Clock::now() - started_).count());
    }
    // One gathered write of the head and the body (SerializeHead).
    auto shared = std::make_shared<std::pair<std::string, Response>>(SerializeHead(response),
                                                                      std::move(response));
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(shared->first),
                                                    asio::buffer(shared->second.body())};
    Lowest().expires_after(server_.options_.request_timeout);
    asio::async_write(stream_, buffers,
                      [self = Self(), shared, keep](
                          beast::error_code ec, std::size_t) {
                        self->ReleaseCharge();
                        self->busy_ = false;
                        if (ec || !keep) return self->Close();
                        self->ReadHeader();
                      });
  }

  // Read once per connection: a system call and a formatting per request
  // showed in the profile of small GETs.
  const std::string& PeerAddress() {
    if (!peer_known_) {
      peer_known_ = true;
      beast::error_code ec;
      const tcp::endpoint peer = Lowest().socket().remote_endpoint(ec);
      if (!ec) {
        std::ostringstream out;
        out << peer;  // "1.2.3.4:5" or "[::1]:5"
        peer_ = out.str();
      }
    }
    return peer_;
  }

  // Half-closes and discards what the client still sends, for a bounded
  // time, so that an unread request body does not turn our close into a TCP
  // reset that could destroy the response before the client reads it.
  void Close() {
    beast::error_code ignored;
    auto& socket = Lowest().socket();
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    if (!body_pending_) return;
    body_pending_ = false;
    discard_ = std::make_shared<std::array<char, 16ul * 1024>>();
    Lowest().expires_after(std::chrono::seconds(2));
    Discard();
  }

  void Discard() {
    stream_.async_read_some(
        asio::buffer(*discard_),
        [self = Self()](beast::error_code ec, std::size_t) {
          if (!ec) self->Discard();
        });
  }

  // Unregisters when destroyed. Declared before everything that needs the
  // io_context (the socket, its timer and strand), so it is destroyed after
  // them: a session may end on another thread (a storage task or lock
  // waiter dropping the last Respond), and the server must not count it
  // gone, and let the io_context be destroyed, while its socket still is
  // being closed.
  struct Registration {
    HttpServer& server;
    Session* session;
    ~Registration() { server.Unregister(session); }
  };

  HttpServer& server_;
  Registration registration_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<PiecewiseBody>> body_parser_;
  const Route* route_ = nullptr;
  std::string tail_;
  std::any admitted_;  // the route's precheck result, handed to `handle`
  std::uint64_t charged_ = 0;  // bytes of the budget this session holds
  Clock::time_point started_;
  std::shared_ptr<std::array<char, 16ul * 1024>> discard_;
  bool busy_ = false;
  bool draining_ = false;
  bool keep_alive_ = false;
  bool body_pending_ = false;
  bool is_head_ = false;
  bool peer_known_ = false;
  std::string peer_;  // the client's "address:port"; empty if unknown
};

HttpServer::HttpServer(std::vector<asio::io_context*> contexts, ServerOptions options,
                       std::vector<Route> routes,
                       prometheus::Registry& registry)
    : contexts_(std::move(contexts)),
      options_(std::move(options)),
      routes_(std::move(routes)),
      metrics_(std::make_unique<Metrics>(options_.metrics_prefix, routes_,
                                         registry)),
      budget_(std::make_unique<ByteBudget>(options_.max_inflight_body_bytes,
                                           metrics_->body_bytes_in_flight)),
      acceptor_(*contexts_.front()) {
  if (options_.tls) metrics_->AddTls(options_.metrics_prefix, registry);
}

HttpServer::~HttpServer() = default;

Result<tcp::endpoint> HttpServer::Listen(const tcp::endpoint& endpoint) {
  beast::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return MakeError("listen_failed",
                     "cannot listen on " + endpoint.address().to_string() +
                         ":" + std::to_string(endpoint.port()) + ": " +
                         ec.message());
  }
  const tcp::endpoint bound = acceptor_.local_endpoint(ec);
  asio::dispatch(acceptor_.get_executor(), [this] { Accept(); });
  return bound;
}

void HttpServer::Accept() {
  asio::io_context& context = *contexts_[next_context_++ % contexts_.size()];
  acceptor_.async_accept(context,
                         [this](beast::error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void HttpServer::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (shutting_down_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors or a transient network error: keep the listener
    // alive, but give the condition a moment to clear instead of spinning.
    log::Error("accept_failed", {{"error", ec.message()}});
    auto timer = std::make_shared<asio::steady_timer>(
        acceptor_.get_executor(), std::chrono::milliseconds(100));
    timer->async_wait([this, timer](beast::error_code) {
      if (!shutting_down_) Accept();
    });
    return;
  }
  std::size_t open;
  {
    std::lock_guard lock(mu_);
    open = sessions_.size();
  }
  std::shared_ptr<Session> session;
  if (options_.tls) {
    session = std::make_shared<StreamSession<TlsStream>>(
        std::move(socket), *this, *options_.tls);
  } else {
    session = std::make_shared<StreamSession<beast::tcp_stream>>(std::move(socket), *this);
  }
  if (open >= options_.max_connections) {
    metrics_->refused_connections.Increment();
    log::Warn("connection_refused",
              {{"reason", "connection limit"},
               {"max_connections", options_.max_connections}});
    session->Refuse();
  } else {
    session->Start();
  }
  Accept();
}

void HttpServer::Register(Session* session,
                          const std::shared_ptr<Session>& shared) {
  std::lock_guard lock(mu_);
  sessions_.emplace(session, shared);
  metrics_->open_connections.Set(static_cast<double>(sessions_.size()));
}

void HttpServer::Unregister(Session* session) {
  std::lock_guard lock(mu_);
  sessions_.erase(session);
  metrics_->open_connections.Set(static_cast<double>(sessions_.size()));
  if (sessions_.empty()) drained_.notify_all();
}

void HttpServer::Shutdown() {
  shutting_down_ = true;
  asio::dispatch(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  for (auto& s : LiveSessions()) s->Drain();
}

std::vector<std::shared_ptr<Session>> HttpServer::LiveSessions() const {
  std::vector<std::shared_ptr<Session>> live;
  std::lock_guard lock(mu_);
  for (const auto& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

bool HttpServer::WaitDrained(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return drained_.wait_for(lock, timeout, [this] { return sessions_.empty(); });
}

std::size_t HttpServer::CloseAll() {
  const auto live = LiveSessions();
  for (const auto& s : live) s->ForceClose();
  return live.size();
}

std::size_t HttpServer::OpenConnections() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

void FinishResponse(Response& response, const ServerOptions& options, bool keep_alive,
                    bool is_head) {
  response.version(11);
  response.keep_alive(keep_alive);
  for (const auto& [name, value] : options.response_headers) {
    response.set(name, value);
  }
  if (response.find(http::field::content_length) == response.end()) {
    response.prepare_payload();
  }
  if (is_head) response.body().clear();
}

void RunOnConnection(const asio::any_io_executor& connection, std::function<void()> work) {
  if (!connection) return work();
  asio::post(connection, std::move(work));
}

std::string SerializeHead(const Response& response) {
  std::string head;
  head.reserve(256);
  head += "HTTP/";
  head += static_cast<char>('0' + response.version() / 10);
  head += '.';
  head += static_cast<char>('0' + response.version() % 10);
  head += ' ';
  head += std::to_string(response.result_int());
  head += ' ';
  const auto reason = response.reason();
  head.append(reason.data(), reason.size());
  head += "\r\n";
  for (const auto& field : response) {
    const auto name = field.name_string();
    const auto value = field.value();
    head.append(name.data(), name.size());
    head += ": ";
    head.append(value.data(), value.size());
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

std::variant<std::pair<const Route*, std::string>, Response> MatchRoute(
    const std::vector<Route>& routes, http::verb method, std::string_view path) {
  std::string allowed;
  for (const Route& route : routes) {
    bool path_matches;
    std::string tail;
    if (route.prefix) {
      path_matches = path.size() > route.path.size() &&
                     path.substr(0, route.path.size()) == route.path;
      if (path_matches) tail = std::string(path.substr(route.path.size()));
    } else {
      path_matches = path == route.path;
    }
    if (!path_matches) continue;
    if (route.method == method) {
      return std::make_pair(&route, std::move(tail));
    }
    if (!allowed.empty()) allowed += ", ";
    allowed += std::string(http::to_string(route.method));
  }
  if (allowed.empty()) {
    return ErrorResponse(http::status::not_found, "not_found",
                         "no such endpoint: " + std::string(path),
                         {{"path", std::string(path)}});
  }
  Response res = ErrorResponse(
      http::status::method_not_allowed, "method_not_allowed",
      "method " + std::string(http::to_string(method)) + " is not allowed on " +
          std::string(path) + "; allowed: " + allowed,
      {{"allowed", allowed}});
  res.set(http::field::allow, allowed);
  return res;
}

namespace {

// Feeds `bytes` to `parser` until it is done or needs bytes that are not
// there; returns how many it took. `ec` is need_more when the bytes end
// first, or the parser's error.
template <class Parser>
std::size_t PutAll(Parser& parser, std::string_view bytes, beast::error_code& ec) {
  std::size_t used = 0;
  ec = {};
  while (!parser.is_done() && used < bytes.size()) {
    const std::size_t n =
        parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec) return used;
    // A header-only parser stops after the header (eager off).
    if (parser.is_header_done() && !parser.eager()) break;
  }
  if (!parser.is_done() && !(parser.is_header_done() && !parser.eager()) && !ec) {
    ec = http::error::need_more;
  }
  return used;
}

}  // namespace

std::size_t DispatchBytes(const std::vector<Route>& routes, const ServerOptions& options,
                          std::string_view bytes, Dispatched done) {
  // As a Session: the header first, with the server's header limit.
  auto header = std::make_shared<http::request_parser<http::empty_body>>();
  header->header_limit(options.max_header_bytes);
  header->body_limit(std::numeric_limits<std::uint64_t>::max());
  header->eager(false);
  beast::error_code ec;
  std::size_t used = PutAll(*header, bytes, ec);
  if (ec == http::error::need_more) {
    done(std::nullopt);
    return bytes.size();
  }
  if (ec) {
    Response response = HeaderError(ec, options.max_header_bytes);
    FinishResponse(response, options, false, false);
    done(std::move(response));
    return bytes.size();
  }
  const bool is_head = header->get().method() == http::verb::head;
  const std::string_view target(header->get().target().data(), header->get().target().size());
  auto match = MatchRoute(routes, header->get().method(), target.substr(0, target.find('?')));
  // A body left unread leaves the connection unusable, as in Session::Send.
  const bool keep = header->keep_alive() && header->is_done();
  if (auto* response = std::get_if<Response>(&match)) {
    FinishResponse(*response, options, keep, is_head);
    done(std::move(*response));
    return keep ? used : bytes.size();
  }
  const Route* route = std::get<0>(match).first;
  std::string tail = std::move(std::get<0>(match).second);

  // The whole body is at hand, so it is parsed now; what comes of it is
  // answered in the Session's order: precheck refusal, declared length over
  // the limit, body errors, then the handler. A declared length over the
  // limit is never read (string_body would reserve all of it).
  const bool over_limit =
      header->content_length() && *header->content_length() > route->body_limit;
  const bool refusal_keeps = header->keep_alive() &&
                             RefusalKeepsConnection(header->get(), !header->is_done(),
                                                    header->content_length());
  auto body = std::make_shared<http::request_parser<http::string_body>>(std::move(*header));
  body->body_limit(route->body_limit);
  body->eager(true);  // the header parser's eager(false) carries over
  beast::error_code body_ec;
  if (!over_limit) used += PutAll(*body, bytes.substr(used), body_ec);
  const std::size_t taken = !over_limit && !body_ec && body->keep_alive() ? used : bytes.size();

  auto finish = [options, is_head, done](std::optional<Response> response, bool keep_open) {
    if (response) FinishResponse(*response, options, keep_open, is_head);
    done(std::move(response));
  };
  auto after_precheck = [route, tail, body, body_ec, over_limit, refusal_keeps,
                         finish](Admission admission) {
    if (admission.refusal) {
      return finish(std::move(*admission.refusal), refusal_keeps && !over_limit && !body_ec);
    }
    if (over_limit || body_ec == http::error::body_limit) {
      if (route->on_server_reply) route->on_server_reply(http::status::payload_too_large);
      return finish(BodyTooLarge(*route), false);
    }
    if (body_ec == http::error::need_more) return finish(std::nullopt, false);
    if (body_ec) {
      if (route->on_server_reply) route->on_server_reply(http::status::bad_request);
      return finish(BodyUnreadable(body_ec), false);
    }
    const bool keep_open = body->keep_alive();
    Request request{body->release(), tail, std::move(admission.value)};
    route->handle(std::move(request), [finish, keep_open](Response response) {
      finish(std::move(response), keep_open);
    });
  };
  if (!route->precheck) {
    after_precheck(Admit());
  } else {
    route->precheck(body->get().base(), tail, after_precheck);
  }
  return taken;
}

Result<tcp::endpoint> ParseListenAddress(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return MakeError("bad_listen_address",
                     "listen address '" + std::string(text) + "' " + why +
                         "; expected HOST:PORT such as 127.0.0.1:8080 or "
                         "[::1]:0");
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return bad("has a malformed IPv6 part");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("has no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos ||
      std::stoul(std::string(port)) > 65535) {
    return bad("has an invalid port");
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return bad("has a host that is not a numeric IP address");
  return tcp::endpoint(address,
                       static_cast<unsigned short>(std::stoul(std::string(port))));
}

Route MetricsRoute(std::shared_ptr<prometheus::Registry> registry) {
  Route route;
  route.name = "metrics";
  route.method = http::verb::get;
  route.path = "/metrics";
  route.handle = [registry](Request, Respond respond) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry->Collect());
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = out.str();
    respond(std::move(res));
  };
  return route;
}

}  // namespace fence::net
