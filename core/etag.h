#pragma once

#include <string>
#include <string_view>

namespace fence {

// A strong ETag (quoted) derived from the object's bytes: 64-bit FNV-1a.
// Not a security hash; it lets clients make conditional reads and compare
// copies cheaply.
std::string ComputeEtag(std::string_view body);

}  // namespace fence
