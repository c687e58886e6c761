#include "server/write_errors.h"

namespace fence::store {

// Members are assigned one by one: a json built from an initializer list
// copies every member twice, and a busy store refuses many writes.
Error StaleTokenError(const WriteRequest& w, Token highest) {
  nlohmann::json details = nlohmann::json::object();
  details["key"] = w.key;
  details["token"] = w.token->value();
  details["highest_token"] = highest.value();
  details["refused_by"] = "key";
  if (w.scope) details["scope"] = *w.scope;
  return MakeError("stale_token",
                   "token " + w.token->ToString() + " is lower than the highest "
                       "token " + highest.ToString() + " already seen for key '" +
                       w.key + "': a newer leader holds the lock; stop acting as "
                       "leader and do not retry with this token",
                   std::move(details));
}

// The scope's fence refused the write: a newer leader of the job raised it,
// maybe without ever writing this key.
Error StaleScopeError(const WriteRequest& w, Token highest) {
  nlohmann::json details = nlohmann::json::object();
  details["token"] = w.token->value();
  details["highest_token"] = highest.value();
  details["refused_by"] = "scope";
  details["scope"] = *w.scope;
  details["scope_highest_token"] = highest.value();
  if (w.kind != WriteKind::kRaiseScope) details["key"] = w.key;
  return MakeError("stale_token",
                   "the fence of scope '" + *w.scope + "' refused token " +
                       w.token->ToString() + ": a newer leader of that scope raised it to " +
                       highest.ToString() + ", which fences every key written in the "
                       "scope; stop acting as leader and do not retry with this token",
                   std::move(details));
}

Error NotFoundError(const std::string& key) {
  return MakeError("not_found", "no object is stored under key '" + key + "'",
                   {{"key", key}});
}

Error MissingTokenError(const WriteRequest& w) {
  return MakeError("missing_token",
                   "this write carries no Fencing-Token header; send the "
                   "token your lock service issued with the lock, e.g. "
                   "'Fencing-Token: 7'" +
                       std::string(w.scope ? " (a Fencing-Scope needs one too)" : ""),
                   {{"key", w.key}});
}

Error NeverFencedError(const std::string& key) {
  return MakeError("not_found", "key '" + key + "' has never been fenced", {{"key", key}});
}

Error ScopeNeverFencedError(const std::string& scope) {
  return MakeError("not_found", "scope '" + scope + "' has never been fenced",
                   {{"scope", scope}});
}

Error ShuttingDownError() {
  return MakeError("shutting_down", "the store is shutting down; retry once it is back");
}

Error OverloadedError(std::size_t max_queued, const std::string& storage) {
  return MakeError("overloaded",
                   "the store already has " + std::to_string(max_queued) +
                       " writes waiting for " + storage + "; retry after the Retry-After delay",
                   {{"max_queued_writes", max_queued}});
}

Error NothingToRepairError(const std::string& key) {
  return MakeError("not_found", "key '" + key + "' has no fence to repair", {{"key", key}});
}

Error FenceMovedError(const std::string& key, Token expected, Token highest) {
  return MakeError("fence_moved",
                   "the fence of key '" + key + "' is " + highest.ToString() +
                       ", not the expected " + expected.ToString() +
                       ": it moved since it was read (maybe a leader raised it); nothing "
                       "was changed. Read it again before deciding",
                   {{"key", key}, {"expected", expected.value()}, {"highest_token", highest.value()}});
}

}  // namespace fence::store
