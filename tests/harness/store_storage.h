// Which storage the fence-store under test uses. By default RocksDB in a
// test's directory; under fence-with-postgres (FENCE_TEST_POSTGRES set to
// the base URI of a server it started) a fresh PostgreSQL database per test
// directory, so the same suite runs unchanged against both backends with
// one PostgreSQL per suite.
#pragma once

#include <string>
#include <vector>

#include "tests/harness/daemon.h"

namespace fence::testing {

bool StoreOnPostgres();

// The fence-store flags that put its data in `dir` (RocksDB: dir/data), or
// in the database named after `dir` (created on the first call; the same
// database on later calls, so a restarted store finds its data). Fails the
// test if the database cannot be created.
std::vector<std::string> StoreStorageArgs(const TempDir& dir);

}  // namespace fence::testing
