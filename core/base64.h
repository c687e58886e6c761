// Standard base64 (RFC 4648, with padding), as etcd's JSON gateway wants for
// every key and value.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fence {

std::string Base64Encode(std::string_view in);
// nullopt if `in` holds a character outside the alphabet; decoding stops at
// the first '='.
std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace fence
