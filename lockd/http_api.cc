#include "lockd/http_api.h"

#include <limits>

#include "core/key.h"
#include "core/token_signature.h"

namespace fence::lockd {

namespace http = net::http;
using net::ErrorResponse;
using net::JsonResponse;
using net::Response;

namespace {

constexpr std::string_view kLocksPrefix = "/v1/locks/";
constexpr std::string_view kLeasesPrefix = "/v1/leases/";

Error BadRequest(std::string message) {
  return MakeError("bad_request", std::move(message));
}

// Reads an optional integer field in [min, max]. A missing field is nullopt.
Result<std::optional<std::int64_t>> IntegerField(const nlohmann::json& body,
                                                 const char* field,
                                                 std::int64_t min,
                                                 std::int64_t max) {
  auto it = body.find(field);
  if (it == body.end()) return std::optional<std::int64_t>();
  const std::string range =
      "; expected an integer number of milliseconds from " +
      std::to_string(min) + " to " + std::to_string(max);
  if (!it->is_number_integer()) {
    return BadRequest(std::string("field '") + field + "' is " +
                      (it->is_number() ? "not a whole number" : std::string("a ") + it->type_name()) +
                      range);
  }
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return BadRequest(std::string("field '") + field + "' is too large" + range);
  }
  const std::int64_t value = it->get<std::int64_t>();
  if (value < min || value > max) {
    return BadRequest(std::string("field '") + field + "' is " +
                      std::to_string(value) + range);
  }
  return std::optional<std::int64_t>(value);
}

Result<nlohmann::json> ParseObject(std::string_view body,
                                   const std::string& expected) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return BadRequest("the request body is not valid JSON; expected " + expected);
  }
  if (!json.is_object()) {
    return BadRequest(std::string("the request body is a JSON ") +
                      json.type_name() + "; expected " + expected);
  }
  return json;
}

constexpr const char* kAcquireShape =
    R"(an object such as {"owner":"worker-a","ttl_ms":2000,"wait_ms":0,"lock_delay_ms":0})";
constexpr const char* kBreakShape =
    R"(an object such as {"reason":"holder hung in GC, ticket OPS-123"})";

// A required string field of 1 to `max_bytes` printable bytes (the text
// lands in logs, so no control characters).
Result<std::string> TextField(const nlohmann::json& body, const char* field,
                              std::size_t max_bytes, const char* shape) {
  auto it = body.find(field);
  if (it == body.end()) {
    return BadRequest(std::string("field '") + field + "' is missing; expected " + shape);
  }
  const std::string expected =
      "a string of 1 to " + std::to_string(max_bytes) + " bytes";
  if (!it->is_string()) {
    return BadRequest(std::string("field '") + field + "' is a " + it->type_name() +
                      "; expected " + expected);
  }
  const std::string& text = it->get_ref<const std::string&>();
  if (text.empty() || text.size() > max_bytes) {
    return BadRequest(std::string("field '") + field + "' is " +
                      std::to_string(text.size()) + " bytes; expected 1 to " +
                      std::to_string(max_bytes));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return BadRequest(std::string("field '") + field +
                        "' contains a control character; expected printable text");
    }
  }
  return text;
}
constexpr const char* kReleaseShape =
    R"(an object such as {"lease_id":"<16 hex digits from acquire>"})";

// A grant; signed (docs/signed-tokens.md) when lockd has token keys.
nlohmann::json LeaseJson(const Lease& lease, const TokenKeyRing* token_keys) {
  nlohmann::json json = {{"name", lease.name},
                         {"owner", lease.owner},
                         {"token", lease.token.value()},
                         {"lease_id", lease.id.ToString()},
                         {"ttl_ms", lease.ttl.count()}};
  if (token_keys) json["token_signature"] = token_keys->Sign(lease.name, lease.token);
  return json;
}

}  // namespace

http::status StatusForError(const std::string& code) {
  static const std::unordered_map<std::string, http::status> kTable = {
      {"bad_request", http::status::bad_request},
      {"bad_lock_name", http::status::bad_request},
      {"bad_lease_id", http::status::bad_request},
      {"held", http::status::conflict},
      {"not_holder", http::status::conflict},
      {"unknown_lease", http::status::not_found},
      // 404 like unknown_lease, so a client that treats 404 as "lease lost"
      // is right; the code tells it why.
      {"lease_broken", http::status::not_found},
      {"not_held", http::status::not_found},
      {"not_found", http::status::not_found},
      {"starting", http::status::service_unavailable},
      {"shutting_down", http::status::service_unavailable},
      {"too_many_locks", http::status::service_unavailable},
      {"too_many_waiters", http::status::service_unavailable},
      {"storage_error", http::status::service_unavailable},
  };
  auto it = kTable.find(code);
  return it == kTable.end() ? http::status::internal_server_error : it->second;
}

Result<AcquireBody> ParseAcquireBody(std::string_view text,
                                     const ApiOptions& options) {
  auto body = ParseObject(text, kAcquireShape);
  if (!body.ok()) return body.error();
  auto owner = TextField(*body, "owner", kMaxOwnerBytes, kAcquireShape);
  if (!owner.ok()) return owner.error();
  auto ttl = IntegerField(*body, "ttl_ms", 1, options.max_ttl.count());
  if (!ttl.ok()) return ttl.error();
  if (!*ttl) {
    return BadRequest("field 'ttl_ms' is missing; expected an integer from 1 to " +
                      std::to_string(options.max_ttl.count()));
  }
  auto wait = IntegerField(*body, "wait_ms", 0, options.max_wait.count());
  if (!wait.ok()) return wait.error();
  // Capped by --max-lock-delay-ms: a delay keeps the lock from everyone, so
  // a client must not be able to take it out of service for long.
  auto lock_delay =
      IntegerField(*body, "lock_delay_ms", 0, options.max_lock_delay.count());
  if (!lock_delay.ok()) return lock_delay.error();
  return AcquireBody{std::move(*owner), Millis(**ttl), Millis(wait->value_or(0)),
                     Millis(lock_delay->value_or(0))};
}

Result<std::string> ParseBreakBody(std::string_view text) {
  auto body = ParseObject(text, kBreakShape);
  if (!body.ok()) return body.error();
  return TextField(*body, "reason", kMaxBreakReasonBytes, kBreakShape);
}

Result<std::string> ParseLockName(std::string_view encoded) {
  auto name = ParseKey(encoded);
  if (!name.ok()) {
    std::string message = name.error().message;
    return MakeError("bad_lock_name", "invalid lock name: " + message);
  }
  if (name->size() > kMaxLockNameBytes) {
    return MakeError("bad_lock_name",
                     "the lock name is " + std::to_string(name->size()) +
                         " bytes; expected at most " +
                         std::to_string(kMaxLockNameBytes));
  }
  return name;
}

LockdApi::LockdApi(AsyncLockService& service, LockdMetrics& metrics,
                   std::shared_ptr<prometheus::Registry> registry,
                   ApiOptions options)
    : service_(service),
      metrics_(metrics),
      registry_(std::move(registry)),
      options_(options) {}

Response LockdApi::BadRequest(const Error& error) {
  metrics_.Refused("bad_request");
  return ErrorResponse(StatusForError(error.code), error);
}

namespace {

// Maps a service result to the response, adding Retry-After to "starting".
Response ErrorFor(const Error& error) {
  Response res = ErrorResponse(StatusForError(error.code), error);
  if (error.code == "starting") {
    const auto ms = error.details.value("retry_after_ms", std::int64_t{0});
    res.set(http::field::retry_after, std::to_string((ms + 999) / 1000));
  }
  return res;
}

}  // namespace

void LockdApi::HandleLockPost(net::Request request, net::Respond respond) {
  const std::string_view tail = request.tail;
  const auto slash = tail.rfind('/');
  const std::string_view action =
      slash == std::string_view::npos ? std::string_view() : tail.substr(slash + 1);
  if (action != "acquire" && action != "release" && action != "break") {
    return respond(ErrorResponse(
        http::status::not_found, "not_found",
        "no such endpoint; expected POST /v1/locks/{name}/acquire, "
        "/v1/locks/{name}/release or /v1/locks/{name}/break"));
  }
  auto name = ParseLockName(tail.substr(0, slash));
  if (!name.ok()) return respond(BadRequest(name.error()));
  if (action == "break") {
    return HandleBreak(std::move(*name), std::move(request), std::move(respond));
  }

  if (action == "acquire") {
    auto body = ParseAcquireBody(request.message.body(), options_);
    if (!body.ok()) return respond(BadRequest(body.error()));
    return service_.Acquire(
        std::move(*name), std::move(body->owner), body->ttl, body->wait,
        body->lock_delay,
        [respond = std::move(respond), keys = options_.token_keys](Result<Lease> lease) {
          if (!lease.ok()) return respond(ErrorFor(lease.error()));
          respond(JsonResponse(http::status::ok, LeaseJson(*lease, keys)));
        });
  }
  auto body = ParseObject(request.message.body(), kReleaseShape);
  if (!body.ok()) return respond(BadRequest(body.error()));
  auto field = body->find("lease_id");
  if (field == body->end() || !field->is_string()) {
    return respond(BadRequest(fence::lockd::BadRequest(
        std::string("field 'lease_id' is ") +
        (field == body->end() ? "missing" : std::string("a ") + field->type_name()) +
        "; expected " + kReleaseShape)));
  }
  auto id = ParseLeaseId(field->get_ref<const std::string&>());
  if (!id.ok()) return respond(BadRequest(id.error()));
  service_.Release(std::move(*name), *id,
                   [respond = std::move(respond)](Result<Lease> lease) {
                     if (!lease.ok()) return respond(ErrorFor(lease.error()));
                     respond(JsonResponse(http::status::ok,
                                          {{"released", true},
                                           {"name", lease->name},
                                           {"token", lease->token.value()},
                                           {"lease_id", lease->id.ToString()}}));
                   });
}

void LockdApi::HandleBreak(std::string name, net::Request request,
                           net::Respond respond) {
  auto reason = ParseBreakBody(request.message.body());
  if (!reason.ok()) return respond(BadRequest(reason.error()));
  std::string caller = request.remote.empty() ? "unknown" : std::move(request.remote);
  service_.Break(std::move(name), std::move(*reason), std::move(caller),
                 [respond = std::move(respond)](Result<Lease> lease) {
                   if (!lease.ok()) return respond(ErrorFor(lease.error()));
                   // The lease id is dead now, so showing it reveals no
                   // capability; it ties this answer to the audit line.
                   respond(JsonResponse(http::status::ok,
                                        {{"broken", true},
                                         {"name", lease->name},
                                         {"owner", lease->owner},
                                         {"token", lease->token.value()},
                                         {"lease_id", lease->id.ToString()}}));
                 });
}

void LockdApi::HandleKeepAlive(net::Request request, net::Respond respond) {
  const std::string_view tail = request.tail;
  constexpr std::string_view kSuffix = "/keepalive";
  if (tail.size() <= kSuffix.size() ||
      tail.substr(tail.size() - kSuffix.size()) != kSuffix) {
    return respond(ErrorResponse(
        http::status::not_found, "not_found",
        "no such endpoint; expected POST /v1/leases/{lease_id}/keepalive"));
  }
  auto id = ParseLeaseId(tail.substr(0, tail.size() - kSuffix.size()));
  if (!id.ok()) return respond(BadRequest(id.error()));
  service_.KeepAlive(*id, [respond = std::move(respond)](Result<Lease> lease) {
    if (!lease.ok()) return respond(ErrorFor(lease.error()));
    respond(JsonResponse(http::status::ok,
                         {{"ttl_ms", lease->ttl.count()},
                          {"lease_id", lease->id.ToString()},
                          {"name", lease->name},
                          {"token", lease->token.value()}}));
  });
}

void LockdApi::HandleStatus(net::Request request, net::Respond respond) {
  auto name = ParseLockName(request.tail);
  if (!name.ok()) return respond(BadRequest(name.error()));
  // The lease id is the holder's capability: never shown here.
  service_.Status(std::move(*name), [respond = std::move(respond)](
                                        Result<LockStatus> status) {
    if (!status.ok()) return respond(ErrorFor(status.error()));
    respond(JsonResponse(http::status::ok,
                         {{"name", status->name},
                          {"holder", status->holder},
                          {"token", status->token.value()},
                          {"expires_in_ms", status->expires_in.count()},
                          {"ttl_ms", status->ttl.count()},
                          {"waiters", status->waiters}}));
  });
}

namespace {

// A route under the API's prefixes: its own server replies (413, unreadable
// body) count as bad requests.
net::Route ApiRoute(std::string name, http::verb method, std::string_view prefix,
                    std::uint64_t body_limit, LockdMetrics& metrics,
                    std::function<void(net::Request, net::Respond)> handle) {
  net::Route route;
  route.name = std::move(name);
  route.method = method;
  route.path = std::string(prefix);
  route.prefix = true;
  route.body_limit = body_limit;
  route.on_server_reply = [&metrics](http::status) { metrics.Refused("bad_request"); };
  route.handle = std::move(handle);
  return route;
}

net::Route HealthRoute(std::string name, std::string path,
                       std::function<void(net::Request, net::Respond)> handle) {
  net::Route route;
  route.name = std::move(name);
  route.method = http::verb::get;
  route.path = std::move(path);
  route.handle = std::move(handle);
  return route;
}

}  // namespace

std::vector<net::Route> LockdApi::Routes() {
  std::vector<net::Route> routes;
  routes.push_back(ApiRoute("locks", http::verb::post, kLocksPrefix, kMaxRequestBodyBytes,
                            metrics_, [this](net::Request r, net::Respond done) {
                              HandleLockPost(std::move(r), std::move(done));
                            }));
  routes.push_back(ApiRoute("locks", http::verb::get, kLocksPrefix, 0, metrics_,
                            [this](net::Request r, net::Respond done) {
                              HandleStatus(std::move(r), std::move(done));
                            }));
  routes.push_back(ApiRoute("leases", http::verb::post, kLeasesPrefix, kMaxRequestBodyBytes,
                            metrics_, [this](net::Request r, net::Respond done) {
                              HandleKeepAlive(std::move(r), std::move(done));
                            }));
  routes.push_back(net::MetricsRoute(registry_));
  routes.push_back(HealthRoute("healthz", "/healthz", [this](net::Request, net::Respond respond) {
    const auto grace = service_.GraceRemaining().count();
    respond(JsonResponse(http::status::ok, {{"status", "ok"},
                                            {"granting", grace == 0},
                                            {"grace_remaining_ms", grace}}));
  }));
  routes.push_back(HealthRoute("readyz", "/readyz", [this](net::Request, net::Respond respond) {
    const auto grace = service_.GraceRemaining().count();
    if (grace == 0) return respond(JsonResponse(http::status::ok, {{"status", "ready"}}));
    respond(ErrorResponse(http::status::service_unavailable, "starting",
                          "lockd is in its post-restart grace period and grants "
                          "nothing yet",
                          {{"retry_after_ms", grace}}));
  }));
  return routes;
}

}  // namespace fence::lockd
