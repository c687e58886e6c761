#include "client/zookeeper_backend.h"

// The synchronous API (zoo_create, zoo_wexists, ...) is declared only for
// the multithreaded library we link (zookeeper_mt), under THREADED.
#ifndef THREADED
#define THREADED
#endif
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "common/logging.h"

namespace fence::client {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

constexpr std::string_view kRoot = "/fence-locks";
constexpr std::size_t kMaxLockNameBytes = 256;
// How long Acquire waits for a session to be established before answering
// "unavailable"; the C client keeps trying every host meanwhile.
constexpr Millis kConnectTimeout{5000};
// Sessions that expire while Acquire runs are replaced this many times.
constexpr int kMaxSessionAttempts = 3;
// Recreating the lock's parent znode (a container the server removes when
// empty) races with that removal at most this many times in a row.
constexpr int kMaxCreateAttempts = 5;

// The C client reports every failed reconnect (several per second while a
// server is down); one line per second with a count says the same.
void ForwardClientLog(const char* message) {
  static std::mutex mu;
  static TimePoint last_logged;
  static std::uint64_t suppressed = 0;
  std::lock_guard guard(mu);
  const TimePoint now = SteadyClock::now();
  if (last_logged != TimePoint() && now - last_logged < std::chrono::seconds(1)) {
    ++suppressed;
    return;
  }
  log::Warn("zookeeper_client", {{"message", message}, {"suppressed_before", suppressed}});
  last_logged = now;
  suppressed = 0;
}

Millis Since(TimePoint t) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - t);
}

std::string SessionHex(std::int64_t id) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(id));
  return text;
}

// Sequence numbers are the last ten digits of a sequential znode's name.
long long SequenceOf(const std::string& name) {
  if (name.size() < 10) return -1;
  const std::string digits = name.substr(name.size() - 10);
  if (!std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

bool IsConnectionProblem(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT;
}
bool IsSessionGone(int rc) {
  return rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE || rc == ZSESSIONMOVED;
}

// One zoo_aexists answer, shared by the KeepAlive that waits for it and the
// C client's completion thread, which may answer after KeepAlive gave up.
struct ExistsCall {
  std::mutex mu;
  std::condition_variable answered;
  bool done = false;         // GUARDED_BY(mu)
  int rc = ZOPERATIONTIMEOUT;  // GUARDED_BY(mu)
  Stat stat{};               // GUARDED_BY(mu)
};

void OnExistsAnswer(int rc, const Stat* stat, const void* data) {
  // The client calls every completion exactly once (with ZCLOSING at the
  // latest), so the reference handed over in ExistsWithin is freed here.
  auto* ref = static_cast<std::shared_ptr<ExistsCall>*>(const_cast<void*>(data));
  const std::shared_ptr<ExistsCall> call = std::move(*ref);
  delete ref;
  std::lock_guard guard(call->mu);
  call->done = true;
  call->rc = rc;
  if (stat != nullptr) call->stat = *stat;
  call->answered.notify_all();
}

// zoo_exists bounded by `timeout` (the synchronous call waits as long as the
// client's own session timeout). ZOPERATIONTIMEOUT when no answer came.
int ExistsWithin(zhandle_t* zh, const std::string& path, Millis timeout, Stat& stat) {
  auto call = std::make_shared<ExistsCall>();
  auto* ref = new std::shared_ptr<ExistsCall>(call);
  const int rc = zoo_aexists(zh, path.c_str(), 0, &OnExistsAnswer, ref);
  if (rc != ZOK) {
    delete ref;  // not queued: no completion will come
    return rc;
  }
  std::unique_lock lock(call->mu);
  if (!call->answered.wait_for(lock, timeout, [&] { return call->done; })) {
    return ZOPERATIONTIMEOUT;
  }
  stat = call->stat;
  return call->rc;
}

Status ValidateLockRequest(const std::string& lock, const std::string& owner,
                           Millis ttl, Millis wait) {
  const bool bad_char = std::any_of(lock.begin(), lock.end(), [](char c) {
    return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (lock.empty() || lock.size() > kMaxLockNameBytes || bad_char ||
      lock == "." || lock == "..") {
    return MakeError("bad_request",
                     "lock name '" + lock +
                         "' is not usable as a znode name; expected 1-256 bytes "
                         "without '/' or control characters, not '.' or '..'");
  }
  if (owner.empty()) return MakeError("bad_request", "owner must not be empty");
  if (ttl <= Millis(0) || wait < Millis(0)) {
    return MakeError("bad_request",
                     "ttl must be positive and wait not negative, got ttl_ms=" +
                         std::to_string(ttl.count()) +
                         " wait_ms=" + std::to_string(wait.count()));
  }
  return OkStatus();
}

class ZooKeeperBackend;

// One ZooKeeper session. The C client's completion thread reports its state
// through OnEvent; those fields are guarded by the backend's state_mu_.
struct Session {
  ZooKeeperBackend* backend = nullptr;
  zhandle_t* zh = nullptr;
  Millis requested_ttl{0};
  Millis negotiated_ttl{0};
  std::int64_t id = 0;
  int state = 0;                                 // GUARDED_BY(state_mu_)
  bool expired = false;                          // GUARDED_BY(state_mu_)
  bool ever_connected = false;                   // GUARDED_BY(state_mu_)
  std::optional<TimePoint> disconnected_since;   // GUARDED_BY(state_mu_)
};

class ZooKeeperBackend final : public LockBackend {
 public:
  explicit ZooKeeperBackend(std::string hosts) : hosts_(std::move(hosts)) {}
  ~ZooKeeperBackend() override {
    std::lock_guard api(api_mu_);
    CloseSession();
  }

  std::string_view kind() const override { return "zookeeper"; }

  Result<LockGrant> Acquire(const std::string& lock, const std::string& owner,
                        Millis ttl, Millis wait) override;
  Status KeepAlive(Millis timeout) override;
  Status Release() override;

  // Watcher for session events and for the predecessor znode alike: either
  // way the waiting Acquire re-reads the queue.
  static void OnEvent(zhandle_t* zh, int type, int state, const char* path,
                      void* context);

 private:
  struct Held {
    LockGrant lease;
    std::string node;  // full path of our ephemeral sequential znode
    Session* session = nullptr;
    // Last server round trip that saw our znode, plus the session timeout:
    // past it the server may have expired the session.
    TimePoint confirmed_until;
  };
  struct Node {
    std::string path;
    std::int64_t czxid = 0;
  };

  // All below run with api_mu_ held.
  Status EnsureSession(Millis ttl);
  void CloseSession();
  bool WaitConnected(TimePoint until);
  Result<LockGrant> AcquireInSession(const std::string& lock, const std::string& owner,
                                     TimePoint deadline);
  // Steps of AcquireInSession.
  using QueueEntry = std::pair<long long, std::string>;  // sequence, znode name
  // The lock queue under `dir` by sequence; `listed_at` is when the
  // listing that succeeded was sent.
  Result<std::vector<QueueEntry>> ListQueue(const std::string& dir, TimePoint deadline,
                                            TimePoint& listed_at);
  Result<LockGrant> TakeLock(const std::string& lock, const std::string& owner,
                             const Node& node, TimePoint listed_at);
  Error HeldError(const std::string& lock, const std::string& lowest);
  // Returns once the predecessor is gone, a session event came, or the
  // deadline passed (the caller re-reads the queue).
  Status WaitForPredecessor(const std::string& predecessor, TimePoint deadline);
  void LeaveQueue(const std::string& node);
  Status EnsureParent(const std::string& dir);
  Result<Node> CreateLockNode(const std::string& dir, const std::string& prefix,
                              const std::string& owner, TimePoint deadline);
  Error SessionGone(std::string_view during) const;
  // Steps of KeepAlive. What the session's state alone says about `held`
  // (with state_mu_ held; forgets a lost hold), nullopt if nothing.
  std::optional<Error> SessionProblem(const Held& held);
  // Judges the round trip (zoo_exists of our znode) sent at `sent`.
  Status ConfirmHold(const Held& held, TimePoint sent, int rc, const Stat& stat);
  Error ConnectionLost(std::string_view during, int rc) const;

  const std::string hosts_;
  std::mutex api_mu_;                  // serializes Acquire, KeepAlive, Release
  std::unique_ptr<Session> session_;  // replaced only with api_mu_ held

  mutable std::mutex state_mu_;
  std::condition_variable changed_;
  std::uint64_t events_ = 0;  // GUARDED_BY(state_mu_)
  std::optional<Held> held_;  // GUARDED_BY(state_mu_)
};

void ZooKeeperBackend::OnEvent(zhandle_t*, int type, int state, const char*,
                               void* context) {
  auto* session = static_cast<Session*>(context);
  ZooKeeperBackend* self = session->backend;
  std::lock_guard guard(self->state_mu_);
  if (type == ZOO_SESSION_EVENT) {
    session->state = state;
    if (state == ZOO_CONNECTED_STATE) {
      if (session->disconnected_since && session->ever_connected) {
        log::Info("zookeeper_reconnected",
                  {{"lease_id", SessionHex(session->id)},
                   {"disconnected_ms", Since(*session->disconnected_since).count()}});
      }
      session->ever_connected = true;
      session->disconnected_since.reset();
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      session->expired = true;
      log::Warn("zookeeper_session_expired", {{"lease_id", SessionHex(session->id)}});
    } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
      if (!session->disconnected_since) {
        session->disconnected_since = SteadyClock::now();
        if (session->ever_connected) {
          log::Warn("zookeeper_disconnected",
                    {{"lease_id", SessionHex(session->id)},
                     {"session_timeout_ms", session->negotiated_ttl.count()}});
        }
      }
    }
  }
  ++self->events_;
  self->changed_.notify_all();
}

bool ZooKeeperBackend::WaitConnected(TimePoint until) {
  std::unique_lock lock(state_mu_);
  changed_.wait_until(lock, until, [&] {
    return session_->expired || session_->state == ZOO_CONNECTED_STATE;
  });
  return !session_->expired && session_->state == ZOO_CONNECTED_STATE;
}

void ZooKeeperBackend::CloseSession() {
  if (!session_) return;
  // zookeeper_close joins the client's threads, which take state_mu_ in
  // OnEvent: it must run without state_mu_ held. Closing deletes our
  // ephemeral znodes at once if the server is reachable.
  zookeeper_close(session_->zh);
  std::lock_guard guard(state_mu_);
  if (held_ && held_->session == session_.get()) held_.reset();
  session_.reset();
}

Status ZooKeeperBackend::EnsureSession(Millis ttl) {
  if (session_) {
    bool reuse;
    {
      std::lock_guard guard(state_mu_);
      reuse = !session_->expired && session_->requested_ttl == ttl;
    }
    if (!reuse) CloseSession();
  }
  if (!session_) {
    auto session = std::make_unique<Session>();
    session->backend = this;
    session->requested_ttl = ttl;
    zhandle_t* zh = zookeeper_init2(hosts_.c_str(), &ZooKeeperBackend::OnEvent,
                                    static_cast<int>(ttl.count()), nullptr,
                                    session.get(), 0, &ForwardClientLog);
    if (zh == nullptr) {
      return MakeError("unavailable", "cannot start a ZooKeeper client for '" + hosts_ +
                                          "': " + std::strerror(errno));
    }
    session->zh = zh;
    session_ = std::move(session);
  }
  if (!WaitConnected(SteadyClock::now() + kConnectTimeout)) {
    bool expired;
    {
      std::lock_guard guard(state_mu_);
      expired = session_->expired;
    }
    if (expired) {
      CloseSession();
      return SessionGone("connecting");
    }
    log::Warn("lock_service_unavailable",
              {{"backend", "zookeeper"}, {"endpoints", hosts_},
               {"waited_ms", kConnectTimeout.count()}});
    return MakeError("unavailable",
                     "could not connect to ZooKeeper at '" + hosts_ + "' within " +
                         std::to_string(kConnectTimeout.count()) +
                         " ms; the client keeps retrying every host",
                     {{"endpoints", hosts_}});
  }
  session_->negotiated_ttl = Millis(zoo_recv_timeout(session_->zh));
  session_->id = zoo_client_id(session_->zh)->client_id;
  return OkStatus();
}

Error ZooKeeperBackend::SessionGone(std::string_view during) const {
  return MakeError("session_expired",
                   "the ZooKeeper session ended while " + std::string(during));
}

Error ZooKeeperBackend::ConnectionLost(std::string_view during, int rc) const {
  return MakeError("unavailable", "lost the connection to ZooKeeper at '" + hosts_ +
                                      "' while " + std::string(during) + ": " +
                                      zerror(rc),
                   {{"endpoints", hosts_}});
}

Status ZooKeeperBackend::EnsureParent(const std::string& dir) {
  // The root is persistent; the per-lock directory is a container, which
  // the server deletes once its last lock znode is gone.
  for (const auto& [path, mode] :
       {std::pair{std::string(kRoot), ZOO_PERSISTENT}, std::pair{dir, ZOO_CONTAINER}}) {
    const int rc = zoo_create(session_->zh, path.c_str(), nullptr, -1,
                              &ZOO_OPEN_ACL_UNSAFE, mode, nullptr, 0);
    if (rc == ZOK || rc == ZNODEEXISTS) continue;
    if (IsSessionGone(rc)) return SessionGone("creating " + path);
    if (IsConnectionProblem(rc)) return ConnectionLost("creating " + path, rc);
    return MakeError("bad_request",
                     "ZooKeeper refused to create " + path + ": " + zerror(rc));
  }
  return OkStatus();
}

Result<ZooKeeperBackend::Node> ZooKeeperBackend::CreateLockNode(
    const std::string& dir, const std::string& prefix, const std::string& owner,
    TimePoint deadline) {
  zhandle_t* zh = session_->zh;
  for (int attempt = 0; attempt < kMaxCreateAttempts; ++attempt) {
    if (auto parent = EnsureParent(dir); !parent.ok()) return parent.error();
    char created[1024];
    Stat stat{};
    const std::string base = dir + "/" + prefix;
    const int rc = zoo_create2(zh, base.c_str(), owner.data(),
                               static_cast<int>(owner.size()), &ZOO_OPEN_ACL_UNSAFE,
                               ZOO_EPHEMERAL_SEQUENTIAL, created, sizeof created, &stat);
    if (rc == ZOK) return Node{created, stat.czxid};
    if (rc == ZNONODE) continue;  // the empty container was just removed
    if (IsSessionGone(rc)) return SessionGone("creating the lock znode");
    if (!IsConnectionProblem(rc)) {
      return MakeError("bad_request",
                       "ZooKeeper refused to create " + base + ": " + zerror(rc));
    }
    // The create may or may not have happened: the recipe finds it again by
    // the session id in its name.
    const TimePoint until = std::max(deadline, SteadyClock::now() + session_->negotiated_ttl);
    if (!WaitConnected(until)) return ConnectionLost("creating the lock znode", rc);
    String_vector children{};
    const int list_rc = zoo_get_children(zh, dir.c_str(), 0, &children);
    if (IsSessionGone(list_rc)) return SessionGone("looking for our lock znode");
    std::optional<std::string> mine;
    for (int i = 0; list_rc == ZOK && i < children.count; ++i) {
      if (std::string_view(children.data[i]).substr(0, prefix.size()) == prefix) {
        mine = dir + "/" + children.data[i];
      }
    }
    deallocate_String_vector(&children);
    if (mine) {
      Stat found{};
      if (zoo_exists(zh, mine->c_str(), 0, &found) == ZOK) return Node{*mine, found.czxid};
    }
  }
  return MakeError("unavailable", "could not create a lock znode under " + dir +
                                      " after " + std::to_string(kMaxCreateAttempts) +
                                      " attempts");
}

void ZooKeeperBackend::LeaveQueue(const std::string& node) {
  // If the delete cannot be confirmed the session is closed, since a
  // forgotten znode would later "hold" the lock for nobody.
  const int rc = zoo_delete(session_->zh, node.c_str(), -1);
  if (rc != ZOK && rc != ZNONODE) CloseSession();
}

Result<std::vector<ZooKeeperBackend::QueueEntry>> ZooKeeperBackend::ListQueue(
    const std::string& dir, TimePoint deadline, TimePoint& listed_at) {
  while (true) {
    listed_at = SteadyClock::now();
    String_vector children{};
    const int rc = zoo_get_children(session_->zh, dir.c_str(), 0, &children);
    if (IsSessionGone(rc)) return SessionGone("reading the lock queue");
    if (IsConnectionProblem(rc)) {
      const TimePoint until = std::max(deadline, SteadyClock::now() + session_->negotiated_ttl);
      if (!WaitConnected(until)) return ConnectionLost("reading the lock queue", rc);
      continue;
    }
    if (rc != ZOK) return MakeError("unavailable", "cannot list " + dir + ": " + zerror(rc));
    std::vector<QueueEntry> queue;
    for (int i = 0; i < children.count; ++i) {
      const std::string name = children.data[i];
      if (const long long seq = SequenceOf(name); seq >= 0) queue.emplace_back(seq, name);
    }
    deallocate_String_vector(&children);
    std::sort(queue.begin(), queue.end());
    return queue;
  }
}

Result<LockGrant> ZooKeeperBackend::TakeLock(const std::string& lock, const std::string& owner,
                                             const Node& node, TimePoint listed_at) {
  Session* session = session_.get();
  // The listing came from the server within this session, so the session
  // was alive when we sent it.
  const Held held{LockGrant{lock, owner, Token(static_cast<std::uint64_t>(node.czxid)),
                            SessionHex(session->id), session->negotiated_ttl, {}},
                  node.path, session, listed_at + session->negotiated_ttl};
  std::lock_guard guard(state_mu_);
  if (session->expired) return SessionGone("taking the lock");
  held_ = held;
  return held.lease;
}

Error ZooKeeperBackend::HeldError(const std::string& lock, const std::string& lowest) {
  char data[1024];
  int length = sizeof data;
  Stat stat{};
  std::string holder = "?";
  if (zoo_get(session_->zh, lowest.c_str(), 0, data, &length, &stat) == ZOK && length >= 0) {
    holder.assign(data, static_cast<std::size_t>(length));
  }
  return MakeError("held",
                   "lock '" + lock + "' is held by '" + holder + "' (znode " + lowest +
                       ", czxid " + std::to_string(stat.czxid) + ") after waiting",
                   {{"holder", holder}, {"lock", lock}, {"holder_token", stat.czxid}});
}

Status ZooKeeperBackend::WaitForPredecessor(const std::string& predecessor,
                                            TimePoint deadline) {
  std::uint64_t seen;
  {
    std::lock_guard guard(state_mu_);
    seen = events_;
  }
  Stat stat{};
  const int rc = zoo_wexists(session_->zh, predecessor.c_str(), &ZooKeeperBackend::OnEvent,
                             session_.get(), &stat);
  if (rc == ZNONODE) return OkStatus();  // gone already: read the queue again
  if (IsSessionGone(rc)) return SessionGone("watching the predecessor");
  if (rc != ZOK && !IsConnectionProblem(rc)) {
    return MakeError("unavailable", "cannot watch " + predecessor + ": " + zerror(rc));
  }
  // A connection problem is waited out like the watch: the session event
  // wakes us as the predecessor's deletion would.
  std::unique_lock lock_state(state_mu_);
  changed_.wait_until(lock_state, deadline, [&] { return events_ != seen; });
  return OkStatus();
}

Result<LockGrant> ZooKeeperBackend::AcquireInSession(const std::string& lock,
                                                     const std::string& owner,
                                                     TimePoint deadline) {
  const std::string dir = std::string(kRoot) + "/" + lock;
  const std::string prefix = "lock-" + SessionHex(session_->id) + "-";
  auto node = CreateLockNode(dir, prefix, owner, deadline);
  if (!node.ok()) return node.error();
  const std::string my_name = node->path.substr(dir.size() + 1);
  // Every way out but a lost session (which took our znode with it) leaves
  // the queue.
  auto give_up = [&](const Error& e) {
    if (e.code != "session_expired") LeaveQueue(node->path);
    return e;
  };
  while (true) {
    TimePoint listed_at;
    auto queue = ListQueue(dir, deadline, listed_at);
    if (!queue.ok()) return give_up(queue.error());
    const auto me = std::find_if(queue->begin(), queue->end(),
                                 [&](const QueueEntry& entry) { return entry.second == my_name; });
    if (me == queue->end()) {
      // Our znode is gone: the session ended, or someone deleted it.
      return SessionGone("waiting in the lock queue (our znode " + node->path +
                         " disappeared)");
    }
    if (me == queue->begin()) return TakeLock(lock, owner, *node, listed_at);
    if (SteadyClock::now() >= deadline) {
      return give_up(HeldError(lock, dir + "/" + queue->front().second));
    }
    // Watch only the znode just before ours: when it goes, either we are
    // first or the one before it is our new predecessor; nobody else wakes.
    auto watched = WaitForPredecessor(dir + "/" + std::prev(me)->second, deadline);
    if (!watched.ok()) return give_up(watched.error());
  }
}

Result<LockGrant> ZooKeeperBackend::Acquire(const std::string& lock, const std::string& owner,
                                        Millis ttl, Millis wait) {
  if (auto valid = ValidateLockRequest(lock, owner, ttl, wait); !valid.ok()) {
    return valid.error();
  }
  std::lock_guard api(api_mu_);
  {
    std::lock_guard guard(state_mu_);
    if (held_ && !held_->session->expired &&
        SteadyClock::now() < held_->confirmed_until) {
      if (held_->lease.lock == lock && held_->lease.owner == owner) return held_->lease;
      return MakeError("bad_request", "this client already holds lock '" +
                                          held_->lease.lock + "'; release it first");
    }
  }
  const bool stale_hold = [&] {
    std::lock_guard guard(state_mu_);
    return held_.has_value();
  }();
  // A hold we can no longer vouch for is dropped with its session, so its
  // znode cannot linger at the head of the queue.
  if (stale_hold) CloseSession();

  const TimePoint deadline = SteadyClock::now() + wait;
  for (int attempt = 1; attempt <= kMaxSessionAttempts; ++attempt) {
    auto session = EnsureSession(ttl);
    if (!session.ok()) {
      if (session.error().code == "session_expired") continue;
      return session.error();
    }
    auto lease = AcquireInSession(lock, owner, deadline);
    if (lease.ok() || lease.error().code != "session_expired") return lease;
    log::Warn("zookeeper_session_lost_while_acquiring",
              {{"lock", lock}, {"owner", owner}, {"attempt", attempt},
               {"error", lease.error().message}});
    CloseSession();
  }
  return MakeError("unavailable", "ZooKeeper sessions at '" + hosts_ + "' ended " +
                                      std::to_string(kMaxSessionAttempts) +
                                      " times while acquiring lock '" + lock + "'");
}

std::optional<Error> ZooKeeperBackend::SessionProblem(const Held& held) {
  const Session& session = *held.session;
  auto lost = [&](const std::string& why) {
    held_.reset();
    return MakeError("lease_lost", why, {{"lease_id", held.lease.lease_id}});
  };
  if (session.expired) {
    return lost("ZooKeeper session " + held.lease.lease_id + " has expired");
  }
  if (!session.disconnected_since) return std::nullopt;
  const Millis gone = Since(*session.disconnected_since);
  // The server expires a session it has not heard from for the session
  // timeout, and it has not heard from us since the connection dropped.
  if (gone >= session.negotiated_ttl) {
    return lost("disconnected from ZooKeeper for " + std::to_string(gone.count()) +
                " ms, at least the " + std::to_string(session.negotiated_ttl.count()) +
                " ms session timeout: the session is expired at the server");
  }
  return MakeError("unavailable",
                   "disconnected from ZooKeeper " + std::to_string(gone.count()) +
                       " ms ago; session " + held.lease.lease_id +
                       " and its lock may still be alive for up to " +
                       std::to_string((session.negotiated_ttl - gone).count()) + " ms",
                   {{"lease_id", held.lease.lease_id}});
}

Status ZooKeeperBackend::ConfirmHold(const Held& held, TimePoint sent, int rc,
                                     const Stat& stat) {
  std::lock_guard guard(state_mu_);
  if (!held_ || held_->node != held.node) {
    return MakeError("lease_lost", "the lock was released meanwhile");
  }
  if (rc == ZOK && stat.ephemeralOwner == held.session->id) {
    held_->confirmed_until = sent + held.session->negotiated_ttl;
    return OkStatus();
  }
  if (rc == ZNONODE || rc == ZOK || IsSessionGone(rc)) {
    held_.reset();
    return MakeError("lease_lost",
                     "ZooKeeper lock znode " + held.node + " is gone or no longer ours (" +
                         zerror(rc) + ")",
                     {{"lease_id", held.lease.lease_id}});
  }
  if (SteadyClock::now() >= held_->confirmed_until) {
    held_.reset();
    return MakeError("lease_lost",
                     "ZooKeeper session " + held.lease.lease_id +
                         " was not confirmed within its " +
                         std::to_string(held.session->negotiated_ttl.count()) +
                         " ms timeout (" + zerror(rc) + "): the server may have expired it",
                     {{"lease_id", held.lease.lease_id}});
  }
  return MakeError("unavailable", "checking lock znode " + held.node + " failed: " +
                                      zerror(rc) + "; the session may still be alive",
                   {{"lease_id", held.lease.lease_id}});
}

Status ZooKeeperBackend::KeepAlive(Millis timeout) {
  std::lock_guard api(api_mu_);
  std::optional<Held> held;
  {
    std::lock_guard guard(state_mu_);
    if (!held_) return MakeError("lease_lost", "no ZooKeeper lock is held");
    held = held_;
    if (auto problem = SessionProblem(*held)) return *problem;
  }
  // The C client pings by itself; this round trip proves to us that the
  // session is alive now and that our znode is still there.
  const TimePoint sent = SteadyClock::now();
  Stat stat{};
  const int rc = ExistsWithin(held->session->zh, held->node, timeout, stat);
  return ConfirmHold(*held, sent, rc, stat);
}

Status ZooKeeperBackend::Release() {
  std::lock_guard api(api_mu_);
  std::optional<Held> held;
  {
    std::lock_guard guard(state_mu_);
    held.swap(held_);
  }
  if (!held || held->session != session_.get()) return OkStatus();
  const int rc = zoo_delete(session_->zh, held->node.c_str(), -1);
  if (rc == ZOK || rc == ZNONODE || IsSessionGone(rc)) return OkStatus();
  // Ending the session removes the ephemeral znode, now if the server is
  // reachable and at the session timeout otherwise.
  log::Warn("lock_release_failed", {{"backend", "zookeeper"},
                                    {"node", held->node},
                                    {"error", zerror(rc)}});
  CloseSession();
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<LockBackend>> MakeZooKeeperBackend(
    const std::vector<std::string>& endpoints) {
  static std::once_flag quiet_client;
  // The C client logs connection chatter at INFO to stderr; warnings and
  // errors still reach our JSON log through ForwardClientLog.
  std::call_once(quiet_client, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); });
  std::string hosts;
  for (std::string endpoint : endpoints) {
    for (std::string_view scheme : {"zk://", "tcp://"}) {
      if (endpoint.rfind(scheme, 0) == 0) endpoint.erase(0, scheme.size());
    }
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    const auto colon = endpoint.rfind(':');
    const bool port_ok = colon != std::string::npos && colon + 1 < endpoint.size() &&
                         std::all_of(endpoint.begin() + colon + 1, endpoint.end(), ::isdigit);
    if (colon == 0 || !port_ok || endpoint.find(',') != std::string::npos) {
      return MakeError("bad_request", "ZooKeeper endpoint '" + endpoint +
                                          "' is not HOST:PORT (e.g. 127.0.0.1:2181)");
    }
    if (!hosts.empty()) hosts += ',';
    hosts += endpoint;
  }
  if (hosts.empty()) {
    return MakeError("bad_request", "no ZooKeeper endpoints given; expected HOST:PORT");
  }
  return std::unique_ptr<LockBackend>(new ZooKeeperBackend(std::move(hosts)));
}

}  // namespace fence::client
