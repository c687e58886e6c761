// The peer bench reads each client's own report; these are the shapes those
// clients print (wrk 4.1, redis-benchmark 7.0 --csv, pgbench 15, fio 3.33,
// a Prometheus exposition). Then what it prints from them: the ratio lines
// with their targets, writes per WAL sync, the memory line.
#include <gtest/gtest.h>

#include <vector>

#include "tools/bench/load.h"
#include "tools/bench/report.h"

namespace fence::tools::bench {
namespace {

constexpr const char* kWrk = R"(Running 1s test @ http://127.0.0.1:40000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.61ms    2.10ms  30.52ms   81.23%
    Req/Sec     3.49k   288.54     4.00k    65.00%
  Latency Distribution
     50%    4.20ms
     75%    5.30ms
     90%    7.01ms
     99%   12.50ms
  6952 requests in 1.00s, 1.10MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 6952
Requests/sec:   6935.21
Transfer/sec:      1.10MB
)";

TEST(ParseWrkTest, ReadsRateTailNon2xxAndErrors) {
  auto m = ParseWrk(kWrk);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_DOUBLE_EQ(m->rate, 6935.21);
  ASSERT_TRUE(m->p50_ms);
  EXPECT_DOUBLE_EQ(*m->p50_ms, 4.2);
  ASSERT_TRUE(m->p99_ms);
  EXPECT_DOUBLE_EQ(*m->p99_ms, 12.5);
  EXPECT_DOUBLE_EQ(*m->mean_ms, 4.61);
  EXPECT_EQ(m->non_2xx, 6952);
  EXPECT_EQ(m->errors, 6);
}

TEST(ParseWrkTest, ConvertsMicrosecondsAndSeconds) {
  auto m = ParseWrk("    Latency   812.00us  1.00ms\n     99%    1.20s\nRequests/sec: 10\n");
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(*m->mean_ms, 0.812);
  EXPECT_DOUBLE_EQ(*m->p99_ms, 1200);
}

TEST(ParseWrkTest, NoRateIsAnError) {
  auto m = ParseWrk("unable to connect to 127.0.0.1:1 Connection refused\n");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "bad_output");
}

TEST(ParseRedisBenchmarkTest, ReadsTheCsvRow) {
  auto m = ParseRedisBenchmarkCsv(
      "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\","
      "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n"
      "\"EVALSHA abc 2 fence:__rand_int__\",\"5587.80\",\"5.671\",\"0.808\",\"5.031\","
      "\"9.143\",\"17.791\",\"30.111\"\n");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_DOUBLE_EQ(m->rate, 5587.80);
  EXPECT_DOUBLE_EQ(*m->mean_ms, 5.671);
  EXPECT_DOUBLE_EQ(*m->p50_ms, 5.031);
  EXPECT_DOUBLE_EQ(*m->p99_ms, 17.791);
  EXPECT_FALSE(ParseRedisBenchmarkCsv("Could not connect to Redis").ok());
}

TEST(ParsePgbenchTest, ReadsTpsLatencyAndFailures) {
  auto m = ParsePgbench(
      "number of transactions actually processed: 9380\n"
      "number of failed transactions: 2 (0.021%)\n"
      "latency average = 3.402 ms\n"
      "initial connection time = 20.118 ms\n"
      "tps = 9380.551020 (without initial connection time)\n");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_DOUBLE_EQ(m->rate, 9380.551020);
  EXPECT_DOUBLE_EQ(*m->mean_ms, 3.402);
  EXPECT_EQ(m->errors, 2);
  EXPECT_FALSE(m->p99_ms);
  EXPECT_FALSE(ParsePgbench("pgbench: error: connection refused").ok());
}

TEST(ParseFioTest, ReadsWriteIopsAfterNotes) {
  auto m = ParseFioJson(
      "note: both iodepth >= 1 and synchronous I/O engine are selected\n"
      R"({"jobs":[{"write":{"iops":711.5,"clat_ns":{"mean":1400000.0}}}]})");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_DOUBLE_EQ(m->rate, 711.5);
  EXPECT_DOUBLE_EQ(*m->mean_ms, 1.4);
  EXPECT_FALSE(ParseFioJson(R"({"jobs":[]})").ok());
}

TEST(ParseFioTest, TakesTheSyncLatencyWhenThereIsOne) {
  auto m = ParseFioJson(
      R"({"jobs":[{"write":{"iops":361,"clat_ns":{"mean":9000.0,)"
      R"("percentile":{"50.000000":8000,"99.000000":25000}}},)"
      R"("sync":{"lat_ns":{"mean":2700000.0,)"
      R"("percentile":{"50.000000":2000000,"99.000000":12000000}}}}]})");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_DOUBLE_EQ(m->rate, 361);
  EXPECT_DOUBLE_EQ(*m->mean_ms, 2.7);
  EXPECT_DOUBLE_EQ(*m->p50_ms, 2);
  EXPECT_DOUBLE_EQ(*m->p99_ms, 12);
}

TEST(ParsePgbenchLogTest, PercentilesOfTheNumericLatencies) {
  // client transaction latency_us script epoch epoch_us
  std::string log;
  for (int i = 1; i <= 100; ++i) {
    log += "0 " + std::to_string(i) + " " + std::to_string(i * 1000) + " 0 1700000000 1\n";
  }
  log += "1 7 failed 0 1700000000 2\n";
  auto p = ParsePgbenchLog(log);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_DOUBLE_EQ(p->p50_ms, 50);
  EXPECT_DOUBLE_EQ(p->p99_ms, 99);
  EXPECT_FALSE(ParsePgbenchLog("0 1 failed 0 1700000000 2\n").ok());
}

TEST(PercentileTest, NearestRank) {
  std::vector<double> one = {7};
  EXPECT_DOUBLE_EQ(Percentile(one, 99), 7);
  std::vector<double> four = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Percentile(four, 50), 2);
  EXPECT_DOUBLE_EQ(Percentile(four, 99), 4);
  std::vector<double> none;
  EXPECT_DOUBLE_EQ(Percentile(none, 50), 0);
}

TEST(SumOfClientsTest, AddsRatesAndCountsKeepsTheWorstLatencies) {
  Measured a{100, 1.0, 5.0, 1.5, 2, 0};
  Measured b{250, 2.0, 4.0, std::nullopt, 0, 1};
  auto sum = SumOfClients({a, b});
  ASSERT_TRUE(sum.ok());
  EXPECT_DOUBLE_EQ(sum->rate, 350);
  EXPECT_EQ(sum->p50_ms, 2.0);
  EXPECT_EQ(sum->p99_ms, 5.0);
  EXPECT_EQ(sum->mean_ms, 1.5);
  EXPECT_EQ(sum->non_2xx, 2);
  EXPECT_EQ(sum->errors, 1);
  auto failed = SumOfClients({a, MakeError("wrk_failed", "no wrk")});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, "wrk_failed");
}

TEST(ScrapeCounterTest, SumsEverySeriesOfTheNameOnly) {
  constexpr const char* kExposition =
      "# HELP fence_store_wal_syncs_total WAL syncs.\n"
      "# TYPE fence_store_wal_syncs_total counter\n"
      "fence_store_wal_syncs_total 120\n"
      "fence_store_wal_syncs_total_extra 5\n"
      "fence_store_writes_total{result=\"accepted\"} 900\n"
      "fence_store_writes_total{result=\"fenced\"} 3\n";
  EXPECT_EQ(ScrapeCounter(kExposition, "fence_store_wal_syncs_total"), 120);
  EXPECT_EQ(ScrapeCounter(kExposition, "fence_store_writes_total"), 903);
  EXPECT_EQ(ScrapeCounter(kExposition, R"(fence_store_writes_total{result="accepted"})"), 900);
  EXPECT_FALSE(ScrapeCounter(kExposition, "fence_store_synced_writes_total"));
}

Row Figure(const std::string& workload, const std::string& peer, double rate,
           std::optional<double> p99 = std::nullopt) {
  Measured m;
  m.rate = rate;
  m.p99_ms = p99;
  return {workload, peer, 32, 256, m, "", std::nullopt};
}

bool Has(const std::vector<std::string>& lines, const std::string& line) {
  for (const auto& l : lines) {
    if (l == line) return true;
  }
  return false;
}

TEST(RatioLinesTest, EachRatioWithItsTargetAndVerdict) {
  const std::vector<Row> rows = {
      Figure("fenced PUT", "fence-store", 2000, 10.0),
      Figure("fenced PUT", "redis-lua-aof-always", 1000),
      Figure("fenced PUT", "postgresql-upsert", 1600),
      Figure("fenced PUT", "etcd-txn", 500, 8.0),
      Figure("GET", "fence-store", 800),
      Figure("GET", "nginx-static", 1000),
  };
  const auto lines = RatioLines(rows, {32}, {256});
  EXPECT_TRUE(Has(lines, "ratio store_put/redis_lua c=32 256B: 2.00x (target >= 1x) ok"));
  EXPECT_TRUE(Has(lines, "ratio store_put/postgres_upsert c=32 256B: 1.25x (target >= 1.5x) below"));
  EXPECT_TRUE(Has(lines, "ratio store_put/etcd_txn c=32 256B: 4.00x (target >= 3x) ok"));
  EXPECT_TRUE(Has(lines, "p99 store_put/etcd_txn c=32 256B: 10.00 ms vs 8.00 ms "
                         "(target <= etcd-txn's) above"));
  EXPECT_TRUE(Has(lines, "ratio store_put/etcd_put c=32 256B: n/a, etcd-put not measured "
                         "(target >= 2x)"));
  EXPECT_TRUE(Has(lines, "ratio get/nginx_get c=32 256B: 0.80x (target >= 0.8x) ok"));
  EXPECT_TRUE(Has(lines, "ratio lockd_cycle/etcd_lock_cycle c=32: n/a, fence-lockd not measured "
                         "(no target)"));
  // Every tracked ratio has its line, measured or not, and one p99 line.
  EXPECT_EQ(lines.size(), IssueRatios().size() + 2);
}

TEST(WritesPerSyncLinesTest, TargetAtThirtyTwoConnectionsNaWithoutMetric) {
  Row synced = Figure("fenced PUT", "fence-store", 2000);
  synced.writes_per_sync = 9.5;
  Row unsynced = Figure("hot-key PUT", "fence-store", 100);
  const auto lines = WritesPerSyncLines({synced, unsynced, Figure("GET", "fence-store", 1)});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "writes/sync fence-store fenced PUT c=32 256B: 9.50 (target >= 8) ok");
  EXPECT_EQ(lines[1],
            "writes/sync fence-store hot-key PUT c=32 256B: n/a (no fence_store_wal_syncs_total "
            "in /metrics) (no target)");
}

TEST(MemoryLineTest, VerdictOnlyAtTheTargetsKeyCount) {
  MemoryFigure full{1000000, 1000000, 256, 300.04, 310.0, 142.6};
  EXPECT_EQ(MemoryLine(full),
            "memory fence-store 1000000 of 1000000 keys x 256B: VmRSS 300.0 MiB, VmHWM 310.0 "
            "MiB, loaded in 143 s (target <= 512 MiB at 1000000 keys) ok");
  full.rss_mib = 600;
  EXPECT_NE(MemoryLine(full).find(" over"), std::string::npos);
  MemoryFigure small{2000, 2000, 256, 17.7, 17.7, 1};
  EXPECT_NE(MemoryLine(small).find("n/a (fewer keys"), std::string::npos);
  EXPECT_NE(MemoryLine(MakeError("x", "fence-store did not start")).find("n/a, fence-store"),
            std::string::npos);
}

TEST(SizeLabelTest, BinaryUnits) {
  EXPECT_EQ(SizeLabel(256), "256B");
  EXPECT_EQ(SizeLabel(4096), "4KiB");
  EXPECT_EQ(SizeLabel(1 << 20), "1MiB");
  EXPECT_EQ(SizeLabel(1000), "1000B");
}

}  // namespace
}  // namespace fence::tools::bench
