#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: checks that catch real bugs) over every C++
# source file of the project, using build/compile_commands.json from
# deploy/build.sh. Exits non-zero on any finding.
#
# Result cache (like ccache, for clang-tidy): a file's key is the SHA-256 of
# its preprocessed source with comments (clang++-14 -E -C with its own compile
# command, comments kept so that a NOLINT counts: every
# header it includes, as they are now), its compile command, every
# .clang-tidy that applies to it, clang-tidy's version and the extra
# arguments. A clean result is stored under
# ${XDG_CACHE_HOME:-$HOME/.cache}/fence-lint/<key>; a file whose key is
# stored is not linted again. Findings are never stored: a file with one is
# linted, and fails, on every run. The checkout's path is replaced by @ROOT@
# before hashing, so clones in other directories share results.
# FENCE_LINT_CACHE=off lints every file. deploy/lint-cache-test.sh tests it.
#
# Environment: FENCE_JOBS (2) parallel files; FENCE_LINT_ROOT (this checkout)
# and FENCE_LINT_BUILD ($root/build) the tree and compile database (the test
# points them at a small tree of its own); FENCE_LINT_VERBOSE=1 names each
# file linted or found in the cache.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "${FENCE_LINT_ROOT:-$here/..}" && pwd)"
build="${FENCE_LINT_BUILD:-$root/build}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fence-lint"
# GCC-only warning flags in the compile commands are unknown to clang.
extra_args=(--extra-arg=-Wno-unknown-warning-option)

# The key of one file, on stdout; nothing when it cannot be computed (then
# the file is linted and its result not stored).
lint_key() {  # file
  local file="$1" dir args=() pp_args=() skip=0 a d
  # The file's directory and its compile command, split as the shell would
  # (CMake quotes -DX=\"...\"); python3 comes with clang-tidy-14.
  mapfile -d '' args < <(python3 -c '
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"] == sys.argv[2]:
        cmd = shlex.split(e["command"]) if "command" in e else e["arguments"]
        sys.stdout.write("\0".join([e["directory"]] + cmd) + "\0")
        break
' "$build/compile_commands.json" "$file")
  ((${#args[@]} > 1)) || return 0
  dir="${args[0]}"
  for a in "${args[@]:2}"; do  # drop the compiler and its -o target
    if ((skip)); then skip=0; continue; fi
    if [[ $a == -o ]]; then skip=1; continue; fi
    pp_args+=("$a")
  done
  {
    echo "fence-lint key v1"
    clang-tidy-14 --version
    printf '%s\n' "${extra_args[@]}" "${pp_args[@]}"
    d="$(dirname "$file")"
    while :; do  # clang-tidy reads the nearest .clang-tidy files upward
      [[ -f $d/.clang-tidy ]] && { echo "config $d"; cat "$d/.clang-tidy"; }
      [[ $d == / ]] && break
      d="$(dirname "$d")"
    done
    (cd "$dir" && clang++-14 -E -C -Wno-unknown-warning-option "${pp_args[@]}" -o -) ||
      return 1
  } | sed "s|$root|@ROOT@|g" | sha256sum | cut -d' ' -f1
}

# Lints one file; prints "<state> <file>" (state: cached, clean, FAILED),
# and for a failure its findings after that line.
lint_one() {  # file
  local file="$1" key="" out rc=0
  if [[ ${FENCE_LINT_CACHE:-on} != off ]]; then
    key=$(lint_key "$file" 2>/dev/null) || key=""
    if [[ -n $key && -f $cache/$key ]]; then
      echo "cached $file"
      return 0
    fi
  fi
  out=$(clang-tidy-14 -p "$build" --quiet "${extra_args[@]}" "$file" 2>&1) || rc=$?
  if ((rc != 0)) || grep -qE '(warning|error): ' <<<"$out"; then
    echo "FAILED $file"
    sed 's/\x1b\[[0-9;]*m//g' <<<"$out" | grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$'
    return 0
  fi
  if [[ -n $key ]]; then  # atomically: a reader never sees half an entry
    mkdir -p "$cache"
    echo "${file#"$root"/}" >"$cache/$key.$$" && mv "$cache/$key.$$" "$cache/$key"
  fi
  echo "clean $file"
}

if [[ ${1:-} == --one ]]; then
  lint_one "$2"
  exit 0
fi

jobs="${FENCE_JOBS:-2}"
if [[ ! -f $build/compile_commands.json ]]; then
  echo "lint: $build/compile_commands.json is missing; run deploy/build.sh first" >&2
  exit 2
fi
mkdir -p "$build"
log="$build/clang-tidy.log"
mapfile -t files < <(python3 -c '
import json, sys
print("\n".join(e["file"] for e in json.load(open(sys.argv[1]))))
' "$build/compile_commands.json" |
  grep -E "^$root/(core|common|server|lockd|client|tools|tests)/" | sort -u)
echo "lint: clang-tidy over ${#files[@]} source files ($jobs jobs, cache" \
  "${FENCE_LINT_CACHE:-on}: $cache)" >&2
export FENCE_LINT_ROOT="$root" FENCE_LINT_BUILD="$build"
printf '%s\0' "${files[@]}" |
  xargs -0 -r -n 1 -P "$jobs" bash "$here/lint.sh" --one >"$log" 2>&1
cached=$(grep -c '^cached ' "$log" || true)
clean=$(grep -c '^clean ' "$log" || true)
failed=$(grep -c '^FAILED ' "$log" || true)
if [[ ${FENCE_LINT_VERBOSE:-0} == 1 ]]; then
  grep -E '^(cached|clean|FAILED) ' "$log" | sed 's/^clean/linted/; s/^FAILED/linted/' >&2
fi
echo "lint: ${#files[@]} files: $((clean + failed)) linted, $cached from the cache," \
  "$failed with findings" >&2
if ((failed > 0 || cached + clean + failed != ${#files[@]})); then
  grep -vE '^(cached|clean) ' "$log" >&2 || true
  echo "lint: clang-tidy found problems (full log: $log)" >&2
  exit 1
fi
echo "lint: clean" >&2
