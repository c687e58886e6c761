// The durable token counter of fence-lockd. Tokens must only go up, across
// restarts, kill -9 and power loss, so the highest token that may have been
// handed out is on disk (fdatasync) before any token of a new block is
// issued. It also records the largest TTL ever granted, durably before the
// grant that raises it is answered: after a restart, that is how long a
// lease granted before the crash can still be live (the grace period).
// The file format is in token_format.h; every file and directory operation
// goes through an Env (env.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "core/token.h"
#include "lockd/env.h"
#include "lockd/token_format.h"

namespace fence::lockd {

// How long lockd must grant nothing after opening its journal, and why.
struct Grace {
  Millis duration{0};
  // "new_token_file": nothing was ever granted from this data directory;
  // "recorded_max_ttl": the largest TTL ever granted, from the file;
  // "max_ttl_flag_version1_file": a version-1 file has no record, so the
  //   current --max-ttl-ms is assumed;
  // "max_ttl_flag_slot_unreadable": one slot was unreadable and may have
  //   recorded more, so the larger of the record and --max-ttl-ms;
  // "max_ttl_flag_token_floor": a new file given --token-floor replaces one
  //   whose record is lost, so --max-ttl-ms.
  std::string source;
};

struct JournalOptions {
  std::uint64_t block = 1000;  // tokens reserved per fdatasync
  // Assumed as the largest TTL ever granted where the file does not say
  // (version 1, one slot unreadable, or a new file given a token floor):
  // the current --max-ttl-ms.
  Millis assumed_max_ttl{60000};
  // --token-floor: every token issued from now on is above this. Raised
  // durably at open when the file holds less; never lowers the file.
  std::optional<std::uint64_t> token_floor = std::nullopt;
};

// What --token-floor did at open.
struct FloorApplied {
  std::uint64_t requested = 0;
  std::uint64_t journal_floor = 0;  // what the file held before
  bool raised = false;              // false: the file already held as much
};

// Parses a --token-floor value: a token (1*DIGIT, no sign or leading zero)
// below 2^64-1, so that a token can still be issued above it. Errors have
// code "bad_token_floor" and say what was expected.
Result<std::uint64_t> ParseTokenFloor(std::string_view text);

class TokenJournal {
 public:
  // Creates DIR if missing (syncing each parent), takes an exclusive lock
  // on DIR/LOCK (so two lockds can never issue tokens from the same
  // counter), then opens DIR/tokens, creating it (atomically, via a
  // temporary file and a rename) if missing. `block` tokens are reserved per
  // fdatasync (1..kMaxTokenBlock); a crash skips the unused rest of a block.
  // `env` outlives the journal.
  static Result<std::unique_ptr<TokenJournal>> Open(Env& env, const std::string& dir,
                                                    const JournalOptions& options);
  ~TokenJournal();
  TokenJournal(const TokenJournal&) = delete;
  TokenJournal& operator=(const TokenJournal&) = delete;

  // The next token for a lease of `ttl`. Both the token's block and a TTL
  // above every one recorded are durable before it returns. A failed write
  // or sync ("storage_error", with the figure "errno": ENOSPC for a full
  // disk) issues nothing, and the next call tries again: it writes the
  // slot's record again from memory, not trusting the page cache (after a
  // failed fsync the kernel may have dropped or kept the dirty page; a
  // rewrite makes it dirty again with the right bytes, so a later fsync
  // that succeeds proves they are on disk). The slot written is never the
  // newest one on disk, so a failure leaves the last good record intact.
  // Only an exhausted counter fails for good.
  Result<Token> Issue(Millis ttl);

  bool existed() const { return existed_; }  // false on a brand-new data dir
  bool one_slot_unreadable() const { return one_slot_unreadable_; }
  std::uint64_t floor() const { return floor_; }
  // Every lease granted from this file had a TTL <= this (assumed where the
  // file does not say).
  Millis max_ttl() const { return *current_.max_ttl; }
  const Grace& grace() const { return grace_; }
  const std::optional<FloorApplied>& floor_applied() const { return floor_applied_; }
  const std::string& path() const { return path_; }

 private:
  TokenJournal() = default;
  Status LockAndOpen(Env& env, const std::string& dir);
  Error Corrupt(const Error& why) const;
  Status WriteSlot(const Slot& slot);
  Status ApplyFloor(std::uint64_t requested);

  std::string path_;
  std::unique_ptr<FileLock> lock_;  // DIR/LOCK, held while open
  std::unique_ptr<File> file_;
  std::uint64_t block_ = 1;
  Slot current_;  // the newest slot on disk
  std::uint64_t next_ = 1;
  std::uint64_t floor_ = 0;
  bool existed_ = false;
  bool one_slot_unreadable_ = false;
  Grace grace_;
  std::optional<FloorApplied> floor_applied_;
  std::optional<Error> exhausted_;  // set once the last token is issued
};

}  // namespace fence::lockd
