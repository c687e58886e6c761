#include "tests/harness/daemon.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace fence::testing {

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/" +
                        std::string(prefix) + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Daemon StartDaemon(std::string_view binary, std::vector<std::string> args,
                   std::vector<std::string> extra_env) {
  ChildProcess::Options options;
  options.argv.push_back(SiblingBinary(binary));
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.extra_env = std::move(extra_env);
  auto daemon = StartListeningDaemon(std::move(options));
  if (!daemon.ok()) {
    ADD_FAILURE() << daemon.error().message;
    return Daemon{};
  }
  return std::move(*daemon);
}

Daemon StartLockdWithAGrant(const TempDir& dir, const std::string& lock) {
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", dir.Sub("lockd")});
  if (lockd.port == 0) return lockd;
  auto acquire =
      net::Call(net::JsonCall(net::http::verb::post, lockd.Url("/v1/locks/" + lock + "/acquire"),
                              {{"owner", "test"}, {"ttl_ms", 5000}, {"wait_ms", 0}}));
  EXPECT_TRUE(acquire.ok() && acquire->result() == net::http::status::ok)
      << (acquire.ok() ? acquire->body() : acquire.error().message);
  return lockd;
}

net::Response Request(net::http::verb method, const std::string& url,
                      std::vector<std::pair<std::string, std::string>> headers,
                      std::string body) {
  net::HttpCall call;
  call.method = method;
  call.url = url;
  call.headers = std::move(headers);
  call.body = std::move(body);
  call.timeout = std::chrono::seconds(20);
  auto res = net::Call(call);
  if (!res.ok()) {
    ADD_FAILURE() << res.error().message;
    return net::Response{net::http::status::unknown, 11};
  }
  return std::move(*res);
}

nlohmann::json JsonBody(const net::Response& res) {
  auto j = nlohmann::json::parse(res.body(), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << res.body();
  return j;
}

std::string HeaderValue(const net::Response& res, std::string_view name) {
  auto it = res.find(net::ToBeast(name));
  return it == res.end() ? "" : std::string(net::FromBeast(it->value()));
}

}  // namespace fence::testing
