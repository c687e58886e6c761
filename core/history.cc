#include "core/history.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace fence::history {
namespace {

using Json = nlohmann::json;

Error BadLine(std::size_t line_number, const std::string& why) {
  return MakeError("bad_history", "history line " + std::to_string(line_number) + ": " + why);
}

std::optional<std::uint64_t> OptionalCount(const Json& j, const char* name) {
  if (!j.contains(name) || j[name].is_null()) return std::nullopt;
  return j[name].get<std::uint64_t>();
}

std::string Text(const Json& j, const char* name) {
  return j.contains(name) ? j[name].get<std::string>() : std::string();
}

std::string Describe(const Op& op) {
  std::string s = op.process + "#" + std::to_string(op.id) + " " + op.op;
  if (!op.key.empty()) s += " key '" + op.key + "'";
  if (op.token) s += " token " + std::to_string(*op.token);
  if (op.version) s += " version " + std::to_string(*op.version);
  return s + " (" + op.type + ")";
}

bool IsStoreOp(const Op& op) { return op.op == kWrite || op.op == kFence; }

}  // namespace

Status HistoryBuilder::AddLine(std::string_view line, std::size_t line_number) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return OkStatus();
  const Json j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return BadLine(line_number, "not a JSON object");
  try {
    const std::string type = j.at("type").get<std::string>();
    if (type == kFinal) {
      FinalRead f;
      f.key = j.at("key").get<std::string>();
      f.exists = j.at("exists").get<bool>();
      f.value = Text(j, "value");
      f.token = OptionalCount(j, "token");
      f.highest_token = OptionalCount(j, "highest_token");
      f.version = OptionalCount(j, "version").value_or(0);
      history_.finals[f.key] = std::move(f);
      return OkStatus();
    }
    if (type == kFault) {
      history_.faults.push_back(Text(j, "kind") + " " + Text(j, "target"));
      return OkStatus();
    }
    const auto id = std::make_tuple(j.at("process").get<std::string>(),
                                    j.at("pid").get<std::int64_t>(), j.at("id").get<std::uint64_t>());
    const std::int64_t t = j.at("t_ns").get<std::int64_t>();
    if (type == kInvoke) {
      Op op;
      std::tie(op.process, op.pid, op.id) = id;
      op.op = j.at("op").get<std::string>();
      op.type = std::string(kInfo);  // until its completion says otherwise
      op.lock = Text(j, "lock");
      op.key = Text(j, "key");
      op.token = OptionalCount(j, "token");
      op.value = Text(j, "value");
      op.invoke_ns = t;
      if (!open_.emplace(id, std::move(op)).second) {
        return BadLine(line_number, "a second invoke of one operation id");
      }
      return OkStatus();
    }
    if (type != kOk && type != kFail && type != kInfo) {
      return BadLine(line_number, "unknown type '" + type + "'");
    }
    auto it = open_.find(id);
    if (it == open_.end() || it->second.complete_ns) {
      return BadLine(line_number, "a completion without its invoke, or a second one");
    }
    Op& op = it->second;
    op.type = type;
    op.complete_ns = t;
    if (op.op == kAcquire) op.token = OptionalCount(j, "token");
    op.version = OptionalCount(j, "version");
    op.highest_token = OptionalCount(j, "highest_token");
    if (j.contains("ttl_ms")) op.ttl_ms = j["ttl_ms"].get<std::int64_t>();
    return OkStatus();
  } catch (const Json::exception& e) {
    return BadLine(line_number, std::string("missing or mistyped field: ") + e.what());
  }
}

History HistoryBuilder::Finish() {
  for (auto& [id, op] : open_) history_.ops.push_back(std::move(op));
  open_.clear();
  return std::move(history_);
}

namespace {

using Report = std::vector<Violation>;

void Flag(Report& out, std::string check, std::string message) {
  out.push_back({std::move(check), std::move(message)});
}

// Per key, acknowledged writes and fence raises sorted by the store's own
// commit order must carry non-decreasing tokens.
void CheckCommitOrder(const std::vector<const Op*>& acknowledged, const std::string& key,
                      Report& out) {
  const Op* previous = nullptr;
  for (const Op* op : acknowledged) {
    if (!op->version || !op->token) {
      Flag(out, "commit_order", Describe(*op) + ": acknowledged without a version or token, "
                                                "so its place in the commit order is unknown");
      continue;
    }
    if (previous != nullptr && *previous->version == *op->version) {
      Flag(out, "commit_order", "key '" + key + "': " + Describe(*previous) + " and " +
                                    Describe(*op) + " were both acknowledged at one version");
    } else if (previous != nullptr && *op->token < *previous->token) {
      Flag(out, "commit_order", "key '" + key + "': " + Describe(*op) +
                                    " was committed after " + Describe(*previous) +
                                    ": a lower token landed after a higher one");
    }
    previous = op;
  }
}

// The final state of a key must hold every acknowledged write: the object is
// the last acknowledged write or a possibly-later write of unknown outcome,
// never below an acknowledged token, and the fence never went down.
void CheckFinal(const std::vector<const Op*>& ops, const std::vector<const Op*>& acknowledged,
                const FinalRead* final, const std::string& key, Report& out) {
  if (acknowledged.empty()) return;
  if (final == nullptr) {
    Flag(out, "lost_write", "key '" + key + "' has acknowledged writes but no final read");
    return;
  }
  std::uint64_t top_token = 0;
  const Op* last_write = nullptr;     // the acknowledged PUT with the highest version
  const Op* highest_write = nullptr;  // the acknowledged PUT with the highest token
  for (const Op* op : acknowledged) {
    top_token = std::max(top_token, op->token.value_or(0));
    if (op->op != kWrite) continue;
    last_write = op;
    if (highest_write == nullptr || op->token.value_or(0) > highest_write->token.value_or(0)) {
      highest_write = op;
    }
  }
  if (!final->highest_token || *final->highest_token < top_token) {
    Flag(out, "fence_lowered",
         "key '" + key + "': final fence " +
             (final->highest_token ? std::to_string(*final->highest_token) : "none") +
             " is below the acknowledged token " + std::to_string(top_token));
  }
  if (last_write == nullptr) return;
  if (!final->exists) {
    Flag(out, "lost_write", "key '" + key + "' holds no object; " + Describe(*last_write) +
                                " was acknowledged");
    return;
  }
  const Op* source = nullptr;  // the write whose body the final read holds
  for (const Op* op : ops) {
    if (op->op != kWrite || op->value != final->value || op->token != final->token) continue;
    if (op == last_write || op->type == kInfo ||
        (op->version && *op->version > *last_write->version)) {
      source = op;
    }
  }
  if (source == nullptr) {
    Flag(out, "lost_write", "key '" + key + "': the final object (token " +
                                (final->token ? std::to_string(*final->token) : "none") +
                                ") is not " + Describe(*last_write) +
                                " nor any write that may have landed after it");
  } else if (source->token.value_or(0) < highest_write->token.value_or(0)) {
    Flag(out, "lost_write", "key '" + key + "': the final object is " + Describe(*source) +
                                ", below the acknowledged " + Describe(*highest_write));
  }
}

// A 409 must name a fence above the refused token, and that fence must have
// come from some write or fence raise of the key, acknowledged or not.
void CheckStaleAnswers(const std::vector<const Op*>& ops, const std::string& key,
                       Report& out) {
  std::set<std::uint64_t> sent;
  for (const Op* op : ops) {
    if (op->token) sent.insert(*op->token);
  }
  for (const Op* op : ops) {
    if (op->type != kFail) continue;
    if (!op->highest_token || !op->token || *op->highest_token <= *op->token) {
      Flag(out, "stale_answer", "key '" + key + "': " + Describe(*op) +
                                    " was refused naming fence " +
                                    (op->highest_token ? std::to_string(*op->highest_token)
                                                       : "none") +
                                    ", not above its token");
    } else if (sent.count(*op->highest_token) == 0) {
      Flag(out, "stale_answer", "key '" + key + "': " + Describe(*op) + " was refused by fence " +
                                    std::to_string(*op->highest_token) +
                                    ", a token no write of the key carried");
    }
  }
}

void CheckKeys(const History& history, CheckReport& report) {
  std::map<std::string, std::vector<const Op*>> by_key;
  for (const Op& op : history.ops) {
    if (IsStoreOp(op)) by_key[op.key].push_back(&op);
  }
  report.keys = by_key.size();
  for (auto& [key, ops] : by_key) {
    std::vector<const Op*> acknowledged;
    for (const Op* op : ops) {
      if (op->type == kOk) acknowledged.push_back(op);
    }
    std::stable_sort(acknowledged.begin(), acknowledged.end(), [](const Op* a, const Op* b) {
      return a->version.value_or(0) < b->version.value_or(0);
    });
    auto final = history.finals.find(key);
    CheckCommitOrder(acknowledged, key, report.violations);
    CheckFinal(ops, acknowledged, final == history.finals.end() ? nullptr : &final->second, key,
               report.violations);
    CheckStaleAnswers(ops, key, report.violations);
  }
}

// Grants of one lock: distinct tokens, ordered as they were issued in real
// time (one grant completed before the other was asked for).
void CheckGrantTokens(std::vector<const Op*> grants, Report& out) {
  std::map<std::uint64_t, const Op*> by_token;
  for (const Op* g : grants) {
    auto [it, fresh] = by_token.emplace(*g->token, g);
    if (!fresh) {
      Flag(out, "token_repeated", Describe(*it->second) + " and " + Describe(*g) +
                                      " were granted the same token");
    }
  }
  std::vector<const Op*> by_completion = grants;
  std::sort(by_completion.begin(), by_completion.end(),
            [](const Op* a, const Op* b) { return *a->complete_ns < *b->complete_ns; });
  std::sort(grants.begin(), grants.end(),
            [](const Op* a, const Op* b) { return a->invoke_ns < b->invoke_ns; });
  std::size_t done = 0;
  const Op* highest_done = nullptr;  // highest token among grants completed so far
  for (const Op* g : grants) {
    while (done < by_completion.size() && *by_completion[done]->complete_ns < g->invoke_ns) {
      const Op* c = by_completion[done++];
      if (highest_done == nullptr || *c->token > *highest_done->token) highest_done = c;
    }
    if (highest_done != nullptr && *highest_done->token >= *g->token) {
      Flag(out, "grant_order", Describe(*g) + " was asked for after " +
                                   Describe(*highest_done) +
                                   " completed, yet its token is not higher");
    }
  }
}

// An interval in which the lock service certainly held one grant valid.
struct Held {
  std::int64_t from_ns;
  std::int64_t until_ns;
  const Op* grant;
};

// A confirmation (grant or renewal) answered at some instant s between its
// invoke and its completion made the lease valid until s + ttl by the
// service's clock; so the grant was certainly valid from the completion to
// invoke + ttl, unless released (from the release's invoke on). Two grants of
// one lock certainly valid at one instant had two holders.
std::vector<Held> CertainlyHeld(const std::vector<const Op*>& lock_ops,
                                const std::map<std::uint64_t, const Op*>& grant_of) {
  std::map<std::uint64_t, std::int64_t> released_at;
  for (const Op* op : lock_ops) {
    if (op->op != kRelease || !op->token) continue;
    auto [it, fresh] = released_at.emplace(*op->token, op->invoke_ns);
    if (!fresh) it->second = std::min(it->second, op->invoke_ns);
  }
  std::vector<Held> held;
  for (const Op* op : lock_ops) {
    if (op->type != kOk || (op->op != kAcquire && op->op != kRenew) || !op->token) continue;
    auto grant = grant_of.find(*op->token);
    if (grant == grant_of.end()) continue;
    std::int64_t until = op->invoke_ns + grant->second->ttl_ms * 1'000'000;
    if (auto r = released_at.find(*op->token); r != released_at.end()) {
      until = std::min(until, r->second);
    }
    if (*op->complete_ns < until) held.push_back({*op->complete_ns, until, grant->second});
  }
  return held;
}

void CheckTwoHolders(const std::vector<const Op*>& lock_ops,
                     const std::map<std::uint64_t, const Op*>& grant_of, Report& out) {
  std::vector<Held> held = CertainlyHeld(lock_ops, grant_of);
  std::sort(held.begin(), held.end(),
            [](const Held& a, const Held& b) { return a.from_ns < b.from_ns; });
  // The latest end so far (`latest`) and the latest of any other grant
  // (`runner_up`): for each interval, the rival to compare with is the
  // latest-ending one of another grant.
  struct Latest {
    std::int64_t until_ns = 0;
    const Op* grant = nullptr;
  };
  Latest latest;
  Latest runner_up;
  std::set<std::pair<const Op*, const Op*>> reported;
  for (const Held& h : held) {
    const Latest& rival = h.grant == latest.grant ? runner_up : latest;
    if (rival.grant != nullptr && h.from_ns < rival.until_ns &&
        reported.emplace(rival.grant, h.grant).second) {
      Flag(out, "two_holders",
           Describe(*h.grant) + " was certainly valid from t=" + std::to_string(h.from_ns) +
               " ns while " + Describe(*rival.grant) + " still was, until t=" +
               std::to_string(rival.until_ns) + " ns");
    }
    if (h.grant == latest.grant) {
      latest.until_ns = std::max(latest.until_ns, h.until_ns);
    } else if (h.grant == runner_up.grant) {
      runner_up.until_ns = std::max(runner_up.until_ns, h.until_ns);
      if (runner_up.until_ns > latest.until_ns) std::swap(latest, runner_up);
    } else if (h.until_ns > latest.until_ns) {
      runner_up = latest;
      latest = {h.until_ns, h.grant};
    } else if (h.until_ns > runner_up.until_ns) {
      runner_up = {h.until_ns, h.grant};
    }
  }
}

void CheckLocks(const History& history, CheckReport& report) {
  std::map<std::string, std::vector<const Op*>> by_lock;
  for (const Op& op : history.ops) {
    if (op.op == kAcquire || op.op == kRenew || op.op == kRelease) by_lock[op.lock].push_back(&op);
  }
  for (const auto& [lock, ops] : by_lock) {
    std::vector<const Op*> grants;
    std::map<std::uint64_t, const Op*> grant_of;
    for (const Op* op : ops) {
      if (op->op == kAcquire && op->type == kOk && op->token) {
        grants.push_back(op);
        grant_of.emplace(*op->token, op);
      }
    }
    report.grants += grants.size();
    CheckGrantTokens(grants, report.violations);
    CheckTwoHolders(ops, grant_of, report.violations);
  }
}

}  // namespace

CheckReport CheckHistory(const History& history) {
  CheckReport report;
  report.operations = history.ops.size();
  report.faults = history.faults.size();
  for (const Op& op : history.ops) {
    if (op.op == kWrite) {
      if (op.type == kOk) ++report.writes_accepted;
      if (op.type == kFail) ++report.writes_fenced;
      if (op.type == kInfo) ++report.writes_unknown;
    }
    if (op.op == kFence && op.type == kOk) ++report.fences_raised;
  }
  CheckKeys(history, report);
  CheckLocks(history, report);
  return report;
}

}  // namespace fence::history
