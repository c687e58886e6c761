#include "server/http_api.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "common/logging.h"
#include "core/key.h"
#include "core/scope_rule.h"
#include "server/token_signature_check.h"

namespace fence::store {

namespace http = net::http;
using net::ErrorResponse;
using net::JsonResponse;
using net::Response;

namespace {

constexpr std::string_view kObjectsPrefix = "/v1/objects/";
constexpr std::string_view kFencesPrefix = "/v1/fences/";
constexpr std::string_view kScopesPrefix = "/v1/scopes/";
constexpr std::string_view kScopeFenceSuffix = "/fence";

// The Fencing-Scope header: none, or exactly one valid name.
Result<std::optional<std::string>> ParseScopeHeader(const net::RequestHeader& header) {
  const auto values = net::HeaderValues(header, kFencingScopeHeader);
  if (values.empty()) return std::optional<std::string>();
  if (values.size() > 1) {
    return MakeError("bad_scope", "the request carries " + std::to_string(values.size()) +
                                      " Fencing-Scope headers; expected at most one");
  }
  auto scope = ParseScope(values[0]);
  if (!scope.ok()) return scope.error();
  return std::optional<std::string>(std::move(*scope));
}

// A key route's tail is the key, with an optional Fencing-Scope header; a
// scope route's tail is "{name}/fence" and it has no key.
Result<ParsedWrite> ParseWrite(const net::RequestHeader& header, std::string_view prefix,
                               std::string_view tail) {
  ParsedWrite p;
  if (prefix == kScopesPrefix) {
    if (!tail.ends_with(kScopeFenceSuffix)) {
      return MakeError("bad_scope", "expected POST /v1/scopes/{name}/fence");
    }
    auto scope = ParseScope(tail.substr(0, tail.size() - kScopeFenceSuffix.size()));
    if (!scope.ok()) return scope.error();
    p.scope = std::move(*scope);
  } else {
    auto key = ParseKey(tail);
    if (!key.ok()) return key.error();
    p.key = std::move(*key);
    auto scope = ParseScopeHeader(header);
    if (!scope.ok()) return scope.error();
    p.scope = std::move(*scope);
  }
  if (header.method() == http::verb::put) {
    auto content_type = ValidateContentType(net::FromBeast(header[http::field::content_type]));
    if (!content_type.ok()) return content_type.error();
  }
  const auto values = net::HeaderValues(header, kFencingTokenHeader);
  auto token = ParseTokenHeader(values);
  if (!token.ok()) return token.error();
  p.token = *token;
  return p;
}

nlohmann::json OptionalToken(std::optional<Token> token) {
  return token ? nlohmann::json(token->value()) : nlohmann::json(nullptr);
}

}  // namespace

http::status StatusForError(const std::string& code) {
  static const std::unordered_map<std::string, http::status> kTable = {
      {"bad_key", http::status::bad_request},
      {"bad_token", http::status::bad_request},
      {"bad_scope", http::status::bad_request},
      {"bad_content_type", http::status::bad_request},
      {"missing_token", http::status::precondition_required},
      {"bad_token_signature", http::status::forbidden},
      {"stale_token", http::status::conflict},
      {"not_found", http::status::not_found},
      {"storage_error", http::status::insufficient_storage},
      {"corrupt_record", http::status::insufficient_storage},
      {"overloaded", http::status::service_unavailable},
      {"shutting_down", http::status::service_unavailable},
      {"storage_unavailable", http::status::service_unavailable},
      {"commit_unknown", http::status::service_unavailable},
  };
  auto it = kTable.find(code);
  return it == kTable.end() ? http::status::internal_server_error : it->second;
}

struct StoreApi::Metrics {
  prometheus::Counter& fenced;
  prometheus::Counter& scope_raises;
  prometheus::Counter& storage_refusals;
  prometheus::Family<prometheus::Counter>& writes;
  std::unordered_map<std::string, prometheus::Counter*> writes_by_result;
  prometheus::Counter& wal_syncs;
  prometheus::Counter& synced_writes;
  prometheus::Histogram& group_writes;

  explicit Metrics(prometheus::Registry& registry)
      : fenced(prometheus::BuildCounter()
                   .Name("fence_store_fenced_writes_total")
                   .Help("Writes rejected because their fencing token was "
                         "lower than the key's or the scope's highest token. "
                         "Any increase means a split-brain happened and was "
                         "contained.")
                   .Register(registry)
                   .Add({})),
        scope_raises(prometheus::BuildCounter()
                         .Name("fence_store_scope_fence_raises_total")
                         .Help("Accepted writes that moved a scope's fence up "
                               "(POST /v1/scopes/{name}/fence, or a scoped write "
                               "with a newer token): new leaders fencing a job.")
                         .Register(registry)
                         .Add({})),
        storage_refusals(prometheus::BuildCounter()
                             .Name("fence_store_storage_queue_refusals_total")
                             .Help("Requests answered 503 because the write queue "
                                   "(--max-queued-writes) or the disk-read queue "
                                   "(--max-storage-queue) was full, or closed for "
                                   "shutdown.")
                             .Register(registry)
                             .Add({})),
        writes(prometheus::BuildCounter()
                   .Name("fence_store_writes_total")
                   .Help("Mutating requests (PUT, DELETE, POST fence, POST "
                         "scope fence) by result.")
                   .Register(registry)),
        wal_syncs(prometheus::BuildCounter()
                      .Name("fence_store_wal_syncs_total")
                      .Help("Write groups made durable, each with one write-ahead-log "
                            "fsync. synced_writes_total / wal_syncs_total is the group "
                            "commit factor: the writes that shared one fsync.")
                      .Register(registry)
                      .Add({})),
        synced_writes(prometheus::BuildCounter()
                          .Name("fence_store_synced_writes_total")
                          .Help("Accepted writes made durable by those syncs.")
                          .Register(registry)
                          .Add({})),
        group_writes(prometheus::BuildHistogram()
                         .Name("fence_store_writes_per_sync")
                         .Help("Writes made durable by one write-ahead-log fsync.")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})) {
    // Every series exists at 0 from the start, so rate() and increase() see
    // the very first event after a restart.
    for (const char* result : {"accepted", "fenced", "missing_token", "bad_request",
                               "bad_signature", "too_large", "storage_error", "overloaded"}) {
      writes_by_result[result] = &writes.Add({{"result", result}});
    }
  }
};

StoreApi::StoreApi(StoreBackend& service, StorageQueue& storage,
                   std::shared_ptr<prometheus::Registry> registry,
                   ApiOptions options)
    : service_(service),
      storage_(storage),
      registry_(std::move(registry)),
      metrics_(std::make_unique<Metrics>(*registry_)),
      options_(options),
      repair_(service_, *registry_, options_.who) {
  service_.SetGroupObserver([m = metrics_.get()](std::size_t writes) {
    m->wal_syncs.Increment();
    m->synced_writes.Increment(static_cast<double>(writes));
    m->group_writes.Observe(static_cast<double>(writes));
  });
}

StoreApi::~StoreApi() { service_.SetGroupObserver(nullptr); }

void StoreApi::RecordWrite(const std::string& result) {
  metrics_->writes_by_result.at(result)->Increment();
  if (result == "fenced") metrics_->fenced.Increment();
}

namespace {

// The writes_total label for a refused write.
std::string WriteResultFor(const std::string& code) {
  if (code == "stale_token") return "fenced";
  if (code == "missing_token") return "missing_token";
  if (code == "storage_error" || code == "corrupt_record" || code == "storage_unavailable" ||
      code == "commit_unknown") {
    return "storage_error";
  }
  if (code == "overloaded" || code == "shutting_down") return "overloaded";
  return "bad_request";
}

std::string OpName(http::verb method) {
  switch (method) {
    case http::verb::put:
      return "put";
    case http::verb::delete_:
      return "delete";
    default:
      return "fence";
  }
}

bool IsScopeRaise(const ParsedWrite& p) { return p.key.empty() && p.scope; }

WriteRequest ToWriteRequest(http::verb method, ParsedWrite p,
                            http::request<http::string_body>& message) {
  if (IsScopeRaise(p)) return {WriteKind::kRaiseScope, {}, p.token, {}, {}, std::move(p.scope)};
  switch (method) {
    case http::verb::put:
      return {WriteKind::kPut, std::move(p.key), p.token, std::move(message.body()),
              std::string(net::FromBeast(message[http::field::content_type])),
              std::move(p.scope)};
    case http::verb::delete_:
      return {WriteKind::kDelete, std::move(p.key), p.token, {}, {}, std::move(p.scope)};
    default:
      return {WriteKind::kRaiseFence, std::move(p.key), p.token, {}, {}, std::move(p.scope)};
  }
}

// What a write_fenced line says beyond the key and token: the scope, and
// which fence refused the write with its highest token.
void AddFenceFields(nlohmann::json& fields, const ParsedWrite& p, const Error& e) {
  if (p.scope) fields["scope"] = *p.scope;
  if (e.details.contains("highest_token")) fields["highest_token"] = e.details["highest_token"];
  if (e.details.contains("refused_by")) fields["refused_by"] = e.details["refused_by"];
}

// Logs a write the service refused, at the level its cause deserves.
void LogRefusedWrite(const std::string& op, const ParsedWrite& p,
                     const Error& e, const std::string& result) {
  nlohmann::json fields = {{"op", op},
                           {"key", p.key},
                           {"token", OptionalToken(p.token)},
                           {"error", e.code}};
  AddFenceFields(fields, p, e);
  if (result == "fenced") {
    log::Warn("write_fenced", fields);
  } else if (result == "storage_error") {
    fields["message"] = e.message;
    log::Error("write_failed", fields);
  } else {
    log::Info("write_refused", fields);
  }
}

void AddToken(JsonMembers& members, std::string_view name, std::optional<Token> token) {
  if (token) {
    members.AddNumber(name, token->value());
  } else {
    members.AddNull(name);
  }
}

// The members of an accepted write's answer and of its log line, in sorted
// order (as every other answer's): the etag only in the answer, the op only
// in the log. A scope raise answers with the scope's fence as its
// highest_token.
JsonMembers AcceptedMembers(http::verb method, const WriteReceipt& receipt, bool for_log,
                            std::string_view op) {
  const bool scope_raise = receipt.key.empty();
  JsonMembers m;
  if (method == http::verb::delete_) m.AddBool("deleted", true);
  if (method == http::verb::put && !for_log) m.AddString("etag", receipt.etag);
  if (!scope_raise) {
    AddToken(m, "highest_token", receipt.highest_token);
    m.AddString("key", receipt.key);
  } else if (!for_log) {
    AddToken(m, "highest_token", receipt.scope_highest_token);
  }
  if (for_log) m.AddString("op", op);
  if (receipt.scope) {
    m.AddString("scope", *receipt.scope);
    AddToken(m, "scope_highest_token", receipt.scope_highest_token);
    m.AddNumber("scope_version", receipt.scope_version);
  }
  if (method == http::verb::put) m.AddNumber("size", receipt.size);
  AddToken(m, "token", receipt.token);
  if (!scope_raise) m.AddNumber("version", receipt.version);
  return m;
}

// Logs an accepted write and builds its 200 answer, for every write: written
// as text, no json values.
Response AcceptedWrite(http::verb method, const std::string& op,
                       const WriteReceipt& receipt) {
  const bool scope_raise = receipt.key.empty();
  log::Info(scope_raise                    ? "scope_fence_raised"
            : method == http::verb::post ? "fence_raised"
                                         : "write_accepted",
            AcceptedMembers(method, receipt, /*for_log=*/true, op));
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, net::ToBeast(net::kJsonContentType));
  res.body() = AcceptedMembers(method, receipt, /*for_log=*/false, op).Object();
  res.body().push_back('\n');
  return res;
}

Response ObjectResponse(http::verb method, StoredObject object) {
  Response res{http::status::ok, 11};
  const KeyRecord& rec = object.record;
  res.set(http::field::content_type, rec.content_type);
  res.set(http::field::etag, rec.etag);
  if (rec.object_token) {
    res.set(net::ToBeast(kFencingTokenHeader), rec.object_token->ToString());
  }
  if (rec.highest_token) {
    res.set("Fencing-Highest-Token", rec.highest_token->ToString());
  }
  res.set("Key-Version", std::to_string(rec.version));
  res.content_length(rec.size);
  if (method == http::verb::get) res.body() = std::move(object.body);
  return res;
}

net::Route PlainRoute(std::string name, http::verb method, std::string path,
                      bool prefix) {
  net::Route route;
  route.name = std::move(name);
  route.method = method;
  route.path = std::move(path);
  route.prefix = prefix;
  return route;
}

}  // namespace

// Refuses a write from its header: bad key or token, missing token, or a
// token already below the fence. Decided on the I/O thread when the key's
// record is in memory; only a miss goes to a storage thread. The parsed key
// and token are handed on to Mutate (Request::admitted).
void StoreApi::PrecheckWrite(const net::RequestHeader& header, std::string_view prefix,
                             std::string_view tail, net::PrecheckDone done) {
  auto parsed = ParseWrite(header, prefix, tail);
  if (!parsed.ok()) {
    RecordWrite("bad_request");
    return done(net::Refuse(
        ErrorResponse(StatusForError(parsed.error().code), parsed.error())));
  }
  // A forged or altered token is refused before the fence rule sees it.
  if (options_.token_signatures) {
    Status signed_token = options_.token_signatures->Check(header, parsed->key, parsed->token,
                                                           parsed->scope);
    if (!signed_token.ok()) {
      RecordWrite("bad_signature");
      return done(net::Refuse(ServiceError(signed_token.error())));
    }
  }
  Status admitted =
      service_.Precheck(parsed->key, parsed->token, parsed->scope, ReadFrom::kMemoryOnly);
  if (admitted.ok() || admitted.error().code != "not_in_memory") {
    return FinishPrecheck(std::move(*parsed), admitted, done);
  }
  storage_.Submit([this, p = std::move(*parsed),
                   done = std::move(done)](StorageQueue::Slot slot) mutable {
    if (slot != StorageQueue::Slot::kRun) {
      RecordWrite("overloaded");
      return done(net::Refuse(StorageUnavailable(slot)));
    }
    const Status from_disk = service_.Precheck(p.key, p.token, p.scope, ReadFrom::kAnywhere);
    FinishPrecheck(std::move(p), from_disk, done);
  });
}

void StoreApi::FinishPrecheck(ParsedWrite p, const Status& admitted,
                              const net::PrecheckDone& done) {
  if (admitted.ok()) return done(net::Admit(std::move(p)));
  const Error& e = admitted.error();
  const std::string result = WriteResultFor(e.code);
  RecordWrite(result);
  if (result == "fenced") {
    // The refusal's details name the key, the token, the fence that refused
    // it and its height (and the scope); one copy of them is the log line.
    nlohmann::json fields = e.details;
    fields["before_body"] = true;
    log::Warn("write_fenced", fields);
  }
  done(net::Refuse(ServiceError(e)));
}

void StoreApi::Mutate(http::verb method, net::Request request,
                      net::Respond respond) {
  // Every write route has PrecheckWrite, which admits only a parsed write.
  ParsedWrite p = std::any_cast<ParsedWrite>(std::move(request.admitted));
  WriteRequest write = ToWriteRequest(method, p, request.message);
  // The outcome comes from the committer thread once the write's group is
  // durable (or at once if the write queue refused it). It is logged and
  // answered on the connection's I/O thread: the committer, the one serial
  // step of every write, only hands it over. (At a stop the I/O threads run
  // until every session has ended, so no outcome goes unlogged.)
  auto answer = [this, method, p = std::move(p), respond = std::move(respond)](
                    const Result<WriteReceipt>& receipt) {
    const std::string op = IsScopeRaise(p) ? "scope_fence" : OpName(method);
    if (!receipt.ok()) {
      const Error& e = receipt.error();
      const std::string result = WriteResultFor(e.code);
      RecordWrite(result);
      LogRefusedWrite(op, p, e, result);
      return respond(ServiceError(e));
    }
    RecordWrite("accepted");
    if (receipt->scope_raised) metrics_->scope_raises.Increment();
    respond(AcceptedWrite(method, op, *receipt));
  };
  service_.Write(std::move(write), [connection = request.connection,
                                    answer = std::move(answer)](Result<WriteReceipt> receipt) {
    net::RunOnConnection(connection,
                         [answer, receipt = std::move(receipt)] { answer(receipt); });
  });
}

// Answers from memory on the I/O thread when it can; a read that would wait
// for the disk goes to a storage thread.
void StoreApi::ReadByKey(const net::Request& request, net::Respond respond,
                         std::function<std::optional<Response>(const std::string& key,
                                                               ReadFrom from)> read,
                         Result<std::string> (*parse)(std::string_view)) {
  auto key = parse(request.tail);
  if (!key.ok()) {
    return respond(ErrorResponse(http::status::bad_request, key.error()));
  }
  if (auto answer = read(*key, ReadFrom::kMemoryOnly)) return respond(std::move(*answer));
  storage_.Submit([this, key = std::move(*key), respond = std::move(respond),
                   read = std::move(read)](StorageQueue::Slot slot) {
    if (slot != StorageQueue::Slot::kRun) return respond(StorageUnavailable(slot));
    respond(*read(key, ReadFrom::kAnywhere));
  });
}

std::optional<Response> StoreApi::ReadObject(http::verb method, const std::string& key,
                                             ReadFrom from) {
  auto object = service_.Get(key, from);
  if (!object.ok()) {
    if (object.error().code == "not_in_memory") return std::nullopt;
    return ServiceError(object.error());
  }
  return ObjectResponse(method, std::move(*object));
}

std::optional<Response> StoreApi::ReadFence(const std::string& key, ReadFrom from) {
  auto fence = service_.GetFence(key, from);
  if (!fence.ok()) {
    if (fence.error().code == "not_in_memory") return std::nullopt;
    return ServiceError(fence.error());
  }
  return JsonResponse(http::status::ok, {{"key", fence->key},
                                         {"highest_token", fence->highest_token.value()},
                                         {"version", fence->version}});
}

std::optional<Response> StoreApi::ReadScope(const std::string& scope, ReadFrom from) {
  auto state = service_.GetScope(scope, from);
  if (!state.ok()) {
    if (state.error().code == "not_in_memory") return std::nullopt;
    return ServiceError(state.error());
  }
  return JsonResponse(http::status::ok, {{"scope", state->scope},
                                         {"highest_token", state->highest_token.value()},
                                         {"version", state->version}});
}

// The answer to an error from the service; a write it did not attempt
// (overloaded, shutting down) says when to retry.
Response StoreApi::ServiceError(const Error& e) {
  Response res = ErrorResponse(StatusForError(e.code), e);
  if (res.result() == http::status::service_unavailable) {
    metrics_->storage_refusals.Increment();
    res.set(http::field::retry_after, "1");
  }
  return res;
}

Response StoreApi::StorageUnavailable(StorageQueue::Slot slot) {
  metrics_->storage_refusals.Increment();
  Response res =
      slot == StorageQueue::Slot::kClosed
          ? ErrorResponse(http::status::service_unavailable, "shutting_down",
                          "the store is shutting down; retry once it is back")
          : ErrorResponse(http::status::service_unavailable, "overloaded",
                          "the store already has " +
                              std::to_string(storage_.max_pending()) +
                              " storage operations queued or running; retry "
                              "after the Retry-After delay",
                          {{"max_storage_queue", storage_.max_pending()}});
  res.set(http::field::retry_after, "1");
  return res;
}

net::Route StoreApi::WriteRoute(std::string name, std::string_view prefix,
                                http::verb method, std::uint64_t body_limit) {
  net::Route route = PlainRoute(std::move(name), method, std::string(prefix), true);
  route.body_limit = body_limit;
  route.precheck = [this, prefix](const net::RequestHeader& header, std::string_view tail,
                                  net::PrecheckDone done) {
    PrecheckWrite(header, prefix, tail, std::move(done));
  };
  route.on_server_reply = [this](http::status status) {
    RecordWrite(status == http::status::payload_too_large     ? "too_large"
                : status == http::status::service_unavailable ? "overloaded"
                                                              : "bad_request");
  };
  route.handle = [this, method](net::Request r, net::Respond done) {
    Mutate(method, std::move(r), std::move(done));
  };
  return route;
}

void StoreApi::AddObjectWriteRoutes(std::vector<net::Route>& routes) {
  routes.push_back(WriteRoute("objects", kObjectsPrefix, http::verb::put,
                              options_.max_object_bytes));
  routes.push_back(WriteRoute("objects", kObjectsPrefix, http::verb::delete_, 0));
}

void StoreApi::AddObjectReadRoutes(std::vector<net::Route>& routes) {
  for (auto method : {http::verb::get, http::verb::head}) {
    net::Route route =
        PlainRoute("objects", method, std::string(kObjectsPrefix), true);
    route.handle = [this, method](net::Request r, net::Respond respond) {
      ReadByKey(r, std::move(respond), [this, method](const std::string& key, ReadFrom from) {
        return ReadObject(method, key, from);
      });
    };
    routes.push_back(std::move(route));
  }
}

void StoreApi::AddFenceRoutes(std::vector<net::Route>& routes) {
  net::Route read =
      PlainRoute("fences", http::verb::get, std::string(kFencesPrefix), true);
  read.handle = [this](net::Request r, net::Respond respond) {
    ReadByKey(r, std::move(respond), [this](const std::string& key, ReadFrom from) {
      return ReadFence(key, from);
    });
  };
  routes.push_back(std::move(read));
  // POST /v1/fences/{key}/repair shares the raise's route (see FenceRepairApi).
  routes.push_back(repair_.Wrap(WriteRoute("fences", kFencesPrefix, http::verb::post, 0)));
}

// GET /v1/scopes/{name}; POST /v1/scopes/{name}/fence.
void StoreApi::AddScopeRoutes(std::vector<net::Route>& routes) {
  net::Route read =
      PlainRoute("scopes", http::verb::get, std::string(kScopesPrefix), true);
  read.handle = [this](net::Request r, net::Respond respond) {
    ReadByKey(
        r, std::move(respond),
        [this](const std::string& scope, ReadFrom from) { return ReadScope(scope, from); },
        ParseScope);
  };
  routes.push_back(std::move(read));
  routes.push_back(WriteRoute("scopes", kScopesPrefix, http::verb::post, 0));
}

void StoreApi::AddHealthRoutes(std::vector<net::Route>& routes) {
  routes.push_back(net::MetricsRoute(registry_));
  net::Route healthz = PlainRoute("healthz", http::verb::get, "/healthz", false);
  healthz.handle = [](net::Request, net::Respond respond) {
    respond(JsonResponse(http::status::ok, {{"status", "ok"}}));
  };
  routes.push_back(std::move(healthz));
  net::Route readyz = PlainRoute("readyz", http::verb::get, "/readyz", false);
  readyz.handle = [this](net::Request, net::Respond respond) {
    if (service_.Healthy()) {
      return respond(JsonResponse(http::status::ok, {{"status", "ready"}}));
    }
    respond(ErrorResponse(http::status::service_unavailable, "not_ready",
                          service_.UnhealthyReason()));
  };
  routes.push_back(std::move(readyz));
}

std::vector<net::Route> StoreApi::Routes() {
  std::vector<net::Route> routes;
  AddObjectWriteRoutes(routes);
  AddObjectReadRoutes(routes);
  AddFenceRoutes(routes);
  AddScopeRoutes(routes);
  AddHealthRoutes(routes);
  return routes;
}

}  // namespace fence::store
