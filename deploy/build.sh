#!/usr/bin/env bash
# Configures and builds everything into build/ (binaries in build/bin/).
# Both README commands call this with the same settings, so running the
# demo and then the tests builds once. Warnings are errors (the compiler is
# Debian bookworm's, the same everywhere this runs); FENCE_WERROR=OFF turns
# that off for local experiments. ccache is used when installed.
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFENCE_WERROR="${FENCE_WERROR:-ON}" "${launcher[@]}" >/dev/null
cmake --build build -j "${FENCE_JOBS:-2}"
