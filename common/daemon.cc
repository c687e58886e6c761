#include "common/daemon.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <future>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"

namespace fence::net {

int RunDaemon(const std::string& program, const DaemonOptions& options,
              ServerOptions server_options, std::vector<Route> routes,
              prometheus::Registry& registry) {
  auto endpoint = ParseListenAddress(options.listen);
  if (!endpoint.ok()) return FailStartup(program, endpoint.error().message);

  boost::asio::io_context ioc(options.io_threads);
  HttpServer server(ioc, std::move(server_options), std::move(routes), registry);
  auto bound = server.Listen(*endpoint);
  if (!bound.ok()) return FailStartup(program, bound.error().message);

  std::promise<int> stop_requested;
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) stop_requested.set_value(signal);
  });

  nlohmann::json fields = options.listening_fields;
  fields["address"] = bound->address().to_string();
  fields["port"] = bound->port();
  log::Info("listening", fields);

  // Requests handed to another thread pool (storage) leave no pending
  // operation on `ioc`; without this guard the I/O threads would return once
  // the acceptor closes and never deliver those responses.
  auto work = boost::asio::make_work_guard(ioc);
  std::vector<std::thread> threads;
  for (int i = 0; i < options.io_threads; ++i) {
    threads.emplace_back([&ioc] { ioc.run(); });
  }
  const int signal = stop_requested.get_future().get();
  log::Info("draining", {{"signal", signal}});
  server.Shutdown();
  const bool drained = server.WaitDrained(options.drain_timeout);
  ioc.stop();
  for (auto& t : threads) t.join();
  log::Info("stopped", {{"drained", drained}});
  return 0;
}

}  // namespace fence::net
