// JSON text appended to a string, byte for byte what nlohmann::json's
// dump(-1, ' ', false, error_handler_t::replace) writes, without building a
// json value or a serializer per call. Logs, error answers and key records
// are written on every request; dump's per-call allocations were a tenth of
// the store's CPU on a refused write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace fence {

// `text` as a quoted JSON string: '"', '\\' and control characters escaped,
// other bytes kept; each invalid UTF-8 sequence becomes U+FFFD as
// nlohmann's replace handler makes it, so any bytes a client sent give valid
// JSON and nothing throws.
void AppendJsonString(std::string& out, std::string_view text);

void AppendJsonNumber(std::string& out, std::uint64_t value);

// Any json value, in dump's order (objects by sorted key). Floating point
// and binary values are left to dump itself.
void AppendJsonValue(std::string& out, const nlohmann::json& value);

// The members of a JSON object as text ("a":1,"b":"x"), for the objects
// written on every request (answers, log lines): no json value is built.
// Members come out in the order they are added. The adders are named by
// type: an overload set would turn a string literal into a bool.
class JsonMembers {
 public:
  JsonMembers& AddString(std::string_view name, std::string_view value);
  JsonMembers& AddNumber(std::string_view name, std::uint64_t value);
  JsonMembers& AddBool(std::string_view name, bool value);
  JsonMembers& AddNull(std::string_view name);

  JsonMembers() { text_.reserve(kTypicalBytes); }

  const std::string& text() const { return text_; }
  std::string Object() const& { return "{" + text_ + "}"; }
  // The object, reusing this text's buffer (an answer's members are
  // built once and become its body).
  std::string Object() && {
    text_.insert(text_.begin(), '{');
    text_ += '}';
    return std::move(text_);
  }

 private:
  // An answer's or a log line's members fit: growing from empty would
  // reallocate four or five times on every request.
  static constexpr std::size_t kTypicalBytes = 256;

  void Name(std::string_view name);
  std::string text_;
};

}  // namespace fence
