#include "tests/harness/proc_status.h"

#include <algorithm>
#include <fstream>

namespace fence::testing {

std::uint64_t ProcStatusField(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string name;
  while (status >> name) {
    std::uint64_t value = 0;
    if (name == field + ":" && status >> value) {
      return field.rfind("Vm", 0) == 0 ? value * 1024 : value;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

ProcessSampler::ProcessSampler(pid_t pid, std::chrono::milliseconds period)
    : thread_([this, pid, period] {
        while (!stop_) {
          Sample(pid);
          std::this_thread::sleep_for(period);
        }
        Sample(pid);
      }) {}

ProcessSampler::~ProcessSampler() { Stop(); }

void ProcessSampler::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ProcessSampler::Sample(pid_t pid) {
  peak_rss_ = std::max(peak_rss_.load(), ProcStatusField(pid, "VmRSS"));
  peak_vm_ = std::max(peak_vm_.load(), ProcStatusField(pid, "VmSize"));
  peak_threads_ =
      std::max(peak_threads_.load(), ProcStatusField(pid, "Threads"));
  ++samples_;
}

}  // namespace fence::testing
