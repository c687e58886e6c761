// The client side of fence-store: writes carry the leader's fencing token,
// and every answer is kept with the server's own JSON explanation, so a
// caller (the worker, the demo, an operator) can show why a write was
// refused with the store's figures, not a paraphrase.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/tls.h"
#include "core/result.h"
#include "core/token.h"

namespace fence::net {
class HttpClient;
}  // namespace fence::net

namespace fence::client {

// A write the store answered with 200 or 409 stale_token. Every other answer
// (and a transport failure) is an Error instead; see ObjectStore::Put.
struct PutResult {
  enum class Outcome {
    kAccepted,  // 200: the object (or fence) is durable
    kStale,     // 409 stale_token: a newer leader has written or fenced the key
  };
  Outcome outcome = Outcome::kAccepted;
  std::optional<Token> token;          // the token the store saw with the write
  std::optional<Token> highest_token;  // the key's fence after the decision
  std::string etag;                    // accepted PUTs only
  // Accepted writes only: the write's place in the key's commit order (the
  // store's per-key version); 0 when the store did not say.
  std::uint64_t version = 0;
  int http_status = 0;
  bool fencing_off = false;  // the store said "Fencing: off" (unfenced demo)
  nlohmann::json server_body = nlohmann::json::object();  // verbatim JSON

  bool accepted() const { return outcome == Outcome::kAccepted; }
  bool stale() const { return outcome == Outcome::kStale; }
};

struct FetchedObject {
  std::string body;
  std::string content_type;
  std::string etag;
  std::optional<Token> token;          // the token that wrote this version
  std::optional<Token> highest_token;  // the key's fence
  std::uint64_t version = 0;           // the key's version (Key-Version)
  bool fencing_off = false;
};

// GET /v1/fences/{key}: the key's fence and version.
struct FenceReading {
  Token highest_token;
  std::uint64_t version = 0;
};

// fence-lockd's signature of one grant's token (docs/signed-tokens.md),
// sent with every write that carries that token as Fencing-Token-Signature
// and Fencing-Lock, for a store started with --require-signed-tokens.
struct SignedToken {
  std::string lock;
  Token token;
  std::string signature;
};

// The worker writes through this seam, so its decisions can be tested with
// a fake store. Errors carry the server's "error" code and "message", the
// whole JSON body under details["server_body"] and details["http_status"];
// transport failures keep net::Call's code ("unreachable", "bad_url").
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // `token` nullopt sends no Fencing-Token header (the unfenced demo only).
  virtual Result<PutResult> Put(const std::string& key, const std::string& body,
                                std::optional<Token> token) = 0;
  // POST /v1/fences/{key}: raises the key's fence to `token` without
  // writing; answered like a write (kStale when a higher token is stored).
  virtual Result<PutResult> RaiseFence(const std::string& key, Token token) = 0;
  // POST /v1/scopes/{scope}/fence: raises the scope's fence to `token`, so
  // that every write sent with that Fencing-Scope and a lower token is
  // refused on every key; answered like a write.
  virtual Result<PutResult> RaiseScope(const std::string& scope, Token token) = 0;
  // From now on, writes with signed->token carry its signature; nullopt (a
  // grant nobody signed) sends none. A store that does not check ignores it.
  virtual void UseSignedToken(std::optional<SignedToken> /*signed_token*/) {}
};

// Maps one answered write (PUT or POST fence) to a PutResult or an Error, as
// described on ObjectStore. Pure, so every status is unit-tested.
Result<PutResult> InterpretWriteResponse(int http_status, bool fencing_off,
                                         const std::string& body);

// Keeps its connection to the store open between calls (see
// net::HttpClient: thread-safe, a write whose outcome is unknown is never
// sent again). Make one per process and reuse it.
class StoreClient final : public ObjectStore {
 public:
  // `base_url` is http://HOST:PORT or https://HOST:PORT (no path); `tls`
  // verifies an https:// store (net::HttpClient).
  explicit StoreClient(std::string base_url,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5),
                       std::shared_ptr<net::TlsContext> tls = net::DefaultClientTls());
  ~StoreClient() override;
  StoreClient(StoreClient&&) noexcept;
  StoreClient& operator=(StoreClient&&) noexcept;

  Result<PutResult> Put(const std::string& key, const std::string& body,
                        std::optional<Token> token) override;
  Result<PutResult> RaiseFence(const std::string& key, Token token) override;
  Result<PutResult> RaiseScope(const std::string& scope, Token token) override;
  // Every later write (PUT, DELETE, POST fence) carries `Fencing-Scope:
  // scope`; nullopt sends none. Set it before sharing the client.
  void SetScope(std::optional<std::string> scope) { scope_ = std::move(scope); }
  // Every later request carries `Authorization: Bearer token` (a store
  // started with --auth-file); empty sends none. Set it before sharing the
  // client.
  void SetBearerToken(const std::string& token) {
    authorization_ = token.empty() ? std::string() : "Bearer " + token;
  }
  void UseSignedToken(std::optional<SignedToken> signed_token) override;
  // DELETE /v1/objects/{key}: leaves a tombstone that keeps the fence;
  // answered like a write.
  Result<PutResult> Delete(const std::string& key, Token token);
  // GET /v1/objects/{key}; code "not_found" for 404.
  Result<FetchedObject> Get(const std::string& key);
  // GET /v1/fences/{key}; code "not_found" for a key never fenced.
  Result<FenceReading> GetFence(const std::string& key);

  std::string ObjectUrl(const std::string& key) const;
  std::string FenceUrl(const std::string& key) const;
  std::string ScopeFenceUrl(const std::string& scope) const;

 private:
  Result<PutResult> SendWrite(boost::beast::http::verb method, const std::string& url,
                              Token token);
  std::string base_url_;
  // Adds the Fencing-Scope header when a scope is set.
  void AddScope(std::vector<std::pair<std::string, std::string>>& headers) const;
  std::chrono::milliseconds timeout_;
  std::optional<std::string> scope_;
  std::string authorization_;  // the Authorization value, or empty
  // Adds the Authorization header when a bearer token is set.
  void AddAuth(std::vector<std::pair<std::string, std::string>>& headers) const;
  // Adds the signature headers when `token` is the signed token's.
  void AddSignature(std::vector<std::pair<std::string, std::string>>& headers,
                    std::optional<Token> token) const;
  struct Signing;  // the current SignedToken and its mutex
  std::unique_ptr<Signing> signing_;
  std::unique_ptr<net::HttpClient> http_;
};

}  // namespace fence::client
