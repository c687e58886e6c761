#include "server/storage_queue.h"

namespace fence::store {

StorageQueue::StorageQueue(std::size_t threads, std::size_t max_pending)
    : pool_(threads), max_pending_(max_pending) {}

StorageQueue::~StorageQueue() { Close(); }

void StorageQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  pool_.join();
}

std::size_t StorageQueue::pending() const {
  std::lock_guard lock(mu_);
  return pending_;
}

void StorageQueue::Finished() {
  std::lock_guard lock(mu_);
  --pending_;
}

}  // namespace fence::store
