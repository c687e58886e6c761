#include "tests/harness/store_storage.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace fence::testing {
namespace {

std::string PostgresBase() {
  const char* base = std::getenv("FENCE_TEST_POSTGRES");
  return base != nullptr ? base : "";
}

// A database name from the test directory's unique name (mkdtemp's suffix
// keeps concurrent suites apart); quoted in SQL, so '-' is fine.
std::string DatabaseFor(const TempDir& dir) {
  return std::filesystem::path(dir.path()).filename().string();
}

}  // namespace

bool StoreOnPostgres() { return !PostgresBase().empty(); }

std::vector<std::string> StoreStorageArgs(const TempDir& dir) {
  if (!StoreOnPostgres()) return {"--data-dir", dir.Sub("data")};
  const std::string database = DatabaseFor(dir);
  const std::string psql =
      FindProgram("psql").value_or("/usr/lib/postgresql/15/bin/psql");
  auto made = RunToCompletion({{psql, "-d", PostgresBase() + "/postgres", "-v",
                                "ON_ERROR_STOP=1", "-Atc",
                                "CREATE DATABASE \"" + database + "\""},
                               "",
                               {}},
                              Millis(30000));
  const bool exists = made.ok() && made->Output().find("already exists") != std::string::npos;
  EXPECT_TRUE(made.ok() && (made->exit_code == 0 || exists))
      << (made.ok() ? made->Output() : made.error().message);
  return {"--storage", "postgresql", "--pg-uri", PostgresBase() + "/" + database};
}

}  // namespace fence::testing
