// POST /v1/fences/{key}/repair: an admin lowers a fence set by mistake,
// with its current value as a precondition (core/fence_repair.h). It shares
// the route of POST /v1/fences/{key} (a prefix route): a repair carries no
// Fencing-Token, a raise always does (core/auth.h: IsFenceRepair).
// Authorization (admin only) is the AuthGuard's, before this runs.
#pragma once

#include <functional>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <string>

#include "common/http_server.h"
#include "server/store_backend.h"

namespace fence::store {

class FenceRepairApi {
 public:
  // `who` names the authenticated caller for the audit log ("" without
  // authentication).
  FenceRepairApi(StoreBackend& service, prometheus::Registry& registry,
                 std::function<std::string(const net::RequestHeader&)> who);

  // `raise` is the POST /v1/fences/ route; the result serves repairs too
  // and hands every other request to it unchanged.
  net::Route Wrap(net::Route raise);

 private:
  struct Target {
    std::string key;
    std::string who;
  };
  void Precheck(const net::RequestHeader& header, std::string_view tail,
                net::PrecheckDone done) const;
  void Handle(Target target, net::Request request, net::Respond respond);
  net::Response Refused(const Target& target, const Error& e, const std::string& remote);

  StoreBackend& service_;
  std::function<std::string(const net::RequestHeader&)> who_;
  prometheus::Counter& repaired_;
  prometheus::Counter& refused_;
};

}  // namespace fence::store
