// Invariant checks for the fuzz targets: a violated invariant is a finding,
// so it aborts with a sentence (libFuzzer then saves the input), in every
// build type, unlike assert.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace fence::fuzz {

[[noreturn]] inline void Fail(std::string_view what) {
  std::fprintf(stderr, "fuzz invariant violated: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

inline void Check(bool condition, std::string_view what) {
  if (!condition) Fail(what);
}

}  // namespace fence::fuzz
