#include "server/token_signature_check.h"

#include "common/logging.h"
#include "core/scope_rule.h"

namespace fence::store {

namespace {

constexpr char kBadSignature[] = "bad_token_signature";
constexpr char kLockMismatch[] = "lock_mismatch";
constexpr char kMissingLock[] = "missing_lock";

Error LockError(std::string_view reason, std::string message) {
  return MakeError(kBadSignature, std::move(message),
                   {{"reason", reason},
                    {"expected",
                     "a Fencing-Lock header (or a Fencing-Scope) naming the lock "
                     "fence-lockd signed the token for"}});
}

}  // namespace

TokenSignatureCheck::TokenSignatureCheck(TokenKeyRing ring, prometheus::Registry& registry)
    : ring_(std::move(ring)) {
  auto& family = prometheus::BuildCounter()
                     .Name("fence_store_token_signature_refusals_total")
                     .Help("Writes refused with 403 bad_token_signature under "
                           "--require-signed-tokens, by reason: missing, malformed, "
                           "unknown_key_id, mismatch (a forged or altered token or "
                           "signature), missing_lock, lock_mismatch. Any increase "
                           "is a misconfigured writer or an attack.")
                     .Register(registry);
  // Every series exists at 0 from the start, so increase() sees the first.
  for (std::string_view reason : {kSignatureMissing, kSignatureMalformed,
                                  kSignatureUnknownKey, kSignatureMismatch}) {
    refusals_[std::string(reason)] = &family.Add({{"reason", std::string(reason)}});
  }
  for (const char* reason : {kMissingLock, kLockMismatch}) {
    refusals_[reason] = &family.Add({{"reason", reason}});
  }
}

Result<std::string> TokenSignatureCheck::LockOf(
    const net::RequestHeader& header, const std::optional<std::string>& scope) const {
  const auto values = net::HeaderValues(header, kFencingLockHeader);
  if (values.size() > 1) {
    return LockError(kSignatureMalformed, "the request carries " +
                                              std::to_string(values.size()) +
                                              " Fencing-Lock headers; expected at most one");
  }
  if (values.empty()) {
    if (scope) return *scope;
    return LockError(kMissingLock,
                     "the write names no lock (no Fencing-Lock and no Fencing-Scope), so "
                     "its token's signature cannot be checked");
  }
  // Encoded like Fencing-Scope (percent-encoded, key rules).
  auto lock = ParseScope(values[0]);
  if (!lock.ok()) {
    return LockError(kSignatureMalformed, "Fencing-Lock: " + lock.error().message);
  }
  if (scope && *scope != *lock) {
    return LockError(kLockMismatch, "Fencing-Lock '" + *lock + "' differs from the write's "
                                        "scope '" + *scope +
                                        "'; a scope fence takes only tokens of its own lock");
  }
  return std::move(*lock);
}

Status TokenSignatureCheck::Check(const net::RequestHeader& header, const std::string& key,
                                  std::optional<Token> token,
                                  const std::optional<std::string>& scope) {
  if (!token) return OkStatus();
  auto lock = LockOf(header, scope);
  if (!lock.ok()) return Refuse(lock.error(), key, token, scope);
  const auto signatures = net::HeaderValues(header, kFencingTokenSignatureHeader);
  if (signatures.size() > 1) {
    return Refuse(MakeError(kBadSignature,
                            "the request carries " + std::to_string(signatures.size()) +
                                " Fencing-Token-Signature headers; expected one",
                            {{"reason", kSignatureMalformed}}),
                  key, token, scope);
  }
  Status verified =
      ring_.Verify(*lock, *token, signatures.empty() ? std::string_view() : signatures[0]);
  if (verified.ok()) return verified;
  Error e = verified.error();
  e.details["lock"] = *lock;
  return Refuse(std::move(e), key, token, scope);
}

Status TokenSignatureCheck::Refuse(Error e, const std::string& key, std::optional<Token> token,
                                   const std::optional<std::string>& scope) {
  const std::string reason = e.details.value("reason", std::string(kSignatureMalformed));
  refusals_.at(reason)->Increment();
  if (!key.empty()) e.details["key"] = key;
  if (scope) e.details["scope"] = *scope;
  e.details["token"] = token->value();
  nlohmann::json fields = e.details;
  fields.erase("expected");
  fields["message"] = e.message;
  log::Warn("token_signature_refused", fields);
  return e;
}

}  // namespace fence::store
