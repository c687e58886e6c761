// The PostgreSQL URI as logs and errors show it: the password never.
#include <gtest/gtest.h>

#include "server/pg_pool.h"

namespace fence::store {
namespace {

TEST(RedactUriTest, HidesPasswordsAndKeepsTheRest) {
  const struct {
    const char* uri;
    const char* shown;
  } kCases[] = {
      {"postgresql://fence:secret@db1:5432/fence", "postgresql://fence:***@db1:5432/fence"},
      {"postgresql://fence@db1/fence", "postgresql://fence@db1/fence"},
      {"postgresql://db1,db2/fence?target_session_attrs=read-write",
       "postgresql://db1,db2/fence?target_session_attrs=read-write"},
      {"postgresql://db1/fence?password=secret&sslmode=require",
       "postgresql://db1/fence?password=***&sslmode=require"},
      {"host=db1 user=fence password=secret dbname=fence",
       "host=db1 user=fence password=*** dbname=fence"},
      {"postgres://u:p%40ss@[::1]:5432/d", "postgres://u:***@[::1]:5432/d"},
  };
  for (const auto& c : kCases) EXPECT_EQ(RedactUri(c.uri), c.shown) << c.uri;
}

}  // namespace
}  // namespace fence::store
