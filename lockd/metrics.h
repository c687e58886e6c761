// fence-lockd's own metrics. The names are a contract: the dashboard, the
// alert rules and the demo read them.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <string>
#include <unordered_map>

namespace fence::lockd {

// Why an acquire, keep-alive or release was refused; one series each,
// present at 0 from the start so that increase() sees the first one.
inline constexpr const char* kRefusalReasons[] = {
    "held",          // acquire: the lock stayed held for all of wait_ms
    "grace",         // acquire: lockd restarted less than max-ttl ago
    "bad_request",   // 400 or 413: the request itself was wrong
    "unknown_lease", // keep-alive or release of a lease that is not live
    "not_holder",    // release of a lock held by another lease
    "capacity",      // too many held locks or waiters, or shutting down
    "storage",       // the token counter could not be made durable
};

struct LockdMetrics {
  explicit LockdMetrics(prometheus::Registry& registry);

  void Refused(const std::string& reason) { refusals.at(reason)->Increment(); }

  prometheus::Counter& grants;
  prometheus::Counter& expirations;
  prometheus::Counter& keepalives;
  prometheus::Counter& releases;
  prometheus::Counter& lock_delays;    // lock-delays started by an expiry
  prometheus::Counter& leases_broken;  // by an operator, POST .../break
  prometheus::Family<prometheus::Counter>& refusal_family;
  std::unordered_map<std::string, prometheus::Counter*> refusals;
  prometheus::Gauge& holders;
  // No per-lock series: lock names are chosen by clients, so a label per
  // name would let them create up to --max-locks series.
  prometheus::Gauge& last_token;
};

}  // namespace fence::lockd
