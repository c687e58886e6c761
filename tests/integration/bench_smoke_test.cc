// The peer bench, seconds long, so that it cannot rot: every peer starts
// (Redis, PostgreSQL, etcd, nginx, fence-store, fence-lockd), every client
// runs, every figure, ratio, writes-per-sync and memory line is printed, the
// CSV parses and the plot is drawn. It asserts nothing about speed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tests/harness/daemon.h"
#include "tests/harness/external_tools.h"

namespace fence::testing {
namespace {

namespace fs = std::filesystem;

// One CSV record: cells split at commas outside double quotes.
std::vector<std::string> CsvCells(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      cells.emplace_back();
    } else {
      cells.back() += ch;
    }
  }
  return cells;
}

// The output line starting with `prefix`, or "" if none does.
std::string LineStarting(const std::string& out, const std::string& prefix) {
  for (auto at = out.find(prefix); at != std::string::npos; at = out.find(prefix, at + 1)) {
    if (at == 0 || out[at - 1] == '\n') return out.substr(at, out.find('\n', at) - at);
  }
  return "";
}

void ExpectEveryFigure(const std::string& out) {
  const char* figures[][2] = {
      {"fsync", "fio-256B-fdatasync"},  {"fenced PUT", "fence-store"},
      {"fenced PUT", "redis-lua-aof-always"}, {"fenced PUT", "postgresql-upsert"},
      {"fenced PUT", "etcd-put"},        {"fenced PUT", "etcd-txn"},
      {"PUT", "nginx-webdav"},           {"stale PUT", "fence-store"},
      {"GET", "fence-store"},            {"GET", "nginx-static"},
      {"hot-key PUT", "fence-store"},    {"hot-key PUT", "redis-lua-aof-always"},
      {"lock cycle", "fence-lockd"},     {"lock cycle", "etcd-lease-lock"},
      {"fenced PUT", "fence-store-pg-x1"}, {"fenced PUT", "fence-store-pg-x3"}};
  for (const auto& [workload, peer] : figures) {
    std::string prefix = workload;
    prefix.resize(13, ' ');
    const std::string line = LineStarting(out, prefix + peer + " ");
    EXPECT_NE(line.find("/s  p50 "), std::string::npos) << workload << " " << peer << ":\n" << out;
  }
}

void ExpectEveryRatioAndTarget(const std::string& out) {
  for (const char* ratio :
       {"store_put/redis_lua c=32 256B: ", "store_put/postgres_upsert c=32 256B: ",
        "store_put/etcd_txn c=32 256B: ", "store_put/etcd_put c=32 256B: ",
        "stale_put/nginx_get c=32 256B: ", "get/nginx_get c=32 256B: ",
        "hot_put/redis_lua_hot c=32 256B: ", "store_put/nginx_webdav_put c=32 256B: ",
        "lockd_cycle/etcd_lock_cycle c=32: ", "store_pg_x3/etcd_txn c=32 256B: ",
        "store_pg_x3/store_put c=32 256B: "}) {
    const std::string line = LineStarting(out, std::string("ratio ") + ratio);
    // Measured: a figure, never n/a, in the smoke run.
    EXPECT_NE(line.find("x ("), std::string::npos) << ratio << "\n" << out;
    if (line.find("(target") != std::string::npos) {
      EXPECT_TRUE(line.ends_with(" ok") || line.ends_with(" below")) << line;
    }
  }
  EXPECT_NE(LineStarting(out, "p99 store_put/etcd_txn c=32 256B: ").find(" ms vs "),
            std::string::npos)
      << out;
  // The store may not count its syncs yet: a figure or n/a, never missing.
  EXPECT_FALSE(LineStarting(out, "writes/sync fence-store fenced PUT c=32 256B: ").empty()) << out;
  EXPECT_FALSE(LineStarting(out, "writes/sync fence-store hot-key PUT c=32 256B: ").empty()) << out;
  EXPECT_NE(LineStarting(out, "memory fence-store 2000 of 2000 keys x 256B: VmRSS ").find("MiB"),
            std::string::npos)
      << out;
  EXPECT_FALSE(LineStarting(out, "machine: cpu ").empty()) << out;
  EXPECT_FALSE(LineStarting(out, "fsync ceiling: ").empty()) << out;
}

void ExpectCsvParses(const std::string& path) {
  std::ifstream csv(path);
  std::string header;
  std::getline(csv, header);
  const auto names = CsvCells(header);
  ASSERT_EQ(names.size(), 12u) << header;
  std::map<std::string, std::size_t> column;
  for (std::size_t i = 0; i < names.size(); ++i) column[names[i]] = i;
  int rows = 0;
  for (std::string line; std::getline(csv, line);) {
    ++rows;
    const auto cells = CsvCells(line);
    ASSERT_EQ(cells.size(), names.size()) << line;
    EXPECT_GT(std::stod(cells[column["rate_per_s"]]), 0) << line;
    // Only the stale PUTs are answered outside 2xx (409), every one of them.
    if (cells[column["workload"]] == "stale PUT") {
      EXPECT_NE(cells[column["non_2xx"]], "0") << line;
    } else {
      EXPECT_EQ(cells[column["non_2xx"]], "0") << "answers outside 2xx: " << line;
    }
    EXPECT_EQ(cells[column["errors"]], "0") << "socket errors: " << line;
  }
  EXPECT_EQ(rows, 16);  // the figures of ExpectEveryFigure
}

TEST(BenchSmokeTest, EveryPeerAndClientRunsAndEveryLineIsPrinted) {
  TempDir dir("fence-bench-smoke");
  // PostgreSQL runs as its own user and nginx's workers as nobody: both
  // must be able to reach the run directory.
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec |
                                  fs::perms::others_exec);
  const std::string out_dir = dir.Sub("run");
  const ToolRun run = RunTool({SiblingBinary("fence-bench-peers"), "--smoke", "--out", out_dir},
                              std::chrono::seconds(300));
  const std::string out = run.Output();
  ASSERT_EQ(run.exit_code, 0) << out;
  EXPECT_EQ(out.find("not measured"), std::string::npos) << out;
  ExpectEveryFigure(out);
  ExpectEveryRatioAndTarget(out);
  ExpectCsvParses(out_dir + "/bench.csv");
  std::ifstream png(out_dir + "/bench.png", std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n") << "no plot:\n" << out;
  EXPECT_TRUE(fs::exists(out_dir + "/summary.txt"));
}

}  // namespace
}  // namespace fence::testing
