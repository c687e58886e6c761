#!/usr/bin/env bash
# README's second command: install dependencies, build (the same build as the
# demo's), lint with clang-tidy, run every test (unit and integration, against
# real processes), fuzz each libFuzzer target for a bounded time
# (deploy/fuzz.sh: its own clang build in build-fuzz/, about 20 s a target),
# and the sanitizer runs (deploy/sanitize.sh: every test under ASan+UBSan in
# build-asan/, the concurrency tests under TSan in build-tsan/).
#
# The tests mostly wait on real timers (leases expiring, paused processes,
# etcd and ZooKeeper starting) and leave the cores idle, so after the build
# two chains run at once:
#   foreground, normal priority: ctest, then the ASan tests, then the TSan
#     tests, then the fuzzers (time-bounded: they get the cores at the end);
#   background, nice 19 and idle I/O class: the ASan build, the TSan build,
#     the fuzz build, then the lint (deploy/lint.sh, with its result cache).
# A test phase waits for the build it needs. Every phase's failure fails the
# command: a background phase writes build/ci/<phase>.log, printed when it
# fails; the end prints each phase's start, wall and CPU seconds.
# FENCE_SANITIZERS=off skips the sanitizer builds and runs for a quick local
# run.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
ci="$root/build/ci"
sanitizers="${FENCE_SANITIZERS:-on}"
# Paths relative to the checkout in ccache's keys: a clone elsewhere reuses
# the compilations of this one.
export CCACHE_BASEDIR="$root"
TIMEFORMAT='%R %U %S'

# Runs one phase: its wall, user and system seconds and status go to
# $ci/<name>.done (the foreground waits on that file for a background one).
phase() {  # name command...
  local name="$1" rc=0 start
  shift
  start=$(date +%s)
  { time "$@" 2>&3; } 3>&2 2>"$ci/$name.time" || rc=$?
  echo "$name $((start - t_start)) $(tail -1 "$ci/$name.time") $rc" >"$ci/$name.done.tmp"
  mv "$ci/$name.done.tmp" "$ci/$name.done"
  return $rc
}

# The background chain (this script again, in a process group of its own so
# that an interrupted run stops it, but in this session: with the kernel's
# autogroup scheduling a session of its own would be scheduled as an equal
# of this one whatever its nice value): each phase logs to $ci/<name>.log.
if [[ ${1:-} == --background-chain ]]; then
  t_start="$2"
  low=(nice -n 19)
  if ionice -c 3 true 2>/dev/null; then low+=(ionice -c 3); fi
  low_phase() { phase "$1" "${low[@]}" "${@:2}" >"$ci/$1.log" 2>&1 || true; }
  if [[ $sanitizers != off ]]; then
    low_phase asan-build bash deploy/sanitize.sh --build-only asan
    low_phase tsan-build bash deploy/sanitize.sh --build-only tsan
  fi
  low_phase fuzz-build bash deploy/fuzz.sh --build-only
  low_phase lint bash deploy/lint.sh
  exit 0
fi

t_start=$(date +%s)
mkdir -p "$ci"
rm -f "$ci"/*.done "$ci"/*.log "$ci"/*.time
status=0
phase install-deps bash deploy/install-deps.sh
phase build bash deploy/build.sh

set -m  # only for this job: its own process group
bash deploy/run-tests.sh --background-chain "$t_start" &
chain=$!
set +m
# An interrupted or failed run leaves no build behind.
trap 'kill -- -"$chain" 2>/dev/null || true' EXIT

# Waits until the background phase has ended; fails when it failed.
await() {  # name
  while [[ ! -f $ci/$1.done ]]; do
    if ! kill -0 "$chain" 2>/dev/null && [[ ! -f $ci/$1.done ]]; then
      echo "run-tests: the background chain ended before $1" >&2
      return 1
    fi
    sleep 1
  done
  [[ $(awk '{print $NF}' "$ci/$1.done") == 0 ]] ||
    { echo "run-tests: $1 FAILED (log: $ci/$1.log)" >&2; return 1; }
}

ctest_all() { (cd build && ctest --output-on-failure --timeout 900 -j2); }
phase ctest ctest_all || status=1
if [[ $sanitizers != off ]]; then
  if await asan-build; then
    phase asan-test bash deploy/sanitize.sh --test-only asan || status=1
  fi
  if await tsan-build; then
    phase tsan-test bash deploy/sanitize.sh --test-only tsan || status=1
  fi
fi
if await fuzz-build; then
  phase fuzz-run bash deploy/fuzz.sh --run-only || status=1
fi
await lint || true
wait "$chain" || true
trap - EXIT

phases=(install-deps build ctest)
[[ $sanitizers == off ]] || phases+=(asan-build asan-test tsan-build tsan-test)
phases+=(fuzz-build fuzz-run lint)
for p in "${phases[@]}"; do  # background phases' logs, when they failed
  if [[ -f $ci/$p.log ]] && [[ ! -f $ci/$p.done || $(awk '{print $NF}' "$ci/$p.done") != 0 ]]; then
    echo "==== $p FAILED; the end of $ci/$p.log:" >&2
    tail -n 300 "$ci/$p.log" >&2
  fi
done
echo "run-tests: phase          start s   wall s    CPU s   result" >&2
for p in "${phases[@]}"; do
  if [[ -f $ci/$p.done ]]; then
    read -r _ start wall user sys rc <"$ci/$p.done"
    awk -v p="$p" -v s="$start" -v w="$wall" -v c="$(awk -v u="$user" -v y="$sys" 'BEGIN{print u+y}')" \
      -v r="$( ((rc == 0)) && echo ok || echo "FAILED ($rc)")" \
      'BEGIN{printf "run-tests: %-14s %7d %8.0f %8.0f   %s\n", p, s, w, c, r}' >&2
    ((rc == 0)) || status=1
  else
    printf 'run-tests: %-14s %7s %8s %8s   not run\n' "$p" - - - >&2
    status=1
  fi
done
echo "run-tests: total $(($(date +%s) - t_start)) s wall; $( ((status == 0)) && echo ok || echo FAILED)" >&2
exit $status
