#include "server/pg_pool.h"

#include <libpq-fe.h>

#include <regex>

namespace fence::store {
namespace {

// `reason` tells a database that does not answer ("connect") from a pool
// whose connections are all busy ("pool_busy").
Error Unavailable(std::string why, const char* reason) {
  return MakeError("storage_unavailable", std::move(why), {{"reason", reason}});
}

std::string Seconds(std::chrono::milliseconds ms) {
  return std::to_string((ms.count() + 999) / 1000);
}

}  // namespace

std::string RedactUri(const std::string& uri) {
  static const std::regex kUserInfo("(://[^:/@]*:)[^@/]*@");
  static const std::regex kPassword("(password=)[^ &]*");
  return std::regex_replace(std::regex_replace(uri, kUserInfo, "$1***@"), kPassword, "$1***");
}

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {}

PgPool::~PgPool() {
  std::lock_guard lock(mu_);
  for (pg_conn* conn : idle_) PQfinish(conn);
  idle_.clear();
}

PgPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->Return(conn_, true);
}

void PgPool::Lease::Discard() {
  if (conn_ != nullptr) pool_->Return(conn_, false);
  conn_ = nullptr;
}

Result<pg_conn*> PgPool::Connect() const {
  const std::string connect_timeout = Seconds(options_.connect_timeout);
  const std::string statement_timeout =
      "-c statement_timeout=" + std::to_string(options_.statement_timeout.count()) +
      " -c lock_timeout=" + std::to_string(options_.statement_timeout.count());
  const std::string user_timeout = std::to_string(options_.statement_timeout.count());
  // The URI comes first: the settings after it are ours and take precedence.
  const char* keys[] = {"dbname",           "connect_timeout", "options", "tcp_user_timeout",
                        "application_name", "keepalives",      nullptr};
  const char* values[] = {options_.uri.c_str(),  connect_timeout.c_str(),
                          statement_timeout.c_str(), user_timeout.c_str(),
                          "fence-store",         "1",
                          nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Unavailable("libpq could not allocate a connection", "connect");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    PQfinish(conn);
    return Unavailable("cannot connect to PostgreSQL at " + RedactUri(options_.uri) + ": " +
                       why, "connect");
  }
  return conn;
}

Result<PgPool::Lease> PgPool::Acquire() {
  std::unique_lock lock(mu_);
  const bool free = freed_.wait_for(lock, options_.acquire_timeout, [this] {
    return !idle_.empty() || open_ < options_.size;
  });
  if (!free) {
    return Unavailable("all " + std::to_string(options_.size) +
                       " PostgreSQL connections (--pg-pool-size) stayed busy for " +
                       std::to_string(options_.acquire_timeout.count()) + " ms",
                       "pool_busy");
  }
  if (!idle_.empty()) {
    pg_conn* conn = idle_.back();
    idle_.pop_back();
    return Lease(this, conn);
  }
  ++open_;  // this slot is taken while it connects, without the lock
  lock.unlock();
  auto conn = Connect();
  if (!conn.ok()) {
    Return(nullptr, false);
    return conn.error();
  }
  return Lease(this, *conn);
}

void PgPool::Return(pg_conn* conn, bool keep) {
  {
    std::lock_guard lock(mu_);
    if (keep && conn != nullptr && PQstatus(conn) == CONNECTION_OK) {
      idle_.push_back(conn);
      conn = nullptr;
    } else {
      --open_;
    }
  }
  if (conn != nullptr) PQfinish(conn);
  freed_.notify_one();
}

void PgPool::DropIdle() {
  std::vector<pg_conn*> dropped;
  {
    std::lock_guard lock(mu_);
    dropped.swap(idle_);
    open_ -= dropped.size();
  }
  for (pg_conn* conn : dropped) PQfinish(conn);
  freed_.notify_all();
}

}  // namespace fence::store
