// Runs an HttpServer until SIGTERM or SIGINT, then drains: stop accepting,
// finish requests in flight, close idle connections, exit.
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
  std::chrono::milliseconds drain_timeout{10000};
  nlohmann::json listening_fields = nlohmann::json::object();  // logged
};

// Returns the process exit code.
int RunDaemon(const std::string& program, const DaemonOptions& options,
              ServerOptions server_options, std::vector<Route> routes,
              prometheus::Registry& registry);

}  // namespace fence::net
