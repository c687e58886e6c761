// The store's HTTP edge: parses requests, calls one StoreService function on
// the storage thread pool, maps the result to a status and JSON, and records
// the log event and metrics of the outcome.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <prometheus/registry.h>
#include <vector>

#include "common/http_server.h"
#include "server/store_service.h"

namespace fence::store {

struct ApiOptions {
  std::uint64_t max_object_bytes = 16ull * 1024 * 1024;
};

// HTTP status for a service error code (one table for every handler).
net::http::status StatusForError(const std::string& code);

class StoreApi {
 public:
  StoreApi(StoreService& service, boost::asio::thread_pool& storage_pool,
           std::shared_ptr<prometheus::Registry> registry, ApiOptions options);
  ~StoreApi();

  std::vector<net::Route> Routes();

 private:
  struct Metrics;
  void Mutate(net::http::verb method, net::Request request, net::Respond respond);
  void RecordWrite(const std::string& result);

  StoreService& service_;
  boost::asio::thread_pool& pool_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Metrics> metrics_;
  ApiOptions options_;
};

}  // namespace fence::store
