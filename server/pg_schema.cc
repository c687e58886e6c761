#include "server/pg_schema.h"

namespace fence::store {

// Tokens are unsigned 64-bit: numeric(20,0) holds every one (bigint would
// stop at 2^63-1) and compares them as numbers.
//
// fence_write applies one write under the fence rule and is called as one
// statement, `SELECT * FROM fence_write(...)`, in autocommit: the write, its
// check and its commit are one transaction, and row locks serialize it with
// every other write of the same key or scope, from any process:
//
// - A scoped write first locks the scope's row (creating a placeholder row
//   with no fence if the scope is new): no scope raise can commit between
//   reading the scope's fence and this write's commit.
// - The key's write is one INSERT ... ON CONFLICT DO UPDATE ... WHERE
//   highest_token <= token. Under READ COMMITTED the conflict arm locks the
//   key's newest committed row version and evaluates the WHERE on it, so the
//   check and the write act on the same version; a refused write returns no
//   row (RETURNING returns only updated rows) and writes nothing, the row
//   staying locked until the function ends.
// - A refusal then reads the fence that refused it: each statement of a
//   plpgsql function takes a new snapshot under READ COMMITTED, and the rows
//   read are locked by this transaction, so the figures are exact.
//
// Lock order is always scope, then key, so writes never deadlock.
const char kPgSchemaSql[] = R"sql(
BEGIN;
SELECT pg_advisory_xact_lock(7406250418273001);
CREATE TABLE IF NOT EXISTS fence_objects (
  key text COLLATE "C" PRIMARY KEY,
  highest_token numeric(20,0),
  version bigint NOT NULL,
  has_object boolean NOT NULL,
  deleted boolean NOT NULL,
  object_token numeric(20,0),
  size bigint NOT NULL,
  etag text NOT NULL,
  content_type text NOT NULL,
  body bytea
);
CREATE TABLE IF NOT EXISTS fence_scopes (
  scope text COLLATE "C" PRIMARY KEY,
  highest_token numeric(20,0),
  version bigint NOT NULL
);
CREATE OR REPLACE FUNCTION fence_write(
    p_kind text, p_key text, p_scope text, p_token numeric,
    p_size bigint, p_etag text, p_type text, p_body bytea,
    OUT outcome text, OUT key_highest numeric, OUT key_version bigint,
    OUT scope_highest numeric, OUT scope_version bigint, OUT scope_raised boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
  scope_ok boolean := true;
  keep boolean := p_kind = 'fence';  -- a fence raise keeps the object
BEGIN
  scope_raised := false;
  IF p_scope IS NOT NULL THEN
    INSERT INTO fence_scopes (scope, highest_token, version) VALUES (p_scope, NULL, 0)
      ON CONFLICT (scope) DO NOTHING;
    SELECT s.highest_token, s.version INTO scope_highest, scope_version
      FROM fence_scopes s WHERE s.scope = p_scope FOR UPDATE;
    scope_ok := scope_highest IS NULL OR scope_highest <= p_token;
  END IF;
  IF p_kind <> 'raise_scope' THEN
    INSERT INTO fence_objects AS o (key, highest_token, version, has_object, deleted,
                                    object_token, size, etag, content_type, body)
      SELECT p_key, p_token, 1, p_kind = 'put', p_kind = 'delete',
             CASE WHEN keep THEN NULL ELSE p_token END, p_size, p_etag, p_type, p_body
      WHERE scope_ok
    ON CONFLICT (key) DO UPDATE SET
      highest_token = EXCLUDED.highest_token,
      version = o.version + 1,
      has_object = CASE WHEN keep THEN o.has_object ELSE EXCLUDED.has_object END,
      deleted = CASE WHEN keep THEN o.deleted ELSE EXCLUDED.deleted END,
      object_token = CASE WHEN keep THEN o.object_token ELSE EXCLUDED.object_token END,
      size = CASE WHEN keep THEN o.size ELSE EXCLUDED.size END,
      etag = CASE WHEN keep THEN o.etag ELSE EXCLUDED.etag END,
      content_type = CASE WHEN keep THEN o.content_type ELSE EXCLUDED.content_type END,
      body = CASE WHEN keep THEN o.body ELSE EXCLUDED.body END
    WHERE o.highest_token IS NULL OR o.highest_token <= EXCLUDED.highest_token
    RETURNING o.highest_token, o.version INTO key_highest, key_version;
    IF NOT FOUND THEN
      SELECT o.highest_token, o.version INTO key_highest, key_version
        FROM fence_objects o WHERE o.key = p_key;
      outcome := CASE WHEN key_highest > p_token THEN 'stale_key' ELSE 'stale_scope' END;
      RETURN;
    END IF;
  ELSIF NOT scope_ok THEN
    outcome := 'stale_scope';
    RETURN;
  END IF;
  -- An explicit scope raise always writes the scope (a new version); a
  -- scoped write only when it moves the scope's fence up.
  IF p_scope IS NOT NULL AND (p_kind = 'raise_scope' OR scope_highest IS NULL OR
                              scope_highest < p_token) THEN
    UPDATE fence_scopes s SET highest_token = p_token, version = s.version + 1
      WHERE s.scope = p_scope
      RETURNING s.highest_token, s.version INTO scope_highest, scope_version;
    scope_raised := true;
  END IF;
  outcome := 'accepted';
END
$fn$;
-- An admin's repair lowers a key's fence only if it is still `p_expected`:
-- under READ COMMITTED the UPDATE waits for a write of the key in flight
-- and re-checks its WHERE on the row that write left, so a leader's raise
-- that commits first makes the repair change nothing.
CREATE OR REPLACE FUNCTION fence_repair(
    p_key text, p_expected numeric, p_new numeric,
    OUT outcome text, OUT key_highest numeric, OUT key_version bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE fence_objects o SET highest_token = p_new, version = o.version + 1
    WHERE o.key = p_key AND o.highest_token = p_expected
    RETURNING o.highest_token, o.version INTO key_highest, key_version;
  IF FOUND THEN
    outcome := 'repaired';
    RETURN;
  END IF;
  SELECT o.highest_token, o.version INTO key_highest, key_version
    FROM fence_objects o WHERE o.key = p_key;
  outcome := CASE WHEN key_highest IS NULL THEN 'not_fenced' ELSE 'moved' END;
END
$fn$;
COMMIT;
)sql";

const char kPgRepairSql[] =
    "SELECT outcome, key_highest, key_version FROM fence_repair($1::text, $2::numeric, "
    "$3::numeric)";

const char kPgWriteSql[] =
    "SELECT outcome, key_highest, key_version, scope_highest, scope_version, scope_raised "
    "FROM fence_write($1::text, $2::text, $3::text, $4::numeric, $5::bigint, $6::text, "
    "$7::text, $8::bytea)";

const char kPgFencesSql[] =
    "SELECT (SELECT highest_token FROM fence_objects WHERE key = $1::text), "
    "(SELECT highest_token FROM fence_scopes WHERE scope = $2::text)";

const char kPgObjectSql[] =
    "SELECT has_object, object_token, highest_token, size, etag, content_type, version, body, "
    "deleted FROM fence_objects WHERE key = $1::text";

const char kPgFenceSql[] =
    "SELECT highest_token, version FROM fence_objects WHERE key = $1::text";

const char kPgScopeSql[] =
    "SELECT highest_token, version FROM fence_scopes WHERE scope = $1::text";

}  // namespace fence::store
