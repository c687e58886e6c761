// Runs a Worker as the whole process: real SIGSTOP pauses, events as JSON
// log lines, SIGTERM/SIGINT asking it to stop. Shared by fence-worker and the
// partition experiment's naive worker.
#pragma once

#include <string>

#include "client/history_recorder.h"
#include "client/lock_backend.h"
#include "client/worker.h"

namespace fence::client {

// Blocks until the worker has done its terms or a signal stopped it, and
// returns the process exit code. Call with fence::log already initialised.
// With a `history`, every lock and store call is recorded in it. A
// non-empty `store_token` is sent to the store as a bearer token.
int RunWorkerProcess(const WorkerConfig& config, LockBackend& backend,
                     const std::string& store_url, HistoryFile* history = nullptr,
                     const std::string& store_token = "");

}  // namespace fence::client
