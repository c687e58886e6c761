#include "core/leader_lease.h"

#include <algorithm>

namespace fence {

Millis LeaderLease::RenewInterval(Millis ttl, Millis configured) {
  if (configured > Millis(0) && configured < ttl) return configured;
  return std::max(Millis(1), ttl / 3);
}

LeaderLease::LeaderLease(const Clock& clock, Millis ttl, Millis configured_interval,
                         Millis sent)
    : clock_(clock),
      ttl_(ttl),
      interval_(RenewInterval(ttl, configured_interval)),
      confirmed_sent_(sent) {}

void LeaderLease::Renewed(Millis sent) { confirmed_sent_ = std::max(confirmed_sent_, sent); }

Millis LeaderLease::RetryDue() const {
  return clock_.Now() + std::min(interval_, kRetryAfterFailure);
}

Millis LeaderLease::KeepAliveTimeout() const { return std::max(Millis(0), TimeLeft()); }

Millis LeaderLease::RenewalsDueBy(int renewals) const {
  return clock_.Now() + interval_ * (renewals + 1) + ttl_;
}

}  // namespace fence
