// A plain TCP connection for tests that must send malformed, partial or slow
// HTTP that no well-behaved client would.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace fence::testing {

class RawConnection {
 public:
  explicit RawConnection(int port);  // connects to 127.0.0.1:port
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool Send(const std::string& bytes);
  // Reads until the peer closes or `timeout` passes; `closed` tells which.
  std::string ReadUntilClose(std::chrono::milliseconds timeout, bool* closed);
  // Reads until `needle` appears in what was read, or timeout.
  std::string ReadUntil(const std::string& needle, std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buffered_;
};

}  // namespace fence::testing
