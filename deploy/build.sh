#!/usr/bin/env bash
# Configures and builds everything into build/ (binaries in build/bin/).
# FENCE_WERROR=ON (set by CI) turns warnings into errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFENCE_WERROR="${FENCE_WERROR:-OFF}" >/dev/null
cmake --build build -j2
