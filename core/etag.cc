#include "core/etag.h"

#include <cstdint>
#include <cstdio>

namespace fence {

std::string ComputeEtag(std::string_view body) {
  // FNV-1a parameters from the published FNV specification.
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : body) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"",
                static_cast<unsigned long long>(hash));
  return buf;
}

}  // namespace fence
