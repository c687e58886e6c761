#include "client/worker_process.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <thread>

#include "common/logging.h"
#include "common/monotonic_clock.h"

namespace fence::client {
namespace {

spdlog::level::level_enum ToSpdlog(EventLevel level) {
  switch (level) {
    case EventLevel::kWarn:
      return spdlog::level::warn;
    case EventLevel::kError:
      return spdlog::level::err;
    default:
      return spdlog::level::info;
  }
}

}  // namespace

int RunWorkerProcess(const WorkerConfig& config, LockBackend& backend,
                     const std::string& store_url, HistoryFile* history,
                     const std::string& store_token) {
  // Signals are taken by one thread with sigwait, so no handler runs inside
  // the worker's locks. Blocked before the worker's threads exist so that
  // they all inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // our own "finished" wake-up
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  StoreClient store_client(store_url);
  store_client.SetBearerToken(store_token);
  if (config.fencing && config.scope_fencing) store_client.SetScope(config.lock);
  std::optional<RecordingLockBackend> recorded_backend;
  std::optional<RecordingObjectStore> recorded_store;
  if (history != nullptr) {
    recorded_backend.emplace(backend, *history);
    recorded_store.emplace(store_client, *history);
  }
  LockBackend& lock_backend = history ? static_cast<LockBackend&>(*recorded_backend) : backend;
  ObjectStore& store = history ? static_cast<ObjectStore&>(*recorded_store) : store_client;
  MonotonicClock clock;
  ProcessPauser pauser(clock);
  Worker worker(config, lock_backend, store, pauser, clock,
                [](EventLevel level, std::string_view event, const nlohmann::json& fields) {
                  log::Event(ToSpdlog(level), event, fields);
                });
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != SIGUSR1) worker.Stop();
  });
  const int code = worker.Run();
  kill(getpid(), SIGUSR1);
  signal_thread.join();
  return code;
}

}  // namespace fence::client
