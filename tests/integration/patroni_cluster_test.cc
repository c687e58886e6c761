// PatroniCluster starts a real primary and synchronous standby under Patroni
// on etcd; at the SQL level (psql through the multi-host URI, no fence-store)
// a SIGKILLed primary postmaster is replaced by the standby, every insert
// acknowledged before or after the kill is on the new primary, and Stop
// leaves no PostgreSQL or Patroni process behind.
#include "tools/services/patroni_cluster.h"

#include <gtest/gtest.h>
#include <signal.h>

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
using std::chrono::steady_clock;

constexpr int kRowsBefore = 20;
constexpr int kRowsAfter = 10;
constexpr auto kLoadLimit = std::chrono::seconds(40);

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

TEST(PatroniClusterTest, StandbyTakesOverWithEveryAcknowledgedInsert) {
  TempDir dir("fence-patroni");
  tools::PatroniOptions options;
  options.dir = dir.path();
  auto cluster = tools::PatroniCluster::Launch(options);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  tools::PatroniCluster& c = **cluster;
  auto leader = c.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.error().message;
  ASSERT_EQ(*leader, 0);
  EXPECT_TRUE(c.NodeAnswers(1, "/sync"));
  ASSERT_EQ(Psql(c, "CREATE TABLE t (k int PRIMARY KEY)").exit_code, 0);
  std::set<int> acknowledged;
  for (int k = 0; k < kRowsBefore; ++k) {
    ASSERT_EQ(Psql(c, "INSERT INTO t VALUES (" + std::to_string(k) + ")").exit_code, 0);
    acknowledged.insert(k);
  }
  auto postmaster = c.PostmasterPid(0);
  ASSERT_TRUE(postmaster.ok()) << postmaster.error().message;
  ASSERT_EQ(kill(*postmaster, SIGKILL), 0);
  const auto killed = steady_clock::now();
  // Bounded: kRowsAfter acknowledged inserts or kLoadLimit, whichever first.
  int k = kRowsBefore;
  int after = 0;
  while (after < kRowsAfter && steady_clock::now() - killed < kLoadLimit) {
    if (Psql(c, "INSERT INTO t VALUES (" + std::to_string(k) + ")").exit_code == 0) {
      acknowledged.insert(k);
      ++after;
    }
    ++k;
  }
  ASSERT_EQ(after, kRowsAfter) << "no write was acknowledged within 40 s of the kill";
  auto promoted = c.LeaderIndex();
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  EXPECT_EQ(*promoted, 1);
  const std::set<int> stored = StoredRows(c);
  for (int row : acknowledged) EXPECT_EQ(stored.count(row), 1u) << "acknowledged row lost: " << row;

  std::vector<pid_t> pids = {c.nodes()[0].patroni->pid(), c.nodes()[1].patroni->pid()};
  for (int i = 0; i < 2; ++i) {
    if (auto pm = c.PostmasterPid(i); pm.ok()) pids.push_back(*pm);
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
