#!/usr/bin/env bash
# Sanitizer runs, after the normal tests (deploy/run-tests.sh calls this):
#   asan  build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer (with
#         LeakSanitizer) over every unit and integration test and every
#         binary they start, the whole ctest suite.
#   tsan  build-tsan/: ThreadSanitizer over the concurrency tests only and
#         the daemons they start (TSan's 5-15x slowdown and its memory make
#         the whole suite not worth it; the rest has no threads of ours).
# Usage: deploy/sanitize.sh [--build-only|--test-only] [asan] [tsan]
#   (both parts when none is named; build then test unless one is chosen:
#   deploy/run-tests.sh builds at low priority while other tests run, then
#   tests)
# Every report is fatal: the process that finds one exits non-zero, and each
# report is also written under <build dir>/sanitizer-logs/, which must stay
# empty: a daemon's report fails the run even when its test does not look at
# the daemon's exit status (a daemon killed with SIGKILL never reports).
# -O0 -g1 (line tables: enough for a report's stack trace) compiles in about
# half the CPU time of -O1 -g, which dominates: the tests wait on I/O.
# Warnings are not errors here: deploy/build.sh enforces them on the normal
# build, and GCC's instrumentation adds known false positives.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
jobs="${FENCE_JOBS:-2}"
steps=build,test
case "${1:-}" in
  --build-only) steps="build"; shift ;;
  --test-only) steps="test"; shift ;;
esac
parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(asan tsan)

# The concurrency tests: store writers on one key and on many (service and
# real daemon), the storage queue's threads, lockd's competing clients and
# its timers, the worker's keep-alive thread (in process and as a real
# process), the store's drain on SIGTERM with requests in flight.
tsan_targets=(storage_queue_test store_service_test worker_test lockd_service_test
  store_test lockd_test worker_process_test store_shutdown_test http_client_test
  fence-store fence-lockd fence-worker)
tsan_tests='^(StoreStorageQueueTest|StoreServiceConcurrencyTest|StoreServiceGroupCommitTest|WorkerTest|LockdServiceTest|StoreTest|LockdTest|WorkerProcessTest|StoreShutdownTest|HttpClientReuseTest|HttpClientSafetyTest)\.'

# Tests that run no code of ours in a sanitized binary: deploy/lint.sh's
# cache test (bash and clang-tidy only) gains nothing here.
asan_skip='^LintCacheTest$'

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

configure() {  # dir sanitizers
  cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DFENCE_SANITIZE="$2" -DFENCE_WERROR=OFF "${launcher[@]}" >/dev/null
}

# Fails if any process wrote a sanitizer report, and prints the reports.
check_logs() {  # logs-dir part
  if compgen -G "$1/*" >/dev/null; then
    echo "sanitize: $2: sanitizer reports:" >&2
    for f in "$1"/*; do echo "--- $f" >&2; cat "$f" >&2; done
    return 1
  fi
}

build_asan() {
  configure build-asan address,undefined &&
    cmake --build build-asan -j "$jobs"
}

test_asan() {
  local logs="$root/build-asan/sanitizer-logs" status=0
  rm -rf "$logs" && mkdir -p "$logs"
  (cd build-asan &&
    ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$logs/asan" \
    LSAN_OPTIONS="$(suppress lsan)" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
    ctest --output-on-failure --timeout 900 -j "$jobs" -E "$asan_skip") || status=$?
  check_logs "$logs" asan || status=1
  return $status
}

build_tsan() {
  configure build-tsan thread &&
    cmake --build build-tsan -j "$jobs" --target "${tsan_targets[@]}"
}

test_tsan() {
  local logs="$root/build-tsan/sanitizer-logs" status=0
  rm -rf "$logs" && mkdir -p "$logs"
  # Test binaries not built here appear as <name>_NOT_BUILT: left out.
  (cd build-tsan &&
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan:$(suppress tsan)" \
    ctest --output-on-failure --timeout 900 -j "$jobs" -R "$tsan_tests" -E '_NOT_BUILT$') ||
    status=$?
  check_logs "$logs" tsan || status=1
  return $status
}

# suppressions=<file> when deploy/sanitizers/<kind>.supp exists (third-party
# frames only, each justified in the file).
suppress() {
  local file="$root/deploy/sanitizers/$1.supp"
  [[ -f $file ]] && echo "suppressions=$file"
  return 0
}

status=0
for part in "${parts[@]}"; do
  case "$part" in
    asan | tsan) ;;
    *) echo "sanitize: unknown part '$part' (expected asan or tsan)" >&2; exit 2 ;;
  esac
  for step in build test; do
    [[ ,$steps, == *,$step,* ]] || continue
    t0=$(date +%s)
    if ! "${step}_$part"; then
      echo "sanitize: $part: $step FAILED after $(($(date +%s) - t0))s" >&2
      status=1
      [[ $step == build ]] && break  # no tests without their build
      continue
    fi
    echo "sanitize: $part: $step $(($(date +%s) - t0))s" >&2
  done
done
exit $status
