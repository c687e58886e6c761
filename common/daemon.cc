#include "common/daemon.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <future>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "core/log_event.h"

namespace fence::net {
namespace {

// Once every connection is closed its pending operations fail at once, so
// sessions end within milliseconds; only a handler that kept a Respond past
// quiesce could hold one longer.
constexpr std::chrono::seconds kCloseGrace{5};

struct StopOutcome {
  bool drained = false;           // every request finished within the bound
  std::size_t closed = 0;         // connections closed at the bound
  bool sessions_ended = false;    // safe to destroy the server
};

// Steps 1-4 of the stop order (see daemon.h); the I/O threads keep running
// throughout, so aborted operations complete and sessions end.
StopOutcome Stop(HttpServer& server, const DaemonOptions& options) {
  StopOutcome outcome;
  server.Shutdown();
  outcome.drained = server.WaitDrained(options.drain_timeout);
  outcome.closed = server.CloseAll();
  if (outcome.closed > 0) {
    log::Warn(events::kDrainTimeout,
              {{"drain_timeout_ms", options.drain_timeout.count()},
               {"closed_connections", outcome.closed},
               {"message", "requests still in flight when the drain bound passed "
                           "were cut off unanswered"}});
  }
  if (options.quiesce) options.quiesce();
  outcome.sessions_ended = server.WaitDrained(kCloseGrace);
  return outcome;
}

std::vector<std::thread> StartIoThreads(boost::asio::io_context& ioc, int count) {
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  return threads;
}

}  // namespace

int RunDaemon(const std::string& program, const DaemonOptions& options,
              ServerOptions server_options, std::vector<Route> routes,
              prometheus::Registry& registry) {
  auto endpoint = ParseListenAddress(options.listen);
  if (!endpoint.ok()) return FailStartup(program, endpoint.error().message);

  // Declared in destruction order: the server dies before the io_context.
  auto ioc = std::make_unique<boost::asio::io_context>(options.io_threads);
  auto server = std::make_unique<HttpServer>(*ioc, std::move(server_options),
                                             std::move(routes), registry);
  auto bound = server->Listen(*endpoint);
  if (!bound.ok()) return FailStartup(program, bound.error().message);

  std::promise<int> stop_requested;
  boost::asio::signal_set signals(*ioc, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) stop_requested.set_value(signal);
  });

  nlohmann::json fields = options.listening_fields;
  fields["address"] = bound->address().to_string();
  fields["port"] = bound->port();
  fields["drain_timeout_ms"] = options.drain_timeout.count();
  log::Info("listening", fields);

  // Requests handed to another thread pool (storage) leave no pending
  // operation on `ioc`; without this guard the I/O threads would return once
  // the acceptor closes and never deliver those responses.
  auto work = boost::asio::make_work_guard(*ioc);
  auto threads = StartIoThreads(*ioc, options.io_threads);
  const int signal = stop_requested.get_future().get();
  log::Info("draining", {{"signal", signal}});
  const StopOutcome outcome = Stop(*server, options);
  work.reset();
  ioc->stop();
  for (auto& t : threads) t.join();
  log::Info("stopped", {{"drained", outcome.drained}, {"closed_connections", outcome.closed}});
  if (!outcome.sessions_ended) {
    // Something still holds a session: destroying the server or the
    // io_context would let it run on freed memory. Both are left alive for
    // the few moments until the process exits.
    log::Error("stop_incomplete", {{"open_connections", server->OpenConnections()}});
    [[maybe_unused]] auto* leaked_server = server.release();
    [[maybe_unused]] auto* leaked_ioc = ioc.release();
    return 1;
  }
  return 0;
}

}  // namespace fence::net
