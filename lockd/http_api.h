// fence-lockd's HTTP edge: validates requests (400 with a sentence), calls
// one LockService function, maps its result to a status and a JSON body.
#pragma once

#include <memory>
#include <prometheus/registry.h>
#include <vector>

#include "common/http_server.h"
#include "lockd/async_lock_service.h"
#include "lockd/metrics.h"

namespace fence {
class TokenKeyRing;
}  // namespace fence

namespace fence::lockd {

inline constexpr std::size_t kMaxOwnerBytes = 128;
inline constexpr std::size_t kMaxLockNameBytes = 256;
inline constexpr std::uint64_t kMaxRequestBodyBytes = 4096;
inline constexpr std::size_t kMaxBreakReasonBytes = 256;

struct ApiOptions {
  Millis max_ttl{60000};
  Millis max_wait{30000};
  Millis max_lock_delay{60000};
  // --token-key-file: every grant carries "token_signature" over (lock,
  // token) with the first key; null = grants are unsigned.
  const TokenKeyRing* token_keys = nullptr;
};

// HTTP status for a service error code (one table for every handler).
net::http::status StatusForError(const std::string& code);

// The validated body of an acquire.
struct AcquireBody {
  std::string owner;
  Millis ttl;
  Millis wait;
  Millis lock_delay{0};
};
// Errors have code "bad_request" and say which field was wrong and what was
// expected. Exposed for unit tests.
Result<AcquireBody> ParseAcquireBody(std::string_view body,
                                     const ApiOptions& options);
// The reason of a break: 1 to kMaxBreakReasonBytes bytes of printable
// text. Errors have code "bad_request". Exposed for unit tests.
Result<std::string> ParseBreakBody(std::string_view body);
// Lock names follow the key rules (percent-decoded, '/'-separated segments)
// with at most kMaxLockNameBytes bytes. Errors have code "bad_lock_name".
Result<std::string> ParseLockName(std::string_view encoded);

class LockdApi {
 public:
  LockdApi(AsyncLockService& service, LockdMetrics& metrics,
           std::shared_ptr<prometheus::Registry> registry, ApiOptions options);

  std::vector<net::Route> Routes();

 private:
  void HandleLockPost(net::Request request, net::Respond respond);
  void HandleBreak(std::string name, net::Request request, net::Respond respond);
  void HandleKeepAlive(net::Request request, net::Respond respond);
  void HandleStatus(net::Request request, net::Respond respond);
  net::Response BadRequest(const Error& error);

  AsyncLockService& service_;
  LockdMetrics& metrics_;
  std::shared_ptr<prometheus::Registry> registry_;
  const ApiOptions options_;
};

}  // namespace fence::lockd
