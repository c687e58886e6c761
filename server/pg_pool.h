// A bounded pool of libpq connections to one PostgreSQL database. Every
// call blocks (connect, statement), so the pool is used only from the
// store's own worker threads, never from an HTTP I/O thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.h"

struct pg_conn;  // libpq's PGconn, kept out of our headers

namespace fence::store {

struct PgPoolOptions {
  // A libpq connection string or URI ("postgresql://user@host:port/db",
  // several hosts and target_session_attrs=read-write for a failover pair).
  std::string uri;
  std::size_t size = 8;  // connections open at once, at most
  // Waiting for a TCP connection and the login; libpq counts whole seconds
  // with a minimum of 2, so this is rounded up.
  std::chrono::milliseconds connect_timeout{2000};
  // The server cancels a statement that runs longer (statement_timeout), and
  // the socket is given up when the server stops acknowledging
  // (tcp_user_timeout): a write never waits longer for an answer.
  std::chrono::milliseconds statement_timeout{5000};
  // Waiting for a free connection when all `size` are in use.
  std::chrono::milliseconds acquire_timeout{2000};
};

class PgPool {
 public:
  explicit PgPool(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // One connection, returned to the pool when the lease goes away. A lease
  // whose connection failed is Discard()ed: the next Acquire connects anew
  // (to whichever host is the primary by then).
  class Lease {
   public:
    Lease(PgPool* pool, pg_conn* conn) : pool_(pool), conn_(conn) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(other.conn_) {
      other.conn_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    pg_conn* get() const { return conn_; }
    void Discard();

   private:
    PgPool* pool_;
    pg_conn* conn_;
  };

  // A connected connection, or an error with code "storage_unavailable"
  // saying why (no free connection within acquire_timeout, or the database
  // refused or did not answer the connection).
  Result<Lease> Acquire();
  // Closes every idle connection (after the database was found down, they
  // are all dead; the next Acquire connects anew).
  void DropIdle();

  const PgPoolOptions& options() const { return options_; }

 private:
  void Return(pg_conn* conn, bool keep);
  Result<pg_conn*> Connect() const;

  const PgPoolOptions options_;
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<pg_conn*> idle_;  // GUARDED_BY(mu_)
  std::size_t open_ = 0;        // GUARDED_BY(mu_): idle and leased, and connecting
};

// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db", for
// logs and errors.
std::string RedactUri(const std::string& uri);

}  // namespace fence::store
