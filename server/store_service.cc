#include "server/store_service.h"

#include <chrono>
#include <future>

#include "core/etag.h"
#include "core/fence_repair.h"
#include "core/scope_rule.h"
#include "server/write_errors.h"

namespace fence::store {
namespace {

// The mutation a write makes, before the fence rule sets its token fields.
Mutation MutationFor(WriteRequest& request) {
  Mutation m;
  switch (request.kind) {
    case WriteKind::kPut:
      m.record.has_object = true;
      m.record.object_token = request.token;
      m.record.size = request.body.size();
      m.record.etag = ComputeEtag(request.body);
      m.record.content_type = request.content_type.empty()
                                  ? "application/octet-stream"
                                  : std::move(request.content_type);
      m.body_change = BodyChange::kSet;
      m.body = std::move(request.body);
      break;
    case WriteKind::kDelete:
      m.record.deleted = true;
      m.record.object_token = request.token;
      m.body_change = BodyChange::kErase;
      break;
    case WriteKind::kRaiseFence:
    case WriteKind::kRaiseScope:
    case WriteKind::kRepairFence:
      m.body_change = BodyChange::kKeep;
      break;
  }
  return m;
}

}  // namespace

StoreService::StoreService(Storage& storage, FencingMode mode, StoreServiceOptions options)
    : storage_(storage),
      mode_(mode),
      options_(options),
      cache_(options.cache_bytes, options.cache_max_body_bytes),
      scope_cache_(options.scope_cache_bytes, 0),
      committer_([this] { RunCommitter(); }) {}

StoreService::~StoreService() { Close(); }

void StoreService::SetGroupObserver(std::function<void(std::size_t)> observer) {
  std::lock_guard lock(mu_);
  group_observer_ = std::move(observer);
}

void StoreService::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  wake_.notify_all();
  if (committer_.joinable()) committer_.join();
}

Result<std::optional<KeyRecord>> StoreService::LoadRecord(const std::string& key,
                                                          ReadFrom from) {
  if (auto cached = cache_.Find(key)) return std::optional<KeyRecord>(std::move(cached->record));
  return storage_.LoadRecord(key, from);
}

Result<std::optional<KeyRecord>> StoreService::LoadScope(const std::string& scope,
                                                         ReadFrom from) {
  if (auto cached = scope_cache_.Find(scope)) {
    return std::optional<KeyRecord>(std::move(cached->record));
  }
  return storage_.LoadScope(scope, from);
}

Status StoreService::Precheck(const std::string& key, std::optional<Token> token,
                              const std::optional<std::string>& scope, ReadFrom from) {
  WriteRequest request{key.empty() && scope ? WriteKind::kRaiseScope : WriteKind::kPut,
                       key, token, {}, {}, scope};
  KeyRecord key_record;
  KeyRecord scope_record;
  Fences fences;
  if (request.kind != WriteKind::kRaiseScope) {
    auto loaded = LoadRecord(key, from);
    if (!loaded.ok()) return loaded.error();
    key_record = loaded->value_or(KeyRecord{});
    fences.key = &key_record;
  }
  if (scope) {
    auto loaded = LoadScope(*scope, from);
    if (!loaded.ok()) return loaded.error();
    scope_record = loaded->value_or(KeyRecord{});
    fences.scope = &scope_record;
  }
  auto admitted = Admit(request, fences);
  if (!admitted.ok()) return admitted.error();
  return OkStatus();
}

Result<StoreService::Admitted> StoreService::Admit(const WriteRequest& request,
                                                   Fences current) const {
  const bool scope_raise = request.kind == WriteKind::kRaiseScope;
  const std::optional<Token> key_highest =
      current.key ? current.key->highest_token : std::nullopt;
  const std::optional<Token> scope_highest =
      current.scope ? current.scope->highest_token : std::nullopt;
  if (!request.token && (mode_ == FencingMode::kOn || request.scope ||
                         request.kind == WriteKind::kRaiseFence || scope_raise)) {
    return MissingTokenError(request);
  }
  if (mode_ == FencingMode::kOff) {
    Admitted a{RememberUnfenced(key_highest, request.token),
               RememberUnfenced(scope_highest, request.token), scope_raise};
    a.write_scope = a.write_scope || (request.scope && a.scope_highest != scope_highest);
    return a;
  }
  const ScopedFenceOutcome out = DecideScopedFence(
      {key_highest, !scope_raise, scope_highest, request.scope.has_value(), *request.token});
  if (out.decision == ScopedDecision::kStaleKey) return StaleTokenError(request, *key_highest);
  if (out.decision == ScopedDecision::kStaleScope) return StaleScopeError(request, *scope_highest);
  // An explicit raise always writes the scope's record (a new version), as
  // a key's fence raise does; a write only when it moves the fence.
  return Admitted{out.key_highest_after, out.scope_highest_after,
                  scope_raise || out.scope_raised};
}

// The committer decides a repair against the committed fence, after every
// write queued before it: a leader's raise that got there first makes it
// fence_moved, never lowered.
Result<StoreService::Decided> StoreService::DecideRepairWrite(const WriteRequest& request,
                                                              Fences current) {
  const RepairRequest repair{*request.expected, *request.token, {}};
  switch (DecideRepair(current.key->highest_token, repair)) {
    case RepairDecision::kNotFenced:
      return NothingToRepairError(request.key);
    case RepairDecision::kMoved:
      return FenceMovedError(request.key, repair.expected, *current.key->highest_token);
    case RepairDecision::kRepair:
      break;
  }
  KeyMutation km{request.key, Mutation{*current.key, BodyChange::kKeep, {}}};
  km.mutation.record.highest_token = repair.lowered_to;
  km.mutation.record.version = current.key->version + 1;
  Decided decided;
  decided.key = std::move(km);
  return decided;
}

Result<StoreService::Decided> StoreService::Decide(WriteRequest& request,
                                                   Fences current) const {
  if (request.kind == WriteKind::kRepairFence) return DecideRepairWrite(request, current);
  auto admitted = Admit(request, current);
  if (!admitted.ok()) return admitted.error();
  Decided decided;
  if (admitted->write_scope) {
    KeyMutation sm{*request.scope, Mutation{}, RecordSpace::kScope};
    sm.mutation.record.highest_token = admitted->scope_highest;
    sm.mutation.record.version = current.scope->version + 1;
    decided.scope = std::move(sm);
  }
  if (request.kind == WriteKind::kRaiseScope) return decided;
  KeyMutation km{request.key, MutationFor(request)};
  KeyRecord& after = km.mutation.record;
  if (km.mutation.body_change == BodyChange::kKeep) {
    // A fence raise keeps the object exactly as it was.
    after = *current.key;
  }
  after.highest_token = admitted->key_highest;
  after.version = current.key->version + 1;
  decided.key = std::move(km);
  return decided;
}

void StoreService::Write(WriteRequest request, WriteDone done) {
  std::unique_lock lock(mu_);
  if (closed_) {
    lock.unlock();
    return done(ShuttingDownError());
  }
  if (queue_.size() >= options_.max_queued_writes) {
    lock.unlock();
    return done(OverloadedError(options_.max_queued_writes, "the disk"));
  }
  queue_.push_back({std::move(request), std::move(done)});
  // The committer sleeps on an empty queue, or while gathering a group.
  const bool wake = queue_.size() == wanted_;
  lock.unlock();
  if (wake) wake_.notify_one();
}

void StoreService::RunCommitter() {
  std::vector<Queued> group;
  while (TakeGroup(group)) {
    CommitGroup(group);
    group.clear();
  }
}

// Waits for writes, then moves as many as the group bounds allow (at least
// one) out of the queue. False once closed and drained.
//
// The writers the last group answered usually write again within a round
// trip, while this group would sync only the writes that queued during the
// last sync: two halves of the writers would take turns, each with its own
// fsync. So it waits a moment (at most half a sync, which the disk would
// spend anyway) for the queue to hold everyone it expects, and one fsync
// serves them all.
bool StoreService::TakeGroup(std::vector<Queued>& group) {
  std::unique_lock lock(mu_);
  const std::size_t expected =
      std::min(options_.max_group_writes, last_group_writes_ + queue_.size());
  wake_.wait(lock, [this] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return false;
  if (queue_.size() < expected && !closed_) {
    wanted_ = expected;
    wake_.wait_for(lock, std::min(last_sync_ / 2, kMaxGatherWait),
                   [this] { return closed_ || queue_.size() >= wanted_; });
    wanted_ = 1;
  }
  std::uint64_t bytes = 0;
  while (!queue_.empty() && group.size() < options_.max_group_writes) {
    const std::uint64_t size = queue_.front().request.body.size();
    if (!group.empty() && bytes + size > options_.max_group_bytes) break;
    bytes += size;
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  last_group_writes_ = group.size();
  return true;
}

// Decides one write of the group on top of `latest` (each key and scope as
// the group's earlier writes left them, as if they had been synced one by
// one); an accepted write's mutations join `batch` and `latest`.
Result<WriteReceipt> StoreService::Stage(WriteRequest& request, GroupState& latest,
                                         std::vector<KeyMutation>& batch) {
  if (Status loaded = LoadForGroup(request, latest); !loaded.ok()) return loaded.error();
  const bool has_key = request.kind != WriteKind::kRaiseScope;
  KeyRecord* key = has_key ? &latest.keys.at(request.key) : nullptr;
  KeyRecord* scope = request.scope ? &latest.scopes.at(*request.scope) : nullptr;
  auto decided = Decide(request, {key, scope});
  if (!decided.ok()) return decided.error();
  WriteReceipt receipt;
  receipt.key = request.key;
  receipt.token = request.token;
  if (decided->scope) {
    // Later writes of the group are decided against the raised scope.
    *scope = decided->scope->mutation.record;
    receipt.scope_raised = true;
    batch.push_back(std::move(*decided->scope));
  }
  if (scope) {
    receipt.scope = request.scope;
    receipt.scope_highest_token = scope->highest_token;
    receipt.scope_version = scope->version;
  }
  if (decided->key) {
    *key = decided->key->mutation.record;
    receipt.highest_token = key->highest_token;
    receipt.size = key->size;
    receipt.etag = key->etag;
    receipt.version = key->version;
    batch.push_back(std::move(*decided->key));
  }
  return receipt;
}

void StoreService::CommitGroup(std::vector<Queued>& group) {
  // Each key and scope as the group's earlier writes left it (see Stage).
  GroupState latest;
  std::vector<KeyMutation> batch;
  std::vector<Staged> staged;
  std::vector<std::optional<Error>> refused(group.size());
  for (std::size_t i = 0; i < group.size(); ++i) {
    auto receipt = Stage(group[i].request, latest, batch);
    if (receipt.ok()) {
      staged.push_back({i, std::move(*receipt)});
    } else {
      refused[i] = receipt.error();
    }
  }
  Status synced = OkStatus();
  if (!batch.empty()) {
    const auto started = std::chrono::steady_clock::now();
    synced = storage_.CommitGroup(batch);
    {
      std::lock_guard lock(mu_);
      last_sync_ = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started);
    }
    if (synced.ok()) {
      CacheCommitted(batch);
      // Writes, not records: a write that also raises its scope is one.
      if (group_observer_) group_observer_(staged.size());
    }
  }
  batch.clear();  // the bodies are no longer needed
  // A refusal decided on top of a write of this group is safe even if the
  // group's sync failed: that write carried the higher token, so its writer
  // was a newer leader.
  for (std::size_t i = 0; i < group.size(); ++i) {
    if (refused[i]) group[i].done(std::move(*refused[i]));
  }
  for (Staged& s : staged) {
    if (synced.ok()) {
      group[s.index].done(std::move(s.receipt));
    } else {
      group[s.index].done(synced.error());
    }
  }
}

// Reads each key and scope a write needs once per group: the committer alone
// changes records, so what it read is current, and the cache takes it for
// the later writes and prechecks of the key.
Status StoreService::LoadForGroup(const WriteRequest& request, GroupState& state) {
  if (request.kind != WriteKind::kRaiseScope && !state.keys.contains(request.key)) {
    auto loaded = LoadRecord(request.key, ReadFrom::kAnywhere);
    if (!loaded.ok()) return loaded.error();
    const KeyRecord& record =
        state.keys.emplace(request.key, loaded->value_or(KeyRecord{})).first->second;
    if (!cache_.Find(request.key)) cache_.Put(request.key, {record, nullptr});
  }
  if (request.scope && !state.scopes.contains(*request.scope)) {
    auto loaded = LoadScope(*request.scope, ReadFrom::kAnywhere);
    if (!loaded.ok()) return loaded.error();
    const KeyRecord& record =
        state.scopes.emplace(*request.scope, loaded->value_or(KeyRecord{})).first->second;
    if (!scope_cache_.Find(*request.scope)) scope_cache_.Put(*request.scope, {record, nullptr});
  }
  return OkStatus();
}

void StoreService::CacheCommitted(std::vector<KeyMutation>& batch) {
  for (KeyMutation& km : batch) {
    if (km.space == RecordSpace::kScope) {
      scope_cache_.Put(km.key, {km.mutation.record, nullptr});
      continue;
    }
    CachedKey entry{km.mutation.record, nullptr};
    switch (km.mutation.body_change) {
      case BodyChange::kSet:
        if (km.mutation.body.size() <= cache_.max_body_bytes()) {
          entry.body = std::make_shared<const std::string>(std::move(km.mutation.body));
        }
        break;
      case BodyChange::kErase:
        break;
      case BodyChange::kKeep:
        // A fence raise keeps the object: and its cached bytes, if any.
        if (auto before = cache_.Find(km.key)) entry.body = std::move(before->body);
        break;
    }
    cache_.Put(km.key, std::move(entry));
  }
}

Result<WriteReceipt> StoreService::WriteAndWait(WriteRequest request) {
  std::promise<Result<WriteReceipt>> outcome;
  auto future = outcome.get_future();
  Write(std::move(request),
        [&outcome](Result<WriteReceipt> r) { outcome.set_value(std::move(r)); });
  return future.get();
}

Result<WriteReceipt> StoreService::Put(const std::string& key,
                                       std::optional<Token> token,
                                       std::string body,
                                       std::string content_type,
                                       std::optional<std::string> scope) {
  return WriteAndWait({WriteKind::kPut, key, token, std::move(body),
                       std::move(content_type), std::move(scope)});
}

Result<WriteReceipt> StoreService::Delete(const std::string& key,
                                          std::optional<Token> token,
                                          std::optional<std::string> scope) {
  return WriteAndWait({WriteKind::kDelete, key, token, {}, {}, std::move(scope)});
}

Result<WriteReceipt> StoreService::RaiseFence(const std::string& key,
                                              std::optional<Token> token,
                                              std::optional<std::string> scope) {
  return WriteAndWait({WriteKind::kRaiseFence, key, token, {}, {}, std::move(scope)});
}

Result<WriteReceipt> StoreService::RaiseScope(const std::string& scope,
                                              std::optional<Token> token) {
  return WriteAndWait({WriteKind::kRaiseScope, {}, token, {}, {}, scope});
}

Result<WriteReceipt> StoreService::RepairFence(const std::string& key, Token expected,
                                               Token lowered_to) {
  return WriteAndWait(
      {WriteKind::kRepairFence, key, lowered_to, {}, {}, std::nullopt, expected});
}

Result<StoredObject> StoreService::Get(const std::string& key, ReadFrom from) {
  if (auto cached = cache_.Find(key); cached && (!cached->record.has_object || cached->body)) {
    if (!cached->record.has_object) return NotFoundError(key);
    return StoredObject{std::move(cached->record), *cached->body};
  }
  auto loaded = storage_.LoadObject(key, from);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value()) return NotFoundError(key);
  return std::move(**loaded);
}

Result<FenceState> StoreService::GetFence(const std::string& key, ReadFrom from) {
  auto loaded = LoadRecord(key, from);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value() || !(*loaded)->highest_token) {
    return NeverFencedError(key);
  }
  return FenceState{key, *(*loaded)->highest_token, (*loaded)->version};
}

Result<ScopeState> StoreService::GetScope(const std::string& scope, ReadFrom from) {
  auto loaded = LoadScope(scope, from);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value() || !(*loaded)->highest_token) {
    return ScopeNeverFencedError(scope);
  }
  return ScopeState{scope, *(*loaded)->highest_token, (*loaded)->version};
}

}  // namespace fence::store
