#!/usr/bin/env bash
# README's first command: install dependencies, build, and run the
# split-brain demo. Ends with the demo's summary and the path of report.md.
# Extra arguments go to fence-demo (e.g. --ttl-ms 500, --backend etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh
out="${FENCE_DEMO_OUT:-demo-out}"
echo "running build/bin/fence-demo --out $out $*" >&2
# The demo's JSON log lines (stderr) go to a file; the terminal keeps its
# status line (step, what it waits for, elapsed time) and then the summary.
mkdir -p "$out"
set +e
build/bin/fence-demo --out "$out" "$@" 2>"$out/demo-progress.log"
code=$?
set -e
if [ "$code" -ne 0 ]; then
  echo "fence-demo exited with $code; its progress log: $out/demo-progress.log" >&2
  tail -n 5 "$out/demo-progress.log" >&2 || true
fi
exit "$code"
