// The log event schema: stable event names and field names that people read
// and programs (fence-logscan, tests, the demo report) parse. Every log line
// is one JSON object: {"ts","level","component","event", ...fields}.
#pragma once

#include <string_view>

namespace fence::events {

// Fields that carry the facts of an event.
inline constexpr std::string_view kOwner = "owner";
inline constexpr std::string_view kKey = "key";
inline constexpr std::string_view kToken = "token";
inline constexpr std::string_view kHighestToken = "highest_token";
inline constexpr std::string_view kLeaseId = "lease_id";
inline constexpr std::string_view kTerm = "term";  // == the leader's token

// Every daemon.
inline constexpr std::string_view kListening = "listening";  // address, port
inline constexpr std::string_view kDraining = "draining";
inline constexpr std::string_view kStopped = "stopped";
inline constexpr std::string_view kDrainTimeout = "drain_timeout";  // drain_timeout_ms, closed_connections

// fence-store (component "store").
inline constexpr std::string_view kWriteAccepted = "write_accepted";  // op, key, token, highest_token
inline constexpr std::string_view kWriteFenced = "write_fenced";      // key, token, highest_token
inline constexpr std::string_view kWriteRefused = "write_refused";    // key, error (400/428)
inline constexpr std::string_view kWriteFailed = "write_failed";      // key, error (507)
inline constexpr std::string_view kFenceRaised = "fence_raised";      // key, token, highest_token
inline constexpr std::string_view kScopeFenceRaised = "scope_fence_raised";  // scope, token, highest_token
// Storage refuses writes (disk full or failing) until it recovers by itself.
inline constexpr std::string_view kStorageFailed = "storage_failed";      // reason, cause, message
inline constexpr std::string_view kStorageDegraded = "storage_degraded";  // reason, cause (writes go on)
inline constexpr std::string_view kStorageRecoveryFailed = "storage_recovery_failed";  // cause, free_bytes, retry_in_ms
inline constexpr std::string_view kStorageRecovered = "storage_recovered";  // data_dir, free_bytes
inline constexpr std::string_view kWalRecordsDropped = "wal_records_dropped";  // file, bytes, reason

// fence-lockd (component "lockd").
inline constexpr std::string_view kGranted = "granted";   // name, owner, token, lease_id, ttl_ms
inline constexpr std::string_view kRenewed = "renewed";   // lease_id, ttl_ms
inline constexpr std::string_view kExpired = "expired";   // name, owner, token, lease_id
inline constexpr std::string_view kReleased = "released"; // name, owner, token, lease_id
inline constexpr std::string_view kRefused = "refused";   // name, owner, reason
// An operator ended a lease by hand (POST /v1/locks/{name}/break).
inline constexpr std::string_view kLeaseBroken = "lease_broken";  // name, owner, token, lease_id, reason, caller, expires_in_ms, waiters
// After an expiry, a lock acquired with lock_delay_ms is granted to nobody
// for that long.
inline constexpr std::string_view kLockDelayStarted = "lock_delay_started";  // lease fields, lock_delay_ms, lock_delay_remaining_ms
inline constexpr std::string_view kLockDelayEnded = "lock_delay_ended";      // lease fields, lock_delay_ms, since_expiry_ms, waiters

// fence-worker (component "worker"). A leader term runs from kElected to the
// first of kLeaseLost, kFenced, kSteppedDown or kResigned for that owner and
// term; two owners whose terms intersect in time were both acting as leader.
inline constexpr std::string_view kAcquiring = "acquiring";          // owner, lock, backend
inline constexpr std::string_view kElected = "elected";              // owner, lock, backend, token, lease_id, ttl_ms, term
// After kElected and before any work, the leader raises the fence of every
// key it will write (POST /v1/fences): kFenceRaised (the store's event name
// too) with owner, key, token, highest_token, term; or kFenced with
// step "fence_first" when a newer leader fenced the key already.
inline constexpr std::string_view kPauseInjected = "pause_injected"; // owner, term, duration_ms (logged just before SIGSTOP)
inline constexpr std::string_view kResumed = "resumed";              // owner, term, paused_ms
inline constexpr std::string_view kWriteAttempt = "write_attempt";   // owner, key, token (null when fencing off), term
inline constexpr std::string_view kWriteDone = "write_done";         // owner, key, token, highest_token, term
inline constexpr std::string_view kFenced = "fenced";                // owner, key, token, highest_token, term, step (fence_first|write)
inline constexpr std::string_view kLeaseLost = "lease_lost";         // owner, term, reason
inline constexpr std::string_view kSteppedDown = "stepped_down";     // owner, term, reason
inline constexpr std::string_view kStoreUnavailable = "store_unavailable"; // owner, error, retry_in_ms (waits before the next term)
inline constexpr std::string_view kResigned = "resigned";            // owner, term (released the lock after its work)

}  // namespace fence::events
