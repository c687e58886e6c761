#include "server/store_service.h"

#include <chrono>
#include <future>

#include "core/etag.h"

namespace fence::store {
namespace {

Error StaleToken(const std::string& key, Token token, Token highest) {
  return MakeError("stale_token",
                   "token " + token.ToString() + " is lower than the highest "
                       "token " + highest.ToString() + " already seen for key '" +
                       key + "': a newer leader holds the lock; stop acting as "
                       "leader and do not retry with this token",
                   {{"key", key},
                    {"token", token.value()},
                    {"highest_token", highest.value()}});
}

Error NotFound(const std::string& key) {
  return MakeError("not_found", "no object is stored under key '" + key + "'",
                   {{"key", key}});
}

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

Status StoreService::Precheck(const std::string& key, std::optional<Token> token,
                              ReadFrom from) {
  auto loaded = LoadRecord(key, from);
  if (!loaded.ok()) return loaded.error();
  auto admitted = Admit(key, token, loaded->value_or(KeyRecord{}));
  if (!admitted.ok()) return admitted.error();
  return OkStatus();
}

Result<KeyRecord> StoreService::Admit(const std::string& key,
                                      std::optional<Token> token,
                                      KeyRecord record) const {
  if (mode_ == FencingMode::kOn && !token) {
    return MakeError("missing_token",
                     "this write carries no Fencing-Token header; send the "
                     "token your lock service issued with the lock, e.g. "
                     "'Fencing-Token: 7'",
                     {{"key", key}});
  }
  if (mode_ == FencingMode::kOn) {
    const FenceOutcome outcome = DecideFence(record.highest_token, *token);
    if (outcome.decision == FenceDecision::kStale) {
      return StaleToken(key, *token, *record.highest_token);
    }
    record.highest_token = outcome.highest_after;
  } else {
    record.highest_token = RememberUnfenced(record.highest_token, token);
  }
  return record;
}

Result<KeyMutation> StoreService::Decide(WriteRequest& request,
                                         const KeyRecord& current) const {
  if (request.kind == WriteKind::kRaiseFence && !request.token) {
    return MakeError("missing_token", "raising a fence needs a Fencing-Token header",
                     {{"key", request.key}});
  }
  auto admitted = Admit(request.key, request.token, current);
  if (!admitted.ok()) return admitted.error();
  KeyMutation km{request.key, MutationFor(request)};
  KeyRecord& after = km.mutation.record;
  if (km.mutation.body_change == BodyChange::kKeep) {
    // A fence raise keeps the object exactly as it was.
    after = current;
  }
  after.highest_token = admitted->highest_token;
  after.version = current.version + 1;
  return km;
}

void StoreService::Write(WriteRequest request, WriteDone done) {
  std::unique_lock lock(mu_);
  if (closed_) {
    lock.unlock();
    return done(MakeError("shutting_down",
                          "the store is shutting down; retry once it is back"));
  }
  if (queue_.size() >= options_.max_queued_writes) {
    lock.unlock();
    return done(MakeError("overloaded",
                          "the store already has " +
                              std::to_string(options_.max_queued_writes) +
                              " writes waiting for the disk; retry after the "
                              "Retry-After delay",
                          {{"max_queued_writes", options_.max_queued_writes}}));
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

void StoreService::CommitGroup(std::vector<Queued>& group) {
  // Each key as the group's earlier writes left it: a later write of the
  // same key is decided on top of them, as if they had been synced one by
  // one.
  std::unordered_map<std::string, KeyRecord> latest;
  std::vector<KeyMutation> batch;
  std::vector<Staged> staged;
  std::vector<std::optional<Error>> refused(group.size());
  for (std::size_t i = 0; i < group.size(); ++i) {
    WriteRequest& request = group[i].request;
    auto it = latest.find(request.key);
    if (it == latest.end()) {
      auto loaded = LoadRecord(request.key, ReadFrom::kAnywhere);
      if (!loaded.ok()) {
        refused[i] = loaded.error();
        continue;
      }
      it = latest.emplace(request.key, loaded->value_or(KeyRecord{})).first;
      // The committer alone changes records, so what it read is current:
      // the key's later writes and prechecks need not read it again.
      if (!cache_.Find(request.key)) cache_.Put(request.key, {it->second, nullptr});
    }
    auto decided = Decide(request, it->second);
    if (!decided.ok()) {
      refused[i] = decided.error();
      continue;
    }
    const KeyRecord& after = decided->mutation.record;
    it->second = after;
    staged.push_back({i, WriteReceipt{request.key, request.token, after.highest_token,
                                      after.size, after.etag, after.version}});
    batch.push_back(std::move(*decided));
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
      if (group_observer_) group_observer_(batch.size());
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

void StoreService::CacheCommitted(std::vector<KeyMutation>& batch) {
  for (KeyMutation& km : batch) {
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
                                       std::string content_type) {
  return WriteAndWait(
      {WriteKind::kPut, key, token, std::move(body), std::move(content_type)});
}

Result<WriteReceipt> StoreService::Delete(const std::string& key,
                                          std::optional<Token> token) {
  return WriteAndWait({WriteKind::kDelete, key, token, {}, {}});
}

Result<WriteReceipt> StoreService::RaiseFence(const std::string& key,
                                              std::optional<Token> token) {
  return WriteAndWait({WriteKind::kRaiseFence, key, token, {}, {}});
}

Result<StoredObject> StoreService::Get(const std::string& key, ReadFrom from) {
  if (auto cached = cache_.Find(key); cached && (!cached->record.has_object || cached->body)) {
    if (!cached->record.has_object) return NotFound(key);
    return StoredObject{std::move(cached->record), *cached->body};
  }
  auto loaded = storage_.LoadObject(key, from);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value()) return NotFound(key);
  return std::move(**loaded);
}

Result<FenceState> StoreService::GetFence(const std::string& key, ReadFrom from) {
  auto loaded = LoadRecord(key, from);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value() || !(*loaded)->highest_token) {
    return MakeError("not_found", "key '" + key + "' has never been fenced",
                     {{"key", key}});
  }
  return FenceState{key, *(*loaded)->highest_token, (*loaded)->version};
}

}  // namespace fence::store
