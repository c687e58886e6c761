// Test harness: temp dirs, and gtest-reporting wrappers over common/process.h
// (daemons started as real processes on free loopback ports: --listen
// 127.0.0.1:0, port read from the listening event).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_client.h"
#include "common/process.h"

namespace fence::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "fence-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

using Daemon = ListeningDaemon;

// StartListeningDaemon of build/bin/<binary> with `args`. Fails the calling
// test (ADD_FAILURE, with the daemon's output) and returns a Daemon without
// a process and with port 0 if the daemon does not come up.
Daemon StartDaemon(std::string_view binary, std::vector<std::string> args,
                   std::vector<std::string> extra_env = {});

// fence-lockd (data in dir/lockd) that has granted `lock` once, so its
// per-lock metric series exist. Fails the test if either step fails.
Daemon StartLockdWithAGrant(const TempDir& dir, const std::string& lock);

// Shorthands over net::Call that fail the test on a transport error.
net::Response Request(net::http::verb method, const std::string& url,
                      std::vector<std::pair<std::string, std::string>> headers = {},
                      std::string body = "");

// A response's JSON body (a test failure if it is not JSON), and one
// header's value ("" if absent).
nlohmann::json JsonBody(const net::Response& res);
std::string HeaderValue(const net::Response& res, std::string_view name);

}  // namespace fence::testing
