// The store target: W writer threads over K keys (writer w owns the keys
// i with i % W == w, so each key's tokens increase with every write sent),
// SIGKILL at a seeded moment, restart on the same data directory on a new
// port, verify every key, continue.
#include <memory>

#include "client/store_client.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "tools/crashloop/crashloop.h"
#include "tools/crashloop/loop_support.h"

namespace fence::crashloop {

namespace {


// The kill lands this long after the writers start: long enough for
// hundreds of fsynced writes, short enough for a hundred kills a minute.
constexpr int kKillMinMs = 20;
constexpr int kKillMaxMs = 300;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

struct KeySlot {
  std::string key;
  KeyModel model;  // written only by the slot's writer during a round
};

struct Tally {
  long acknowledged = 0;
  long indeterminate = 0;
  std::vector<Violation> violations;
};

Result<client::PutResult> Send(client::StoreClient& store, const std::string& key,
                               const KeyOp& op) {
  switch (op.kind) {
    case OpKind::kPut:
      return store.Put(key, op.body, Token(op.token));
    case OpKind::kFence:
      return store.RaiseFence(key, Token(op.token));
    case OpKind::kDelete:
      return store.Delete(key, Token(op.token));
  }
  return MakeError("bad_op", "unknown operation kind");
}

// Mostly PUTs, some fence raises and deletes; the token is above every
// token sent to the key before (gaps of 1-3, as a lock service's tokens
// have gaps between the grants a key sees).
KeyOp NextOp(const KeySlot& slot, std::mt19937_64& rng, int writer, int round) {
  KeyOp op;
  op.token = slot.model.max_token_sent + 1 + rng() % 3;
  const auto pick = rng() % 10;
  op.kind = pick == 0 ? OpKind::kDelete : pick == 1 ? OpKind::kFence : OpKind::kPut;
  if (op.kind == OpKind::kPut) {
    op.body = slot.key + " token " + std::to_string(op.token) + " writer " +
              std::to_string(writer) + " round " + std::to_string(round);
  }
  return op;
}

// Writes until `stop`, or until a write gets no answer: then the key keeps
// that write as pending and the writer sends nothing more this round, so no
// answer can follow an unanswered write on any key (see crashloop_check.h).
void RunWriter(const std::string& url, std::vector<KeySlot*> slots, std::uint64_t seed,
               int writer, int round, const std::atomic<bool>& stop, Tally& tally) {
  client::StoreClient store(url, kRequestTimeout);
  std::seed_seq seq{seed, static_cast<std::uint64_t>(writer), static_cast<std::uint64_t>(round)};
  std::mt19937_64 rng(seq);
  while (!stop.load()) {
    KeySlot& slot = *slots[rng() % slots.size()];
    KeyOp op = NextOp(slot, rng, writer, round);
    const std::uint64_t sent_before = slot.model.max_token_sent;
    slot.model.max_token_sent = op.token;
    auto res = Send(store, slot.key, op);
    if (!res.ok()) {
      slot.model.pending = op;
      ++tally.indeterminate;
      return;
    }
    if (res->stale()) {
      tally.violations.push_back(RefusedFreshToken(
          slot.key, sent_before, op.token, res->highest_token ? res->highest_token->value() : 0));
      continue;
    }
    op.etag = res->etag;
    const std::uint64_t highest = res->highest_token ? res->highest_token->value() : 0;
    if (auto v = CheckAcknowledged(slot.key, op, highest)) tally.violations.push_back(*v);
    RecordAcknowledged(slot.model, op);
    ++tally.acknowledged;
  }
}

// One round: writers against the running store, SIGKILL after `delay`.
Tally RunRound(ListeningDaemon& store, std::vector<KeySlot>& slots, int writers,
               std::uint64_t seed, int kill, std::chrono::milliseconds delay) {
  std::vector<Tally> tallies(static_cast<std::size_t>(writers));
  const std::string url = store.Url();
  RunWorkersUntil(
      writers, delay,
      [&](int w, const std::atomic<bool>& stop) {
        std::vector<KeySlot*> own;
        for (std::size_t i = static_cast<std::size_t>(w); i < slots.size();
             i += static_cast<std::size_t>(writers)) {
          own.push_back(&slots[i]);
        }
        RunWriter(url, std::move(own), seed, w, kill, stop,
                  tallies[static_cast<std::size_t>(w)]);
      },
      [&] { KillDaemon(store, kill, delay); });
  Tally total;
  for (auto& t : tallies) {
    total.acknowledged += t.acknowledged;
    total.indeterminate += t.indeterminate;
    for (auto& v : t.violations) total.violations.push_back(std::move(v));
  }
  return total;
}

Result<Observed> Observe(client::StoreClient& store, const std::string& key) {
  Observed observed;
  auto object = store.Get(key);
  if (object.ok()) {
    observed.object = ObjectState{true, object->body,
                                  object->token ? object->token->value() : 0, object->etag};
  } else if (object.error().code != "not_found") {
    return object.error();
  }
  auto fence = store.GetFence(key);
  if (fence.ok()) {
    observed.fence = fence->highest_token.value();
  } else if (fence.error().code != "not_found") {
    return fence.error();
  }
  return observed;
}

std::vector<Violation> VerifyKey(client::StoreClient& store, KeySlot& slot,
                                 long& pending_applied) {
  auto observed = Observe(store, slot.key);
  if (!observed.ok()) {
    return {{"unreadable", slot.key, "the restarted store answers GET",
             observed.error().message, 0}};
  }
  auto found = CheckAfterRestart(slot.key, slot.model, *observed);
  if (PendingApplied(slot.model, *observed).value_or(false)) ++pending_applied;
  if (observed->fence && *observed->fence > 1) {
    const std::uint64_t probe = *observed->fence - 1;
    auto res = store.Put(slot.key, "stale probe", Token(probe));
    int status = -1;
    std::optional<std::uint64_t> highest;
    if (res.ok()) {
      status = res->http_status;
      if (res->highest_token) highest = res->highest_token->value();
    } else if (res.error().details.contains("http_status")) {
      status = res.error().details["http_status"].get<int>();
    }
    if (auto v = CheckStaleProbe(slot.key, *observed->fence, probe, status, highest)) {
      found.push_back(*v);
    }
  }
  Settle(slot.model, *observed);
  return found;
}

}  // namespace

Result<Summary> RunStoreLoop(const Options& options) {
  Summary summary;
  summary.target = "store";
  summary.seed = options.seed;
  const Deadline deadline(options.max_seconds);
  const std::string data = options.work_dir + "/data";
  const std::string daemon_log = options.work_dir + "/daemon.log";
  std::vector<KeySlot> slots(static_cast<std::size_t>(options.keys));
  for (std::size_t i = 0; i < slots.size(); ++i) slots[i].key = "crashloop/k" + std::to_string(i);

  auto store = StartDaemon("fence-store", data, daemon_log);
  if (!store.ok()) return store.error();
  log::Info("daemon_started", {{"target", "store"}, {"port", store->port}, {"data_dir", data}});
  std::mt19937_64 rng(options.seed);
  for (int kill = 1; kill <= options.kills && !deadline.Passed(); ++kill) {
    Tally round = RunRound(*store, slots, options.writers, options.seed, kill,
                           KillDelay(rng, kKillMinMs, kKillMaxMs));
    summary.kills = kill;
    summary.acknowledged += round.acknowledged;
    summary.indeterminate += round.indeterminate;
    Report(std::move(round.violations), kill - 1, options.seed, summary.violations);

    const auto spawned = SteadyClock::now();
    store = StartDaemon("fence-store", data, daemon_log);
    if (!store.ok()) {
      Report({{"restart_failed", "", "the store restarts on its data directory",
               store.error().message, kill}},
             kill, options.seed, summary.violations);
      break;
    }
    log::Info("daemon_restarted",
              {{"kill", kill}, {"port", store->port},
               {"restart_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                  SteadyClock::now() - spawned).count()}});
    client::StoreClient client(store->Url(), kRequestTimeout);
    std::size_t before = summary.violations.size();
    long applied = 0;
    for (auto& slot : slots) {
      Report(VerifyKey(client, slot, applied), kill, options.seed, summary.violations);
    }
    summary.indeterminate_applied += applied;
    summary.verified += static_cast<long>(slots.size());
    log::Info("keys_verified",
              {{"kill", kill}, {"keys", slots.size()},
               {"acknowledged", round.acknowledged}, {"indeterminate", round.indeterminate},
               {"indeterminate_applied", applied},
               {"violations", summary.violations.size() - before}});
  }
  if (store.ok()) store->process->Stop();
  summary.wall_seconds = deadline.Elapsed();
  return summary;
}

}  // namespace fence::crashloop
