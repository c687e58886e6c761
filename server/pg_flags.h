// fence-store's --storage and --pg-* flags: parsed and checked here, so that
// main.cc only hooks them in.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"
#include "server/pg_store.h"

namespace fence::store {

struct PgFlags {
  std::string storage = "rocksdb";  // or "postgresql"
  std::string uri;
  std::size_t pool_size = 8;
  std::uint32_t connect_timeout_ms = 2000;
  std::uint32_t statement_timeout_ms = 5000;
};

void AddPgFlags(CLI::App& app, PgFlags& flags);

// The other flags that depend on the storage.
struct OtherStorageFlags {
  bool data_dir_set = false;
  bool fencing_off = false;
};
// A sentence naming the flag that does not fit the chosen storage.
Status CheckStorageFlags(const PgFlags& flags, const OtherStorageFlags& other);

PgStoreOptions PgStoreOptionsFor(const PgFlags& flags, std::size_t max_queued_writes);
// What the "listening" log line says about the database (password hidden).
nlohmann::json PgListeningFields(const PgFlags& flags);

}  // namespace fence::store
