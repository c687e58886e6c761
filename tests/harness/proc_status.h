// Samples a running process's resident memory and thread count from
// /proc/PID/status, for tests that assert a daemon stays bounded under load.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace fence::testing {

// A numeric field of /proc/PID/status: "VmRSS" and "VmSize" in bytes (the
// file gives kB), "Threads" as a count; 0 if the field or process is gone.
std::uint64_t ProcStatusField(pid_t pid, const std::string& field);

// Samples VmRSS, VmSize and Threads every `period` on its own thread and
// keeps the peaks, from construction until Stop().
class ProcessSampler {
 public:
  explicit ProcessSampler(pid_t pid, std::chrono::milliseconds period =
                                         std::chrono::milliseconds(10));
  ~ProcessSampler();
  ProcessSampler(const ProcessSampler&) = delete;
  ProcessSampler& operator=(const ProcessSampler&) = delete;

  void Stop();
  std::uint64_t peak_rss() const { return peak_rss_; }
  std::uint64_t peak_vm() const { return peak_vm_; }
  std::uint64_t peak_threads() const { return peak_threads_; }
  int samples() const { return samples_; }

 private:
  void Sample(pid_t pid);

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> peak_rss_{0};
  std::atomic<std::uint64_t> peak_vm_{0};
  std::atomic<std::uint64_t> peak_threads_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

}  // namespace fence::testing
