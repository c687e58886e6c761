// The PostgreSQL side of the store: the tables, the fence rule as one SQL
// function, and the statements the store sends (see pg_schema.cc for why
// each write is atomic).
#pragma once

namespace fence::store {

// Creates the tables and (re)creates fence_write, in one transaction under
// an advisory lock, so that stores starting together do not race.
extern const char kPgSchemaSql[];
// $1 kind (put|delete|fence|raise_scope), $2 key, $3 scope, $4 token,
// $5 size, $6 etag, $7 content type, $8 body: one row, the outcome
// (accepted|stale_key|stale_scope) and the fences after it (or that refused it).
extern const char kPgWriteSql[];
// One admin repair of a key's fence (key, expected, new): see fence_repair.
extern const char kPgRepairSql[];
// $1 key, $2 scope: the two fences, for the precheck.
extern const char kPgFencesSql[];
// $1 key: the record and body.
extern const char kPgObjectSql[];
// $1 key / $1 scope: the fence and its version.
extern const char kPgFenceSql[];
extern const char kPgScopeSql[];

}  // namespace fence::store
