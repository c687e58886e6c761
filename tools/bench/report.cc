#include "tools/bench/report.h"

#include <cstdio>
#include <fstream>

namespace fence::tools::bench {
namespace {

std::string Fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string Ms(const std::optional<double>& ms) {
  return ms ? Fixed(*ms, 2) + " ms" : "n/a";
}

// "1x", "1.5x", "0.8x".
std::string Times(double target) {
  char text[32];
  std::snprintf(text, sizeof text, "%gx", target);
  return text;
}

const Row* Find(const std::vector<Row>& rows, const std::string& workload,
                const std::string& peer, int connections, std::size_t body) {
  for (const Row& r : rows) {
    if (r.workload == workload && r.peer == peer && r.connections == connections &&
        r.body == body) {
      return &r;
    }
  }
  return nullptr;
}

// Why a side of a ratio has no figure, or nullopt when it has one.
std::optional<std::string> Missing(const Row* row, const std::string& peer) {
  // Why is on the figure's own row.
  if (row == nullptr || !row->measured.ok()) return peer + " not measured";
  if (row->measured->rate <= 0) return peer + " measured no request";
  return std::nullopt;
}

std::string Where(int connections, std::size_t body) {
  return "c=" + std::to_string(connections) + (body > 0 ? " " + SizeLabel(body) : "");
}

std::vector<std::string> OneRatio(const std::vector<Row>& rows, const RatioSpec& spec,
                                  int c, std::size_t body) {
  const std::string head = "ratio " + spec.label + " " + Where(c, body) + ": ";
  const std::string target =
      spec.target ? "(target >= " + Times(*spec.target) + ")" : "(no target)";
  const Row* ours = Find(rows, spec.ours_workload, spec.ours_peer, c, body);
  const Row* theirs = Find(rows, spec.theirs_workload, spec.theirs_peer, c, body);
  auto missing = Missing(ours, spec.ours_peer);
  if (!missing) missing = Missing(theirs, spec.theirs_peer);
  if (missing) {
    // A missing p99 comparison shows as its own n/a line too, so that the
    // set of lines does not depend on what was measured.
    std::vector<std::string> lines = {head + "n/a, " + *missing + " " + target};
    if (spec.p99_not_above) {
      lines.push_back("p99 " + spec.label + " " + Where(c, body) + ": n/a (target <= " +
                      spec.theirs_peer + "'s)");
    }
    return lines;
  }
  const double ratio = ours->measured->rate / theirs->measured->rate;
  std::string line = head + Fixed(ratio, 2) + "x " + target;
  if (spec.target) line += ratio >= *spec.target ? " ok" : " below";
  std::vector<std::string> lines = {line};
  if (spec.p99_not_above) {
    const auto& a = ours->measured->p99_ms;
    const auto& b = theirs->measured->p99_ms;
    std::string p99 = "p99 " + spec.label + " " + Where(c, body) + ": " + Ms(a) + " vs " +
                      Ms(b) + " (target <= " + spec.theirs_peer + "'s)";
    if (a && b) p99 += *a <= *b ? " ok" : " above";
    lines.push_back(p99);
  }
  return lines;
}

}  // namespace

std::string SizeLabel(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

std::string FormatRow(const Row& r) {
  char head[96];
  std::snprintf(head, sizeof head, "%-12s %-22s c=%-4d %-6s ", r.workload.c_str(),
                r.peer.c_str(), r.connections, r.body > 0 ? SizeLabel(r.body).c_str() : "-");
  std::string line = head;
  if (!r.measured.ok()) return line + "-- not measured: " + r.measured.error().message;
  const Measured& m = *r.measured;
  char figures[160];
  std::snprintf(figures, sizeof figures, "%9.0f/s  p50 %-10s p99 %-10s non-2xx %ld  errors %ld",
                m.rate, Ms(m.p50_ms).c_str(), Ms(m.p99_ms).c_str(), m.non_2xx, m.errors);
  line += figures;
  if (r.peer == "fence-store" && r.workload.find("PUT") != std::string::npos &&
      r.workload != "stale PUT") {
    line += "  writes/sync " + (r.writes_per_sync ? Fixed(*r.writes_per_sync, 2) : "n/a");
  }
  if (!r.note.empty()) line += "  (" + r.note + ")";
  return line;
}

const std::vector<RatioSpec>& IssueRatios() {
  static const std::vector<RatioSpec> specs = {
      {"store_put/redis_lua", "fenced PUT", "fence-store", "fenced PUT",
       "redis-lua-aof-always", 1.0},
      {"store_put/postgres_upsert", "fenced PUT", "fence-store", "fenced PUT",
       "postgresql-upsert", 1.5},
      {"store_put/etcd_txn", "fenced PUT", "fence-store", "fenced PUT", "etcd-txn", 3.0, true},
      {"store_put/etcd_put", "fenced PUT", "fence-store", "fenced PUT", "etcd-put", 2.0},
      {"stale_put/nginx_get", "stale PUT", "fence-store", "GET", "nginx-static", 0.8},
      {"get/nginx_get", "GET", "fence-store", "GET", "nginx-static", 0.8},
      {"hot_put/redis_lua_hot", "hot-key PUT", "fence-store", "hot-key PUT",
       "redis-lua-aof-always", std::nullopt},
      {"store_put/nginx_webdav_put", "fenced PUT", "fence-store", "PUT", "nginx-webdav",
       std::nullopt},
      // Issue 18: the store scaled out on PostgreSQL, next to its own
      // RocksDB default and to etcd's txn (no targets: figures to report).
      {"store_pg_x1/store_put", "fenced PUT", "fence-store-pg-x1", "fenced PUT", "fence-store",
       std::nullopt},
      {"store_pg_x3/store_put", "fenced PUT", "fence-store-pg-x3", "fenced PUT", "fence-store",
       std::nullopt},
      {"store_pg_x3/etcd_txn", "fenced PUT", "fence-store-pg-x3", "fenced PUT", "etcd-txn",
       std::nullopt},
      {"store_pg_x3/store_pg_x1", "fenced PUT", "fence-store-pg-x3", "fenced PUT",
       "fence-store-pg-x1", std::nullopt},
  };
  return specs;
}

std::vector<std::string> RatioLines(const std::vector<Row>& rows,
                                    const std::vector<int>& connections,
                                    const std::vector<std::size_t>& bodies) {
  std::vector<std::string> lines;
  for (int c : connections) {
    for (std::size_t body : bodies) {
      for (const RatioSpec& spec : IssueRatios()) {
        for (auto& line : OneRatio(rows, spec, c, body)) lines.push_back(std::move(line));
      }
    }
    const RatioSpec locks = {"lockd_cycle/etcd_lock_cycle", "lock cycle", "fence-lockd",
                             "lock cycle", "etcd-lease-lock", std::nullopt};
    for (auto& line : OneRatio(rows, locks, c, 0)) lines.push_back(std::move(line));
  }
  return lines;
}

std::vector<std::string> WritesPerSyncLines(const std::vector<Row>& rows) {
  // Issue 16: at least 8 writes share a WAL sync at 32 connections.
  constexpr double kTarget = 8;
  std::vector<std::string> lines;
  for (const Row& r : rows) {
    if (r.peer != "fence-store" || (r.workload != "fenced PUT" && r.workload != "hot-key PUT")) {
      continue;
    }
    const bool targeted = r.workload == "fenced PUT" && r.connections >= 32;
    std::string line = "writes/sync fence-store " + r.workload + " " +
                       Where(r.connections, r.body) + ": ";
    const std::string target = targeted ? "(target >= " + Fixed(kTarget, 0) + ")" : "(no target)";
    if (!r.writes_per_sync) {
      line += "n/a (no fence_store_wal_syncs_total in /metrics) " + target;
    } else {
      line += Fixed(*r.writes_per_sync, 2) + " " + target;
      if (targeted) line += *r.writes_per_sync >= kTarget ? " ok" : " below";
    }
    lines.push_back(line);
  }
  return lines;
}

std::string MemoryLine(const Result<MemoryFigure>& memory) {
  constexpr long kTargetKeys = 1000000;
  const std::string target = "(target <= " + Fixed(kMemoryTargetMib, 0) + " MiB at " +
                             std::to_string(kTargetKeys) + " keys)";
  if (!memory.ok()) return "memory fence-store: n/a, " + memory.error().message + " " + target;
  const MemoryFigure& m = *memory;
  std::string line = "memory fence-store " + std::to_string(m.keys_loaded) + " of " +
                     std::to_string(m.keys_wanted) + " keys x " + SizeLabel(m.body) +
                     ": VmRSS " + Fixed(m.rss_mib, 1) + " MiB, VmHWM " + Fixed(m.hwm_mib, 1) +
                     " MiB, loaded in " + Fixed(m.load_seconds, 0) + " s " + target;
  if (m.keys_loaded < kTargetKeys) return line + " n/a (fewer keys than the target's)";
  return line + (m.rss_mib <= kMemoryTargetMib ? " ok" : " over");
}

Status WriteCsv(const std::vector<Row>& rows, const std::string& path) {
  std::ofstream out(path);
  out << "workload,peer,connections,body_bytes,rate_per_s,p50_ms,p99_ms,mean_ms,non_2xx,errors,"
         "writes_per_sync,note\n";
  auto cell = [](const std::optional<double>& v) { return v ? Fixed(*v, 3) : std::string(); };
  for (const Row& r : rows) {
    out << r.workload << ',' << r.peer << ',' << r.connections << ',' << r.body << ',';
    if (r.measured.ok()) {
      const Measured& m = *r.measured;
      out << Fixed(m.rate, 1) << ',' << cell(m.p50_ms) << ',' << cell(m.p99_ms) << ','
          << cell(m.mean_ms) << ',' << m.non_2xx << ',' << m.errors << ',';
    } else {
      out << ",,,,,,";
    }
    std::string note = r.measured.ok() ? r.note : "not measured: " + r.measured.error().message;
    for (char& ch : note) {
      if (ch == '"' || ch == '\n') ch = '\'';
    }
    out << cell(r.writes_per_sync) << ",\"" << note << "\"\n";
  }
  out.close();
  if (!out) return MakeError("io_error", "cannot write " + path);
  return OkStatus();
}

}  // namespace fence::tools::bench
