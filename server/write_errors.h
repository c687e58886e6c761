// The errors a write or read gets whatever backend decided it, so a client
// sees the same JSON from RocksDB and from PostgreSQL.
#pragma once

#include <string>

#include "core/result.h"
#include "core/token.h"
#include "server/store_backend.h"

namespace fence::store {

// The key's fence refused the write: `highest` is the key's fence.
Error StaleTokenError(const WriteRequest& w, Token highest);
// The scope's fence refused the write: `highest` is the scope's fence.
Error StaleScopeError(const WriteRequest& w, Token highest);
Error NotFoundError(const std::string& key);
// A write that needs a token (every write with fencing on; a scoped write or
// a fence raise always) carries none.
Error MissingTokenError(const WriteRequest& w);
Error NeverFencedError(const std::string& key);
Error ScopeNeverFencedError(const std::string& scope);
// A write not attempted: the store is stopping, or `max_queued` writes
// already wait for `storage` ("the disk", "PostgreSQL").
Error ShuttingDownError();
Error OverloadedError(std::size_t max_queued, const std::string& storage);
// A fence repair (core/fence_repair.h) of a key with no fence.
Error NothingToRepairError(const std::string& key);
// A fence repair whose expected fence is not the key's: it moved since the
// admin read it, maybe raised by a leader; nothing was changed.
Error FenceMovedError(const std::string& key, Token expected, Token highest);

}  // namespace fence::store
