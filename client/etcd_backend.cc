#include "client/etcd_backend.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <thread>

#include "common/http_client.h"
#include "core/base64.h"
#include "common/logging.h"

namespace fence::client {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

constexpr std::string_view kKeyPrefix = "/fence-locks/";
constexpr std::size_t kMaxLockNameBytes = 256;
// One HTTP exchange with etcd; a healthy member answers in milliseconds, and
// a member that takes longer is treated as down so the next one is tried.
constexpr Millis kRequestTimeout{2000};
// The whole retry loop of one request across endpoints.
constexpr Millis kRetryBudget{5000};
constexpr int kAttemptsPerEndpoint = 2;
constexpr int kMinAttempts = 3;
constexpr Millis kFirstBackoff{50};
constexpr Millis kMaxBackoff{1000};
// A watch stream carries one small JSON message per line; a longer line is
// not etcd talking.
constexpr std::size_t kMaxWatchLineBytes = 1 << 20;

// The gateway writes int64 fields as JSON strings and omits zero values.
std::optional<std::int64_t> JsonInt(const json& object, const char* field) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(field);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (!it->is_string()) return std::nullopt;
  const std::string& text = it->get_ref<const std::string&>();
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return out;
}

Millis Remaining(TimePoint until) {
  return std::max(Millis(0), std::chrono::duration_cast<Millis>(
                                 until - SteadyClock::now()));
}

Status ValidateLockRequest(const std::string& lock, const std::string& owner,
                           Millis ttl, Millis wait) {
  if (lock.empty() || lock.size() > kMaxLockNameBytes) {
    return MakeError("bad_request", "lock name must be 1-256 bytes, got " +
                                        std::to_string(lock.size()));
  }
  if (owner.empty()) {
    return MakeError("bad_request", "owner must not be empty");
  }
  if (ttl <= Millis(0) || wait < Millis(0)) {
    return MakeError("bad_request",
                     "ttl must be positive and wait not negative, got ttl_ms=" +
                         std::to_string(ttl.count()) +
                         " wait_ms=" + std::to_string(wait.count()));
  }
  return OkStatus();
}

class EtcdBackend final : public LockBackend {
 public:
  explicit EtcdBackend(std::vector<std::string> endpoints)
      : endpoints_(std::move(endpoints)) {}

  std::string_view kind() const override { return "etcd"; }

  Result<LockGrant> Acquire(const std::string& lock, const std::string& owner,
                        Millis ttl, Millis wait) override;
  Status KeepAlive(Millis timeout) override;
  Status Release() override;

 private:
  struct Held {
    LockGrant lease;
    std::int64_t lease_id = 0;
    // The server's expiry can only be later than this: it counts from when
    // the grant or renewal arrived, and we count from when we sent it.
    TimePoint valid_until;
  };
  struct GrantedLease {
    std::int64_t id = 0;
    Millis ttl{0};
    TimePoint valid_until;
  };
  enum class WatchOutcome { kDeleted, kTimedOut, kFailed };
  // The lock key as one lock transaction read it.
  struct LockKeyState {
    std::int64_t revision = 0;  // etcd's revision when it answered
    std::optional<std::int64_t> create_revision;
    std::optional<std::int64_t> key_lease;  // the lease the key is attached to
    std::string holder;                     // the key's value: the owner
  };

  // Steps of Acquire, run with api_mu_ held.
  // The current hold if it is this lock for this owner (or an error if it is
  // another lock); nullopt when nothing is held.
  std::optional<Result<LockGrant>> AlreadyHeld(const std::string& lock, const std::string& owner);
  Status RefreshOwnLease(GrantedLease& lease, Millis ttl, int& grants);
  // Creates the lock key with our lease if it is absent, and reads it.
  Result<LockKeyState> LockTxn(const std::string& key, const std::string& owner,
                               std::int64_t lease_id);
  Error HeldError(const std::string& lock, const std::string& key, const LockKeyState& found,
                  Millis wait);

  Result<json> Post(std::string_view path, const json& body, Millis budget);
  Result<GrantedLease> GrantLease(Millis ttl);
  // True if etcd renewed the lease, false if it no longer exists.
  Result<bool> RenewLease(GrantedLease& lease, Millis budget);
  void RevokeQuietly(std::int64_t lease_id);
  std::optional<std::int64_t> LeaseRemainingMs(std::int64_t lease_id);
  WatchOutcome WaitForDelete(const std::string& key, std::int64_t from_revision,
                             TimePoint until);
  void FailOver(std::size_t failed, const std::string& error, int attempt,
                int max_attempts, Millis backoff);

  const std::vector<std::string> endpoints_;
  // The endpoint that answered last; requests start there.
  std::atomic<std::size_t> current_{0};
  // Kept-alive connections to the members (thread-safe; the watch stream in
  // WaitForDelete has its own, as a stream that was cut short cannot be
  // reused).
  net::HttpClient http_;
  std::mutex api_mu_;  // serializes Acquire and Release
  mutable std::mutex mu_;
  std::optional<Held> held_;  // GUARDED_BY(mu_)
};

void EtcdBackend::FailOver(std::size_t failed, const std::string& error,
                           int attempt, int max_attempts, Millis backoff) {
  const std::size_t next = (failed + 1) % endpoints_.size();
  std::size_t expected = failed;
  current_.compare_exchange_strong(expected, next);
  log::Warn("lock_endpoint_failed",
            {{"backend", "etcd"},
             {"endpoint", endpoints_[failed]},
             {"error", error},
             {"attempt", attempt},
             {"max_attempts", max_attempts},
             {"next_endpoint", endpoints_[next]},
             {"backoff_ms", backoff.count()}});
}

Result<json> EtcdBackend::Post(std::string_view path, const json& body,
                               Millis budget) {
  const TimePoint deadline = SteadyClock::now() + budget;
  const int max_attempts = std::max(
      kMinAttempts, kAttemptsPerEndpoint * static_cast<int>(endpoints_.size()));
  Millis backoff = kFirstBackoff;
  std::string last_error = "no attempt fit in the time budget";
  int attempt = 0;
  while (attempt < max_attempts) {
    const Millis remaining = Remaining(deadline);
    if (remaining <= Millis(0)) break;
    ++attempt;
    const std::size_t index = current_.load() % endpoints_.size();
    net::HttpCall call =
        net::JsonCall(net::http::verb::post, endpoints_[index] + std::string(path), body);
    call.timeout = std::min(kRequestTimeout, remaining);
    auto answer = http_.Call(call);
    if (answer.ok()) {
      const unsigned status = answer->result_int();
      json parsed = json::parse(answer->body(), nullptr, false);
      if (status == 200 && !parsed.is_discarded()) return parsed;
      const std::string message =
          parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()
              ? parsed["message"].get<std::string>()
              : answer->body().substr(0, 200);
      if (status < 500 && status != 200) {
        // etcd understood and refused: another member would refuse too.
        return MakeError(status == 404 ? "not_found" : "bad_request",
                         "etcd refused " + std::string(path) + ": " + message,
                         {{"http_status", status}, {"endpoint", endpoints_[index]}});
      }
      last_error = "HTTP " + std::to_string(status) + ": " + message;
    } else {
      last_error = answer.error().message;
    }
    const Millis pause =
        attempt < max_attempts ? std::min(backoff, Remaining(deadline)) : Millis(0);
    FailOver(index, last_error, attempt, max_attempts, pause);
    if (pause > Millis(0)) std::this_thread::sleep_for(pause);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  json tried = endpoints_;
  return MakeError("unavailable",
                   "etcd did not answer " + std::string(path) + " at any of " +
                       tried.dump() + " after " + std::to_string(attempt) +
                       " attempts; last error: " + last_error,
                   {{"endpoints", tried}, {"attempts", attempt}});
}

Result<EtcdBackend::GrantedLease> EtcdBackend::GrantLease(Millis ttl) {
  // Leases are whole seconds; rounding down could hand out a lease shorter
  // than the caller planned its renewals for.
  const std::int64_t ttl_s = std::max<std::int64_t>(1, (ttl.count() + 999) / 1000);
  const TimePoint sent = SteadyClock::now();
  auto answer = Post("/v3/lease/grant", {{"TTL", ttl_s}}, kRetryBudget);
  if (!answer.ok()) return answer.error();
  const auto id = JsonInt(*answer, "ID");
  const auto granted_s = JsonInt(*answer, "TTL");
  if (!id || !granted_s || *granted_s <= 0) {
    return MakeError("unavailable", "etcd answered a lease grant without ID or TTL: " +
                                        answer->dump());
  }
  GrantedLease lease;
  lease.id = *id;
  lease.ttl = Millis(*granted_s * 1000);
  lease.valid_until = sent + lease.ttl;
  return lease;
}

Result<bool> EtcdBackend::RenewLease(GrantedLease& lease, Millis budget) {
  const TimePoint sent = SteadyClock::now();
  auto answer = Post("/v3/lease/keepalive", {{"ID", std::to_string(lease.id)}}, budget);
  if (!answer.ok()) return answer.error();
  // The keep-alive stream answers {"result":{...,"TTL":"N"}}; an unknown or
  // expired lease comes back without a TTL (zero is omitted).
  const json& result = answer->contains("result") ? (*answer)["result"] : *answer;
  const auto ttl_s = JsonInt(result, "TTL");
  if (!ttl_s || *ttl_s <= 0) return false;
  lease.ttl = Millis(*ttl_s * 1000);
  lease.valid_until = sent + lease.ttl;
  return true;
}

void EtcdBackend::RevokeQuietly(std::int64_t lease_id) {
  auto answer = Post("/v3/lease/revoke", {{"ID", std::to_string(lease_id)}}, kRequestTimeout);
  if (!answer.ok() && answer.error().code != "not_found") {
    log::Warn("lease_revoke_failed", {{"backend", "etcd"},
                                      {"lease_id", std::to_string(lease_id)},
                                      {"error", answer.error().message}});
  }
}

std::optional<std::int64_t> EtcdBackend::LeaseRemainingMs(std::int64_t lease_id) {
  auto answer = Post("/v3/kv/lease/timetolive", {{"ID", std::to_string(lease_id)}},
                     kRequestTimeout);
  if (!answer.ok()) return std::nullopt;
  const auto ttl_s = JsonInt(*answer, "TTL");
  if (!ttl_s) return std::nullopt;
  return std::max<std::int64_t>(0, *ttl_s) * 1000;
}

// Reads a /v3/watch stream, one JSON message per line, until a DELETE of
// the key (or a cancel) is seen, or something that is not etcd talking.
class DeleteWatchReader {
 public:
  // Returns false to stop reading.
  bool Feed(std::string_view data) {
    pending_.append(data);
    std::size_t newline;
    while ((newline = pending_.find('\n')) != std::string::npos) {
      const std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      if (!line.empty() && !Message(line)) return false;
    }
    if (pending_.size() > kMaxWatchLineBytes) {
      return Fail("watch message longer than 1 MiB");
    }
    return true;
  }
  bool failed() const { return failed_; }
  bool deleted() const { return deleted_; }
  const std::string& problem() const { return problem_; }

 private:
  bool Message(const std::string& line) {
    const json message = json::parse(line, nullptr, false);
    const json* result =
        message.is_object() && message.contains("result") ? &message["result"] : nullptr;
    if (result == nullptr || !result->is_object()) {
      return Fail("unexpected watch message: " + line.substr(0, 200));
    }
    // A canceled watch (e.g. its start revision was compacted) is not an
    // answer about the key: the caller re-reads the key's state.
    if (result->value("canceled", false)) return Deleted();
    if (result->contains("events")) {
      for (const auto& event : (*result)["events"]) {
        if (event.value("type", "PUT") == "DELETE") return Deleted();
      }
    }
    return true;
  }
  bool Deleted() {
    deleted_ = true;
    return false;
  }
  bool Fail(std::string problem) {
    failed_ = true;
    problem_ = std::move(problem);
    return false;
  }

  std::string pending_;
  std::string problem_;
  bool failed_ = false;
  bool deleted_ = false;
};

EtcdBackend::WatchOutcome EtcdBackend::WaitForDelete(const std::string& key,
                                                     std::int64_t from_revision,
                                                     TimePoint until) {
  const Millis timeout = Remaining(until);
  if (timeout <= Millis(0)) return WatchOutcome::kTimedOut;
  const std::size_t index = current_.load() % endpoints_.size();
  // Watching from the revision right after the failed transaction means a
  // deletion between that transaction and this watch is still delivered.
  json create = {{"key", Base64Encode(key)},
                 {"start_revision", std::to_string(from_revision)},
                 {"filters", {"NOPUT"}}};
  net::HttpCall call = net::JsonCall(net::http::verb::post,
                                     endpoints_[index] + "/v3/watch",
                                     {{"create_request", create}});
  call.timeout = timeout;
  DeleteWatchReader reader;
  auto streamed =
      net::CallStreaming(call, [&](std::string_view data) { return reader.Feed(data); });
  std::string problem = reader.problem();
  if (!streamed.ok()) {
    problem = streamed.error().message;
  } else if (!reader.failed() && streamed->head.result() != net::http::status::ok) {
    problem = "watch answered HTTP " + std::to_string(streamed->head.result_int());
  }
  if (problem.empty()) {
    return reader.deleted() ? WatchOutcome::kDeleted : WatchOutcome::kTimedOut;
  }
  const Millis pause = std::min(kFirstBackoff * 4, Remaining(until));
  FailOver(index, problem, 1, 1, pause);
  std::this_thread::sleep_for(pause);
  return WatchOutcome::kFailed;
}

std::optional<Result<LockGrant>> EtcdBackend::AlreadyHeld(const std::string& lock,
                                                          const std::string& owner) {
  std::lock_guard guard(mu_);
  if (held_ && SteadyClock::now() < held_->valid_until) {
    if (held_->lease.lock == lock && held_->lease.owner == owner) return held_->lease;
    return MakeError("bad_request", "this client already holds lock '" + held_->lease.lock +
                                        "'; release it first");
  }
  held_.reset();
  return std::nullopt;
}

Status EtcdBackend::RefreshOwnLease(GrantedLease& lease, Millis ttl, int& grants) {
  // A lease can expire under us (a long stall between grant and txn); a
  // fresh one is granted a bounded number of times.
  constexpr int kMaxGrants = 4;
  // Our own lease must outlive the wait: renew it at half its TTL, and
  // start over with a fresh one if it expired meanwhile.
  if (SteadyClock::now() < lease.valid_until - lease.ttl / 2) return OkStatus();
  auto renewed = RenewLease(lease, kRetryBudget);
  if (!renewed.ok()) return renewed.error();
  if (*renewed && SteadyClock::now() < lease.valid_until) return OkStatus();
  if (++grants > kMaxGrants) {
    return MakeError("unavailable", "etcd let " + std::to_string(kMaxGrants) +
                                        " leases expire before the lock "
                                        "transaction could use them");
  }
  auto fresh = GrantLease(ttl);
  if (!fresh.ok()) return fresh.error();
  lease = *fresh;
  return OkStatus();
}

Result<EtcdBackend::LockKeyState> EtcdBackend::LockTxn(const std::string& key,
                                                       const std::string& owner,
                                                       std::int64_t lease_id) {
  const std::string key64 = Base64Encode(key);
  const json range = {{"request_range", {{"key", key64}}}};
  const json txn = {
      {"compare",
       {{{"target", "CREATE"}, {"key", key64}, {"create_revision", "0"},
         {"result", "EQUAL"}}}},
      {"success",
       {{{"request_put",
          {{"key", key64}, {"value", Base64Encode(owner)}, {"lease", std::to_string(lease_id)}}}},
        range}},
      {"failure", {range}}};
  auto answer = Post("/v3/kv/txn", txn, kRetryBudget);
  if (!answer.ok()) return answer.error();
  const bool succeeded = answer->value("succeeded", false);
  const auto revision = JsonInt(answer->value("header", json::object()), "revision");
  const json responses = answer->value("responses", json::array());
  const std::size_t range_index = succeeded ? 1 : 0;
  const json kvs = responses.size() > range_index
                       ? responses[range_index]
                             .value("response_range", json::object())
                             .value("kvs", json::array())
                       : json::array();
  if (!revision || kvs.empty()) {
    return MakeError("unavailable",
                     "etcd answered the lock transaction without the key or a "
                     "revision: " + answer->dump());
  }
  const json& kv = kvs[0];
  return LockKeyState{*revision, JsonInt(kv, "create_revision"), JsonInt(kv, "lease"),
                      Base64Decode(kv.value("value", "")).value_or("?")};
}

Error EtcdBackend::HeldError(const std::string& lock, const std::string& key,
                             const LockKeyState& found, Millis wait) {
  json details = {{"holder", found.holder}, {"lock", lock}};
  if (found.create_revision) details["holder_token"] = *found.create_revision;
  if (found.key_lease) {
    if (auto left = LeaseRemainingMs(*found.key_lease)) details["expires_in_ms"] = *left;
  }
  return MakeError("held",
                   "lock '" + lock + "' is held by '" + found.holder + "' (etcd key " + key +
                       ", create_revision " + std::to_string(found.create_revision.value_or(0)) +
                       ") after waiting " + std::to_string(wait.count()) + " ms",
                   details);
}

Result<LockGrant> EtcdBackend::Acquire(const std::string& lock, const std::string& owner,
                                       Millis ttl, Millis wait) {
  if (auto valid = ValidateLockRequest(lock, owner, ttl, wait); !valid.ok()) {
    return valid.error();
  }
  std::lock_guard api(api_mu_);
  if (auto held = AlreadyHeld(lock, owner)) return *held;
  const TimePoint deadline = SteadyClock::now() + wait;
  const std::string key = EtcdLockKey(lock);
  auto granted = GrantLease(ttl);
  if (!granted.ok()) return granted.error();
  GrantedLease lease = *granted;
  int grants = 1;
  while (true) {
    if (auto fresh = RefreshOwnLease(lease, ttl, grants); !fresh.ok()) return fresh.error();
    auto found = LockTxn(key, owner, lease.id);
    if (!found.ok()) {
      if (found.error().code == "not_found") {  // our lease just expired
        lease.valid_until = SteadyClock::now();
        continue;
      }
      RevokeQuietly(lease.id);
      return found.error();
    }
    // Ours whether this transaction created the key or an earlier attempt
    // did and its answer was lost: the key carries our lease either way.
    if (found->key_lease == lease.id && found->create_revision.value_or(0) > 0) {
      if (SteadyClock::now() >= lease.valid_until) continue;  // renew or regrant first
      const Held held{LockGrant{lock, owner,
                                Token(static_cast<std::uint64_t>(*found->create_revision)),
                                std::to_string(lease.id), lease.ttl, {}},
                      lease.id, lease.valid_until};
      std::lock_guard guard(mu_);
      held_ = held;
      return held.lease;
    }
    if (SteadyClock::now() >= deadline) {
      RevokeQuietly(lease.id);
      return HeldError(lock, key, *found, wait);
    }
    WaitForDelete(key, found->revision + 1,
                  std::min(deadline, lease.valid_until - lease.ttl / 2));
  }
}

Status EtcdBackend::KeepAlive(Millis timeout) {
  GrantedLease lease;
  {
    std::lock_guard guard(mu_);
    if (!held_) return MakeError("lease_lost", "no etcd lease is held");
    lease.id = held_->lease_id;
    lease.ttl = held_->lease.ttl;
    lease.valid_until = held_->valid_until;
  }
  auto forget = [&](const std::string& why) {
    std::lock_guard guard(mu_);
    if (held_ && held_->lease_id == lease.id) held_.reset();
    return MakeError("lease_lost", why, {{"lease_id", std::to_string(lease.id)}});
  };
  // After a pause (GC, SIGSTOP) the lease may have run out while we could
  // not renew it; only a renewal sent before the expiry can keep it.
  if (SteadyClock::now() >= lease.valid_until) {
    return forget("etcd lease " + std::to_string(lease.id) +
                  " ran out at the client: no renewal was confirmed within its " +
                  std::to_string(lease.ttl.count()) + " ms TTL");
  }
  auto renewed = RenewLease(lease, std::min(timeout, Remaining(lease.valid_until)));
  if (!renewed.ok()) {
    if (SteadyClock::now() >= lease.valid_until) {
      return forget("etcd lease " + std::to_string(lease.id) +
                    " could not be renewed before it ran out: " +
                    renewed.error().message);
    }
    return renewed.error();
  }
  if (!*renewed) {
    return forget("etcd lease " + std::to_string(lease.id) +
                  " has expired or was revoked at the server");
  }
  std::lock_guard guard(mu_);
  if (!held_ || held_->lease_id != lease.id) {
    return MakeError("lease_lost", "the lease was released meanwhile");
  }
  held_->valid_until = lease.valid_until;
  held_->lease.ttl = lease.ttl;
  return OkStatus();
}

Status EtcdBackend::Release() {
  std::lock_guard api(api_mu_);
  std::optional<Held> held;
  {
    std::lock_guard guard(mu_);
    held.swap(held_);
  }
  if (!held) return OkStatus();
  // Revoking the lease deletes the lock key with it.
  auto answer = Post("/v3/lease/revoke", {{"ID", std::to_string(held->lease_id)}},
                     kRetryBudget);
  if (answer.ok() || answer.error().code == "not_found") return OkStatus();
  return MakeError(answer.error().code,
                   answer.error().message + "; the lock frees itself when lease " +
                       std::to_string(held->lease_id) + " runs out (" +
                       std::to_string(held->lease.ttl.count()) + " ms TTL)");
}

}  // namespace

std::string EtcdLockKey(const std::string& lock) {
  return std::string(kKeyPrefix) + lock;
}

Result<std::unique_ptr<LockBackend>> MakeEtcdBackend(
    const std::vector<std::string>& endpoints) {
  std::vector<std::string> bases;
  for (std::string endpoint : endpoints) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    auto url = net::ParseUrl(endpoint);
    if (!url.ok() || url->target != "/") {
      return MakeError("bad_request", "etcd endpoint '" + endpoint +
                                          "' is not a base URL; expected "
                                          "http://HOST:PORT (e.g. http://127.0.0.1:2379)");
    }
    bases.push_back(endpoint);
  }
  if (bases.empty()) {
    return MakeError("bad_request", "no etcd endpoints given; expected http://HOST:PORT");
  }
  return std::unique_ptr<LockBackend>(new EtcdBackend(std::move(bases)));
}

}  // namespace fence::client
