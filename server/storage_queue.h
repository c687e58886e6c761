// The storage thread pool behind a bounded, closable queue. Storage calls
// (RocksDB reads and fsynced writes) block, so they never run on an HTTP I/O
// thread; this queue is the only way onto the storage threads.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <mutex>
#include <utility>

namespace fence::store {

class StorageQueue {
 public:
  // `max_pending` bounds the tasks queued or running at once: each holds a
  // request (and its body) in memory, and a long queue only adds latency.
  StorageQueue(std::size_t threads, std::size_t max_pending);
  ~StorageQueue();  // Close()
  StorageQueue(const StorageQueue&) = delete;
  StorageQueue& operator=(const StorageQueue&) = delete;

  enum class Slot { kRun, kQueueFull, kClosed };

  // Runs task(Slot::kRun) on a storage thread, or task(kQueueFull) or
  // task(kClosed) at once on the calling thread when `max_pending` tasks
  // are pending or the queue is closed. The task answers its request in
  // every case, so a refused request never waits for room.
  template <typename Task>
  void Submit(Task task) {
    Slot refusal;
    {
      std::lock_guard lock(mu_);
      refusal = closed_ ? Slot::kClosed : Slot::kQueueFull;
      if (!closed_ && pending_ < max_pending_) {
        ++pending_;
        // Posted under the lock: once Close() has set closed_, nothing more
        // enters the pool, so its join() waits for every admitted task.
        boost::asio::post(pool_, [this, task = std::move(task)]() mutable {
          task(Slot::kRun);
          Finished();
        });
        return;
      }
    }
    task(refusal);
  }

  // Refuses new tasks, then waits for every admitted task to finish.
  // Idempotent.
  void Close();

  std::size_t pending() const;
  std::size_t max_pending() const { return max_pending_; }

 private:
  void Finished();

  boost::asio::thread_pool pool_;
  const std::size_t max_pending_;
  mutable std::mutex mu_;
  std::size_t pending_ = 0;  // GUARDED_BY(mu_)
  bool closed_ = false;      // GUARDED_BY(mu_)
};

}  // namespace fence::store
