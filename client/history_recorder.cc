#include "client/history_recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/logging.h"
#include "common/monotonic_clock.h"
#include "core/history.h"

namespace fence::client {
namespace {

nlohmann::json OptionalTokenJson(std::optional<Token> token) {
  return token ? nlohmann::json(token->value()) : nlohmann::json();
}

// A lock call's outcome: refusals that certainly changed nothing are "fail";
// an unreachable or failing service may have acted on the call: "info".
std::string_view LockOutcome(const Error& error) {
  return error.code == "held" || error.code == "lease_lost" || error.code == "bad_request"
             ? history::kFail
             : history::kInfo;
}

}  // namespace

Result<std::unique_ptr<HistoryFile>> HistoryFile::Open(const std::string& path,
                                                       std::string process) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return MakeError("history_unavailable",
                     "cannot open history file '" + path + "': " + std::strerror(errno));
  }
  return std::unique_ptr<HistoryFile>(new HistoryFile(fd, std::move(process)));
}

HistoryFile::HistoryFile(int fd, std::string process)
    : fd_(fd), process_(std::move(process)), pid_(::getpid()) {}

HistoryFile::~HistoryFile() { ::close(fd_); }

std::uint64_t HistoryFile::Invoke(std::string_view op, nlohmann::json fields) {
  std::uint64_t id = 0;
  {
    std::lock_guard guard(mu_);
    id = ++next_id_;
  }
  fields["type"] = history::kInvoke;
  fields["op"] = op;
  fields["id"] = id;
  fields["t_ns"] = MonotonicNanos();
  Append(std::move(fields));
  return id;
}

void HistoryFile::Complete(std::uint64_t id, std::string_view type, nlohmann::json fields) {
  fields["t_ns"] = MonotonicNanos();
  fields["type"] = type;
  fields["id"] = id;
  Append(std::move(fields));
}

void HistoryFile::Append(nlohmann::json line) {
  line["process"] = process_;
  line["pid"] = pid_;
  const std::string text = line.dump() + "\n";
  std::lock_guard guard(mu_);
  const ssize_t written = ::write(fd_, text.data(), text.size());
  if (written != static_cast<ssize_t>(text.size()) && !warned_) {
    // The operation goes on; the checker will see it as never completed.
    warned_ = true;
    log::Error("history_write_failed",
               {{"error", written < 0 ? std::strerror(errno) : "short write"}});
  }
}

Result<LockGrant> RecordingLockBackend::Acquire(const std::string& lock,
                                                const std::string& owner, Millis ttl,
                                                Millis wait) {
  const std::uint64_t id = history_.Invoke(history::kAcquire, {{"lock", lock}});
  auto granted = inner_.Acquire(lock, owner, ttl, wait);
  if (!granted.ok()) {
    history_.Complete(id, LockOutcome(granted.error()), {{"error", granted.error().code}});
    return granted;
  }
  {
    std::lock_guard guard(mu_);
    lock_ = lock;
    grant_ = granted->token.value();
  }
  history_.Complete(id, history::kOk,
                    {{"token", granted->token.value()}, {"ttl_ms", granted->ttl.count()}});
  return granted;
}

Status RecordingLockBackend::KeepAlive(Millis timeout) {
  std::string lock;
  std::optional<std::uint64_t> grant;
  {
    std::lock_guard guard(mu_);
    lock = lock_;
    grant = grant_;
  }
  const std::uint64_t id =
      history_.Invoke(history::kRenew, {{"lock", lock}, {"token", grant ? nlohmann::json(*grant)
                                                                         : nlohmann::json()}});
  Status renewed = inner_.KeepAlive(timeout);
  if (renewed.ok()) {
    history_.Complete(id, history::kOk, nlohmann::json::object());
  } else {
    history_.Complete(id, LockOutcome(renewed.error()), {{"error", renewed.error().code}});
  }
  return renewed;
}

Status RecordingLockBackend::Release() {
  std::string lock;
  std::optional<std::uint64_t> grant;
  {
    std::lock_guard guard(mu_);
    lock = lock_;
    grant = grant_;
  }
  const std::uint64_t id = history_.Invoke(
      history::kRelease,
      {{"lock", lock}, {"token", grant ? nlohmann::json(*grant) : nlohmann::json()}});
  Status released = inner_.Release();
  history_.Complete(id, released.ok() ? history::kOk : history::kInfo, nlohmann::json::object());
  return released;
}

Result<PutResult> RecordingObjectStore::Put(const std::string& key, const std::string& body,
                                            std::optional<Token> token) {
  const std::uint64_t id = history_.Invoke(
      history::kWrite, {{"key", key}, {"token", OptionalTokenJson(token)}, {"value", body}});
  return Record(id, inner_.Put(key, body, token));
}

Result<PutResult> RecordingObjectStore::RaiseFence(const std::string& key, Token token) {
  const std::uint64_t id =
      history_.Invoke(history::kFence, {{"key", key}, {"token", token.value()}});
  return Record(id, inner_.RaiseFence(key, token));
}

// 200 happened and 409 certainly did not; any other answer or none may hide
// a write that was applied (a 507 after the log was written, a lost reply).
Result<PutResult> RecordingObjectStore::Record(std::uint64_t id, Result<PutResult> answer) {
  if (!answer.ok()) {
    history_.Complete(id, history::kInfo, {{"error", answer.error().code}});
  } else if (answer->accepted()) {
    history_.Complete(id, history::kOk,
                      {{"version", answer->version},
                       {"etag", answer->etag},
                       {"highest_token", OptionalTokenJson(answer->highest_token)}});
  } else {
    history_.Complete(id, history::kFail,
                      {{"highest_token", OptionalTokenJson(answer->highest_token)}});
  }
  return answer;
}

}  // namespace fence::client
