// The peer bench reads each client's own report; these are the shapes those
// clients print (wrk 4.1, redis-benchmark 7.0 --csv, pgbench 15, fio 3.33).
#include <gtest/gtest.h>

#include "tools/bench/load.h"

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

}  // namespace
}  // namespace fence::tools::bench
