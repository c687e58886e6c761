// A leader's own view of its lease, by its own monotonic clock: when it runs
// out, when to renew it, how long a keep-alive may take, and whether a write
// may still be sent. Pure arithmetic on an injected Clock; the worker guards
// an instance with its mutex.
//
// The view can only under-estimate the lease: the lock service started (or
// extended) it no earlier than we sent the request it answered, so "send
// time of the last confirmed request + TTL" is a lower bound on the
// service's own expiry, as long as both clocks advance at about the same
// rate over one TTL. The bound is defence in depth; the store's fence stays
// the guarantee (a pause after the last look at the lease is never seen).
#pragma once

#include "core/clock.h"

namespace fence {

class LeaderLease {
 public:
  // After a failed renewal the next attempt comes this soon (or after one
  // interval, if that is shorter): a failed renewal leaves less time left.
  static constexpr Millis kRetryAfterFailure{100};

  // The one rule for how often a lease is renewed: `configured` when it is
  // set (> 0) and shorter than the TTL, otherwise a third of the TTL, so
  // that two renewals in a row can fail before the lease runs out.
  static Millis RenewInterval(Millis ttl, Millis configured);

  // A lease of `ttl` granted by a request sent at `sent` (clock time).
  // `configured_interval` as for RenewInterval.
  LeaderLease(const Clock& clock, Millis ttl, Millis configured_interval, Millis sent);

  // A renewal sent at `sent` was confirmed by the service. An older
  // confirmation than the one already recorded changes nothing.
  void Renewed(Millis sent);

  Millis ttl() const { return ttl_; }
  Millis interval() const { return interval_; }
  // The clock time from which the lease must be taken as gone.
  Millis ExpiresAt() const { return confirmed_sent_ + ttl_; }
  // Zero or negative once the lease has run out.
  Millis TimeLeft() const { return ExpiresAt() - clock_.Now(); }
  bool Expired() const { return TimeLeft() <= Millis(0); }
  // When the next renewal is due after the last confirmed one.
  Millis NextRenewalDue() const { return confirmed_sent_ + interval_; }
  // When to try again after a renewal failed now.
  Millis RetryDue() const;
  // The longest a keep-alive sent now may take: an answer that arrives
  // after the lease ran out proves nothing, and waiting longer only delays
  // the worker's own conclusion that the lease is gone. Zero: do not send.
  Millis KeepAliveTimeout() const;
  // A write may be sent only while time is left on the lease.
  bool MayWrite() const { return !Expired(); }
  // The latest time by which `renewals` more renewals are due, plus one TTL
  // in which a lease that cannot be renewed is found lost: a bound for
  // waiting on them.
  Millis RenewalsDueBy(int renewals) const;

 private:
  const Clock& clock_;
  Millis ttl_;
  Millis interval_;
  Millis confirmed_sent_;
};

}  // namespace fence
