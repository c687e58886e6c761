// Fuzzes fence-store's HTTP edge in process: the input is the bytes a
// client sends on one connection (pipelined requests), served through the
// real parser, router, prechecks and handlers (net::DispatchBytes over
// StoreApi's routes) on an in-memory storage. Besides the checks every
// response gets (valid HTTP, JSON errors), the fence is never lowered: the
// highest_token any response reports for a key never goes down within a
// run, an accepted write's token is the key's fence afterwards, and a
// stale_token refusal names a token below the fence.
#include <cstdint>
#include <map>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <thread>

#include "fuzz/http_fuzz.h"
#include "server/http_api.h"
#include "server/memory_storage.h"
#include "server/storage_queue.h"
#include "server/store_service.h"

namespace {

using fence::fuzz::Check;
namespace store = fence::store;

// The fences reported so far in one run, by key.
class FenceModel {
 public:
  void See(const fence::net::Response& response, const nlohmann::json& body) {
    if (!body.is_object() || !body.contains("key") || !body["key"].is_string()) return;
    const std::string key = body["key"].get<std::string>();
    const auto highest = Unsigned(body, "highest_token");
    const auto token = Unsigned(body, "token");
    if (highest) {
      Check(*highest >= fences_[key], "a response reports a lowered fence");
      fences_[key] = *highest;
    }
    if (response.result_int() == 200 && token && highest) {
      Check(*token == *highest, "an accepted write's token is not the fence after it");
    }
    if (body.value("error", "") == "stale_token") {
      Check(token && highest && *token < *highest, "stale_token with a token not below the fence");
    }
  }

 private:
  static std::optional<std::uint64_t> Unsigned(const nlohmann::json& body, const char* field) {
    if (!body.contains(field) || !body[field].is_number_unsigned()) return std::nullopt;
    return body[field].get<std::uint64_t>();
  }
  std::map<std::string, std::uint64_t> fences_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // a log line per request only slows the search
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One storage thread for the whole run: a thread pool per input would
  // dominate the time; the storage and the API are fresh per input.
  static store::StorageQueue queue(1, 16);
  store::MemoryStorage storage;
  store::StoreService service(storage, store::FencingMode::kOn);
  // Small limits, so the fuzzer reaches them with small inputs.
  store::StoreApi api(service, queue, std::make_shared<prometheus::Registry>(),
                      store::ApiOptions{.max_object_bytes = 256});
  fence::net::ServerOptions options;
  options.metrics_prefix = "fence_store";
  options.max_header_bytes = 1024;
  const std::vector<fence::net::Route> routes = api.Routes();
  FenceModel model;
  fence::fuzz::ServePipeline(
      routes, options, std::string_view(reinterpret_cast<const char*>(data), size), nullptr,
      [&model](const fence::net::Response& response, const nlohmann::json& body) {
        model.See(response, body);
      });
  // A storage task or the committer may still be finishing after it
  // answered; the service and the API they use die with this scope.
  while (queue.pending() > 0) std::this_thread::yield();
  service.Close();
  return 0;
}
