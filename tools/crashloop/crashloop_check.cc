#include "tools/crashloop/crashloop_check.h"

#include <algorithm>
#include <map>

namespace fence::crashloop {

namespace {

std::string Num(std::uint64_t value) { return std::to_string(value); }

std::string FenceText(std::optional<std::uint64_t> fence) {
  return fence ? "fence " + Num(*fence) : "no fence (404)";
}

// Equal as far as the expected state is known: an unanswered PUT has no
// etag to compare.
bool Matches(const ObjectState& expected, const ObjectState& seen) {
  if (expected.exists != seen.exists) return false;
  if (!expected.exists) return true;
  return expected.body == seen.body && expected.token == seen.token &&
         (expected.etag.empty() || expected.etag == seen.etag);
}

}  // namespace

nlohmann::json Violation::ToJson() const {
  return {{"kind", kind}, {"key", key}, {"kill", kill}, {"expected", expected},
          {"seen", seen}};
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kPut:
      return "put";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kFence:
      return "fence";
  }
  return "unknown";
}

std::string ObjectState::Describe() const {
  if (!exists) return "no object (404)";
  return "object token " + Num(token) + " etag " + (etag.empty() ? "(unknown)" : etag) +
         " body '" + body + "'";
}

ObjectState Apply(const ObjectState& state, const KeyOp& op) {
  switch (op.kind) {
    case OpKind::kPut:
      return ObjectState{true, op.body, op.token, op.etag};
    case OpKind::kDelete:
      return ObjectState{};
    case OpKind::kFence:
      return state;
  }
  return state;
}

std::optional<Violation> CheckAcknowledged(const std::string& key, const KeyOp& op,
                                           std::uint64_t highest_token) {
  if (highest_token == op.token) return std::nullopt;
  return Violation{"acknowledged_below_fence", key,
                   std::string(OpKindName(op.kind)) + " with token " + Num(op.token) +
                       " acknowledged with highest_token " + Num(op.token) +
                       " (above every token sent before)",
                   "highest_token " + Num(highest_token), 0};
}

void RecordAcknowledged(KeyModel& model, const KeyOp& op) {
  model.settled = Apply(model.settled, op);
  model.fence_floor = std::max(model.fence_floor, op.token);
  model.max_token_sent = std::max(model.max_token_sent, op.token);
  model.pending.reset();
}

Violation RefusedFreshToken(const std::string& key, std::uint64_t max_token_sent_before,
                            std::uint64_t token, std::uint64_t highest_token) {
  return Violation{"fresh_token_refused", key,
                   "token " + Num(token) + " accepted: the highest token ever sent to the key "
                   "before it is " + Num(max_token_sent_before),
                   "409 stale_token with highest_token " + Num(highest_token), 0};
}

std::vector<Violation> CheckAfterRestart(const std::string& key, const KeyModel& model,
                                         const Observed& observed) {
  std::vector<Violation> out;
  const bool settled_ok = Matches(model.settled, observed.object);
  const bool pending_ok =
      model.pending && Matches(Apply(model.settled, *model.pending), observed.object);
  if (!settled_ok && !pending_ok) {
    std::string expected = model.settled.Describe() + " (last acknowledged or verified)";
    if (model.pending) {
      expected += ", or " + Apply(model.settled, *model.pending).Describe() +
                  " (unanswered " + OpKindName(model.pending->kind) + " token " +
                  Num(model.pending->token) + ")";
    }
    out.push_back({"lost_acknowledged_write", key, expected, observed.object.Describe(), 0});
  }
  const std::uint64_t fence = observed.fence.value_or(0);
  if (fence < model.fence_floor) {
    out.push_back({"fence_lowered", key, "fence >= " + Num(model.fence_floor),
                   FenceText(observed.fence), 0});
  }
  if (fence > model.max_token_sent) {
    out.push_back({"fence_above_every_token_sent", key,
                   "fence <= " + Num(model.max_token_sent), FenceText(observed.fence), 0});
  }
  // A PUT or DELETE changes the object and the fence in one batch: a fence
  // raised by it without its object change is half a write.
  if (settled_ok && !pending_ok && model.pending && model.pending->kind != OpKind::kFence &&
      fence > model.fence_floor) {
    out.push_back({"torn_write", key,
                   "fence " + Num(model.fence_floor) + " with the object unchanged, or the " +
                       OpKindName(model.pending->kind) + " with token " +
                       Num(model.pending->token) + " applied whole",
                   FenceText(observed.fence) + " with " + observed.object.Describe(), 0});
  }
  if (observed.object.exists && observed.object.token > fence) {
    out.push_back({"object_above_fence", key,
                   "fence >= the object's token " + Num(observed.object.token),
                   FenceText(observed.fence), 0});
  }
  return out;
}

std::optional<bool> PendingApplied(const KeyModel& model, const Observed& observed) {
  if (!model.pending) return std::nullopt;
  return observed.fence.value_or(0) >= model.pending->token;
}

std::optional<Violation> CheckStaleProbe(const std::string& key, std::uint64_t fence,
                                         std::uint64_t probe_token, int status,
                                         std::optional<std::uint64_t> highest_token) {
  if (status == 409 && highest_token == fence) return std::nullopt;
  return Violation{"stale_write_accepted", key,
                   "PUT with token " + Num(probe_token) + " refused: 409 with highest_token " +
                       Num(fence),
                   "status " + std::to_string(status) + " with highest_token " +
                       (highest_token ? Num(*highest_token) : std::string("(none)")),
                   0};
}

void Settle(KeyModel& model, const Observed& observed) {
  model.settled = observed.object;
  model.fence_floor = std::max(model.fence_floor, observed.fence.value_or(0));
  model.pending.reset();
}

void AddToHistory(GrantHistory& history, const std::vector<Grant>& grants) {
  for (const Grant& g : grants) {
    history.max_token = std::max(history.max_token, g.token);
    history.max_ttl_ms = std::max(history.max_ttl_ms, g.ttl_ms);
  }
}

std::vector<Violation> CheckEpochGrants(const GrantHistory& history, int epoch,
                                        std::chrono::nanoseconds spawned_at,
                                        const std::vector<Grant>& grants,
                                        std::chrono::nanoseconds tolerance) {
  using std::chrono::duration_cast;
  std::vector<Violation> out;
  std::map<std::uint64_t, const Grant*> seen;
  const auto grace_end = spawned_at + std::chrono::milliseconds(history.max_ttl_ms);
  for (const Grant& g : grants) {
    if (g.token <= history.max_token) {
      out.push_back({"token_not_increasing", g.lock,
                     "token > " + Num(history.max_token) + " (every token granted before kill " +
                         std::to_string(epoch) + ")",
                     "token " + Num(g.token), epoch});
    }
    auto [it, inserted] = seen.emplace(g.token, &g);
    if (!inserted) {
      out.push_back({"token_repeated", g.lock, "a token granted once",
                     "token " + Num(g.token) + " granted again (first for lock '" +
                         it->second->lock + "')",
                     epoch});
    }
    if (epoch >= 1 && g.completed_at + tolerance < grace_end) {
      const auto early_ms =
          duration_cast<std::chrono::microseconds>(grace_end - g.completed_at).count() / 1000;
      out.push_back({"grant_inside_grace", g.lock,
                     "no grant before spawn + " + std::to_string(history.max_ttl_ms) +
                         " ms (the largest TTL granted before)",
                     "token " + Num(g.token) + " granted " + std::to_string(early_ms) +
                         " ms before the grace ended",
                     epoch});
    }
  }
  return out;
}

}  // namespace fence::crashloop
