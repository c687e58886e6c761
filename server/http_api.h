// The store's HTTP edge: parses requests, hands writes to the StoreBackend
// (RocksDB's committer, or PostgreSQL) and answers reads from memory (or the
// storage queue on a miss), maps the result to a status and JSON, and
// records the log event and metrics of the outcome.
#pragma once

#include <functional>
#include <memory>
#include <prometheus/registry.h>
#include <vector>

#include "common/http_server.h"
#include "core/key.h"
#include "server/fence_repair_api.h"
#include "server/storage_queue.h"
#include "server/store_backend.h"

namespace fence::store {

class TokenSignatureCheck;

struct ApiOptions {
  std::uint64_t max_object_bytes = 16ull * 1024 * 1024;
  // The authenticated caller's name for audit logs (fence repair); empty
  // when the store runs without --auth-file.
  std::function<std::string(const net::RequestHeader&)> who;
  // --require-signed-tokens: checked before the fence rule; null = off.
  TokenSignatureCheck* token_signatures = nullptr;
};

// HTTP status for a service error code (one table for every handler).
net::http::status StatusForError(const std::string& code);

// A write's key, token and scope, parsed from its header by the precheck.
// A scope fence raise (POST /v1/scopes/{name}/fence) has no key.
struct ParsedWrite {
  std::string key;
  std::optional<Token> token;
  std::optional<std::string> scope;
};

class StoreApi {
 public:
  StoreApi(StoreBackend& service, StorageQueue& storage,
           std::shared_ptr<prometheus::Registry> registry, ApiOptions options);
  ~StoreApi();

  std::vector<net::Route> Routes();

 private:
  struct Metrics;

  // One function per route family.
  void AddObjectWriteRoutes(std::vector<net::Route>& routes);
  void AddObjectReadRoutes(std::vector<net::Route>& routes);
  void AddFenceRoutes(std::vector<net::Route>& routes);
  void AddScopeRoutes(std::vector<net::Route>& routes);
  void AddHealthRoutes(std::vector<net::Route>& routes);
  // A mutating route (PUT/DELETE object, POST fence): prechecked from its
  // header, then applied by Mutate.
  net::Route WriteRoute(std::string name, std::string_view prefix,
                        net::http::verb method, std::uint64_t body_limit);

  void PrecheckWrite(const net::RequestHeader& header, std::string_view prefix,
                     std::string_view tail, net::PrecheckDone done);
  void FinishPrecheck(ParsedWrite p, const Status& admitted, const net::PrecheckDone& done);
  void Mutate(net::http::verb method, net::Request request, net::Respond respond);
  // Parses the key and answers with read(key, from): from memory on the
  // calling I/O thread when read gives an answer, else (nullopt) on the
  // storage queue.
  void ReadByKey(const net::Request& request, net::Respond respond,
                 std::function<std::optional<net::Response>(const std::string& key,
                                                            ReadFrom from)> read,
                 Result<std::string> (*parse)(std::string_view) = ParseKey);
  std::optional<net::Response> ReadObject(net::http::verb method, const std::string& key,
                                          ReadFrom from);
  std::optional<net::Response> ReadFence(const std::string& key, ReadFrom from);
  std::optional<net::Response> ReadScope(const std::string& scope, ReadFrom from);
  net::Response ServiceError(const Error& e);
  // 503 with Retry-After for a request the storage queue refused.
  net::Response StorageUnavailable(StorageQueue::Slot slot);
  void RecordWrite(const std::string& result);

  StoreBackend& service_;
  StorageQueue& storage_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Metrics> metrics_;
  ApiOptions options_;
  FenceRepairApi repair_;
};

}  // namespace fence::store
