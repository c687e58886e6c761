// A RocksDB clock whose sleeps last at most a millisecond. After a failed
// background flush or compaction RocksDB backs off for a whole second before
// anything else (a manual Resume, closing the database) may proceed; the
// power-cut test fails them on purpose hundreds of times. Only the length of
// the back-off changes, never what is written or synced.
#pragma once

#include <rocksdb/system_clock.h>

#include <algorithm>
#include <memory>

namespace fence::testing {

class ShortSleepClock : public rocksdb::SystemClockWrapper {
 public:
  ShortSleepClock() : rocksdb::SystemClockWrapper(rocksdb::SystemClock::Default()) {}
  const char* Name() const override { return "ShortSleepClock"; }
  void SleepForMicroseconds(int micros) override {
    rocksdb::SystemClockWrapper::SleepForMicroseconds(std::min(micros, 1000));
  }
};

}  // namespace fence::testing
