// Split-brain evidence from the JSON logs of workers, store and lockd (the
// schema of core/log_event.h). Pure analysis: parsed events in, findings
// out; fence-logscan does the reading and printing.
//
// What counts as evidence:
//   - overlapping leader terms: a worker term runs from `elected` to the
//     first of lease_lost / fenced / stepped_down / resigned for that owner
//     and term; two owners whose terms on one lock intersect in time were
//     both acting as leader;
//   - stale writes: a write by a term after a newer term on the same lock was
//     elected. One that "landed" corrupted data; one that was "rejected"
//     (fenced) was contained by the store;
//   - fenced writes: the store's write_fenced lines (and the workers'
//     `fenced` lines when no store log is given), with their rate;
//   - token regressions: a lockd grant not above an earlier grant, a key's
//     highest_token going down at the store, a lock electing a lower term
//     after a higher one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "tools/logscan/timestamp.h"

namespace fence::tools::logscan {

struct LogEvent {
  std::string source;  // input name, e.g. "fenced.log" or "-" for stdin
  std::size_t line = 0;  // 1-based line number in `source`
  EpochMillis ts = 0;
  std::string level;
  std::string component;  // "worker", "store", "lockd", ...
  std::string event;
  nlohmann::json fields = nlohmann::json::object();  // the whole line
};

enum class LineKind {
  kEvent,     // a log event of our schema
  kNotJson,   // any other text (a shell prompt, a panic message): ignored
  kNotEvent,  // JSON, but no ts/component/event, or a ts that is not RFC 3339
};
struct ParsedLine {
  LineKind kind = LineKind::kNotJson;
  std::optional<LogEvent> event;
  std::string problem;  // for kNotEvent: what was missing or wrong
};
ParsedLine ParseLine(std::string_view text, std::string_view source,
                     std::size_t line);

// How the input went; filled by the reader, printed with the findings.
struct InputStats {
  std::vector<std::string> sources;
  std::size_t lines = 0;
  std::size_t events = 0;
  std::size_t not_json = 0;
  std::size_t not_event = 0;
};

struct Where {
  std::string source;
  std::size_t line = 0;
};

struct LeaderTerm {
  std::string lock;
  std::string owner;
  std::uint64_t term = 0;
  EpochMillis start = 0;
  EpochMillis end = 0;
  // The event that ended the term, or "" when the log shows no end. Such a
  // term lasts to the end of the log if it is its lock's latest term (the
  // current leader); otherwise until its owner's last line before its next
  // election (all the log proves about a leader that was superseded).
  std::string ended_by;
  Where elected_at;
};

struct Overlap {
  std::string lock;
  LeaderTerm older;  // elected first
  LeaderTerm newer;
  EpochMillis from = 0;  // both acting as leader from here...
  EpochMillis to = 0;    // ...to here
};

enum class WriteOutcome { kLanded, kRejected };

struct StaleWrite {
  WriteOutcome outcome = WriteOutcome::kLanded;
  std::string lock;   // "" when only the store saw it
  std::string owner;  // "" when only the store saw it
  std::string key;
  std::uint64_t term = 0;  // the writer's term (its token)
  // The newer term that made this write stale: the newer election on the
  // lock, or the store's highest_token for a rejected write.
  std::uint64_t newer_term = 0;
  std::string newer_owner;  // "" when not known from the logs
  EpochMillis ts = 0;
  Where where;
};

struct FencedWrite {
  std::string component;  // "store" or "worker"
  std::string key;
  std::string owner;  // worker lines only
  std::optional<std::uint64_t> token;
  std::optional<std::uint64_t> highest_token;
  EpochMillis ts = 0;
  Where where;
};

struct Regression {
  std::string kind;     // "lockd_grant", "store_fence", "leader_term"
  std::string subject;  // the lock or key
  std::uint64_t before = 0;
  std::uint64_t after = 0;
  EpochMillis ts = 0;
  Where where;
};

struct Findings {
  InputStats input;
  std::optional<EpochMillis> first_ts;
  std::optional<EpochMillis> last_ts;
  std::vector<LeaderTerm> terms;
  std::vector<Overlap> overlaps;
  std::vector<StaleWrite> stale_writes;
  // Store lines when the input has any, else the workers' `fenced` lines:
  // both describe the same refused writes.
  std::vector<FencedWrite> fenced_writes;
  std::vector<Regression> regressions;

  std::size_t LandedStaleWrites() const;
  std::size_t RejectedStaleWrites() const;
  // Fenced writes per second over the whole log span; nullopt when the span
  // is empty.
  std::optional<double> FencedWritesPerSecond() const;
  bool SplitBrainEvidence() const;
};

// Events may come from several files in any order; they are ordered by
// timestamp (stable, so lines of one file keep their order within a
// millisecond). Regressions are judged within one source: a file is one run
// or one process's history, and unrelated runs restart their token counters.
Findings Analyze(std::vector<LogEvent> events, InputStats input);

nlohmann::json ToJson(const Findings& findings);
// The human report; lists at most `max_items` entries per section.
std::string FormatReport(const Findings& findings, std::size_t max_items = 20);

}  // namespace fence::tools::logscan
