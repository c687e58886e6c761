// fence-store --require-signed-tokens: every write's token must carry
// fence-lockd's signature over (lock, token). Checked from the header,
// before the fence rule, so a forged or altered token never moves a fence.
#pragma once

#include <optional>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <string>
#include <unordered_map>

#include "common/http_types.h"
#include "core/token.h"
#include "core/token_signature.h"

namespace fence::store {

class TokenSignatureCheck {
 public:
  // `ring` is immutable and shared by every I/O thread; the counters are
  // thread-safe (prometheus-cpp).
  TokenSignatureCheck(TokenKeyRing ring, prometheus::Registry& registry);

  // OK when the write has no token (it is refused as missing_token later),
  // or its Fencing-Token-Signature verifies for its lock. The lock is the
  // Fencing-Lock header, else the write's scope (a scope is its lock's
  // name); both given, they must agree. A refusal (code
  // bad_token_signature, for 403) is counted and logged here.
  Status Check(const net::RequestHeader& header, const std::string& key,
               std::optional<Token> token, const std::optional<std::string>& scope);

 private:
  Result<std::string> LockOf(const net::RequestHeader& header,
                             const std::optional<std::string>& scope) const;
  Status Refuse(Error e, const std::string& key, std::optional<Token> token,
                const std::optional<std::string>& scope);

  const TokenKeyRing ring_;
  std::unordered_map<std::string, prometheus::Counter*> refusals_;  // set once, then read-only
};

}  // namespace fence::store
