// TLS on real fence-store and fence-lockd processes and in the client
// library (docs/tls.md). The test makes its own PKI with the openssl
// command in a temp dir of this process: a CA, a second CA nobody trusts,
// and certificates good, expired, for another host, and for clients. Every
// refusal in docs/tls.md's table is one test here, and each checks both
// sides: the client's error and the server's tls_handshake_failed line.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "client/store_client.h"
#include "common/http_client.h"
#include "common/process.h"
#include "common/tls.h"
#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"
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

// The whole path over mutual TLS: a real fence-worker takes the lock from
// fence-lockd and writes to fence-store, both of which require a client
// certificate, with https:// URLs and --tls-ca/--tls-cert/--tls-key.
TEST_F(TlsTest, WorkerElectsAndWritesOverMutualTls) {
  const std::vector<std::string> mutual = {"--tls-cert", pki_->server().cert, "--tls-key",
                                           pki_->server().key, "--tls-client-ca",
                                           pki_->ca().cert};
  std::vector<std::string> lockd_args{"--data-dir", data_.Sub("lockd")};
  lockd_args.insert(lockd_args.end(), mutual.begin(), mutual.end());
  Daemon lockd = StartDaemon("fence-lockd", lockd_args);
  Daemon store = StartStore(pki_->server(), {"--tls-client-ca", pki_->ca().cert});
  ASSERT_NE(lockd.port, 0);
  ASSERT_NE(store.port, 0);
  ChildProcess::Options worker;
  worker.argv = {SiblingBinary("fence-worker"), "--id", "A", "--backend", "lockd",
                 "--lock-endpoints", Https(lockd, ""), "--lock", "job", "--store",
                 Https(store, ""), "--key", "tls/result", "--terms", "1",
                 "--acquire-timeout-ms", "20000", "--tls-ca", pki_->ca().cert, "--tls-cert",
                 pki_->client().cert, "--tls-key", pki_->client().key};
  auto run = RunToCompletion(std::move(worker), Millis(60000));
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->exit_code, 0) << run->Output();
  EXPECT_NE(run->Output().find("\"write_done\""), std::string::npos) << run->Output();
  client::StoreClient reader(Https(store, ""), 10s, ClientTls(pki_->ca().cert, &pki_->client()));
  auto fence = reader.GetFence("tls/result");
  ASSERT_TRUE(fence.ok()) << fence.error().message;
  EXPECT_GT(fence->highest_token.value(), 0u);
}

// Replaces every `from` in `text`; false if there was none.
bool ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  bool found = false;
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
    found = true;
  }
  return found;
}

// The shipped deploy/prometheus/prometheus-tls.yml with the test's files,
// addresses and a 1 s cadence.
std::string PrometheusTlsConfig(const Pki& pki, const Daemon& store, const Daemon& lockd) {
  std::string config = ReadFileOrEmpty(SourcePath("deploy/prometheus/prometheus-tls.yml"));
  EXPECT_TRUE(ReplaceAll(config, "/etc/fence/tls/ca.pem", pki.ca().cert));
  EXPECT_TRUE(ReplaceAll(config, "/etc/fence/tls/prometheus.pem", pki.client().cert));
  EXPECT_TRUE(ReplaceAll(config, "/etc/fence/tls/prometheus.key", pki.client().key));
  EXPECT_TRUE(ReplaceAll(config, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(store.port)));
  EXPECT_TRUE(ReplaceAll(config, "127.0.0.1:8081", "127.0.0.1:" + std::to_string(lockd.port)));
  EXPECT_TRUE(ReplaceAll(config, "scrape_interval: 15s", "scrape_interval: 1s"));
  EXPECT_TRUE(ReplaceAll(config, "scrape_timeout: 5s", "scrape_timeout: 1s"));
  return config;
}

// Prometheus's value of up{job=`job`}, or "" before its first scrape.
std::string UpOf(int prometheus_port, const std::string& job) {
  auto answer = net::Call(GetCall("http://127.0.0.1:" + std::to_string(prometheus_port) +
                                  "/api/v1/query?query=up%7Bjob%3D%22" + job + "%22%7D"));
  if (!answer.ok()) return "";
  auto json = nlohmann::json::parse(answer->body(), nullptr, false);
  if (json.is_discarded() || json["data"]["result"].size() != 1) return "";
  return json["data"]["result"][0]["value"][1].get<std::string>();
}

// The documented scrape config, for real: promtool accepts it, and
// Prometheus scrapes both daemons while they require a client certificate.
TEST_F(TlsTest, PrometheusScrapesBothDaemonsOverMutualTls) {
  const auto prometheus = FindProgram("prometheus");
  const auto promtool = FindProgram("promtool");
  ASSERT_TRUE(prometheus && promtool) << "prometheus and promtool: run deploy/install-deps.sh";
  const std::vector<std::string> mutual = {"--tls-client-ca", pki_->ca().cert};
  Daemon store = StartStore(pki_->server(), mutual);
  Daemon lockd = StartDaemon("fence-lockd", {"--data-dir", data_.Sub("lockd"), "--tls-cert",
                                             pki_->server().cert, "--tls-key",
                                             pki_->server().key, "--tls-client-ca",
                                             pki_->ca().cert});
  ASSERT_NE(store.port, 0);
  ASSERT_NE(lockd.port, 0);
  const std::string dir = data_.Sub("prometheus");
  ASSERT_TRUE(WriteFile(data_.Sub("prometheus.yml"), PrometheusTlsConfig(*pki_, store, lockd)));
  ASSERT_TRUE(WriteFile(data_.Sub("alerts.yml"),
                        ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts.yml"))));
  ChildProcess::Options check;
  check.argv = {*promtool, "check", "config", data_.Sub("prometheus.yml")};
  auto checked = RunToCompletion(std::move(check), Millis(30000));
  ASSERT_TRUE(checked.ok()) << checked.error().message;
  ASSERT_EQ(checked->exit_code, 0) << checked->Output();

  PickedPortsOptions options;
  options.name = "prometheus";
  options.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    ChildProcess::Options start;
    start.argv = {*prometheus, "--config.file=" + data_.Sub("prometheus.yml"),
                  "--storage.tsdb.path=" + dir,
                  "--web.listen-address=127.0.0.1:" + std::to_string(ports[0])};
    start.log_path = data_.Sub("prometheus.log");
    return start;
  };
  options.ready = [](const std::vector<int>& ports) {
    auto ready = net::Call(GetCall("http://127.0.0.1:" + std::to_string(ports[0]) + "/-/ready"));
    return ready.ok() && ready->result_int() == 200;
  };
  auto server = StartOnPickedPorts(options);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  // Polling Prometheus's API: a scrape has no event the test can wait on.
  while ((UpOf(server->ports[0], "fence-store") != "1" ||
          UpOf(server->ports[0], "fence-lockd") != "1") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(UpOf(server->ports[0], "fence-store"), "1")
      << ReadFileOrEmpty(data_.Sub("prometheus.log"));
  EXPECT_EQ(UpOf(server->ports[0], "fence-lockd"), "1");
}

// `openssl s_client` against `daemon` with `version_flags`; its run.
CommandResult SClient(const Daemon& daemon, std::vector<std::string> version_flags,
                      const std::string& ca) {
  const auto openssl = FindProgram("openssl");
  EXPECT_TRUE(openssl);
  ChildProcess::Options options;
  options.argv = {openssl.value_or("openssl"), "s_client", "-connect",
                  "127.0.0.1:" + std::to_string(daemon.port), "-CAfile", ca};
  options.argv.insert(options.argv.end(), version_flags.begin(), version_flags.end());
  auto run = RunToCompletion(std::move(options), Millis(20000));
  EXPECT_TRUE(run.ok()) << run.error().message;
  return run.ok() ? *run : CommandResult{};
}

// TLS 1.2 is the floor: a TLS 1.1 client (its own security level lowered so
// that it offers 1.1 at all) is refused, a 1.2 client is served.
TEST_F(TlsTest, TlsBelowOnePointTwoIsRefused) {
  Daemon store = StartStore(pki_->server());
  ASSERT_NE(store.port, 0);
  const auto old = SClient(store, {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"}, pki_->ca().cert);
  EXPECT_NE(old.exit_code, 0) << old.Output();
  EXPECT_NE(old.Output().find("alert protocol version"), std::string::npos) << old.Output();
  EXPECT_NE(HandshakeFailureLogged(store).find("unsupported protocol"), std::string::npos);
  const auto current = SClient(store, {"-tls1_2"}, pki_->ca().cert);
  EXPECT_EQ(current.exit_code, 0) << current.Output();
  EXPECT_NE(current.Output().find("Verify return code: 0 (ok)"), std::string::npos)
      << current.Output();
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
