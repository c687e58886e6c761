#!/usr/bin/env bash
# Tests deploy/lint.sh's result cache on a small tree of its own (two files
# under core/, one including core/a.h, the project's .clang-tidy) with a
# cache directory of its own: it never reads or writes the real cache.
# (a) a second run on unchanged sources lints nothing; (b) changing a header's
# content re-lints exactly the file that includes it, touching it without a
# change does not; (c) a finding introduced on purpose fails, also when the
# file was cached clean before and also on the run after (findings are not
# cached); (d) the same tree in another directory (a clone elsewhere) finds
# the results; (e) removing a NOLINT comment re-lints and fails;
# FENCE_LINT_CACHE=off lints every file. ctest runs it as
# LintCacheTest; it exits non-zero with the failed expectation.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
src="$tmp/tree"  # the clone of (d) is its sibling: no .clang-tidy above it
mkdir -p "$src/core" "$src/build" "$tmp/cache"
cp "$here/../.clang-tidy" "$src/.clang-tidy"

cat >"$src/core/a.h" <<'EOF'
#pragma once
#include <string>
inline std::string Greeting() { return "hello"; }
EOF
cat >"$src/core/a.cc" <<'EOF'
#include "core/a.h"
std::string Twice() { return Greeting() + Greeting(); }
EOF
cat >"$src/core/b.cc" <<'EOF'
int Answer() { return 42; }
EOF
entry() {  # tree file
  printf '{"directory": "%s", "file": "%s", "command": "clang++-14 -std=c++20 -I%s -o %s.o -c %s"}' \
    "$1/build" "$1/core/$2" "$1" "$2" "$1/core/$2"
}
echo "[$(entry "$src" a.cc), $(entry "$src" b.cc)]" >"$src/build/compile_commands.json"

failures=0
# Runs lint.sh on the small tree ($tree); $out holds what it printed, $rc its
# status.
tree="$src"
lint() {
  rc=0
  out=$(FENCE_LINT_ROOT="$tree" FENCE_LINT_BUILD="$tree/build" XDG_CACHE_HOME="$tmp/cache" \
    FENCE_LINT_VERBOSE=1 "$@" bash "$here/lint.sh" 2>&1) || rc=$?
}
expect() {  # what status summary
  local what="$1" status="$2" summary="$3"
  if [[ $rc != "$status" ]] || ! grep -qF "$summary" <<<"$out"; then
    echo "FAIL: $what: expected status $status and '$summary'; got status $rc:" >&2
    sed 's/^/    /' <<<"$out" >&2
    failures=$((failures + 1))
  else
    echo "ok: $what ($summary)"
  fi
}

lint env
expect "first run lints both files" 0 "2 files: 2 linted, 0 from the cache"
lint env
expect "(a) unchanged sources: nothing linted" 0 "2 files: 0 linted, 2 from the cache"

touch "$src/core/a.h"
lint env
expect "touching a header without changing it: nothing linted" 0 "0 linted, 2 from the cache"

echo 'inline int Extra() { return 1; }' >>"$src/core/a.h"
lint env
expect "(b) a changed header re-lints its includer" 0 "2 files: 1 linted, 1 from the cache"
if ! grep -qx "linted $src/core/a.cc" <<<"$out" || ! grep -qx "cached $src/core/b.cc" <<<"$out"; then
  echo "FAIL: (b) expected a.cc linted and b.cc cached, got:" >&2; echo "$out" >&2
  failures=$((failures + 1))
fi

cp "$src/core/a.cc" "$tmp/a.cc.clean"
cat >>"$src/core/a.cc" <<'EOF'
#include <utility>
std::string Moved() {
  std::string s = Greeting();
  std::string t = std::move(s);
  return s + t;
}
EOF
lint env
expect "(c) a finding in a file cached clean before fails" 1 "1 with findings"
grep -q 'bugprone-use-after-move' <<<"$out" ||
  { echo "FAIL: (c) the finding is not printed:" >&2; echo "$out" >&2; failures=$((failures + 1)); }
lint env
expect "(c) findings are not cached: the next run fails again" 1 "1 linted, 1 from the cache, 1 with findings"

# (e) Comments are part of the key: a NOLINT silences a finding, and
# removing it must bring the finding back, not a cached clean result.
cp "$tmp/a.cc.clean" "$src/core/a.cc"
cat >>"$src/core/a.cc" <<'EOF'
#include <utility>
std::string Moved() {
  std::string s = Greeting();
  std::string t = std::move(s);
  return s + t;  // NOLINT(bugprone-use-after-move)
}
EOF
lint env
expect "(e) a finding silenced by NOLINT is clean" 0 "1 linted, 1 from the cache, 0 with findings"
sed -i 's|  // NOLINT(bugprone-use-after-move)||' "$src/core/a.cc"
lint env
expect "(e) removing the NOLINT comment brings the finding back" 1 "1 with findings"

cp "$tmp/a.cc.clean" "$src/core/a.cc"
lint env
expect "reverting the finding finds the earlier clean result" 0 "0 linted, 2 from the cache"
mkdir -p "$tmp/clone/build"
cp -r "$src/core" "$src/.clang-tidy" "$tmp/clone/"
echo "[$(entry "$tmp/clone" a.cc), $(entry "$tmp/clone" b.cc)]" >"$tmp/clone/build/compile_commands.json"
tree="$tmp/clone"
lint env
expect "(d) the same tree elsewhere finds the results" 0 "2 files: 0 linted, 2 from the cache"
tree="$src"
lint env FENCE_LINT_CACHE=off
expect "FENCE_LINT_CACHE=off lints every file" 0 "2 files: 2 linted, 0 from the cache"

if ((failures > 0)); then
  echo "lint-cache-test: $failures expectation(s) failed" >&2
  exit 1
fi
echo "lint-cache-test: all expectations held"
