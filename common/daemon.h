// Runs an HttpServer until SIGTERM or SIGINT, then stops it in the one order
// that is safe: stop accepting and close idle connections; let requests in
// flight finish, for at most drain_timeout; close every connection still
// open; let the daemon's own threads finish (quiesce); wait until every
// session has ended; only then stop the I/O threads and destroy the server.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/http_server.h"

namespace fence::net {

struct DaemonOptions {
  std::string listen;  // HOST:PORT
  int io_threads = 2;
  // After SIGTERM, the time requests in flight get to finish. Whatever is
  // still open then is closed: a request still uploading gets no answer and
  // is not applied.
  std::chrono::milliseconds drain_timeout{10000};
  // Called once every connection is closed, before the I/O threads stop:
  // the daemon finishes (or refuses) the work it took on its own threads.
  // When it returns nothing outside the server may hold a Respond.
  std::function<void()> quiesce;
  nlohmann::json listening_fields = nlohmann::json::object();  // logged
};

// Returns the process exit code.
int RunDaemon(const std::string& program, const DaemonOptions& options,
              ServerOptions server_options, std::vector<Route> routes,
              prometheus::Registry& registry);

}  // namespace fence::net
