#include "common/tls.h"

#include <CLI/CLI.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/http_server.h"
#include "common/logging.h"

namespace fence::net {

namespace ssl = boost::asio::ssl;

namespace {

Error TlsFileError(const std::string& flag, const std::string& path, const std::string& why) {
  return MakeError("bad_tls_file", flag + " " + path + ": " + why,
                   {{"flag", flag}, {"path", path}});
}

// Opening the file first gives "No such file or directory" or "Permission
// denied" in the sentence, where OpenSSL would only say "system lib".
Status CheckReadable(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) return TlsFileError(flag, path, std::string("cannot read: ") + std::strerror(errno));
  return OkStatus();
}

Status Loaded(const std::string& flag, const std::string& path, const std::string& expected,
              const boost::system::error_code& ec) {
  if (!ec) return OkStatus();
  return TlsFileError(flag, path, "is not " + expected + " (" + ec.message() + ")");
}

// The certificate (and chain) and its key, checked against each other.
Status LoadIdentity(ssl::context& context, const std::string& cert_flag,
                    const std::string& cert, const std::string& key_flag,
                    const std::string& key) {
  if (auto s = CheckReadable(cert_flag, cert); !s.ok()) return s;
  if (auto s = CheckReadable(key_flag, key); !s.ok()) return s;
  // The key first: loaded after the certificate, a key that does not match
  // it fails as "key values mismatch", which reads like a damaged file.
  boost::system::error_code ec;
  context.use_private_key_file(key, ssl::context::pem, ec);
  if (auto s = Loaded(key_flag, key, "a PEM private key (unencrypted)", ec); !s.ok()) return s;
  context.use_certificate_chain_file(cert, ec);
  if (auto s = Loaded(cert_flag, cert, "a PEM certificate", ec); !s.ok()) return s;
  if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
    ERR_clear_error();
    return TlsFileError(key_flag, key, "does not match the certificate in " + cert);
  }
  return OkStatus();
}

Status LoadCa(ssl::context& context, const std::string& flag, const std::string& path) {
  if (auto s = CheckReadable(flag, path); !s.ok()) return s;
  boost::system::error_code ec;
  context.load_verify_file(path, ec);
  return Loaded(flag, path, "a PEM CA certificate bundle", ec);
}

std::shared_ptr<ssl::context> NewContext(ssl::context::method method) {
  auto context = std::make_shared<ssl::context>(method);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  return context;
}

std::mutex default_mu;
std::shared_ptr<TlsContext> default_client;  // GUARDED_BY(default_mu)

}  // namespace

Result<std::shared_ptr<TlsContext>> MakeServerTls(const TlsServerFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return MakeError("bad_tls_file", "--tls-cert and --tls-key go together; give both or neither");
  }
  if (files.cert.empty() && !files.client_ca.empty()) {
    return MakeError("bad_tls_file",
                     "--tls-client-ca needs --tls-cert and --tls-key (client certificates "
                     "are checked only over TLS)");
  }
  auto context = NewContext(ssl::context::tls_server);
  if (auto s = LoadIdentity(*context, "--tls-cert", files.cert, "--tls-key", files.key);
      !s.ok()) {
    return s.error();
  }
  // No session tickets: nothing to resume across restarts, and a client
  // keeping a connection idle sees no unread TLS record it did not ask for.
  SSL_CTX_set_num_tickets(context->native_handle(), 0);
  if (!files.client_ca.empty()) {
    if (auto s = LoadCa(*context, "--tls-client-ca", files.client_ca); !s.ok()) {
      return s.error();
    }
    // Tells clients which CA to pick a certificate from.
    SSL_CTX_set_client_CA_list(context->native_handle(),
                               SSL_load_client_CA_file(files.client_ca.c_str()));
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

Result<std::shared_ptr<TlsContext>> MakeClientTls(const TlsClientFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return MakeError("bad_tls_file",
                     "--tls-cert and --tls-key (the client certificate) go together; give "
                     "both or neither");
  }
  auto context = NewContext(ssl::context::tls_client);
  if (files.ca.empty()) {
    boost::system::error_code ec;
    context->set_default_verify_paths(ec);
    if (ec) return MakeError("bad_tls_file", "cannot load the system trust store: " + ec.message());
  } else if (auto s = LoadCa(*context, "--tls-ca", files.ca); !s.ok()) {
    return s.error();
  }
  if (!files.cert.empty()) {
    if (auto s = LoadIdentity(*context, "--tls-cert", files.cert, "--tls-key", files.key);
        !s.ok()) {
      return s.error();
    }
  }
  context->set_verify_mode(ssl::verify_peer);
  return context;
}

void SetDefaultClientTls(std::shared_ptr<TlsContext> context) {
  std::lock_guard lock(default_mu);
  default_client = std::move(context);
}

std::shared_ptr<TlsContext> DefaultClientTls() {
  std::lock_guard lock(default_mu);
  return default_client;
}

void AddTlsServerFlags(CLI::App& app, TlsServerFlags& flags) {
  app.add_option("--tls-cert", flags.files.cert,
                 "serve HTTPS only (TLS 1.2+) with this PEM certificate chain; needs "
                 "--tls-key. Without it the daemon speaks plain HTTP");
  app.add_option("--tls-key", flags.files.key,
                 "PEM private key (unencrypted) of --tls-cert; checked against it at start");
  app.add_option("--tls-client-ca", flags.files.client_ca,
                 "require a client certificate signed by a CA in this PEM bundle; a "
                 "client without one is refused during the handshake");
  app.add_option("--tls-handshake-timeout-ms", flags.handshake_timeout_ms,
                 "a TLS handshake not finished in this time is cut (and counted in "
                 "*_tls_handshake_failures_total)")
      ->check(CLI::Range(1u, 600000u))
      ->capture_default_str();
}

Status LoadTlsServerFlags(TlsServerFlags& flags) {
  if (flags.files.cert.empty() && flags.files.key.empty() && flags.files.client_ca.empty()) {
    return OkStatus();
  }
  auto context = MakeServerTls(flags.files);
  if (!context.ok()) return context.error();
  flags.context = *context;
  log::Info("tls_enabled", {{"cert", flags.files.cert},
                            {"client_ca", flags.files.client_ca},
                            {"client_cert_required", !flags.files.client_ca.empty()},
                            {"handshake_timeout_ms", flags.handshake_timeout_ms}});
  return OkStatus();
}

void ApplyTlsServerFlags(const TlsServerFlags& flags, ServerOptions& options) {
  options.tls = flags.context;
  options.handshake_timeout = std::chrono::milliseconds(flags.handshake_timeout_ms);
}

void AddTlsClientFlags(CLI::App& app, TlsClientFiles& files) {
  app.add_option("--tls-ca", files.ca,
                 "PEM CA bundle that https:// servers' certificates must chain to (host "
                 "name or IP checked); default: the system trust store");
  app.add_option("--tls-cert", files.cert,
                 "PEM client certificate sent to https:// servers that ask for one; "
                 "needs --tls-key");
  app.add_option("--tls-key", files.key, "PEM private key of --tls-cert");
}

Status ConfigureClientTls(const TlsClientFiles& files) {
  if (files.ca.empty() && files.cert.empty() && files.key.empty()) return OkStatus();
  auto context = MakeClientTls(files);
  if (!context.ok()) return context.error();
  SetDefaultClientTls(*context);
  return OkStatus();
}

}  // namespace fence::net
