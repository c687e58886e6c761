// TLS for both daemons and every client (docs/tls.md): OpenSSL contexts
// built from PEM files that are checked at start, so a daemon with a missing
// file, an unreadable one or a key that does not match its certificate
// refuses to start with a sentence naming the file, instead of failing every
// handshake later. TLS 1.2 is the lowest version either side speaks.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace CLI {
class App;
}  // namespace CLI

namespace fence::net {

struct ServerOptions;
using TlsContext = boost::asio::ssl::context;

struct TlsServerFiles {
  std::string cert;       // PEM chain: the server's certificate first
  std::string key;        // PEM private key of that certificate
  std::string client_ca;  // empty: no client certificate asked for
};

// The server context: certificate and key checked against each other; with
// client_ca, a client without a certificate signed by that CA is refused
// during the handshake.
Result<std::shared_ptr<TlsContext>> MakeServerTls(const TlsServerFiles& files);

struct TlsClientFiles {
  std::string ca;    // PEM CA bundle to verify servers; empty: the system's
  std::string cert;  // optional client certificate (with key)
  std::string key;
};

// The client context: the server's chain is always verified (against `ca`,
// or the system trust store when it is empty); the host name or IP address
// is checked per connection (VerifyServerName in http_client.cc).
Result<std::shared_ptr<TlsContext>> MakeClientTls(const TlsClientFiles& files);

// The context every HttpClient made afterwards uses for https:// URLs (one
// per process, set by a main before it starts any thread); nullptr until
// set, in which case https:// verifies against the system trust store.
void SetDefaultClientTls(std::shared_ptr<TlsContext> context);
std::shared_ptr<TlsContext> DefaultClientTls();

// --tls-cert, --tls-key, --tls-client-ca, --tls-handshake-timeout-ms: the
// flags of both daemons.
struct TlsServerFlags {
  TlsServerFiles files;
  unsigned handshake_timeout_ms = 10000;
  std::shared_ptr<TlsContext> context;  // set by LoadTlsServerFlags
};
void AddTlsServerFlags(CLI::App& app, TlsServerFlags& flags);
// With --tls-cert: builds `context` from the files (a bad file is an Error
// naming the flag and the file) and logs tls_enabled. Call it at start,
// before anything else is opened.
Status LoadTlsServerFlags(TlsServerFlags& flags);
// Hands the loaded context and the handshake timeout to the server; plain
// HTTP when no context was loaded.
void ApplyTlsServerFlags(const TlsServerFlags& flags, ServerOptions& options);

// --tls-ca, --tls-cert, --tls-key: the flags of the worker and the demo.
void AddTlsClientFlags(CLI::App& app, TlsClientFiles& files);
// Builds the client context from the flags (when any is given) and makes
// it the process default.
Status ConfigureClientTls(const TlsClientFiles& files);

}  // namespace fence::net
