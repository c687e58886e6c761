// End to end: a real fence-store scraped by a real Prometheus running the
// shipped scrape config and rules, sending to a real Alertmanager running the
// shipped configuration. One fenced write must page. And the services' live
// /metrics must pass `promtool check metrics`.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <thread>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

using namespace std::chrono_literals;
namespace http = net::http;

// Polls `ready` (an HTTP check) until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return ready();
}

std::optional<net::Response> Get(const std::string& url) {
  auto res = net::Call({http::verb::get, url, {}, "", 3000ms});
  if (!res.ok()) return std::nullopt;
  return std::move(*res);
}

std::optional<nlohmann::json> GetJson(const std::string& url) {
  auto res = Get(url);
  if (!res || res->result() != http::status::ok) return std::nullopt;
  auto j = nlohmann::json::parse(res->body(), nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

bool Replace(std::string& text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  if (pos == std::string::npos) return false;
  text.replace(pos, from.size(), to);
  return true;
}

struct ThirdPartyServer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
  }
};

// Prometheus and Alertmanager cannot report a port they picked: they get a
// picked one, and are started again on another if they lose it.
ThirdPartyServer StartOnFreePort(const std::string& name,
                                 const std::function<std::vector<std::string>(int)>& argv_for,
                                 const std::string& log_path) {
  PickedPortsOptions options;
  options.name = name;
  options.command = [&](const std::vector<int>& ports) -> Result<ChildProcess::Options> {
    return ChildProcess::Options{argv_for(ports[0]), log_path, {}};
  };
  options.ready = [](const std::vector<int>& ports) {
    auto res = Get("http://127.0.0.1:" + std::to_string(ports[0]) + "/-/ready");
    return res && res->result() == http::status::ok;
  };
  options.probe_interval = 200ms;
  options.attempts = 3;
  auto server = StartOnPickedPorts(options);
  if (!server.ok()) {
    ADD_FAILURE() << server.error().message;
    return {};
  }
  return {std::move(server->process), server->ports[0]};
}

class AlertingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"prometheus", "prometheus-alertmanager", "promtool"}) {
      auto path = FindProgram(tool);
      ASSERT_TRUE(path) << tool << " not on PATH; run deploy/install-deps.sh";
      tools_[tool] = *path;
    }
  }

  // `promtool check metrics` on a service's live /metrics.
  void ExpectLiveMetricsPassPromtool(const std::string& url, const std::string& scratch) {
    auto res = Get(url);
    ASSERT_TRUE(res) << "no answer from " << url;
    ASSERT_EQ(res->result(), http::status::ok);
    ExpectPromtoolAcceptsMetrics(res->body(), scratch);
  }

  std::map<std::string, std::string> tools_;
};

TEST_F(AlertingTest, FencedWriteFiresInPrometheusAndReachesAlertmanager) {
  TempDir dir("fence-alerting");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_NE(store.port, 0);

  const std::string am_config = dir.Sub("alertmanager.yml");
  ASSERT_TRUE(WriteFile(am_config,
                        ReadFileOrEmpty(SourcePath("deploy/prometheus/alertmanager.yml"))));
  ThirdPartyServer alertmanager = StartOnFreePort(
      "alertmanager",
      [&](int port) {
        return std::vector<std::string>{
            tools_["prometheus-alertmanager"], "--config.file=" + am_config,
            "--storage.path=" + dir.Sub("alertmanager"),
            "--web.listen-address=127.0.0.1:" + std::to_string(port),
            "--cluster.listen-address="};  // empty: no gossip port, no peers
      },
      dir.Sub("alertmanager.log"));
  ASSERT_TRUE(alertmanager.process);

  // The shipped scrape config with the test's addresses and a 1 s cadence;
  // the shipped rules beside it, where rule_files expects them.
  std::string config = ReadFileOrEmpty(SourcePath("deploy/prometheus/prometheus.yml"));
  const std::string store_address = "127.0.0.1:" + std::to_string(store.port);
  // No lockd runs in this test: its scrape target is a port nobody serves.
  const auto unused_port = PickFreeLoopbackPort();
  ASSERT_TRUE(unused_port.ok()) << unused_port.error().message;
  const std::string lockd_address = "127.0.0.1:" + std::to_string(*unused_port);
  const std::string am_address = "127.0.0.1:" + std::to_string(alertmanager.port);
  ASSERT_TRUE(Replace(config, "scrape_interval: 15s", "scrape_interval: 1s"));
  ASSERT_TRUE(Replace(config, "evaluation_interval: 15s", "evaluation_interval: 1s"));
  ASSERT_TRUE(Replace(config, "scrape_timeout: 5s", "scrape_timeout: 1s"));
  ASSERT_TRUE(Replace(config, "\"127.0.0.1:9093\"", "\"" + am_address + "\""));
  ASSERT_TRUE(Replace(config, "\"127.0.0.1:8080\"", "\"" + store_address + "\""));
  ASSERT_TRUE(Replace(config, "\"127.0.0.1:8081\"", "\"" + lockd_address + "\""));
  ASSERT_TRUE(WriteFile(dir.Sub("prometheus.yml"), config));
  ASSERT_TRUE(WriteFile(dir.Sub("alerts.yml"),
                        ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts.yml"))));
  ThirdPartyServer prometheus = StartOnFreePort(
      "prometheus",
      [&](int port) {
        return std::vector<std::string>{
            tools_["prometheus"], "--config.file=" + dir.Sub("prometheus.yml"),
            "--storage.tsdb.path=" + dir.Sub("prometheus"),
            "--web.listen-address=127.0.0.1:" + std::to_string(port),
            // Alerts are sent to Alertmanager as soon as they fire.
            "--rules.alert.resend-delay=1s"};
      },
      dir.Sub("prometheus.log"));
  ASSERT_TRUE(prometheus.process);

  auto alert_state = [&](const nlohmann::json& alerts) -> std::string {
    for (const auto& a : alerts["data"]["alerts"]) {
      if (a["labels"].value("alertname", "") == "FencedWriteDetected") {
        return a.value("state", "");
      }
    }
    return "";
  };

  // The counter must be scraped at 0 before the fenced write: that first
  // sample is what lets increase() see the first fenced write.
  const std::string query =
      prometheus.Url("/api/v1/query?query=fence_store_fenced_writes_total");
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto j = GetJson(query);
        return j && (*j)["data"]["result"].size() == 1 &&
               (*j)["data"]["result"][0]["value"][1] == "0";
      },
      30s))
      << "Prometheus never scraped fence_store_fenced_writes_total at 0 from " << store_address
      << "\n" << ReadFileOrEmpty(dir.Sub("prometheus.log"));
  // A few evaluations of the quiet store: the page must not fire.
  const auto rules_url = prometheus.Url("/api/v1/rules?type=alert");
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto j = GetJson(rules_url);
        if (!j) return false;
        for (const auto& g : (*j)["data"]["groups"]) {
          for (const auto& r : g["rules"]) {
            if (r["name"] == "FencedWriteDetected" && r.value("health", "") == "ok") return true;
          }
        }
        return false;
      },
      30s));
  auto before = GetJson(prometheus.Url("/api/v1/alerts"));
  ASSERT_TRUE(before);
  EXPECT_EQ(alert_state(*before), "") << "paged before any fenced write: " << before->dump();

  // A newer leader writes with token 7, then the old one with token 3.
  auto put = [&](const char* token) {
    return Request(http::verb::put, store.Url("/v1/objects/alerting/report"),
                   {{"Fencing-Token", token}}, "payload");
  };
  ASSERT_EQ(put("7").result(), http::status::ok);
  ASSERT_EQ(put("3").result(), http::status::conflict);

  nlohmann::json last_alerts;
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto j = GetJson(prometheus.Url("/api/v1/alerts"));
        if (j) last_alerts = *j;
        return j && alert_state(*j) == "firing";
      },
      60s))
      << "FencedWriteDetected not firing in Prometheus: " << last_alerts.dump();

  nlohmann::json received;
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto j = GetJson(alertmanager.Url("/api/v2/alerts"));
        if (!j) return false;
        for (const auto& a : *j) {
          if (a["labels"].value("alertname", "") == "FencedWriteDetected") {
            received = a;
            return true;
          }
        }
        return false;
      },
      60s))
      << "Alertmanager never received FencedWriteDetected\n"
      << ReadFileOrEmpty(dir.Sub("alertmanager.log"));
  if (!received.is_null()) {
    EXPECT_EQ(received["labels"].value("severity", ""), "page");
    EXPECT_EQ(received["labels"].value("job", ""), "fence-store");
    EXPECT_EQ(received["labels"].value("instance", ""), store_address);
    EXPECT_EQ(received["annotations"].value("runbook_url", ""),
              "docs/runbook.md#fencedwritedetected");
    EXPECT_EQ(received["status"].value("state", ""), "active");
    // The shipped route sends pages to the pager receiver.
    ASSERT_FALSE(received["receivers"].empty());
    EXPECT_EQ(received["receivers"][0].value("name", ""), "on-call-pager");
  }

  prometheus.process->Stop();
  alertmanager.process->Stop();
  store.process->Stop();
}

TEST_F(AlertingTest, StoreMetricsPassPromtoolCheck) {
  TempDir dir("fence-metrics");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_NE(store.port, 0);
  // Exercise every kind of series: accepted, fenced, missing token, latency.
  Request(http::verb::put, store.Url("/v1/objects/m"), {{"Fencing-Token", "2"}}, "x");
  Request(http::verb::put, store.Url("/v1/objects/m"), {{"Fencing-Token", "1"}}, "x");
  Request(http::verb::put, store.Url("/v1/objects/m"), {}, "x");
  Request(http::verb::get, store.Url("/v1/fences/m"));
  ExpectLiveMetricsPassPromtool(store.Url("/metrics"), dir.Sub("store.prom"));
  store.process->Stop();
}

TEST_F(AlertingTest, LockdMetricsPassPromtoolCheck) {
  TempDir dir("fence-metrics");
  Daemon lockd = StartLockdWithAGrant(dir, "metrics");
  ASSERT_NE(lockd.port, 0);
  ExpectLiveMetricsPassPromtool(lockd.Url("/metrics"), dir.Sub("lockd.prom"));
  lockd.process->Stop();
}

}  // namespace
}  // namespace fence::testing
