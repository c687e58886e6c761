#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: checks that catch real bugs) over every C++
# source file of the project, using build/compile_commands.json from
# deploy/build.sh. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
jobs="${FENCE_JOBS:-2}"
if [[ ! -f build/compile_commands.json ]]; then
  echo "lint: build/compile_commands.json is missing; run deploy/build.sh first" >&2
  exit 2
fi
echo "lint: clang-tidy over the project's sources ($jobs jobs)" >&2
# GCC-only warning flags in the compile commands are unknown to clang.
run-clang-tidy-14 -p build -j "$jobs" -quiet \
  -extra-arg=-Wno-unknown-warning-option \
  "^$root/(core|common|server|lockd|client|tools|tests)/" >build/clang-tidy.log 2>&1 || true
if grep -qE '(warning|error): ' build/clang-tidy.log; then
  grep -E -A3 '(warning|error): ' build/clang-tidy.log | sed 's/\x1b\[[0-9;]*m//g' >&2
  echo "lint: clang-tidy found problems (full log: build/clang-tidy.log)" >&2
  exit 1
fi
echo "lint: clean" >&2
