#include "common/auth_guard.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include "common/logging.h"

namespace fence::net {
namespace {

// An auth file is a few lines per client; anything larger is a wrong path.
constexpr std::uintmax_t kMaxFileBytes = 1 << 20;

Result<std::string> ReadSmallFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError("unreadable", std::string("cannot read ") + what + " " + path +
                                       ": " + std::strerror(errno));
  }
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return MakeError("unreadable", std::string("cannot read ") + what + " " + path);
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    return MakeError("unreadable", std::string(what) + " " + path +
                                       " is larger than 1 MiB; expected a few lines");
  }
  return text;
}

Result<auth::Credentials> LoadCredentials(const std::string& path, auth::Daemon daemon) {
  auto text = ReadSmallFile(path, "auth file");
  if (!text.ok()) return text.error();
  auto parsed = auth::ParseAuthFile(*text, daemon);
  if (!parsed.ok()) {
    Error e = parsed.error();
    e.message = "auth file " + path + ": " + e.message;
    return e;
  }
  return parsed;
}

std::string RealmOf(auth::Daemon daemon) {
  return daemon == auth::Daemon::kStore ? "fence-store" : "fence-lockd";
}

}  // namespace

struct AuthGuard::Metrics {
  Metrics(prometheus::Registry& registry, const std::string& prefix) {
    auto& family = prometheus::BuildCounter()
                       .Name(prefix + "_auth_refusals_total")
                       .Help("Requests refused by authentication, by reason: missing "
                             "or malformed Authorization, unknown_token (401), "
                             "forbidden (403: the role is not enough).")
                       .Register(registry);
    for (auth::Refusal r : auth::kAllRefusals) {
      by_reason[static_cast<std::size_t>(r)] =
          &family.Add({{"reason", std::string(auth::RefusalName(r))}});
    }
    auto& reloads = prometheus::BuildCounter()
                        .Name(prefix + "_auth_reloads_total")
                        .Help("Auth file re-reads on SIGHUP, by result (error: the "
                              "old credentials stay in use).")
                        .Register(registry);
    reload_ok = &reloads.Add({{"result", "ok"}});
    reload_error = &reloads.Add({{"result", "error"}});
  }
  std::array<prometheus::Counter*, auth::kAllRefusals.size()> by_reason{};
  prometheus::Counter* reload_ok = nullptr;
  prometheus::Counter* reload_error = nullptr;
};

Result<std::unique_ptr<AuthGuard>> AuthGuard::Load(const std::string& path,
                                                   auth::Daemon daemon,
                                                   prometheus::Registry& registry,
                                                   const std::string& metrics_prefix) {
  auto credentials = LoadCredentials(path, daemon);
  if (!credentials.ok()) return credentials.error();
  return std::unique_ptr<AuthGuard>(
      new AuthGuard(path, daemon, std::move(*credentials), registry, metrics_prefix));
}

AuthGuard::AuthGuard(std::string path, auth::Daemon daemon, auth::Credentials credentials,
                     prometheus::Registry& registry, const std::string& metrics_prefix)
    : path_(std::move(path)),
      daemon_(daemon),
      metrics_(std::make_unique<Metrics>(registry, metrics_prefix)),
      credentials_(std::make_shared<const auth::Credentials>(std::move(credentials))) {}

AuthGuard::~AuthGuard() {
  if (sighup_thread_.joinable()) {
    sighup_context_.stop();
    sighup_thread_.join();
  }
}

std::size_t AuthGuard::CredentialCount() const {
  std::lock_guard lock(mu_);
  return credentials_->entries.size();
}

void AuthGuard::Reload() {
  auto credentials = LoadCredentials(path_, daemon_);
  if (!credentials.ok()) {
    metrics_->reload_error->Increment();
    log::Error("auth_reload_failed",
               {{"path", path_},
                {"kept_credentials", CredentialCount()},
                {"message", credentials.error().message +
                                "; the credentials loaded before stay in use"}});
    return;
  }
  const std::size_t count = credentials->entries.size();
  {
    std::lock_guard lock(mu_);
    credentials_ = std::make_shared<const auth::Credentials>(std::move(*credentials));
  }
  metrics_->reload_ok->Increment();
  log::Info("auth_reloaded", {{"path", path_}, {"credentials", count}});
}

void AuthGuard::ReloadOnSighup() {
  sighup_.emplace(sighup_context_, SIGHUP);
  WaitForSighup();
  sighup_thread_ = std::thread([this] { sighup_context_.run(); });
}

void AuthGuard::WaitForSighup() {
  sighup_->async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    Reload();
    WaitForSighup();
  });
}

auth::Decision AuthGuard::Decide(const RequestHeader& header, auth::Role needed) const {
  std::shared_ptr<const auth::Credentials> snapshot;
  {
    std::lock_guard lock(mu_);
    snapshot = credentials_;
  }
  return auth::Authorize(*snapshot, HeaderValues(header, "Authorization"), needed);
}

std::string AuthGuard::Who(const RequestHeader& header) const {
  const auth::Decision d = Decide(header, auth::Role::kReader);
  return d.allowed() || d.refusal == auth::Refusal::kForbidden ? d.who : std::string();
}

Response AuthGuard::Refusal(const auth::Decision& d, auth::Role needed,
                            const RequestHeader& header, const Route& route) {
  const std::string reason(auth::RefusalName(*d.refusal));
  metrics_->by_reason[static_cast<std::size_t>(*d.refusal)]->Increment();
  const std::string method(FromBeast(header.method_string()));
  const std::string required(auth::RoleName(needed));
  // Never the Authorization value: the token is a secret.
  nlohmann::json fields = {{"reason", reason}, {"route", route.name},
                           {"method", method}, {"required_role", required}};
  if (!d.who.empty()) fields["who"] = d.who;
  log::Warn("auth_refused", fields);
  const std::string realm = "Bearer realm=\"" + RealmOf(daemon_) + "\"";
  if (d.refusal == auth::Refusal::kForbidden) {
    const std::string held(auth::RoleName(*d.role));
    Response r = ErrorResponse(
        http::status::forbidden, "forbidden",
        "the credential '" + d.who + "' has role " + held + "; " + method + " on this " +
            "route needs role " + required,
        {{"reason", reason}, {"role", held}, {"required_role", required}});
    r.set(http::field::www_authenticate, realm + ", error=\"insufficient_scope\"");
    return r;
  }
  std::string message;
  if (d.refusal == auth::Refusal::kMissing) {
    message = "this request needs a bearer token: send 'Authorization: Bearer "
              "<token>' with a token whose role is " + required + " or above";
  } else if (d.refusal == auth::Refusal::kMalformed) {
    message = "the Authorization header is not one 'Bearer <token>' (token "
              "characters A-Z a-z 0-9 - . _ ~ + / and '=' padding)";
  } else {
    message = "the bearer token matches no credential of this daemon's auth file";
  }
  Response r = ErrorResponse(http::status::unauthorized, "unauthorized", message,
                             {{"reason", reason}, {"required_role", required}});
  r.set(http::field::www_authenticate, d.refusal == auth::Refusal::kMissing
                                           ? realm
                                           : realm + ", error=\"invalid_token\"");
  return r;
}

std::vector<Route> AuthGuard::Protect(std::vector<Route> routes, RolePolicy policy) {
  for (Route& route : routes) {
    auto inner = std::move(route.precheck);
    // `route` moves with the vector: the wrapper keeps its own copy of what
    // it needs (the name, for logs).
    Route described;
    described.name = route.name;
    route.precheck = [this, policy, inner = std::move(inner), described](
                         const RequestHeader& header, std::string_view tail,
                         PrecheckDone done) {
      const auto needed = policy(described, header, tail);
      if (needed) {
        const auth::Decision d = Decide(header, *needed);
        if (!d.allowed()) return done(Refuse(Refusal(d, *needed, header, described)));
      }
      if (inner) return inner(header, tail, std::move(done));
      done(Admit());
    };
  }
  return routes;
}

Result<std::string> ReadTokenFile(const std::string& path) {
  auto text = ReadSmallFile(path, "token file");
  if (!text.ok()) return text.error();
  auto token = auth::ParseTokenFileText(*text);
  if (!token.ok()) {
    Error e = token.error();
    e.message = "token file " + path + ": " + e.message;
    return e;
  }
  return token;
}

Status CheckExposure(const std::string& listen, bool has_auth_file,
                     bool allow_unauthenticated) {
  auto endpoint = ParseListenAddress(listen);
  if (!endpoint.ok()) return endpoint.error();
  if (endpoint->address().is_loopback() || has_auth_file || allow_unauthenticated) {
    return OkStatus();
  }
  return MakeError("unauthenticated_exposure",
                   "--listen " + listen + " is not a loopback address and no "
                   "--auth-file is given: anyone who can reach the port could write "
                   "any token and fence every key. Give --auth-file (see "
                   "docs/security.md), or --allow-unauthenticated if the network "
                   "itself is trusted");
}

RolePolicy StoreRolePolicy() {
  return [](const Route& route, const RequestHeader& header, std::string_view tail) {
    const bool has_token = !HeaderValues(header, "Fencing-Token").empty();
    return auth::StoreRoleFor(route.name, FromBeast(header.method_string()), tail,
                              has_token);
  };
}

RolePolicy LockdRolePolicy() {
  return [](const Route& route, const RequestHeader& header, std::string_view tail) {
    return auth::LockdRoleFor(route.name, FromBeast(header.method_string()), tail);
  };
}

void AddAuthFlags(CLI::App& app, AuthFlags& flags) {
  app.add_option("--auth-file", flags.auth_file,
                 "bearer-token credentials, one 'ROLE SHA256HEX [NAME]' a line (the "
                 "SHA-256 of each token, never the token); every request but "
                 "/metrics, /healthz and /readyz then needs 'Authorization: Bearer "
                 "TOKEN' of a role that allows it (401/403 otherwise). Re-read on "
                 "SIGHUP. See docs/security.md");
  app.add_flag("--allow-unauthenticated", flags.allow_unauthenticated,
               "allow a non-loopback --listen address without --auth-file (only on a "
               "network where everyone who can connect may write any token)");
}

Result<std::unique_ptr<AuthGuard>> GuardRoutes(const AuthFlags& flags, auth::Daemon daemon,
                                               prometheus::Registry& registry,
                                               const std::string& metrics_prefix,
                                               std::vector<Route>& routes) {
  if (flags.auth_file.empty()) return std::unique_ptr<AuthGuard>();
  auto guard = AuthGuard::Load(flags.auth_file, daemon, registry, metrics_prefix);
  if (!guard.ok()) return guard.error();
  routes = (*guard)->Protect(std::move(routes), daemon == auth::Daemon::kStore
                                                    ? StoreRolePolicy()
                                                    : LockdRolePolicy());
  (*guard)->ReloadOnSighup();
  log::Info("auth_loaded", {{"path", flags.auth_file},
                            {"credentials", (*guard)->CredentialCount()}});
  return guard;
}

}  // namespace fence::net
