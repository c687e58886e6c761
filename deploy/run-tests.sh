#!/usr/bin/env bash
# README's second command: install dependencies, build, run every test
# (unit and integration, against real processes). ctest's summary is the
# last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
FENCE_WERROR="${FENCE_WERROR:-ON}" bash deploy/build.sh
cd build
exec ctest --output-on-failure --timeout 900 -j2
