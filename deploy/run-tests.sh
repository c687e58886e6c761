#!/usr/bin/env bash
# README's second command: install dependencies, build (the same build as the
# demo's), lint with clang-tidy, run every test (unit and integration, against
# real processes), fuzz each libFuzzer target for a bounded time
# (deploy/fuzz.sh: its own clang build in build-fuzz/, about 20 s a target),
# then the sanitizer runs (deploy/sanitize.sh: every test under ASan+UBSan in
# build-asan/, the concurrency tests under TSan in build-tsan/).
# FENCE_SANITIZERS=off skips the sanitizer runs for a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh
bash deploy/lint.sh
(cd build && ctest --output-on-failure --timeout 900 -j2)
bash deploy/fuzz.sh
if [[ ${FENCE_SANITIZERS:-on} != off ]]; then
  bash deploy/sanitize.sh
fi
