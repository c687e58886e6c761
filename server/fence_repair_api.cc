#include "server/fence_repair_api.h"

#include "common/logging.h"
#include "core/auth.h"
#include "core/fence_repair.h"
#include "core/key.h"
#include "server/http_api.h"

namespace fence::store {
namespace {

namespace http = net::http;

constexpr std::string_view kRepairSuffix = "/repair";
// {"expected":N,"new":M,"reason":"..."} with a reason of at most 256 bytes.
constexpr std::uint64_t kMaxRepairBody = 4096;

http::status RepairStatus(const std::string& code) {
  if (code == "fence_moved") return http::status::precondition_failed;
  if (code == "bad_repair") return http::status::bad_request;
  return StatusForError(code);
}

prometheus::Family<prometheus::Counter>& RepairFamily(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("fence_store_fence_repairs_total")
      .Help("Fence repairs (POST /v1/fences/{key}/repair) by result: repaired "
            "(a fence was lowered by an admin) or refused (bad body, never fenced, "
            "or the fence moved since the admin read it).")
      .Register(registry);
}

}  // namespace

FenceRepairApi::FenceRepairApi(StoreBackend& service, prometheus::Registry& registry,
                               std::function<std::string(const net::RequestHeader&)> who)
    : service_(service),
      who_(std::move(who)),
      repaired_(RepairFamily(registry).Add({{"result", "repaired"}})),
      refused_(RepairFamily(registry).Add({{"result", "refused"}})) {}

net::Route FenceRepairApi::Wrap(net::Route raise) {
  raise.body_limit = std::max(raise.body_limit, kMaxRepairBody);
  raise.precheck = [this, inner = std::move(raise.precheck)](
                       const net::RequestHeader& header, std::string_view tail,
                       net::PrecheckDone done) {
    const bool has_token = !net::HeaderValues(header, kFencingTokenHeader).empty();
    if (!auth::IsFenceRepair(tail, has_token)) return inner(header, tail, std::move(done));
    Precheck(header, tail, std::move(done));
  };
  raise.handle = [this, inner = std::move(raise.handle)](net::Request request,
                                                         net::Respond respond) {
    if (const auto* target = std::any_cast<Target>(&request.admitted)) {
      return Handle(*target, std::move(request), std::move(respond));
    }
    inner(std::move(request), std::move(respond));
  };
  return raise;
}

void FenceRepairApi::Precheck(const net::RequestHeader& header, std::string_view tail,
                              net::PrecheckDone done) const {
  auto key = ParseKey(tail.substr(0, tail.size() - kRepairSuffix.size()));
  if (!key.ok()) {
    refused_.Increment();
    return done(net::Refuse(net::ErrorResponse(http::status::bad_request, key.error())));
  }
  done(net::Admit(Target{std::move(*key), who_ ? who_(header) : std::string()}));
}

net::Response FenceRepairApi::Refused(const Target& target, const Error& e,
                                      const std::string& remote) {
  refused_.Increment();
  nlohmann::json fields = e.details;
  fields["key"] = target.key;
  fields["who"] = target.who;
  fields["remote"] = remote;
  fields["error"] = e.code;
  log::Warn("fence_repair_refused", fields);
  return net::ErrorResponse(RepairStatus(e.code), e);
}

void FenceRepairApi::Handle(Target target, net::Request request, net::Respond respond) {
  auto repair = ParseRepairBody(request.message.body());
  if (!repair.ok()) return respond(Refused(target, repair.error(), request.remote));
  WriteRequest write{WriteKind::kRepairFence, target.key, repair->lowered_to, {}, {},
                     std::nullopt, repair->expected};
  // Answered on the connection's I/O thread, as every write is (Mutate).
  const auto connection = request.connection;
  auto answer = [this, target = std::move(target), repair = std::move(*repair),
                 remote = request.remote,
                 respond = std::move(respond)](const Result<WriteReceipt>& receipt) {
    if (!receipt.ok()) return respond(Refused(target, receipt.error(), remote));
    repaired_.Increment();
    // The audit line: who lowered which fence, from what to what, and why.
    log::Warn("fence_repaired", {{"key", target.key},
                                 {"who", target.who},
                                 {"remote", remote},
                                 {"old_highest_token", repair.expected.value()},
                                 {"highest_token", repair.lowered_to.value()},
                                 {"version", receipt->version},
                                 {"reason", repair.reason}});
    respond(net::JsonResponse(http::status::ok,
                              {{"key", target.key},
                               {"previous_highest_token", repair.expected.value()},
                               {"highest_token", repair.lowered_to.value()},
                               {"version", receipt->version}}));
  };
  service_.Write(std::move(write), [connection, answer = std::move(answer)](
                                       Result<WriteReceipt> receipt) mutable {
    net::RunOnConnection(connection, [answer = std::move(answer),
                                      receipt = std::move(receipt)] { answer(receipt); });
  });
}

}  // namespace fence::store
