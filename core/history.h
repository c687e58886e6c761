// A recorded history of lock and store operations, and the checks that a
// fenced system must pass on it, in the spirit of Jepsen: the checker sees
// only what the clients saw (when each operation was invoked, when and how
// it completed) and a final read of every key, never the servers' insides.
//
// One JSON object per line. Each operation is two lines from the process
// that ran it: an invoke, then its completion, typed
//   "ok"    it happened (a grant, an accepted write, a confirmed renewal),
//   "fail"  it certainly did not (409 stale_token, lock held, lease lost),
//   "info"  unknown (a timeout, a crash, a 5xx): it may or may not have
//           happened. An invoke with no completion is "info" too.
// Times are CLOCK_MONOTONIC nanoseconds, one clock for every process of the
// machine, so intervals from different processes compare.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace fence::history {

// Line types.
inline constexpr std::string_view kInvoke = "invoke";
inline constexpr std::string_view kOk = "ok";
inline constexpr std::string_view kFail = "fail";
inline constexpr std::string_view kInfo = "info";
inline constexpr std::string_view kFinal = "final";  // the final read of a key

// Operations.
inline constexpr std::string_view kAcquire = "acquire";  // lock; ok: token, ttl_ms
inline constexpr std::string_view kRenew = "renew";      // lock, grant (its token)
inline constexpr std::string_view kRelease = "release";  // lock, grant
inline constexpr std::string_view kWrite = "write";      // key, token, value; ok: version
inline constexpr std::string_view kFence = "fence";      // key, token; ok: version
// A nemesis fault, for the record only (no check reads it): kind, target.
inline constexpr std::string_view kFault = "fault";

// One operation with both of its lines joined.
struct Op {
  std::string process;
  std::int64_t pid = 0;
  std::uint64_t id = 0;
  std::string op;
  std::string type;  // kOk, kFail or kInfo
  std::string lock;  // lock operations
  std::string key;   // store operations
  // write/fence: the token sent. acquire ok: the token granted. renew and
  // release: the token of the grant they belong to.
  std::optional<std::uint64_t> token;
  std::string value;                          // write: the body sent
  std::optional<std::uint64_t> version;       // ok write/fence: commit order
  std::optional<std::uint64_t> highest_token; // fail write/fence: the fence named
  std::int64_t ttl_ms = 0;                    // acquire ok: the lease granted
  std::int64_t invoke_ns = 0;
  std::optional<std::int64_t> complete_ns;    // none: never completed
};

// What the store held for a key at the end, read after every fault stopped.
struct FinalRead {
  std::string key;
  bool exists = false;  // an object is stored (GET 200)
  std::string value;
  std::optional<std::uint64_t> token;          // the object's token
  std::optional<std::uint64_t> highest_token;  // the key's fence
  std::uint64_t version = 0;                   // the key's version
};

struct History {
  std::vector<Op> ops;
  std::map<std::string, FinalRead> finals;  // by key
  std::vector<std::string> faults;          // "kind target" per fault line
};

// Reads history lines, in any order and interleaving of processes, into
// operations. Errors (code "bad_history") name the line and what is wrong.
class HistoryBuilder {
 public:
  Status AddLine(std::string_view line, std::size_t line_number);
  History Finish();

 private:
  History history_;
  // Operations by (process, pid, id) until both lines are in.
  std::map<std::tuple<std::string, std::int64_t, std::uint64_t>, Op> open_;
};

struct Violation {
  std::string check;    // e.g. "commit_order", "lost_write"
  std::string message;  // what was seen, with the operations' ids and times
};

struct CheckReport {
  std::size_t operations = 0;
  std::size_t writes_accepted = 0;
  std::size_t writes_fenced = 0;
  std::size_t writes_unknown = 0;
  std::size_t fences_raised = 0;
  std::size_t grants = 0;
  std::size_t keys = 0;
  std::size_t faults = 0;
  std::vector<Violation> violations;
};

// Every check on one history of one lock service and one store:
//   commit_order   per key, the tokens of acknowledged writes and fence
//                  raises, in the store's commit order (version), never go
//                  down; no two share a version;
//   lost_write     the final object is the last acknowledged write, or a
//                  write of unknown outcome that may have landed after it,
//                  and its token is not below any acknowledged one;
//   fence_lowered  the final fence is at least every acknowledged token;
//   stale_answer   every 409 names a fence above the refused token, and some
//                  write or fence raise of that key carried that token;
//   token_repeated no two grants share a token;
//   grant_order    a grant that completed before another was asked for has
//                  the lower token;
//   two_holders    no two grants of one lock were both certainly valid at
//                  one instant by the lock service's clock (see .cc).
CheckReport CheckHistory(const History& history);

}  // namespace fence::history
