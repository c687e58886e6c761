// PatroniCluster starts a real primary and synchronous standby under Patroni
// on etcd: at the SQL level (psql, no fence-store) the multi-host URI reaches
// the primary, an acknowledged insert is on the standby too, and Stop leaves
// no PostgreSQL or Patroni process behind. The failover itself, under
// fence-store load, is patroni_failover_test.
#include "tools/services/patroni_cluster.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

using std::chrono::milliseconds;

constexpr int kRows = 20;

ToolRun Psql(const tools::PatroniCluster& cluster, const std::string& sql) {
  return RunTool({"/usr/bin/psql", cluster.LibpqUri(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql},
                 milliseconds(10000));
}

// Gone, or a zombie nobody reaps (its parent was killed): either way it
// runs no code and holds no port.
bool ProcessRuns(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

std::set<int> StoredRows(const tools::PatroniCluster& cluster) {
  std::set<int> rows;
  const ToolRun read = Psql(cluster, "SELECT k FROM t");
  EXPECT_EQ(read.exit_code, 0) << read.Output();
  for (const std::string& line : read.lines) {
    if (!line.empty()) rows.insert(std::stoi(line));
  }
  return rows;
}

TEST(PatroniClusterTest, PrimaryAndSyncStandbyServeTheMultiHostUriAndStopCompletely) {
  TempDir dir("fence-patroni");
  tools::PatroniOptions options;
  options.dir = dir.path();
  auto cluster = tools::PatroniCluster::Launch(options);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  tools::PatroniCluster& c = **cluster;
  auto leader = c.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.error().message;
  EXPECT_EQ(*leader, 0);
  EXPECT_TRUE(c.NodeAnswers(1, "/sync"));
  EXPECT_FALSE(c.NodeAnswers(1, "/primary"));
  // The URI lists the standby too: libpq must skip it for the read-write node.
  ASSERT_EQ(Psql(c, "CREATE TABLE t (k int PRIMARY KEY)").exit_code, 0);
  for (int k = 0; k < kRows; ++k) {
    ASSERT_EQ(Psql(c, "INSERT INTO t VALUES (" + std::to_string(k) + ")").exit_code, 0);
  }
  EXPECT_EQ(StoredRows(c).size(), static_cast<std::size_t>(kRows));
  // Acknowledged means on the standby too (synchronous_commit on, strict).
  const ToolRun standby = RunTool({"/usr/bin/psql", "postgresql://postgres@127.0.0.1:" +
                                   std::to_string(c.nodes()[1].pg_port) + "/postgres",
                                   "-qAtc", "SELECT count(*) FROM t"},
                                  milliseconds(10000));
  ASSERT_EQ(standby.exit_code, 0) << standby.Output();
  ASSERT_FALSE(standby.lines.empty());
  EXPECT_EQ(standby.lines.front(), std::to_string(kRows));

  std::vector<pid_t> pids = {c.nodes()[0].patroni->pid(), c.nodes()[1].patroni->pid()};
  for (int i = 0; i < 2; ++i) {
    auto pm = c.PostmasterPid(i);
    ASSERT_TRUE(pm.ok()) << pm.error().message;
    pids.push_back(*pm);
  }
  c.Stop();
  for (pid_t pid : pids) EXPECT_FALSE(ProcessRuns(pid)) << "pid " << pid << " outlived Stop";
}

TEST(PatroniClusterTest, RefusesTimingsPatroniForbids) {
  tools::PatroniOptions options;
  options.dir = "/tmp";
  options.timing = {5, 1, 3};  // 1 + 2 * 3 > 5
  auto refused = tools::PatroniCluster::Launch(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "bad_request");
  EXPECT_NE(refused.error().message.find("loop_wait + 2 * retry_timeout <= ttl"),
            std::string::npos)
      << refused.error().message;
}

}  // namespace
}  // namespace fence::testing
