#include "tests/harness/raw_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace fence::testing {

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::Send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n =
        send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string RawConnection::ReadUntilClose(std::chrono::milliseconds timeout,
                                          bool* closed) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  *closed = false;
  std::string out = std::move(buffered_);
  buffered_.clear();
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::string RawConnection::ReadUntil(const std::string& needle,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffered_.find(needle) == std::string::npos && ReadMore(deadline)) {
  }
  return buffered_;
}

bool RawConnection::ReadMore(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char buf[4096];
  const ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) return false;
  buffered_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> RawConnection::ReadResponse(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffered_.find("\r\n\r\n") == std::string::npos) {
    if (!ReadMore(deadline)) return std::nullopt;
  }
  const auto header_end = buffered_.find("\r\n\r\n");
  std::size_t length = 0;
  constexpr std::string_view kLength = "\r\ncontent-length: ";
  for (std::size_t i = 0; i + kLength.size() <= header_end; ++i) {
    if (std::equal(
            kLength.begin(), kLength.end(),
            buffered_.begin() + static_cast<long>(i),
            [](char lower, char c) { return lower == std::tolower(c); })) {
      length =
          std::strtoull(buffered_.c_str() + i + kLength.size(), nullptr, 10);
      break;
    }
  }
  const std::size_t total = header_end + 4 + length;
  while (buffered_.size() < total) {
    if (!ReadMore(deadline)) return std::nullopt;
  }
  std::string response = buffered_.substr(0, total);
  buffered_.erase(0, total);
  return response;
}

std::size_t RawConnection::SendWithin(const std::string& bytes,
                                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}

bool RawConnection::PeerClosed() {
  char buf[4096];
  while (true) {
    const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      buffered_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

bool RawConnection::HungUpWithin(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace fence::testing
