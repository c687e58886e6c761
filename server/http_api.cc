#include "server/http_api.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "common/logging.h"
#include "core/key.h"

namespace fence::store {

namespace http = net::http;
using net::ErrorResponse;
using net::JsonResponse;
using net::Response;

namespace {

constexpr std::string_view kObjectsPrefix = "/v1/objects/";
constexpr std::string_view kFencesPrefix = "/v1/fences/";

Result<ParsedWrite> ParseWrite(const net::RequestHeader& header,
                               std::string_view tail) {
  auto key = ParseKey(tail);
  if (!key.ok()) return key.error();
  const auto values = net::HeaderValues(header, kFencingTokenHeader);
  auto token = ParseTokenHeader(values);
  if (!token.ok()) return token.error();
  return ParsedWrite{std::move(*key), *token};
}

nlohmann::json OptionalToken(std::optional<Token> token) {
  return token ? nlohmann::json(token->value()) : nlohmann::json(nullptr);
}

}  // namespace

http::status StatusForError(const std::string& code) {
  static const std::unordered_map<std::string, http::status> kTable = {
      {"bad_key", http::status::bad_request},
      {"bad_token", http::status::bad_request},
      {"missing_token", http::status::precondition_required},
      {"stale_token", http::status::conflict},
      {"not_found", http::status::not_found},
      {"storage_error", http::status::insufficient_storage},
      {"corrupt_record", http::status::insufficient_storage},
      {"overloaded", http::status::service_unavailable},
      {"shutting_down", http::status::service_unavailable},
  };
  auto it = kTable.find(code);
  return it == kTable.end() ? http::status::internal_server_error : it->second;
}

struct StoreApi::Metrics {
  prometheus::Counter& fenced;
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
                         "lower than the key's highest token. Any increase "
                         "means a split-brain happened and was contained.")
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
                   .Help("Mutating requests (PUT, DELETE, POST fence) by "
                         "result.")
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
                               "too_large", "storage_error", "overloaded"}) {
      writes_by_result[result] = &writes.Add({{"result", result}});
    }
  }
};

StoreApi::StoreApi(StoreService& service, StorageQueue& storage,
                   std::shared_ptr<prometheus::Registry> registry,
                   ApiOptions options)
    : service_(service),
      storage_(storage),
      registry_(std::move(registry)),
      metrics_(std::make_unique<Metrics>(*registry_)),
      options_(options) {
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
  if (code == "storage_error" || code == "corrupt_record") return "storage_error";
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

WriteRequest ToWriteRequest(http::verb method, ParsedWrite p,
                            http::request<http::string_body>& message) {
  switch (method) {
    case http::verb::put:
      return {WriteKind::kPut, std::move(p.key), p.token, std::move(message.body()),
              std::string(net::FromBeast(message[http::field::content_type]))};
    case http::verb::delete_:
      return {WriteKind::kDelete, std::move(p.key), p.token, {}, {}};
    default:
      return {WriteKind::kRaiseFence, std::move(p.key), p.token, {}, {}};
  }
}

// Logs a write the service refused, at the level its cause deserves.
void LogRefusedWrite(const std::string& op, const ParsedWrite& p,
                     const Error& e, const std::string& result) {
  nlohmann::json fields = {{"op", op},
                           {"key", p.key},
                           {"token", OptionalToken(p.token)},
                           {"error", e.code}};
  if (e.details.contains("highest_token")) {
    fields["highest_token"] = e.details["highest_token"];
  }
  if (result == "fenced") {
    log::Warn("write_fenced", fields);
  } else if (result == "storage_error") {
    fields["message"] = e.message;
    log::Error("write_failed", fields);
  } else {
    log::Info("write_refused", fields);
  }
}

// Logs an accepted write and builds its 200 answer.
Response AcceptedWrite(http::verb method, const std::string& op,
                       const WriteReceipt& receipt) {
  nlohmann::json body = {{"key", receipt.key},
                         {"token", OptionalToken(receipt.token)},
                         {"highest_token", OptionalToken(receipt.highest_token)},
                         {"version", receipt.version}};
  if (method == http::verb::put) {
    body["size"] = receipt.size;
    body["etag"] = receipt.etag;
  } else if (method == http::verb::delete_) {
    body["deleted"] = true;
  }
  log::Info(method == http::verb::post ? "fence_raised" : "write_accepted",
            {{"op", op},
             {"key", receipt.key},
             {"token", OptionalToken(receipt.token)},
             {"highest_token", OptionalToken(receipt.highest_token)},
             {"version", receipt.version},
             {"size", receipt.size}});
  return JsonResponse(http::status::ok, body);
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
void StoreApi::PrecheckWrite(const net::RequestHeader& header,
                             std::string_view tail, net::PrecheckDone done) {
  auto parsed = ParseWrite(header, tail);
  if (!parsed.ok()) {
    RecordWrite("bad_request");
    return done(net::Refuse(
        ErrorResponse(StatusForError(parsed.error().code), parsed.error())));
  }
  Status admitted = service_.Precheck(parsed->key, parsed->token, ReadFrom::kMemoryOnly);
  if (admitted.ok() || admitted.error().code != "not_in_memory") {
    return FinishPrecheck(std::move(*parsed), admitted, done);
  }
  storage_.Submit([this, p = std::move(*parsed),
                   done = std::move(done)](StorageQueue::Slot slot) mutable {
    if (slot != StorageQueue::Slot::kRun) {
      RecordWrite("overloaded");
      return done(net::Refuse(StorageUnavailable(slot)));
    }
    const Status from_disk = service_.Precheck(p.key, p.token, ReadFrom::kAnywhere);
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
    log::Warn("write_fenced",
              {{"key", p.key},
               {"token", OptionalToken(p.token)},
               {"highest_token", e.details.value("highest_token", nlohmann::json())},
               {"before_body", true}});
  }
  done(net::Refuse(ServiceError(e)));
}

void StoreApi::Mutate(http::verb method, net::Request request,
                      net::Respond respond) {
  // Every write route has PrecheckWrite, which admits only a parsed write.
  ParsedWrite p = std::any_cast<ParsedWrite>(std::move(request.admitted));
  WriteRequest write = ToWriteRequest(method, p, request.message);
  // The answer comes from the committer thread once the write's group is
  // durable (or at once if the write queue refused it).
  service_.Write(std::move(write), [this, method, p = std::move(p),
                                    respond = std::move(respond)](
                                       Result<WriteReceipt> receipt) {
    const std::string op = OpName(method);
    if (!receipt.ok()) {
      const Error& e = receipt.error();
      const std::string result = WriteResultFor(e.code);
      RecordWrite(result);
      LogRefusedWrite(op, p, e, result);
      return respond(ServiceError(e));
    }
    RecordWrite("accepted");
    respond(AcceptedWrite(method, op, *receipt));
  });
}

// Answers from memory on the I/O thread when it can; a read that would wait
// for the disk goes to a storage thread.
void StoreApi::ReadByKey(const net::Request& request, net::Respond respond,
                         std::function<std::optional<Response>(const std::string& key,
                                                               ReadFrom from)> read) {
  auto key = ParseKey(request.tail);
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
  route.precheck = [this](const net::RequestHeader& header, std::string_view tail,
                          net::PrecheckDone done) {
    PrecheckWrite(header, tail, std::move(done));
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
  routes.push_back(WriteRoute("fences", kFencesPrefix, http::verb::post, 0));
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
                          "storage refuses writes (the disk is full or failing); "
                          "writes answer 507 and the store retries until storage "
                          "recovers, with no restart needed"));
  };
  routes.push_back(std::move(readyz));
}

std::vector<net::Route> StoreApi::Routes() {
  std::vector<net::Route> routes;
  AddObjectWriteRoutes(routes);
  AddObjectReadRoutes(routes);
  AddFenceRoutes(routes);
  AddHealthRoutes(routes);
  return routes;
}

}  // namespace fence::store
