#include "common/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/json_text.h"

namespace fence::log {
namespace {

// The Writes::kBatched sink (see logging.h). base_sink's mutex serializes
// formatting; mu_ guards the pending lines shared with the writer.
class BatchingStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BatchingStderrSink() : writer_([this] { Run(); }) {}
  ~BatchingStderrSink() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    has_lines_.notify_one();
    writer_.join();  // writes what is pending first
  }
  BatchingStderrSink(const BatchingStderrSink&) = delete;
  BatchingStderrSink& operator=(const BatchingStderrSink&) = delete;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::unique_lock lock(mu_);
    has_room_.wait(lock, [this] { return pending_.size() < kMaxPendingBytes; });
    pending_.append(line.data(), line.size());
    const bool wake = writer_asleep_;
    lock.unlock();
    if (wake) has_lines_.notify_one();
  }

  // Returns once every line logged before the call is written.
  void flush_() override {
    std::unique_lock lock(mu_);
    written_.wait(lock, [this] { return pending_.empty() && !writing_; });
  }

 private:
  static constexpr std::size_t kMaxPendingBytes = 8u << 20;
  static constexpr std::chrono::milliseconds kGather{1};

  // While lines keep coming, the writer writes what gathered every
  // kGather, and callers never signal it (one wake-up per line cost more
  // than formatting it); after a quiet kGather it sleeps until the next
  // line. So a line waits at most kGather.
  void Run() {
    std::string batch;
    std::unique_lock lock(mu_);
    for (;;) {
      if (pending_.empty()) {
        writer_asleep_ = true;
        has_lines_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        writer_asleep_ = false;
        if (pending_.empty()) return;  // stopping, and everything written
      }
      batch.swap(pending_);
      writing_ = true;
      lock.unlock();
      has_room_.notify_all();
      WriteAll(batch);
      batch.clear();
      lock.lock();
      writing_ = false;
      written_.notify_all();
      if (pending_.empty() && !stopping_) {
        has_lines_.wait_for(lock, kGather, [this] { return stopping_; });
      }
    }
  }

  // A log line must never take the process down: errors drop the batch.
  static void WriteAll(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(STDERR_FILENO, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }

  std::mutex mu_;
  std::condition_variable has_lines_;
  std::condition_variable has_room_;
  std::condition_variable written_;
  std::string pending_;    // GUARDED_BY(mu_)
  bool writing_ = false;   // GUARDED_BY(mu_)
  bool writer_asleep_ = false;  // GUARDED_BY(mu_)
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread writer_;     // last: starts once the members above exist
};

}  // namespace

void Init(std::string_view component, Writes writes) {
  std::shared_ptr<spdlog::logger> logger;
  if (writes == Writes::kBatched) {
    logger = std::make_shared<spdlog::logger>("fence", std::make_shared<BatchingStderrSink>());
  } else {
    logger = spdlog::stderr_logger_mt("fence");
  }
  // The envelope is the pattern; the event body (already valid JSON members)
  // is the message. Component names are ours, never user input.
  logger->set_pattern(
      R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":")" +
          std::string(component) + R"(",%v})",
      spdlog::pattern_time_type::utc);
  // Tests and operators read the log as events happen. (The batching sink
  // writes each line as soon as its writer wakes; flushing there would wait
  // for it.)
  if (writes == Writes::kEachLine) logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

std::string FormatEventBody(std::string_view event,
                            const nlohmann::json& fields) {
  // Written member by member (no ordered copy of the fields): a busy store
  // logs every refused write. Invalid UTF-8 is replaced instead of thrown:
  // a log line must never take the process down, whatever bytes a client
  // sent.
  std::string text = "\"event\":";
  AppendJsonString(text, event);
  if (!fields.is_object()) return text;
  for (const auto& [key, value] : fields.items()) {
    if (key == "event") continue;  // the event's name is not a field
    text += ',';
    AppendJsonString(text, key);
    text += ':';
    AppendJsonValue(text, value);
  }
  return text;
}

namespace {
void Write(spdlog::level::level_enum level, const std::string& body) {
  // The body is final text: handed over as is, not through fmt's formatter.
  spdlog::default_logger_raw()->log(level, spdlog::string_view_t(body.data(), body.size()));
}
}  // namespace

void Event(spdlog::level::level_enum level, std::string_view event,
           const JsonMembers& fields) {
  std::string body = FormatEventBody(event, nlohmann::json());  // the event alone
  if (!fields.text().empty()) {
    body += ',';
    body += fields.text();
  }
  Write(level, body);
}

void Event(spdlog::level::level_enum level, std::string_view event,
           const nlohmann::json& fields) {
  Write(level, FormatEventBody(event, fields));
}

}  // namespace fence::log
