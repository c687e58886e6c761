// The storage queue: bounded, closable, and a refused task is told at once.
#include "server/storage_queue.h"

#include <gtest/gtest.h>

#include <future>

namespace fence::store {
namespace {

using Slot = StorageQueue::Slot;

TEST(StoreStorageQueueTest, RunsTasksOnItsThreads) {
  StorageQueue queue(2, 8);
  std::promise<Slot> ran;
  queue.Submit([&](Slot slot) { ran.set_value(slot); });
  EXPECT_EQ(ran.get_future().get(), Slot::kRun);
}

TEST(StoreStorageQueueTest, RefusesAtOnceWhenFullAndRunsAgainOnceThereIsRoom) {
  StorageQueue queue(1, 2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  queue.Submit([&, released](Slot) {
    started.set_value();
    released.wait();
  });
  started.get_future().wait();
  std::promise<Slot> queued;
  queue.Submit([&](Slot slot) { queued.set_value(slot); });  // waits behind the first
  std::optional<Slot> refused;
  queue.Submit([&](Slot slot) { refused = slot; });
  ASSERT_TRUE(refused.has_value()) << "a refusal is answered on the caller's thread";
  EXPECT_EQ(*refused, Slot::kQueueFull);
  EXPECT_EQ(queue.pending(), 2u);
  release.set_value();
  EXPECT_EQ(queued.get_future().get(), Slot::kRun);
}

TEST(StoreStorageQueueTest, CloseFinishesAdmittedTasksAndRefusesLaterOnes) {
  StorageQueue queue(1, 8);
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) {
    queue.Submit([&](Slot slot) {
      if (slot == Slot::kRun) ++ran;
    });
  }
  queue.Close();
  EXPECT_EQ(ran.load(), 5);
  std::optional<Slot> after;
  queue.Submit([&](Slot slot) { after = slot; });
  EXPECT_EQ(after, Slot::kClosed);
  queue.Close();  // idempotent
}

}  // namespace
}  // namespace fence::store
