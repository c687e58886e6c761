#!/usr/bin/env bash
# README's second command: install dependencies, build (the same build as the
# demo's), lint with clang-tidy, run every test (unit and integration, against
# real processes). ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh
bash deploy/lint.sh
cd build
exec ctest --output-on-failure --timeout 900 -j2
