// Bearer-token authentication of a daemon's routes: loads the auth file
// (core/auth.h), wraps each route's precheck so that a request is refused
// with 401 or 403 from its header alone, before its body is read, counts the
// refusals by reason, and re-reads the file on SIGHUP (a bad new file is
// logged and the old credentials stay).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <string>
#include <thread>
#include <vector>

#include "common/cli.h"
#include "common/http_server.h"
#include "core/auth.h"

namespace fence::net {

// What a route needs of a request (core/auth.h: StoreRoleFor,
// LockdRoleFor); nullopt leaves it open.
using RolePolicy = std::function<std::optional<auth::Role>(
    const Route& route, const RequestHeader& header, std::string_view tail)>;

class AuthGuard {
 public:
  // Reads and parses `path`; errors say which line is wrong and why.
  // `metrics_prefix` names the refusal counter, e.g. "fence_store".
  static Result<std::unique_ptr<AuthGuard>> Load(const std::string& path, auth::Daemon daemon,
                                                 prometheus::Registry& registry,
                                                 const std::string& metrics_prefix);
  ~AuthGuard();
  AuthGuard(const AuthGuard&) = delete;
  AuthGuard& operator=(const AuthGuard&) = delete;

  // Each route's precheck first decides authentication; a refusal ends the
  // request before its own precheck runs and before its body is read.
  std::vector<Route> Protect(std::vector<Route> routes, RolePolicy policy);

  // The allowed caller's name for an audit log, or "" when the header
  // does not authenticate (a handler behind Protect always gets a name).
  std::string Who(const RequestHeader& header) const;

  // Re-reads the file: a file that does not parse keeps the credentials in
  // use and logs auth_reload_failed; a good one replaces them at once
  // (auth_reloaded).
  void Reload();
  // Calls Reload on every SIGHUP, on a thread of its own, until destroyed.
  void ReloadOnSighup();

  std::size_t CredentialCount() const;

 private:
  struct Metrics;
  AuthGuard(std::string path, auth::Daemon daemon, auth::Credentials credentials,
            prometheus::Registry& registry, const std::string& metrics_prefix);
  auth::Decision Decide(const RequestHeader& header, auth::Role needed) const;
  Response Refusal(const auth::Decision& d, auth::Role needed, const RequestHeader& header,
                   const Route& route);
  void WaitForSighup();

  const std::string path_;
  const auth::Daemon daemon_;
  std::unique_ptr<Metrics> metrics_;
  mutable std::mutex mu_;
  // Replaced whole on reload; a request decides against the snapshot it
  // took. GUARDED_BY(mu_).
  std::shared_ptr<const auth::Credentials> credentials_;
  // The SIGHUP watcher: its own io_context and thread (see ReloadOnSighup).
  boost::asio::io_context sighup_context_{1};
  std::optional<boost::asio::signal_set> sighup_;  // confined to sighup_thread_
  std::thread sighup_thread_;
};

// The route policies of the two daemons (core/auth.h), as RolePolicy.
RolePolicy StoreRolePolicy();
RolePolicy LockdRolePolicy();

// The daemons' authentication flags, the same on both.
struct AuthFlags {
  std::string auth_file;  // empty: no authentication
  bool allow_unauthenticated = false;
};
void AddAuthFlags(CLI::App& app, AuthFlags& flags);

// With an auth file: loads it, protects `routes` with `policy` and starts
// re-reading the file on SIGHUP. Without: returns null and leaves the
// routes as they are. The guard must outlive the server.
Result<std::unique_ptr<AuthGuard>> GuardRoutes(const AuthFlags& flags, auth::Daemon daemon,
                                               prometheus::Registry& registry,
                                               const std::string& metrics_prefix,
                                               std::vector<Route>& routes);

// The bearer token from a client's --auth-token-file (core/auth.h:
// ParseTokenFileText), or an error naming the file.
Result<std::string> ReadTokenFile(const std::string& path);

// A daemon must not listen beyond this machine without authentication:
// refuses (with a sentence naming the flags) a non-loopback `listen`
// address when no auth file is given, unless `allow_unauthenticated`. Runs
// before anything is bound.
Status CheckExposure(const std::string& listen, bool has_auth_file,
                     bool allow_unauthenticated);

}  // namespace fence::net
