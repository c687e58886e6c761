#include "server/pg_store.h"

#include <libpq-fe.h>

#include <memory>
#include <vector>

#include "common/logging.h"
#include "core/etag.h"
#include "core/scope_rule.h"
#include "server/pg_schema.h"
#include "server/write_errors.h"

namespace fence::store {
namespace {

using PgResult = std::unique_ptr<PGresult, void (*)(PGresult*)>;

struct Param {
  std::optional<std::string> text;  // null when absent
  bool binary = false;
};

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Why a statement failed, and whether it can have committed: only when the
// session itself ended (the server went away, or ended it after the
// statement ran) is the outcome unknown. An error in a live session means
// the statement's transaction was rolled back.
struct Failure {
  std::string why;
  bool session_lost = false;
};

Result<PgResult> Run(PgPool::Lease& lease, const char* sql, const std::vector<Param>& params,
                     Failure* failure) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const Param& p : params) {
    values.push_back(p.text ? p.text->data() : nullptr);
    lengths.push_back(p.text ? static_cast<int>(p.text->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  PGconn* conn = lease.get();
  // Only the simple protocol (PQexec) runs a script of several statements.
  PgResult res(params.empty()
                   ? PQexec(conn, sql)
                   : PQexecParams(conn, sql, static_cast<int>(params.size()), nullptr,
                                  values.data(), lengths.data(), formats.data(),
                                  /*resultFormat=*/0),
               PQclear);
  const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) return res;
  failure->session_lost = PQstatus(conn) != CONNECTION_OK;
  failure->why = Trimmed(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
  if (failure->why.empty()) failure->why = Trimmed(PQerrorMessage(conn));
  // A connection that saw an error may be to a server that is going away
  // or became a standby: the next statement gets a fresh one.
  lease.Discard();
  return MakeError("storage_unavailable",
                   "PostgreSQL did not run the statement: " + failure->why);
}

bool IsNull(const PGresult* r, int col) { return PQgetisnull(r, 0, col) != 0; }
std::string Text(const PGresult* r, int col) { return PQgetvalue(r, 0, col); }
bool Bool(const PGresult* r, int col) { return !IsNull(r, col) && Text(r, col) == "t"; }
std::uint64_t Number(const PGresult* r, int col) {
  return IsNull(r, col) ? 0 : std::stoull(Text(r, col));
}

// A token column: null is no token; anything that is not a token is a
// corrupt row (someone wrote the table by hand).
Result<std::optional<Token>> TokenAt(const PGresult* r, int col) {
  if (IsNull(r, col)) return std::optional<Token>();
  auto token = ParseToken(Text(r, col));
  if (!token.ok()) {
    return MakeError("corrupt_record", "PostgreSQL returned '" + Text(r, col) +
                                           "' where a fencing token was expected");
  }
  return std::optional<Token>(*token);
}

Error NotInstalled() {
  return MakeError("storage_unavailable", "PostgreSQL has not been reachable since the store "
                                          "started (its tables are not installed yet); "
                                          "nothing was read or written");
}

Error NotInMemory() {
  return MakeError("not_in_memory", "the PostgreSQL backend keeps nothing in memory");
}

// A read's statement, after the checks every read shares: none from memory
// (nothing is cached), none before the tables exist.
Result<PgResult> ReadRows(PgPool& pool, bool schema_ready, ReadFrom from, const char* sql,
                          const std::vector<Param>& params) {
  if (from == ReadFrom::kMemoryOnly) return NotInMemory();
  if (!schema_ready) return NotInstalled();
  auto lease = pool.Acquire();
  if (!lease.ok()) return lease.error();
  Failure failure;
  return Run(*lease, sql, params, &failure);
}

// A fence row (highest_token, version): none when there is no row or no
// fence in it (a scope's placeholder).
Result<std::optional<std::pair<Token, std::uint64_t>>> FenceRow(const PGresult* r) {
  using Fence = std::optional<std::pair<Token, std::uint64_t>>;
  if (PQntuples(r) == 0) return Fence();
  auto highest = TokenAt(r, 0);
  if (!highest.ok()) return highest.error();
  if (!*highest) return Fence();
  return Fence(std::make_pair(**highest, Number(r, 1)));
}

const char* KindName(WriteKind kind) {
  switch (kind) {
    case WriteKind::kPut:
      return "put";
    case WriteKind::kDelete:
      return "delete";
    case WriteKind::kRaiseFence:
      return "fence";
    case WriteKind::kRaiseScope:
      return "raise_scope";
    case WriteKind::kRepairFence:  // its own statement (kPgRepairSql)
      break;
  }
  return "put";
}

std::vector<Param> WriteParams(const WriteRequest& w, const std::string& etag) {
  const bool put = w.kind == WriteKind::kPut;
  const bool has_key = w.kind != WriteKind::kRaiseScope;
  std::string type = w.content_type.empty() ? "application/octet-stream" : w.content_type;
  return {{KindName(w.kind)},
          {has_key ? std::optional<std::string>(w.key) : std::nullopt},
          {w.scope},
          {w.token->ToString()},
          {std::to_string(put ? w.body.size() : 0)},
          {put ? etag : std::string()},
          {put ? std::move(type) : std::string()},
          {put ? std::optional<std::string>(w.body) : std::nullopt, /*binary=*/true}};
}

}  // namespace

PgStore::PgStore(PgStoreOptions options)
    : options_(std::move(options)),
      pool_(options_.pool),
      unhealthy_reason_("PostgreSQL at " + RedactUri(options_.pool.uri) +
                        " has not answered yet"),
      writers_(options_.pool.size, options_.max_queued_writes),
      prober_([this] { RunProbe(); }) {}

PgStore::~PgStore() { Close(); }

// While the probe finds the database down, a write is refused at once
// rather than made to wait for a connection that cannot come (a host that
// does not answer would hold every worker for the connect timeout); the
// probe re-admits writes within probe_interval of the database's return.
Status PgStore::Reachable() const {
  if (healthy_) return OkStatus();
  std::lock_guard lock(mu_);
  return MakeError("storage_unavailable",
                   "PostgreSQL is not reachable: " + unhealthy_reason_ + "; nothing was written");
}

void PgStore::Close() {
  writers_.Close();  // every write taken on is answered first
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  changed_.notify_all();
  if (prober_.joinable()) prober_.join();
}

std::string PgStore::UnhealthyReason() const {
  std::lock_guard lock(mu_);
  return unhealthy_reason_ + "; writes answer 503 and the store reconnects by itself";
}

void PgStore::SetGroupObserver(std::function<void(std::size_t)> observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

void PgStore::MarkUnavailable(const std::string& why) {
  healthy_ = false;
  bool first = false;
  {
    std::lock_guard lock(mu_);
    unhealthy_reason_ = why;
    first = !reported_down_;
    reported_down_ = true;
  }
  pool_.DropIdle();
  if (first) {
    log::Warn("storage_unavailable",
              {{"storage", "postgresql"}, {"message", why}});
  }
}

Status PgStore::Probe() {
  auto lease = pool_.Acquire();
  if (!lease.ok()) return lease.error();
  Failure failure;
  auto ran = Run(*lease, schema_ready_ ? "SELECT 1" : kPgSchemaSql, {}, &failure);
  if (!ran.ok()) return ran.error();
  schema_ready_ = true;
  return OkStatus();
}

// Probes the database every probe_interval until closed, so that /readyz
// follows it both ways even when no request comes.
void PgStore::RunProbe() {
  std::unique_lock lock(mu_);
  while (!closed_) {
    lock.unlock();
    const Status probed = Probe();
    if (probed.ok() && !healthy_.exchange(true)) {
      {
        std::lock_guard relock(mu_);
        reported_down_ = false;
      }
      log::Info("storage_ready",
                {{"storage", "postgresql"}, {"uri", RedactUri(options_.pool.uri)}});
    } else if (!probed.ok()) {
      MarkUnavailable(probed.error().message);
    }
    lock.lock();
    changed_.notify_all();
    changed_.wait_for(lock, options_.probe_interval, [this] { return closed_; });
  }
}

bool PgStore::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [this] { return closed_ || healthy_.load(); }) &&
         healthy_.load();
}

void PgStore::Write(WriteRequest request, WriteDone done) {
  writers_.Submit([this, request = std::move(request),
                   done = std::move(done)](StorageQueue::Slot slot) {
    if (slot == StorageQueue::Slot::kClosed) {
      return done(ShuttingDownError());
    }
    if (slot == StorageQueue::Slot::kQueueFull) {
      return done(OverloadedError(options_.max_queued_writes, "PostgreSQL"));
    }
    auto receipt = Apply(request);
    if (receipt.ok()) {
      std::function<void(std::size_t)> observer;
      {
        std::lock_guard lock(mu_);
        observer = observer_;
      }
      if (observer) observer(1);  // one write, one commit
    }
    done(std::move(receipt));
  });
}

// A connection for one write, once the schema is installed and the
// database was last seen up.
Result<PgPool::Lease> PgStore::LeaseForWrite() {
  if (!schema_ready_) return NotInstalled();
  if (Status up = Reachable(); !up.ok()) return up.error();
  auto lease = pool_.Acquire();
  if (!lease.ok() && lease.error().details.value("reason", "") == "connect") {
    MarkUnavailable(lease.error().message);
  }
  return lease;
}

// The session broke after a write was sent: it may have committed, so it is
// never acknowledged.
Error PgStore::CommitUnknown(const WriteRequest& w, const std::string& why) {
  MarkUnavailable(why);
  return MakeError("commit_unknown",
                   "the connection to PostgreSQL broke after the write was sent (" + why +
                       "): it may or may not be committed; read the key's fence, and retry "
                       "with the same token if it is not there",
                   {{"key", w.key}, {"token", w.token->value()}});
}

Result<WriteReceipt> PgStore::ApplyRepair(const WriteRequest& w) {
  auto lease = LeaseForWrite();
  if (!lease.ok()) return lease.error();
  Failure failure;
  auto ran = Run(*lease, kPgRepairSql,
                 {{w.key}, {w.expected->ToString()}, {w.token->ToString()}}, &failure);
  if (!ran.ok()) return failure.session_lost ? CommitUnknown(w, failure.why) : ran.error();
  const PGresult* r = ran->get();
  auto key_highest = TokenAt(r, 1);
  if (!key_highest.ok()) return key_highest.error();
  const std::string outcome = Text(r, 0);
  if (outcome == "not_fenced") return NothingToRepairError(w.key);
  if (outcome == "moved") return FenceMovedError(w.key, *w.expected, **key_highest);
  WriteReceipt receipt;
  receipt.key = w.key;
  receipt.token = w.token;
  receipt.highest_token = *key_highest;
  receipt.version = Number(r, 2);
  return receipt;
}

Result<WriteReceipt> PgStore::Apply(const WriteRequest& w) {
  if (!w.token) return MissingTokenError(w);
  if (w.kind == WriteKind::kRepairFence) return ApplyRepair(w);
  const std::string etag = w.kind == WriteKind::kPut ? ComputeEtag(w.body) : std::string();
  auto lease = LeaseForWrite();
  if (!lease.ok()) return lease.error();
  Failure failure;
  auto ran = Run(*lease, kPgWriteSql, WriteParams(w, etag), &failure);
  if (!ran.ok()) return failure.session_lost ? CommitUnknown(w, failure.why) : ran.error();
  const PGresult* r = ran->get();
  auto key_highest = TokenAt(r, 1);
  auto scope_highest = TokenAt(r, 3);
  if (!key_highest.ok()) return key_highest.error();
  if (!scope_highest.ok()) return scope_highest.error();
  const std::string outcome = Text(r, 0);
  if (outcome == "stale_key") return StaleTokenError(w, **key_highest);
  if (outcome == "stale_scope") return StaleScopeError(w, **scope_highest);
  WriteReceipt receipt;
  receipt.key = w.key;
  receipt.token = w.token;
  receipt.highest_token = *key_highest;
  receipt.version = Number(r, 2);
  if (w.kind == WriteKind::kPut) {
    receipt.size = w.body.size();
    receipt.etag = etag;
  }
  if (w.scope) {
    receipt.scope = w.scope;
    receipt.scope_highest_token = *scope_highest;
    receipt.scope_version = Number(r, 4);
    receipt.scope_raised = Bool(r, 5);
  }
  return receipt;
}

Status PgStore::Precheck(const std::string& key, std::optional<Token> token,
                         const std::optional<std::string>& scope, ReadFrom from) {
  const bool scope_raise = key.empty() && scope;
  WriteRequest request{scope_raise ? WriteKind::kRaiseScope : WriteKind::kPut, key, token,
                       {}, {}, scope};
  if (!token) return MissingTokenError(request);
  auto ran = ReadRows(pool_, schema_ready_, from, kPgFencesSql, {{key}, {scope}});
  if (!ran.ok()) return ran.error();
  auto key_highest = TokenAt(ran->get(), 0);
  auto scope_highest = TokenAt(ran->get(), 1);
  if (!key_highest.ok()) return key_highest.error();
  if (!scope_highest.ok()) return scope_highest.error();
  const ScopedFenceOutcome out = DecideScopedFence(
      {*key_highest, !scope_raise, *scope_highest, scope.has_value(), *token});
  if (out.decision == ScopedDecision::kStaleKey) return StaleTokenError(request, **key_highest);
  if (out.decision == ScopedDecision::kStaleScope) {
    return StaleScopeError(request, **scope_highest);
  }
  return OkStatus();
}

Result<StoredObject> PgStore::Get(const std::string& key, ReadFrom from) {
  auto ran = ReadRows(pool_, schema_ready_, from, kPgObjectSql, {{key}});
  if (!ran.ok()) return ran.error();
  const PGresult* r = ran->get();
  if (PQntuples(r) == 0 || !Bool(r, 0)) return NotFoundError(key);
  StoredObject object;
  KeyRecord& rec = object.record;
  rec.has_object = true;
  auto object_token = TokenAt(r, 1);
  auto highest = TokenAt(r, 2);
  if (!object_token.ok()) return object_token.error();
  if (!highest.ok()) return highest.error();
  rec.object_token = *object_token;
  rec.highest_token = *highest;
  rec.size = Number(r, 3);
  rec.etag = Text(r, 4);
  rec.content_type = Text(r, 5);
  rec.version = Number(r, 6);
  rec.deleted = Bool(r, 8);
  std::size_t length = 0;
  const auto* text = reinterpret_cast<const unsigned char*>(PQgetvalue(r, 0, 7));
  std::unique_ptr<unsigned char, void (*)(void*)> bytes(PQunescapeBytea(text, &length),
                                                        PQfreemem);
  if (!bytes) return MakeError("storage_unavailable", "out of memory decoding an object");
  object.body.assign(reinterpret_cast<const char*>(bytes.get()), length);
  return object;
}

Result<FenceState> PgStore::GetFence(const std::string& key, ReadFrom from) {
  auto ran = ReadRows(pool_, schema_ready_, from, kPgFenceSql, {{key}});
  if (!ran.ok()) return ran.error();
  auto fence = FenceRow(ran->get());
  if (!fence.ok()) return fence.error();
  if (!*fence) return NeverFencedError(key);
  return FenceState{key, (*fence)->first, (*fence)->second};
}

Result<ScopeState> PgStore::GetScope(const std::string& scope, ReadFrom from) {
  auto ran = ReadRows(pool_, schema_ready_, from, kPgScopeSql, {{scope}});
  if (!ran.ok()) return ran.error();
  auto fence = FenceRow(ran->get());
  if (!fence.ok()) return fence.error();
  if (!*fence) return ScopeNeverFencedError(scope);
  return ScopeState{scope, (*fence)->first, (*fence)->second};
}

}  // namespace fence::store
