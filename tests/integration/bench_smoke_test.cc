// The peer bench, seconds long, so that it cannot rot: every peer starts
// (Redis, PostgreSQL, etcd, nginx, fence-store), every client runs, every
// figure and ratio line is printed and the CSV is written. It asserts
// nothing about speed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(BenchSmokeTest, EveryPeerAndClientRunsAndEveryRatioIsPrinted) {
  TempDir dir("fence-bench-smoke");
  // PostgreSQL runs as its own user and nginx's workers as nobody: both
  // must be able to reach the run directory.
  std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all |
                                               std::filesystem::perms::group_exec |
                                               std::filesystem::perms::others_exec);
  const ToolRun run = RunTool(
      {SiblingBinary("fence-bench-peers"), "--smoke", "--dir", dir.Sub("run")},
      std::chrono::seconds(300));
  const std::string out = run.Output();
  ASSERT_EQ(run.exit_code, 0) << out;
  EXPECT_EQ(Count(out, "not measured"), 0) << out;
  EXPECT_EQ(Count(out, " -- "), 0) << "a figure is missing:\n" << out;
  for (const char* peer : {"redis-lua-aof-always", "postgresql-upsert", "etcd-put", "etcd-txn",
                           "nginx-webdav", "nginx-static", "fio-256B-fdatasync"}) {
    EXPECT_NE(out.find(peer), std::string::npos) << peer << "\n" << out;
  }
  EXPECT_EQ(Count(out, "x\n"), 7) << "seven ratio lines:\n" << out;
  std::ifstream csv(dir.Sub("run") + "/bench.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("workload,peer,connections", 0), 0u);
  int rows = 0;
  for (std::string line; std::getline(csv, line);) {
    ++rows;
    // workload,peer,connections,body,rate,p99,mean,non_2xx,errors,note: only
    // the stale PUTs are answered outside 2xx (409), every one of them.
    std::vector<std::string> cells;
    std::stringstream in(line);
    for (std::string cell; std::getline(in, cell, ',');) cells.push_back(cell);
    ASSERT_GE(cells.size(), 9u) << line;
    if (cells[0] == "\"stale PUT\"") {
      EXPECT_NE(cells[7], "0") << line;
    } else {
      EXPECT_EQ(cells[7], "0") << "answers outside 2xx: " << line;
    }
    EXPECT_EQ(cells[8], "0") << "socket errors: " << line;
  }
  EXPECT_EQ(rows, 12);
}

}  // namespace
}  // namespace fence::testing
