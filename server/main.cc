// fence-store: an HTTP object store that keeps the highest fencing token per
// key, durably, and refuses writes that carry a lower one.
#include <signal.h>

#include <boost/asio/thread_pool.hpp>
#include <filesystem>

#include "common/cli.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "server/http_api.h"
#include "server/store_service.h"

int main(int argc, char** argv) {
  const std::string program = "fence-store";
  CLI::App app{
      "fence-store: an HTTP object store that persists the highest fencing "
      "token per key and rejects writes with a lower one (409 stale_token).",
      program};
  std::string listen = "127.0.0.1:8080";
  std::string data_dir;
  std::string fencing = "on";
  std::uint64_t max_object_bytes = 16ull * 1024 * 1024;
  std::size_t max_connections = 1024;
  std::uint32_t idle_timeout_ms = 15000;
  std::uint32_t request_timeout_ms = 30000;
  int storage_threads = 16;
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 binds a free port")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir, "directory of the RocksDB database (created if missing)")
      ->required();
  app.add_option("--fencing", fencing,
                 "'on' enforces tokens; 'off' accepts every write (only to stage the "
                 "unfenced demo; every response then carries 'Fencing: off')")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--max-object-bytes", max_object_bytes, "largest object accepted (413 above)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--max-connections", max_connections, "connections served at once (503 above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_timeout_ms,
                 "time allowed for a request header to arrive on a connection")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--request-timeout-ms", request_timeout_ms,
                 "time allowed to receive a request body and send a response")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--storage-threads", storage_threads,
                 "threads doing storage I/O; concurrent writes share fsyncs")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  if (auto code = fence::ParseCommandLine(app, argc, argv)) return *code;

  // A write that hits a file-size limit must fail as an error (507), not
  // kill the server; a client that hangs up must not either.
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  fence::log::Init("store");

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return fence::FailStartup(program, "cannot create data directory " + data_dir +
                                           ": " + ec.message());
  }
  auto storage = fence::store::OpenRocksStorage(data_dir);
  if (!storage.ok()) return fence::FailStartup(program, storage.error().message);

  const auto mode =
      fencing == "on" ? fence::store::FencingMode::kOn : fence::store::FencingMode::kOff;
  fence::store::StoreService service(**storage, mode);
  boost::asio::thread_pool storage_pool(static_cast<std::size_t>(storage_threads));
  auto registry = std::make_shared<prometheus::Registry>();
  fence::store::StoreApi api(service, storage_pool, registry,
                             {.max_object_bytes = max_object_bytes});

  fence::net::ServerOptions server_options;
  server_options.metrics_prefix = "fence_store";
  server_options.max_connections = max_connections;
  server_options.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
  server_options.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  if (mode == fence::store::FencingMode::kOff) {
    server_options.response_headers.emplace_back("Fencing", "off");
    fence::log::Warn("fencing_disabled",
                     {{"message", "every write is accepted whatever its token; use only "
                                  "to demonstrate the unfenced failure"}});
  }
  fence::net::DaemonOptions daemon;
  daemon.listen = listen;
  daemon.listening_fields = {{"data_dir", data_dir}, {"fencing", fencing},
                             {"max_object_bytes", max_object_bytes}};
  const int code = fence::net::RunDaemon(program, daemon, std::move(server_options),
                                         api.Routes(), *registry);
  storage_pool.join();
  return code;
}
