// TLS on real fence-store and fence-lockd processes and in the client
// library (docs/tls.md). The test makes its own PKI with the openssl
// command in a temp dir of this process: a CA, a second CA nobody trusts,
// and certificates good, expired, for another host, and for clients. Every
// refusal in docs/tls.md's table is one test here, and each checks both
// sides: the client's error and the server's tls_handshake_failed line.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "client/store_client.h"
#include "common/http_client.h"
#include "common/process.h"
#include "common/tls.h"
#include "tests/harness/daemon.h"
#include "tests/harness/raw_socket.h"

namespace fence::testing {
namespace {

using namespace std::chrono_literals;
using net::http::verb;

// A certificate and its key, as PEM files.
struct CertFiles {
  std::string cert;
  std::string key;
};

net::HttpCall GetCall(const std::string& url) {
  net::HttpCall call;
  call.url = url;
  call.timeout = 10s;
  return call;
}

// The test's PKI, made once per test process with the openssl command.
class Pki {
 public:
  Pki() : dir_("fence-tls-test") {
    ca_ = MakeCa("ca");
    other_ca_ = MakeCa("other-ca");
    server_ = MakeCert("server", ca_, "IP:127.0.0.1,DNS:localhost", "2");
    server_other_ca_ = MakeCert("server-other-ca", other_ca_, "IP:127.0.0.1", "2");
    // -days -1: notAfter is a day before notBefore, so already expired.
    expired_ = MakeCert("expired", ca_, "IP:127.0.0.1", "-1");
    other_host_ = MakeCert("other-host", ca_, "IP:127.0.0.2,DNS:other.example", "2");
    client_ = MakeCert("client", ca_, "DNS:worker-a", "2");
    client_other_ca_ = MakeCert("client-other-ca", other_ca_, "DNS:worker-a", "2");
  }

  const CertFiles& ca() const { return ca_; }
  const CertFiles& server() const { return server_; }
  const CertFiles& server_other_ca() const { return server_other_ca_; }
  const CertFiles& expired() const { return expired_; }
  const CertFiles& other_host() const { return other_host_; }
  const CertFiles& client() const { return client_; }
  const CertFiles& client_other_ca() const { return client_other_ca_; }
  std::string Path(const std::string& name) const { return dir_.Sub(name); }

 private:
  void OpenSsl(std::vector<std::string> args) {
    const auto openssl = FindProgram("openssl");
    ASSERT_TRUE(openssl) << "the openssl command is needed (deploy/install-deps.sh)";
    args.insert(args.begin(), *openssl);
    ChildProcess::Options options;
    options.argv = std::move(args);
    auto run = RunToCompletion(std::move(options), Millis(30000));
    ASSERT_TRUE(run.ok()) << run.error().message;
    ASSERT_EQ(run->exit_code, 0) << run->Output();
  }

  CertFiles MakeCa(const std::string& name) {
    CertFiles ca{Path(name + ".pem"), Path(name + ".key")};
    OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ca.key, "-out", ca.cert, "-subj", "/CN=fence test " + name, "-days",
             "2"});
    return ca;
  }

  CertFiles MakeCert(const std::string& name, const CertFiles& ca, const std::string& san,
                     const std::string& days) {
    CertFiles out{Path(name + ".pem"), Path(name + ".key")};
    const std::string csr = Path(name + ".csr");
    const std::string ext = Path(name + ".ext");
    std::ofstream(ext) << "subjectAltName=" << san << "\n";
    OpenSsl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             out.key, "-out", csr, "-subj", "/CN=" + name});
    OpenSsl({"x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
             "-days", days, "-extfile", ext, "-out", out.cert});
    return out;
  }

  TempDir dir_;
  CertFiles ca_, other_ca_, server_, server_other_ca_, expired_, other_host_, client_,
      client_other_ca_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new Pki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // fence-store serving TLS with `identity`, plus `extra` flags.
  Daemon StartStore(const CertFiles& identity, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--data-dir", data_.Sub("store-" + std::to_string(++stores_)),
                                  "--tls-cert", identity.cert, "--tls-key", identity.key};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartDaemon("fence-store", args);
  }

  static std::string Https(const Daemon& daemon, const std::string& path) {
    return "https://127.0.0.1:" + std::to_string(daemon.port) + path;
  }

  static std::shared_ptr<net::TlsContext> ClientTls(const std::string& ca,
                                                    const CertFiles* identity = nullptr) {
    auto context = net::MakeClientTls(
        {ca, identity ? identity->cert : "", identity ? identity->key : ""});
    EXPECT_TRUE(context.ok()) << context.error().message;
    return context.ok() ? *context : nullptr;
  }

  static Result<net::Response> Get(const std::shared_ptr<net::TlsContext>& tls,
                                   const std::string& url) {
    net::HttpClient client(tls);
    return client.Call(GetCall(url));
  }

  // Waits for the server's tls_handshake_failed line and returns it.
  static std::string HandshakeFailureLogged(const Daemon& daemon) {
    auto line = daemon.process->WaitForLine(
        [](std::string_view l) { return l.find("\"tls_handshake_failed\"") != l.npos; }, 10s);
    EXPECT_TRUE(line) << "no tls_handshake_failed line; output:\n"
                      << daemon.process->OutputTail();
    return line.value_or("");
  }

  // The client refused or was refused: a transport error naming TLS.
  static void ExpectTlsRefusal(const Result<net::Response>& answer, const std::string& why) {
    ASSERT_FALSE(answer.ok()) << "expected a TLS refusal, got HTTP " << answer->result_int();
    EXPECT_EQ(answer.error().code, "unreachable");
    EXPECT_NE(answer.error().message.find(why), std::string::npos) << answer.error().message;
    EXPECT_TRUE(answer.error().details.contains("tls_error")) << answer.error().details.dump();
  }

  static Pki* pki_;
  TempDir data_{"fence-tls-data"};
  int stores_ = 0;
};

Pki* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, FencedWriteOverTls) {
  Daemon store = StartStore(pki_->server());
  ASSERT_NE(store.port, 0);
  client::StoreClient client(Https(store, ""), 10s, ClientTls(pki_->ca().cert));
  auto first = client.Put("tls-key", "from leader 7", Token(7));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_TRUE(first->accepted());
  auto stale = client.Put("tls-key", "from old leader 6", Token(6));
  ASSERT_TRUE(stale.ok()) << stale.error().message;
  EXPECT_TRUE(stale->stale()) << "a lower token must be refused over TLS too";
  auto read = client.Get("tls-key");
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->body, "from leader 7");
}

TEST_F(TlsTest, LockdGrantsOverTls) {
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", data_.Sub("lockd"), "--tls-cert",
                                             pki_->server().cert, "--tls-key",
                                             pki_->server().key});
  ASSERT_NE(lockd.port, 0);
  net::HttpClient client(ClientTls(pki_->ca().cert));
  auto call = net::JsonCall(verb::post, Https(lockd, "/v1/locks/job/acquire"),
                            {{"owner", "A"}, {"ttl_ms", 5000}, {"wait_ms", 0}});
  auto grant = client.Call(call);
  ASSERT_TRUE(grant.ok()) << grant.error().message;
  EXPECT_EQ(grant->result_int(), 200) << grant->body();
  EXPECT_TRUE(nlohmann::json::parse(grant->body()).contains("token")) << grant->body();
}

TEST_F(TlsTest, ServerCertFromAnotherCaIsRefusedByTheClient) {
  Daemon store = StartStore(pki_->server_other_ca());
  ASSERT_NE(store.port, 0);
  ExpectTlsRefusal(Get(ClientTls(pki_->ca().cert), Https(store, "/healthz")),
                   "unable to get local issuer certificate");
  HandshakeFailureLogged(store);
}

TEST_F(TlsTest, ExpiredServerCertIsRefusedByTheClient) {
  Daemon store = StartStore(pki_->expired());
  ASSERT_NE(store.port, 0);
  ExpectTlsRefusal(Get(ClientTls(pki_->ca().cert), Https(store, "/healthz")),
                   "certificate has expired");
}

TEST_F(TlsTest, CertForAnotherHostIsRefusedByTheClient) {
  Daemon store = StartStore(pki_->other_host());
  ASSERT_NE(store.port, 0);
  const auto tls = ClientTls(pki_->ca().cert);
  ExpectTlsRefusal(Get(tls, Https(store, "/healthz")), "IP address mismatch");
  // By name: the certificate names other.example, not localhost.
  ExpectTlsRefusal(Get(tls, "https://localhost:" + std::to_string(store.port) + "/healthz"),
                   "hostname mismatch");
}

TEST_F(TlsTest, PlainHttpToTlsPortIsRefusedAndServerStaysUp) {
  Daemon store = StartStore(pki_->server());
  ASSERT_NE(store.port, 0);
  net::HttpClient plain(nullptr);
  auto answer = plain.Call(GetCall(store.Url("/healthz")));
  EXPECT_FALSE(answer.ok() && answer->result_int() == 200)
      << "plain HTTP must not be served on a TLS port";
  EXPECT_NE(HandshakeFailureLogged(store).find("http request"), std::string::npos);
  auto after = Get(ClientTls(pki_->ca().cert), Https(store, "/metrics"));
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->result_int(), 200);
  EXPECT_NE(after->body().find("fence_store_tls_handshake_failures_total{cause=\"error\"} 1"),
            std::string::npos)
      << after->body();
}

TEST_F(TlsTest, ClientCertificateRequiredWhenAsked) {
  Daemon store = StartStore(pki_->server(), {"--tls-client-ca", pki_->ca().cert});
  ASSERT_NE(store.port, 0);
  const std::string url = Https(store, "/healthz");
  auto with_cert = Get(ClientTls(pki_->ca().cert, &pki_->client()), url);
  ASSERT_TRUE(with_cert.ok()) << with_cert.error().message;
  EXPECT_EQ(with_cert->result_int(), 200);

  // TLS 1.3: the client's handshake ends before the server checks its
  // certificate, so the refusal arrives as the server's alert on the read.
  auto without = Get(ClientTls(pki_->ca().cert), url);
  ExpectTlsRefusal(without, "certificate required");
  EXPECT_NE(HandshakeFailureLogged(store).find("peer did not return a certificate"),
            std::string::npos);
}

TEST_F(TlsTest, ClientCertificateFromAnotherCaIsRefused) {
  Daemon store = StartStore(pki_->server(), {"--tls-client-ca", pki_->ca().cert});
  ASSERT_NE(store.port, 0);
  auto answer = Get(ClientTls(pki_->ca().cert, &pki_->client_other_ca()),
                    Https(store, "/healthz"));
  ExpectTlsRefusal(answer, "unknown ca");
  EXPECT_NE(HandshakeFailureLogged(store).find("certificate verify failed"), std::string::npos);
}

TEST_F(TlsTest, StalledHandshakeIsCutAndOthersAreServed) {
  Daemon store = StartStore(pki_->server(), {"--tls-handshake-timeout-ms", "500"});
  ASSERT_NE(store.port, 0);
  RawConnection silent(store.port);  // connects and never says a word
  ASSERT_TRUE(silent.connected());
  auto meanwhile = Get(ClientTls(pki_->ca().cert), Https(store, "/healthz"));
  ASSERT_TRUE(meanwhile.ok()) << meanwhile.error().message;
  EXPECT_EQ(meanwhile->result_int(), 200);
  EXPECT_TRUE(silent.HungUpWithin(10s)) << "the stalled handshake was never cut";
  EXPECT_NE(HandshakeFailureLogged(store).find("no handshake within 500 ms"), std::string::npos);
  auto metrics = Get(ClientTls(pki_->ca().cert), Https(store, "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.error().message;
  EXPECT_NE(metrics->body().find("fence_store_tls_handshake_failures_total{cause=\"timeout\"} 1"),
            std::string::npos)
      << metrics->body();
}

// Starts fence-store with `args` and expects it to refuse at start (exit 1)
// with `sentence` in its output.
void ExpectStartRefused(std::vector<std::string> args, const std::string& sentence) {
  args.insert(args.begin(), SiblingBinary("fence-store"));
  ChildProcess::Options options;
  options.argv = std::move(args);
  auto run = RunToCompletion(std::move(options), Millis(20000));
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->exit_code, 1) << run->Output();
  EXPECT_NE(run->Output().find(sentence), std::string::npos) << run->Output();
}

TEST_F(TlsTest, BadTlsFilesAreRefusedAtStart) {
  const std::string dir = data_.Sub("refused");
  const auto& server = pki_->server();
  ExpectStartRefused({"--data-dir", dir, "--tls-cert", pki_->Path("missing.pem"), "--tls-key",
                      server.key},
                     "--tls-cert " + pki_->Path("missing.pem") +
                         ": cannot read: No such file or directory");
  // A key file given as the certificate: not a certificate.
  ExpectStartRefused({"--data-dir", dir, "--tls-cert", server.key, "--tls-key", server.key},
                     "is not a PEM certificate");
  ExpectStartRefused({"--data-dir", dir, "--tls-cert", server.cert, "--tls-key",
                      pki_->client().key},
                     "--tls-key " + pki_->client().key + ": does not match the certificate");
  ExpectStartRefused({"--data-dir", dir, "--tls-cert", server.cert},
                     "--tls-cert and --tls-key go together");
}

}  // namespace
}  // namespace fence::testing
