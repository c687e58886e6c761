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

// One io_context per I/O thread (see HttpServer), each kept running by a
// work guard until the daemon stops: requests handed to another thread pool
// (storage) leave no pending operation on a context, and without the guard
// its thread would return once the acceptor closes and never deliver those
// responses.
struct IoThreads {
  explicit IoThreads(int count) {
    for (int i = 0; i < count; ++i) {
      contexts.push_back(std::make_unique<boost::asio::io_context>(1));
      guards.push_back(boost::asio::make_work_guard(*contexts.back()));
    }
  }
  std::vector<boost::asio::io_context*> Pointers() const {
    std::vector<boost::asio::io_context*> out;
    for (const auto& c : contexts) out.push_back(c.get());
    return out;
  }
  void Start() {
    for (auto& c : contexts) threads.emplace_back([&c] { c->run(); });
  }
  void StopAndJoin() {
    for (auto& g : guards) g.reset();
    for (auto& c : contexts) c->stop();
    for (auto& t : threads) t.join();
  }

  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
};

}  // namespace

int RunDaemon(const std::string& program, const DaemonOptions& options,
              ServerOptions server_options, std::vector<Route> routes,
              prometheus::Registry& registry) {
  auto endpoint = ParseListenAddress(options.listen);
  if (!endpoint.ok()) return FailStartup(program, endpoint.error().message);

  // Declared in destruction order: the server dies before the io_contexts.
  auto io = std::make_unique<IoThreads>(options.io_threads);
  auto server = std::make_unique<HttpServer>(io->Pointers(), std::move(server_options),
                                             std::move(routes), registry);
  auto bound = server->Listen(*endpoint);
  if (!bound.ok()) return FailStartup(program, bound.error().message);

  std::promise<int> stop_requested;
  boost::asio::signal_set signals(*io->contexts.front(), SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) stop_requested.set_value(signal);
  });

  nlohmann::json fields = options.listening_fields;
  fields["address"] = bound->address().to_string();
  fields["port"] = bound->port();
  fields["drain_timeout_ms"] = options.drain_timeout.count();
  log::Info("listening", fields);

  io->Start();
  const int signal = stop_requested.get_future().get();
  log::Info("draining", {{"signal", signal}});
  const StopOutcome outcome = Stop(*server, options);
  io->StopAndJoin();
  log::Info("stopped", {{"drained", outcome.drained}, {"closed_connections", outcome.closed}});
  if (!outcome.sessions_ended) {
    // Something still holds a session: destroying the server or the
    // io_context would let it run on freed memory. Both are left alive for
    // the few moments until the process exits.
    log::Error("stop_incomplete", {{"open_connections", server->OpenConnections()}});
    [[maybe_unused]] auto* leaked_server = server.release();
    [[maybe_unused]] auto* leaked_io = io.release();
    return 1;
  }
  return 0;
}

}  // namespace fence::net
