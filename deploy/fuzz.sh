#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang-14 and AddressSanitizer +
# UndefinedBehaviorSanitizer into build-fuzz/, then runs each for a bounded
# time on a copy of its seed corpus (fuzz/corpus/<target>/). Prints the
# executions per target and exits non-zero on any crash, leak, timeout or
# sanitizer report. FUZZ_SECONDS (default 20) is the time per target;
# FUZZ_JOBS (default 2) how many run at once; FUZZ_TARGETS limits the set.
# --build-only builds and stops, --run-only runs what was built
# (deploy/run-tests.sh builds at low priority while the tests run, and runs
# the fuzzers when the cores are free: a fuzzer's time is bounded, so a busy
# core would cost it executions).
set -euo pipefail
cd "$(dirname "$0")/.."
step="${1:-all}"
case "$step" in
  all | --build-only | --run-only) ;;
  *) echo "fuzz: unknown argument '$step' (expected --build-only or --run-only)" >&2; exit 2 ;;
esac
seconds="${FUZZ_SECONDS:-20}"
jobs="${FUZZ_JOBS:-2}"
all_targets=(token_fuzz key_fuzz key_record_fuzz token_format_fuzz
             lockd_json_fuzz store_http_fuzz lockd_http_fuzz)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

if [[ $step != --run-only ]]; then
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  # Every library is instrumented for coverage and both sanitizers; a UBSan
  # finding aborts like an ASan one, so libFuzzer saves the input.
  flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
  flags+=" -fno-omit-frame-pointer -gline-tables-only"
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DFENCE_FUZZ=ON \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1" "${launcher[@]}" >/dev/null
  cmake --build build-fuzz -j "${FENCE_JOBS:-2}" --target "${targets[@]}"
fi
[[ $step != --build-only ]] || exit 0

out="build-fuzz/fuzz-runs"
rm -rf "$out"
mkdir -p "$out"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Runs one target on a copy of its corpus (the seeds stay untouched); its
# log is $out/<target>.log, crash inputs land in $out/<target>/.
run_one() {
  local t="$1"
  mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
  cp -r "fuzz/corpus/$t/." "$out/$t/corpus/"
  local dict=()
  if [[ -f "fuzz/$t.dict" ]]; then dict=("-dict=fuzz/$t.dict"); fi
  "build-fuzz/bin/$t" "$out/$t/corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/$t/artifacts/" \
    >"$out/$t.log" 2>&1
}

pids=()
names=()
failed=0
wait_oldest() {
  if ! wait "${pids[0]}"; then failed=1; echo "fuzz: ${names[0]} FAILED"; fi
  pids=("${pids[@]:1}")
  names=("${names[@]:1}")
}
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if ((${#pids[@]} >= jobs)); then wait_oldest; fi
done
while ((${#pids[@]} > 0)); do wait_oldest; done

printf '%-20s %12s %8s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  log="$out/$t.log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log" \
      || [[ -z "$runs" ]] || compgen -G "$out/$t/artifacts/*" >/dev/null; then
    result="FAILED (see $log)"
    failed=1
  fi
  printf '%-20s %12s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
for t in "${targets[@]}"; do
  if [[ "$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")" == "" ]] \
      || grep -q 'SUMMARY: ' "$out/$t.log"; then
    echo "---- $t (last 40 lines)"; tail -40 "$out/$t.log"
  fi
done
exit "$failed"
