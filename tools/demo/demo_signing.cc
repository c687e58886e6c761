#include "tools/demo/demo_signing.h"

#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "client/store_client.h"
#include "common/http_client.h"
#include "tools/demo/demo_logs.h"

namespace fence::tools::demo {

namespace {

constexpr std::uint64_t kForgedToken = std::numeric_limits<std::uint64_t>::max();

std::optional<std::uint64_t> ReadFence(const std::string& fence_url,
                                      const std::string& bearer_token) {
  net::HttpCall call;
  call.method = net::http::verb::get;
  call.url = fence_url;
  call.headers = {{"Authorization", "Bearer " + bearer_token}};
  auto res = net::Call(call);
  if (!res.ok() || res->result_int() != 200) return std::nullopt;
  auto j = nlohmann::json::parse(res->body(), nullptr, false);
  if (j.is_discarded() || !j.contains("highest_token") || !j["highest_token"].is_number_unsigned()) {
    return std::nullopt;
  }
  return j["highest_token"].get<std::uint64_t>();
}

bool IsRefusalLine(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.value("event", "") == "token_signature_refused";
}

}  // namespace

std::string FenceText(const std::optional<std::uint64_t>& fence) {
  return fence ? std::to_string(*fence) : std::string("none");
}

Result<TokenKeyRing> WriteDemoTokenKeys(const std::string& path) {
  // A demo key: std::random_device reads the kernel's generator on Linux.
  std::random_device random;
  std::ostringstream hex;
  hex << std::hex;
  for (int i = 0; i < 32; ++i) hex << ((random() & 0xF0) >> 4) << (random() & 0x0F);
  const std::string text = "# fence-demo's token key, made for this run only\ndemo1 " + hex.str() + "\n";
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    if (!out) return MakeError("io_error", "cannot write the demo's token key file " + path);
  }
  ::chmod(path.c_str(), 0600);
  auto keys = ParseTokenKeys(text);
  if (!keys.ok()) return keys.error();
  return TokenKeyRing::Make(std::move(*keys));
}

Headers SignatureHeaders(const TokenKeyRing& keys, const std::string& lock, Token token) {
  return {{std::string(kFencingTokenSignatureHeader), keys.Sign(lock, token)},
          {std::string(kFencingLockHeader), lock}};
}

std::string CurlCommand(const std::string& method, const Headers& headers,
                        const std::string& body, const std::string& url) {
  std::string curl = "curl -sS -i -X " + method;
  for (const auto& [name, value] : headers) {
    // The report shows where the secret goes, never the secret.
    curl += name == "Authorization" ? " -H \"Authorization: Bearer $WORKER_TOKEN\""
                                    : " -H " + ShellQuote(name + ": " + value);
  }
  return curl + " --data-binary " + ShellQuote(body) + " " + ShellQuote(url);
}

bool SendShown(const net::HttpCall& call, int& status, std::string& text, nlohmann::json& body) {
  auto res = net::Call(call);
  if (!res.ok()) {
    text = "transport error: " + res.error().message;
    return false;
  }
  status = static_cast<int>(res->result_int());
  std::ostringstream answer;
  answer << *res;
  text = answer.str();
  auto j = nlohmann::json::parse(res->body(), nullptr, false);
  body = j.is_discarded() ? nlohmann::json(res->body()) : j;
  return true;
}

ForgedWrite RunForgedWrite(const std::string& store_url, ChildProcess& store,
                           const std::string& key, Headers signed_headers,
                           const std::string& bearer_token) {
  ForgedWrite out;
  out.token = std::to_string(kForgedToken);
  client::StoreClient client(store_url);
  out.fence_before = ReadFence(client.FenceUrl(key), bearer_token);
  net::HttpCall call;
  call.method = net::http::verb::put;
  call.url = client.ObjectUrl(key);
  // A writer's credential: the forger is a client the store lets write
  // (an insider, or a worker with a bug), so only the signature stops it.
  call.headers = {{std::string(kFencingTokenHeader), out.token},
                  {"Content-Type", "application/json"},
                  {"Authorization", "Bearer " + bearer_token}};
  call.headers.insert(call.headers.end(), signed_headers.begin(), signed_headers.end());
  call.body = R"({"owner":"forger","payload":"fences the key forever"})";
  out.curl = CurlCommand("PUT", call.headers, call.body, call.url);
  const std::size_t store_from = store.LineCount();
  if (!SendShown(call, out.status, out.response_text, out.body)) return out;
  // The store logs the refusal; wait for the line rather than sleep.
  if (auto line = store.WaitForLine(IsRefusalLine, Millis(5000), store_from)) {
    out.store_line = *line;
  }
  out.fence_after = ReadFence(client.FenceUrl(key), bearer_token);
  return out;
}

}  // namespace fence::tools::demo
