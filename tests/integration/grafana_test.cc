// Grafana is not packaged in Debian, so its provisioning files are checked
// here: they parse, the dashboard takes its datasource from a variable, the
// Grafana alert rule is the Prometheus page rule, and every metric any panel,
// Grafana rule or Prometheus rule queries is really exported by a live
// fence-store or fence-lockd.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <regex>
#include <set>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

namespace http = net::http;

nlohmann::json ReadJson(const std::string& relative) {
  const std::string text = ReadFileOrEmpty(SourcePath(relative));
  auto j = nlohmann::json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << relative << " is not valid JSON";
  return j.is_discarded() ? nlohmann::json::object() : j;
}

// Our metric names in a PromQL expression. Every series we export starts
// with fence_, so a name of that shape is a metric and not a function,
// keyword or label.
std::set<std::string> MetricNames(const std::string& expr) {
  std::set<std::string> names;
  static const std::regex kName(R"(\bfence_[a-z0-9_]+)");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

// Panels may be nested in rows.
void CollectPanels(const nlohmann::json& panels, std::vector<nlohmann::json>& out) {
  for (const auto& p : panels) {
    out.push_back(p);
    if (p.contains("panels")) CollectPanels(p["panels"], out);
  }
}

struct Queries {
  std::vector<std::string> exprs;
  std::set<std::string> metrics;
};

Queries DashboardQueries() {
  Queries q;
  const auto dashboard = ReadJson("deploy/grafana/dashboards/fencing.json");
  std::vector<nlohmann::json> panels;
  CollectPanels(dashboard.value("panels", nlohmann::json::array()), panels);
  for (const auto& p : panels) {
    for (const auto& t : p.value("targets", nlohmann::json::array())) {
      q.exprs.push_back(t.value("expr", ""));
    }
  }
  const auto rules = ReadJson("deploy/grafana/provisioning/alerting/fence-alerts.json");
  for (const auto& g : rules.value("groups", nlohmann::json::array())) {
    for (const auto& r : g.value("rules", nlohmann::json::array())) {
      for (const auto& d : r.value("data", nlohmann::json::array())) {
        if (d.value("datasourceUid", "") != "__expr__") {
          q.exprs.push_back(d["model"].value("expr", ""));
        }
      }
    }
  }
  // The Prometheus rules, one `expr:` per line.
  const std::string alerts = ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts.yml"));
  static const std::regex kExpr(R"(\n\s+expr: ([^\n]+))");
  for (auto it = std::sregex_iterator(alerts.begin(), alerts.end(), kExpr);
       it != std::sregex_iterator(); ++it) {
    q.exprs.push_back((*it)[1].str());
  }
  for (const auto& e : q.exprs) {
    for (const auto& m : MetricNames(e)) q.metrics.insert(m);
  }
  return q;
}

// The names a live /metrics exposes: sample names, plus the _bucket, _sum
// and _count series of every declared histogram.
std::set<std::string> ExportedNames(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream in(exposition);
  std::string line;
  static const std::regex kType(R"(^# TYPE (\S+) (\S+))");
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ])");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kType)) {
      names.insert(m[1]);
      if (m[2] == "histogram") {
        for (const char* s : {"_bucket", "_sum", "_count"}) names.insert(m[1].str() + s);
      }
    } else if (std::regex_search(line, m, kSample)) {
      names.insert(m[1]);
    }
  }
  return names;
}

std::string LiveMetrics(const Daemon& daemon) {
  auto res = Request(http::verb::get, daemon.Url("/metrics"));
  EXPECT_EQ(res.result(), http::status::ok);
  return res.body();
}

// Every metric the dashboard and rules query under `prefix` is in
// `exported` (what the service's live /metrics has); at least 5 are.
void ExpectQueriedMetricsExported(const std::set<std::string>& exported,
                                  const std::string& prefix, const std::string& service) {
  std::size_t checked = 0;
  for (const auto& m : DashboardQueries().metrics) {
    if (m.rfind(prefix, 0) != 0) continue;
    ++checked;
    EXPECT_TRUE(exported.count(m)) << m << " is queried but " << service << " does not export it";
  }
  EXPECT_GE(checked, 5u);
}

TEST(GrafanaTest, DashboardTakesItsDatasourceFromAVariable) {
  const auto dashboard = ReadJson("deploy/grafana/dashboards/fencing.json");
  ASSERT_TRUE(dashboard.contains("templating"));
  bool has_variable = false;
  for (const auto& v : dashboard["templating"]["list"]) {
    if (v.value("type", "") == "datasource" && v.value("query", "") == "prometheus" &&
        v.value("name", "") == "datasource") {
      has_variable = true;
    }
  }
  EXPECT_TRUE(has_variable) << "need a datasource variable of type prometheus";
  EXPECT_FALSE(dashboard.value("uid", "").empty());

  std::vector<nlohmann::json> panels;
  CollectPanels(dashboard["panels"], panels);
  ASSERT_FALSE(panels.empty());
  for (const auto& p : panels) {
    if (!p.contains("targets")) continue;
    EXPECT_EQ(p["datasource"].value("uid", ""), "${datasource}") << p["title"];
    ASSERT_FALSE(p["targets"].empty()) << p["title"];
    for (const auto& t : p["targets"]) {
      EXPECT_FALSE(MetricNames(t.value("expr", "")).empty())
          << p["title"] << ": a query without one of our metrics: " << t.dump();
    }
  }
}

// The issue's list: fenced writes, writes by result, request latency, lock
// grants and expirations, the last token issued (no per-lock series: lock
// names are chosen by clients).
TEST(GrafanaTest, DashboardShowsWhatTheOnCallNeeds) {
  const auto q = DashboardQueries();
  for (const char* metric :
       {"fence_store_fenced_writes_total", "fence_store_writes_total",
        "fence_store_http_request_duration_seconds_bucket", "fence_lockd_grants_total",
        "fence_lockd_expirations_total", "fence_lockd_last_token",
        "fence_store_wal_syncs_total", "fence_store_synced_writes_total"}) {
    EXPECT_TRUE(q.metrics.count(metric)) << "no panel shows " << metric;
  }
}

TEST(GrafanaTest, GrafanaAlertRuleIsThePrometheusPageRule) {
  const auto rules = ReadJson("deploy/grafana/provisioning/alerting/fence-alerts.json");
  EXPECT_EQ(rules.value("apiVersion", 0), 1);
  ASSERT_EQ(rules["groups"].size(), 1u);
  const auto& group = rules["groups"][0];
  EXPECT_FALSE(group.value("folder", "").empty());
  ASSERT_EQ(group["rules"].size(), 1u);
  const auto& rule = group["rules"][0];
  EXPECT_EQ(rule["title"], "FencedWriteDetected");
  EXPECT_EQ(rule["labels"]["severity"], "page");
  EXPECT_EQ(rule["annotations"]["runbook_url"], "docs/runbook.md#fencedwritedetected");
  EXPECT_FALSE(rule["annotations"].value("summary", "").empty());
  EXPECT_FALSE(rule["annotations"].value("description", "").empty());
  // No data means no store to scrape: FenceStoreDown covers it, not a page
  // for a split-brain.
  EXPECT_EQ(rule["noDataState"], "OK");

  // The Prometheus datasource it queries is the provisioned one.
  const std::string datasources =
      ReadFileOrEmpty(SourcePath("deploy/grafana/provisioning/datasources/fence-prometheus.yaml"));
  std::set<std::string> ref_ids;
  std::string query, threshold_input;
  double threshold = -1;
  std::string threshold_type;
  for (const auto& d : rule["data"]) {
    ref_ids.insert(d["refId"]);
    const auto& model = d["model"];
    if (d["datasourceUid"] != "__expr__") {
      EXPECT_NE(datasources.find("uid: " + d["datasourceUid"].get<std::string>()),
                std::string::npos)
          << "datasource " << d["datasourceUid"] << " is not provisioned";
      query = model.value("expr", "");
    } else if (model.value("type", "") == "threshold") {
      threshold_input = model.value("expression", "");
      threshold_type = model["conditions"][0]["evaluator"]["type"];
      threshold = model["conditions"][0]["evaluator"]["params"][0];
    }
  }
  EXPECT_TRUE(ref_ids.count(rule["condition"])) << "condition names no query";
  EXPECT_TRUE(ref_ids.count(threshold_input));
  EXPECT_EQ(threshold_type, "gt");
  EXPECT_EQ(threshold, 0);
  // The same expression and threshold as the Prometheus page.
  const std::string alerts = ReadFileOrEmpty(SourcePath("deploy/prometheus/alerts.yml"));
  ASSERT_FALSE(query.empty());
  EXPECT_NE(alerts.find("expr: " + query + " > 0\n"), std::string::npos)
      << "Grafana queries '" << query << "' but alerts.yml pages on something else";
}

TEST(GrafanaTest, StoreMetricsQueriedAreExported) {
  TempDir dir("fence-grafana");
  Daemon store = StartDaemon("fence-store", {"--data-dir", dir.Sub("store")});
  ASSERT_NE(store.port, 0);
  Request(http::verb::put, store.Url("/v1/objects/g"), {{"Fencing-Token", "1"}}, "x");
  const auto exported = ExportedNames(LiveMetrics(store));
  ASSERT_TRUE(exported.count("fence_store_fenced_writes_total"));
  ExpectQueriedMetricsExported(exported, "fence_store_", "fence-store");
  for (const auto& m : DashboardQueries().metrics) {
    EXPECT_TRUE(m.rfind("fence_store_", 0) == 0 || m.rfind("fence_lockd_", 0) == 0)
        << m << " belongs to no service";
  }
  store.process->Stop();
}

TEST(GrafanaTest, LockdMetricsQueriedAreExported) {
  TempDir dir("fence-grafana");
  Daemon lockd = StartLockdWithAGrant(dir, "grafana");
  ASSERT_NE(lockd.port, 0);
  ExpectQueriedMetricsExported(ExportedNames(LiveMetrics(lockd)), "fence_lockd_", "fence-lockd");
  lockd.process->Stop();
}

}  // namespace
}  // namespace fence::testing
