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
  std::string ReadUntil(const std::string& needle,
                        std::chrono::milliseconds timeout);
  // Reads one whole HTTP/1.1 response (header and Content-Length body; every
  // response of our daemons has one) and returns it, keeping what follows for
  // the next call; nullopt if it has not arrived within `timeout`.
  std::optional<std::string> ReadResponse(std::chrono::milliseconds timeout);
  // Sends what the peer accepts within `timeout` without ever blocking
  // longer; returns the number of bytes sent (less than bytes.size() when
  // the peer stopped reading, or on an error).
  std::size_t SendWithin(const std::string& bytes,
                         std::chrono::milliseconds timeout);
  // True if the peer has closed (or reset) the connection; does not wait.
  // Data that arrived meanwhile is kept for the next read.
  bool PeerClosed();
  // Waits, without reading, until the peer hangs up or resets the
  // connection; false if it is still open after `timeout`.
  bool HungUpWithin(std::chrono::milliseconds timeout);

 private:
  // Waits for bytes until `deadline` and appends them to buffered_; false
  // on timeout, close or error.
  bool ReadMore(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffered_;
};

}  // namespace fence::testing
