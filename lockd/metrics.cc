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
