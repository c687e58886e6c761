// The demo runs its daemons the way docs/security.md deploys them: each with
// an auth file, the workers with a token file (role writer at the store,
// client at lockd), the operator's break with an admin token. Fresh random
// tokens per run, in the scratch folder; the report shows none of them.
#pragma once

#include <string>

#include "core/result.h"

namespace fence::tools::demo {

struct DemoAuth {
  std::string worker_token;  // the workers' and the bypass writer's
  std::string admin_token;   // the operator's (lease break)
  std::string worker_token_file;  // what fence-worker --auth-token-file reads
  std::string store_auth_file;    // fence-store --auth-file
  std::string lockd_auth_file;    // fence-lockd --auth-file
};

// Writes the token and auth files under `dir` (created if missing).
Result<DemoAuth> MakeDemoAuth(const std::string& dir);

}  // namespace fence::tools::demo
