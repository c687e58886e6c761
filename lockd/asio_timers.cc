#include "lockd/asio_timers.h"

#include <algorithm>

namespace fence::lockd {

AsioTimers::AsioTimers(Strand strand, const Clock& clock)
    : strand_(std::move(strand)), clock_(clock) {}

AsioTimers::~AsioTimers() {
  for (auto& [id, pending] : pending_) pending.timer->cancel();
}

Timers::Id AsioTimers::ScheduleAt(Millis at, std::function<void()> fire) {
  const Id id = next_id_++;
  // The delay is taken from `clock_`, which truncates to whole milliseconds:
  // the timer therefore ends at or after `at` on that clock, never before.
  auto timer = std::make_unique<boost::asio::steady_timer>(
      strand_, std::max(Millis(0), at - clock_.Now()));
  timer->async_wait([this, id](boost::system::error_code ec) {
    if (!ec) OnExpired(id);
  });
  pending_.emplace(id, Pending{std::move(timer), std::move(fire)});
  return id;
}

void AsioTimers::Cancel(Id id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  it->second.timer->cancel();
  pending_.erase(it);
}

void AsioTimers::OnExpired(Id id) {
  auto it = pending_.find(id);
  // A timer cancelled after its completion was queued still completes
  // without an error: it is no longer pending, so it must not fire.
  if (it == pending_.end()) return;
  std::function<void()> fire = std::move(it->second.fire);
  pending_.erase(it);
  fire();
}

}  // namespace fence::lockd
