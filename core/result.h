// Errors are values at module boundaries: a machine code, a human sentence,
// and the figures that explain it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>

namespace fence {

struct Error {
  std::string code;     // stable, machine-readable, e.g. "stale_token"
  std::string message;  // one human sentence: what was wrong, what was expected
  nlohmann::json details = nlohmann::json::object();  // figures, e.g. tokens
};

inline Error MakeError(std::string code, std::string message,
                       nlohmann::json details = nlohmann::json::object()) {
  return Error{std::move(code), std::move(message), std::move(details)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  const T& value() const& { return std::get<T>(state_); }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status OkStatus() { return Ok{}; }

}  // namespace fence
