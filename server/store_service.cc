#include "server/store_service.h"

#include <functional>

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

}  // namespace

StoreService::StoreService(Storage& storage, FencingMode mode)
    : storage_(storage), mode_(mode) {}

std::mutex& StoreService::StripeFor(const std::string& key) {
  return stripes_[std::hash<std::string>{}(key) % kStripes];
}

Status StoreService::Precheck(const std::string& key,
                              std::optional<Token> token) {
  auto record = Admit(key, token);
  if (!record.ok()) return record.error();
  return OkStatus();
}

Result<KeyRecord> StoreService::Admit(const std::string& key,
                                      std::optional<Token> token) {
  if (mode_ == FencingMode::kOn && !token) {
    return MakeError("missing_token",
                     "this write carries no Fencing-Token header; send the "
                     "token your lock service issued with the lock, e.g. "
                     "'Fencing-Token: 7'",
                     {{"key", key}});
  }
  auto loaded = storage_.LoadRecord(key);
  if (!loaded.ok()) return loaded.error();
  KeyRecord record = loaded->value_or(KeyRecord{});
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

Result<WriteReceipt> StoreService::Apply(const std::string& key,
                                         std::optional<Token> token,
                                         Mutation mutation) {
  // The check and the write are one step for this key: no other writer of
  // the key can slip between Admit and Commit.
  std::lock_guard lock(StripeFor(key));
  auto admitted = Admit(key, token);
  if (!admitted.ok()) return admitted.error();
  const KeyRecord before = std::move(*admitted);
  KeyRecord& after = mutation.record;
  after.highest_token = before.highest_token;
  if (mutation.body_change == BodyChange::kKeep) {
    // A fence raise keeps the object exactly as it was.
    const auto highest = after.highest_token;
    after = before;
    after.highest_token = highest;
  }
  after.version = before.version + 1;
  const Status committed = storage_.Commit(key, mutation);
  if (!committed.ok()) return committed.error();
  return WriteReceipt{key, token, after.highest_token, after.size, after.etag,
                      after.version};
}

Result<WriteReceipt> StoreService::Put(const std::string& key,
                                       std::optional<Token> token,
                                       std::string body,
                                       std::string content_type) {
  Mutation m;
  m.record.has_object = true;
  m.record.object_token = token;
  m.record.size = body.size();
  m.record.etag = ComputeEtag(body);
  m.record.content_type =
      content_type.empty() ? "application/octet-stream" : std::move(content_type);
  m.body_change = BodyChange::kSet;
  m.body = std::move(body);
  return Apply(key, token, std::move(m));
}

Result<WriteReceipt> StoreService::Delete(const std::string& key,
                                          std::optional<Token> token) {
  Mutation m;
  m.record.deleted = true;
  m.record.object_token = token;
  m.body_change = BodyChange::kErase;
  return Apply(key, token, std::move(m));
}

Result<WriteReceipt> StoreService::RaiseFence(const std::string& key,
                                              std::optional<Token> token) {
  if (!token) {
    return MakeError("missing_token",
                     "raising a fence needs a Fencing-Token header",
                     {{"key", key}});
  }
  Mutation m;
  m.body_change = BodyChange::kKeep;
  return Apply(key, token, std::move(m));
}

Result<StoredObject> StoreService::Get(const std::string& key) {
  auto loaded = storage_.LoadObject(key);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value()) {
    return MakeError("not_found", "no object is stored under key '" + key + "'",
                     {{"key", key}});
  }
  return std::move(**loaded);
}

Result<FenceState> StoreService::GetFence(const std::string& key) {
  auto loaded = storage_.LoadRecord(key);
  if (!loaded.ok()) return loaded.error();
  if (!loaded->has_value() || !(*loaded)->highest_token) {
    return MakeError("not_found", "key '" + key + "' has never been fenced",
                     {{"key", key}});
  }
  return FenceState{key, *(*loaded)->highest_token, (*loaded)->version};
}

}  // namespace fence::store
