#include "client/lockd_backend.h"

#include <mutex>

#include "common/http_client.h"
#include "core/key.h"

namespace fence::client {

namespace http = net::http;

namespace {

nlohmann::json ParseBody(const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  return json.is_discarded() ? nlohmann::json::object() : json;
}

std::string StringField(const nlohmann::json& j, const char* name) {
  if (!j.is_object() || !j.contains(name)) return "";
  if (j[name].is_string()) return j[name].get<std::string>();
  if (j[name].is_number()) return j[name].dump();
  return "";
}

// A non-2xx answer as a LockBackend error, keeping lockd's own explanation.
Error ServiceError(int status, const nlohmann::json& json, const std::string& what) {
  const std::string server_message = StringField(json, "message");
  nlohmann::json details = {{"http_status", status}, {"server_body", json}};
  if (status >= 500) {
    return MakeError("unavailable",
                     what + ": fence-lockd answered " + std::to_string(status) +
                         (server_message.empty() ? "" : ": " + server_message),
                     std::move(details));
  }
  return MakeError("bad_request",
                   what + ": fence-lockd refused it with " + std::to_string(status) +
                       (server_message.empty() ? "" : ": " + server_message),
                   std::move(details));
}

class LockdBackend final : public LockBackend {
 public:
  LockdBackend(std::string endpoint, LockdOptions options)
      : endpoint_(std::move(endpoint)), options_(options) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }

  std::string_view kind() const override { return "lockd"; }

  Result<LockGrant> Acquire(const std::string& lock, const std::string& owner,
                        Millis ttl, Millis wait) override {
    nlohmann::json body = {
        {"owner", owner}, {"ttl_ms", ttl.count()}, {"wait_ms", wait.count()}};
    // Only when asked: an acquire without it is what every lockd accepts.
    if (options_.lock_delay > Millis(0)) body["lock_delay_ms"] = options_.lock_delay.count();
    // The long poll may legitimately take `wait`; the margin covers the
    // grant's fsync and a loaded machine.
    auto res = Call(http::verb::post,
                       "/v1/locks/" + EncodeKeyForPath(lock) + "/acquire", body,
                       wait + Millis(5000));
    if (!res.ok()) return res.error();
    auto lease = InterpretAcquireResponse(static_cast<int>(res->result_int()),
                                          res->body(), lock, owner);
    if (lease.ok()) {
      // An older lockd might not echo ttl_ms; the requested one then holds.
      if (lease->ttl.count() <= 0) lease->ttl = ttl;
      std::lock_guard guard(mu_);
      lease_ = *lease;
    }
    return lease;
  }

  Status KeepAlive(Millis timeout) override {
    std::optional<LockGrant> lease = Current();
    if (!lease) {
      return MakeError("lease_lost", "no lease is held; acquire first");
    }
    auto res = Call(http::verb::post,
                       "/v1/leases/" + EncodeKeyForPath(lease->lease_id) + "/keepalive",
                       nlohmann::json::object(), timeout);
    if (!res.ok()) return res.error();
    const int status = static_cast<int>(res->result_int());
    if (status == 200) return OkStatus();
    const auto json = ParseBody(res->body());
    if (status == 404) {
      Forget(lease->lease_id);
      // Same code either way (the lease is lost); the sentence says whether
      // an operator ended it, which a person reading the log needs to know.
      const bool broken = json.contains("error") && json["error"] == "lease_broken";
      return MakeError("lease_lost",
                       "fence-lockd no longer knows lease " + lease->lease_id +
                           " of lock " + lease->lock +
                           (broken ? ": an operator broke it (POST .../break); acquire again"
                                   : ": it expired (or the lock was released)"),
                       {{"lease_id", lease->lease_id},
                        {"token", lease->token.value()},
                        {"server_body", json}});
    }
    return ServiceError(status, json, "keep-alive of lease " + lease->lease_id);
  }

  Status Release() override {
    std::optional<LockGrant> lease = Current();
    if (!lease) return OkStatus();
    auto res = Call(http::verb::post,
                       "/v1/locks/" + EncodeKeyForPath(lease->lock) + "/release",
                       {{"lease_id", lease->lease_id}}, Millis(5000));
    if (!res.ok()) return res.error();
    const int status = static_cast<int>(res->result_int());
    // 409 (someone else holds it now) and 404 (free) both mean our lease is
    // already gone: releasing a lost lease is not an error.
    if (status == 200 || status == 404 || status == 409) {
      Forget(lease->lease_id);
      return OkStatus();
    }
    return ServiceError(status, ParseBody(res->body()),
                        "release of lock " + lease->lock);
  }

 private:
  std::optional<LockGrant> Current() const {
    std::lock_guard guard(mu_);
    return lease_;
  }

  // Clears the lease only if it is still the one the caller saw, so a lease
  // acquired meanwhile is never forgotten by a late answer about an old one.
  void Forget(const std::string& lease_id) {
    std::lock_guard guard(mu_);
    if (lease_ && lease_->lease_id == lease_id) lease_.reset();
  }

  Result<net::Response> Call(http::verb method, const std::string& path,
                             const nlohmann::json& body, Millis timeout) {
    auto call = net::JsonCall(method, endpoint_ + path, body);
    if (!options_.bearer_token.empty()) {
      call.headers.emplace_back("Authorization", "Bearer " + options_.bearer_token);
    }
    call.timeout = timeout;
    auto res = http_.Call(call);
    if (res.ok()) return res;
    return MakeError("unavailable", "fence-lockd did not answer: " + res.error().message,
                     {{"endpoint", endpoint_}});
  }

  std::string endpoint_;
  const LockdOptions options_;
  // Thread-safe on its own: a long-poll Acquire and the worker's keep-alive
  // thread each use their own connection, kept for the next call.
  net::HttpClient http_;
  mutable std::mutex mu_;
  std::optional<LockGrant> lease_;  // GUARDED_BY(mu_)
};

}  // namespace

Result<LockGrant> InterpretAcquireResponse(int http_status, const std::string& body,
                                       const std::string& lock,
                                       const std::string& owner) {
  const auto json = ParseBody(body);
  if (http_status == 200) {
    auto token = ParseToken(StringField(json, "token"));
    const std::string lease_id = StringField(json, "lease_id");
    if (!token.ok() || lease_id.empty()) {
      return MakeError("unavailable",
                       "fence-lockd granted lock " + lock +
                           " without a valid token and lease_id; expected "
                           "{\"token\":N,\"lease_id\":...}",
                       {{"server_body", json}});
    }
    LockGrant lease{lock, owner, *token, lease_id, Millis(0), StringField(json, "token_signature")};
    if (json.contains("ttl_ms") && json["ttl_ms"].is_number_integer()) {
      lease.ttl = Millis(json["ttl_ms"].get<std::int64_t>());
    }
    return lease;
  }
  if (http_status == 409) {
    nlohmann::json details = {{"server_body", json}};
    if (json.contains("holder")) details["holder"] = json["holder"];
    if (json.contains("expires_in_ms")) details["expires_in_ms"] = json["expires_in_ms"];
    return MakeError("held",
                     "lock " + lock + " is held by " +
                         (StringField(json, "holder").empty() ? "another owner"
                                                              : StringField(json, "holder")),
                     std::move(details));
  }
  return ServiceError(http_status, json, "acquire of lock " + lock);
}

Result<std::unique_ptr<LockBackend>> MakeLockdBackend(
    const std::vector<std::string>& endpoints, const LockdOptions& options) {
  if (options.lock_delay < Millis(0) || options.lock_delay > kMaxLockDelay) {
    return MakeError("bad_request", "lock-delay of " + std::to_string(options.lock_delay.count()) +
                                        " ms; expected 0 to " +
                                        std::to_string(kMaxLockDelay.count()) + " ms");
  }
  if (endpoints.size() != 1) {
    nlohmann::json given = endpoints;
    return MakeError(
        "bad_request",
        "only one lockd endpoint is allowed, got " + std::to_string(endpoints.size()) + " " +
            given.dump() +
            ": two fence-lockd servers are two independent token counters, so failing over "
            "between them elects two leaders whose tokens the store cannot order; for high "
            "availability use the etcd or ZooKeeper backend",
        {{"endpoints", given}});
  }
  auto url = net::ParseUrl(endpoints[0]);
  if (!url.ok()) return url.error();
  return std::unique_ptr<LockBackend>(new LockdBackend(endpoints[0], options));
}

}  // namespace fence::client
