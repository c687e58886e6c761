#include "tools/crashloop/loop_support.h"

#include <algorithm>
#include <thread>

#include "common/logging.h"

namespace fence::crashloop {

Result<ListeningDaemon> StartDaemon(const std::string& binary, const std::string& data_dir,
                                    const std::string& log_path) {
  ChildProcess::Options options;
  options.argv = {SiblingBinary(binary), "--data-dir", data_dir};
  options.log_path = log_path;
  return StartListeningDaemon(std::move(options));
}

void KillDaemon(ListeningDaemon& daemon, int kill, std::chrono::milliseconds after) {
  const pid_t pid = daemon.process->pid();
  daemon.process->Kill();
  log::Info("daemon_killed", {{"kill", kill}, {"pid", pid}, {"after_ms", after.count()}});
}

std::chrono::milliseconds KillDelay(std::mt19937_64& rng, int min_ms, int max_ms) {
  std::uniform_int_distribution<int> dist(min_ms, max_ms);
  return std::chrono::milliseconds(dist(rng));
}

void RunWorkersUntil(int count, std::chrono::milliseconds delay,
                     const std::function<void(int, const std::atomic<bool>&)>& worker,
                     const std::function<void()>& end) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) threads.emplace_back(worker, i, std::cref(stop));
  std::this_thread::sleep_for(delay);
  stop = true;
  end();
  for (auto& t : threads) t.join();
}

void PauseUnlessStopped(const std::atomic<bool>& stop, std::chrono::milliseconds delay) {
  constexpr auto kStep = std::chrono::milliseconds(10);
  const auto end = SteadyClock::now() + delay;
  while (!stop.load() && SteadyClock::now() < end) {
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(kStep, end - SteadyClock::now()));
  }
}

void Report(std::vector<Violation> found, int kill, std::uint64_t seed,
            std::vector<Violation>& all) {
  for (Violation& v : found) {
    if (v.kill == 0) v.kill = kill;
    nlohmann::json fields = v.ToJson();
    fields["seed"] = seed;
    log::Error("violation", fields);
    all.push_back(std::move(v));
  }
}

}  // namespace fence::crashloop
