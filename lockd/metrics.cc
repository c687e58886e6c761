#include "lockd/metrics.h"

namespace fence::lockd {

LockdMetrics::LockdMetrics(prometheus::Registry& registry)
    : grants(prometheus::BuildCounter()
                 .Name("fence_lockd_grants_total")
                 .Help("Leases granted (each with a new token).")
                 .Register(registry)
                 .Add({})),
      expirations(prometheus::BuildCounter()
                      .Name("fence_lockd_expirations_total")
                      .Help("Leases that reached their TTL without a "
                            "keep-alive or release.")
                      .Register(registry)
                      .Add({})),
      keepalives(prometheus::BuildCounter()
                     .Name("fence_lockd_keepalives_total")
                     .Help("Successful lease keep-alives.")
                     .Register(registry)
                     .Add({})),
      releases(prometheus::BuildCounter()
                   .Name("fence_lockd_releases_total")
                   .Help("Leases released by their holder.")
                   .Register(registry)
                   .Add({})),
      lock_delays(prometheus::BuildCounter()
                      .Name("fence_lockd_lock_delays_total")
                      .Help("Lock-delays started: leases that expired having "
                            "asked for lock_delay_ms > 0.")
                      .Register(registry)
                      .Add({})),
      leases_broken(prometheus::BuildCounter()
                        .Name("fence_lockd_leases_broken_total")
                        .Help("Leases ended by an operator's break (POST "
                              "/v1/locks/{name}/break).")
                        .Register(registry)
                        .Add({})),
      refusal_family(prometheus::BuildCounter()
                         .Name("fence_lockd_refusals_total")
                         .Help("Refused acquires, keep-alives and releases, "
                               "by reason.")
                         .Register(registry)),
      holders(prometheus::BuildGauge()
                  .Name("fence_lockd_holders")
                  .Help("Locks currently held by a live lease.")
                  .Register(registry)
                  .Add({})),
      last_token(prometheus::BuildGauge()
                     .Name("fence_lockd_last_token")
                     .Help("The last token issued; after a restart, the "
                           "persisted floor until the first grant.")
                     .Register(registry)
                     .Add({})) {
  for (const char* reason : kRefusalReasons) {
    refusals[reason] = &refusal_family.Add({{"reason", reason}});
  }
}

}  // namespace fence::lockd
