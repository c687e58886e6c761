#include "client/store_client.h"

#include <charconv>
#include <mutex>

#include "common/http_client.h"
#include "core/key.h"
#include "core/scope_rule.h"
#include "core/token_signature.h"

namespace fence::client {

namespace http = net::http;

namespace {

// The store writes tokens as JSON numbers (or null when a write carried
// none); anything else is treated as absent rather than guessed at.
std::optional<Token> TokenField(const nlohmann::json& body, const char* name) {
  if (!body.is_object() || !body.contains(name)) return std::nullopt;
  const auto& v = body[name];
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > 0) {
    return Token(v.get<std::uint64_t>());
  }
  if (v.is_string()) {
    auto t = ParseToken(v.get<std::string>());
    if (t.ok()) return *t;
  }
  return std::nullopt;
}

std::optional<Token> TokenHeader(const net::Response& res, std::string_view name) {
  auto it = res.find(net::ToBeast(name));
  if (it == res.end()) return std::nullopt;
  auto t = ParseToken(net::FromBeast(it->value()));
  if (!t.ok()) return std::nullopt;
  return *t;
}

std::uint64_t CountField(const nlohmann::json& body, const char* name) {
  if (!body.is_object() || !body.contains(name)) return 0;
  const auto& v = body[name];
  return v.is_number_unsigned() ? v.get<std::uint64_t>() : 0;
}

std::uint64_t CountHeader(const net::Response& res, std::string_view name) {
  auto it = res.find(net::ToBeast(name));
  if (it == res.end()) return 0;
  const std::string_view text = net::FromBeast(it->value());
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() ? value : 0;
}

// A non-200 answer as an Error that keeps the store's code, words and body.
Error ErrorFromAnswer(int status, const std::string& body, const std::string& what) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded()) json = nlohmann::json::object();
  std::string code = json.is_object() && json.contains("error") && json["error"].is_string()
                         ? json["error"].get<std::string>()
                         : (status == 404 ? "not_found" : "http_" + std::to_string(status));
  std::string message =
      json.is_object() && json.contains("message") && json["message"].is_string()
          ? json["message"].get<std::string>()
          : what + " answered " + std::to_string(status);
  return MakeError(std::move(code), std::move(message),
                   {{"http_status", status}, {"server_body", json}});
}

bool FencingOff(const net::Response& res) {
  auto it = res.find("Fencing");
  return it != res.end() && net::FromBeast(it->value()) == "off";
}

}  // namespace

Result<PutResult> InterpretWriteResponse(int http_status, bool fencing_off,
                                         const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded()) json = nlohmann::json::object();
  PutResult result;
  result.http_status = http_status;
  result.fencing_off = fencing_off;
  result.server_body = json;
  result.token = TokenField(json, "token");
  result.highest_token = TokenField(json, "highest_token");

  const std::string code =
      json.is_object() && json.contains("error") && json["error"].is_string()
          ? json["error"].get<std::string>()
          : "";
  if (http_status == 200) {
    result.outcome = PutResult::Outcome::kAccepted;
    if (json.is_object() && json.contains("etag") && json["etag"].is_string()) {
      result.etag = json["etag"].get<std::string>();
    }
    result.version = CountField(json, "version");
    return result;
  }
  if (http_status == 409 && code == "stale_token") {
    result.outcome = PutResult::Outcome::kStale;
    return result;
  }
  // Anything else is an error that keeps the store's own words and figures.
  std::string message =
      json.is_object() && json.contains("message") && json["message"].is_string()
          ? json["message"].get<std::string>()
          : "the store answered " + std::to_string(http_status) +
                (body.empty() ? std::string(" with no body")
                              : " with a non-JSON body: " + body.substr(0, 200));
  return MakeError(code.empty() ? "http_" + std::to_string(http_status) : code,
                   std::move(message),
                   {{"http_status", http_status}, {"server_body", json}});
}

// The worker sets it per term while it may share the client: a mutex
// keeps a write from reading a half-replaced signature.
struct StoreClient::Signing {
  std::mutex mu;
  std::optional<SignedToken> current;  // GUARDED_BY(mu)
};

StoreClient::StoreClient(std::string base_url, std::chrono::milliseconds timeout,
                         std::shared_ptr<net::TlsContext> tls)
    : base_url_(std::move(base_url)),
      timeout_(timeout),
      signing_(std::make_unique<Signing>()),
      http_(std::make_unique<net::HttpClient>(std::move(tls))) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

StoreClient::~StoreClient() = default;
StoreClient::StoreClient(StoreClient&&) noexcept = default;
StoreClient& StoreClient::operator=(StoreClient&&) noexcept = default;

std::string StoreClient::ObjectUrl(const std::string& key) const {
  return base_url_ + "/v1/objects/" + EncodeKeyForPath(key);
}

std::string StoreClient::FenceUrl(const std::string& key) const {
  return base_url_ + "/v1/fences/" + EncodeKeyForPath(key);
}

std::string StoreClient::ScopeFenceUrl(const std::string& scope) const {
  return base_url_ + "/v1/scopes/" + EncodeKeyForPath(scope) + "/fence";
}

void StoreClient::AddScope(std::vector<std::pair<std::string, std::string>>& headers) const {
  // Encoded as in a URL path: the store percent-decodes the header.
  if (scope_) headers.emplace_back(std::string(kFencingScopeHeader), EncodeKeyForPath(*scope_));
}

void StoreClient::AddAuth(std::vector<std::pair<std::string, std::string>>& headers) const {
  if (!authorization_.empty()) headers.emplace_back("Authorization", authorization_);
}

void StoreClient::UseSignedToken(std::optional<SignedToken> signed_token) {
  std::lock_guard guard(signing_->mu);
  signing_->current = std::move(signed_token);
}

void StoreClient::AddSignature(std::vector<std::pair<std::string, std::string>>& headers,
                               std::optional<Token> token) const {
  std::lock_guard guard(signing_->mu);
  const auto& current = signing_->current;
  // A signature proves only its own token: never sent with another.
  if (!token || !current || current->token != *token) return;
  headers.emplace_back(std::string(kFencingTokenSignatureHeader), current->signature);
  headers.emplace_back(std::string(kFencingLockHeader), EncodeKeyForPath(current->lock));
}

Result<PutResult> StoreClient::Put(const std::string& key, const std::string& body,
                                   std::optional<Token> token) {
  net::HttpCall call;
  call.method = http::verb::put;
  call.url = ObjectUrl(key);
  call.headers.emplace_back("Content-Type", "application/json");
  if (token) call.headers.emplace_back(std::string(kFencingTokenHeader), token->ToString());
  AddScope(call.headers);
  AddAuth(call.headers);
  AddSignature(call.headers, token);
  call.body = body;
  call.timeout = timeout_;
  auto res = http_->Call(call);
  if (!res.ok()) return res.error();
  return InterpretWriteResponse(static_cast<int>(res->result_int()), FencingOff(*res),
                                res->body());
}

Result<PutResult> StoreClient::RaiseFence(const std::string& key, Token token) {
  return SendWrite(http::verb::post, FenceUrl(key), token);
}

Result<PutResult> StoreClient::RaiseScope(const std::string& scope, Token token) {
  return SendWrite(http::verb::post, ScopeFenceUrl(scope), token);
}

Result<PutResult> StoreClient::Delete(const std::string& key, Token token) {
  return SendWrite(http::verb::delete_, ObjectUrl(key), token);
}

// A bodiless write (fence raise, delete) with its token.
Result<PutResult> StoreClient::SendWrite(http::verb method, const std::string& url,
                                         Token token) {
  net::HttpCall call;
  call.method = method;
  call.url = url;
  call.headers.emplace_back(std::string(kFencingTokenHeader), token.ToString());
  AddScope(call.headers);
  AddAuth(call.headers);
  AddSignature(call.headers, token);
  call.timeout = timeout_;
  auto res = http_->Call(call);
  if (!res.ok()) return res.error();
  return InterpretWriteResponse(static_cast<int>(res->result_int()), FencingOff(*res),
                                res->body());
}

Result<FetchedObject> StoreClient::Get(const std::string& key) {
  net::HttpCall call;
  call.method = http::verb::get;
  call.url = ObjectUrl(key);
  AddAuth(call.headers);
  call.timeout = timeout_;
  auto res = http_->Call(call);
  if (!res.ok()) return res.error();
  const int status = static_cast<int>(res->result_int());
  if (status != 200) return ErrorFromAnswer(status, res->body(), "GET " + call.url);
  FetchedObject object;
  object.body = res->body();
  object.content_type = std::string(net::FromBeast((*res)[http::field::content_type]));
  object.etag = std::string(net::FromBeast((*res)[http::field::etag]));
  object.token = TokenHeader(*res, kFencingTokenHeader);
  object.highest_token = TokenHeader(*res, "Fencing-Highest-Token");
  object.version = CountHeader(*res, "Key-Version");
  object.fencing_off = FencingOff(*res);
  return object;
}

Result<FenceReading> StoreClient::GetFence(const std::string& key) {
  net::HttpCall call;
  call.method = http::verb::get;
  call.url = FenceUrl(key);
  AddAuth(call.headers);
  call.timeout = timeout_;
  auto res = http_->Call(call);
  if (!res.ok()) return res.error();
  const int status = static_cast<int>(res->result_int());
  if (status != 200) return ErrorFromAnswer(status, res->body(), "GET " + call.url);
  auto json = nlohmann::json::parse(res->body(), nullptr, false);
  const std::optional<Token> highest = TokenField(json, "highest_token");
  if (!highest) {
    return MakeError("bad_answer", "GET " + call.url + " answered 200 without a highest_token: " +
                                       res->body().substr(0, 200));
  }
  return FenceReading{*highest, CountField(json, "version")};
}

}  // namespace fence::client
