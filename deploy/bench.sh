#!/usr/bin/env bash
# The side-by-side benchmark of issue 16 (docs/benchmarks.md): installs what
# it needs, builds, then runs fence-bench-peers, which starts fence-store,
# fence-lockd, Redis, PostgreSQL, etcd and nginx on free loopback ports and
# measures them in one run, interleaved. Arguments go to fence-bench-peers:
# --seconds, --conns, --sizes, --out, --memory-keys, --memory-seconds;
# --smoke is a seconds-long check.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: bash deploy/bench.sh [--seconds N] [--conns 1,32,128] [--sizes 256,4096,1048576]"
  echo "                            [--out DIR] [--memory-keys N] [--memory-seconds N] [--smoke]"
  echo "(see build/bin/fence-bench-peers --help and docs/benchmarks.md)"
  exit 0
fi
bash deploy/install-deps.sh
bash deploy/build.sh
exec build/bin/fence-bench-peers "$@"
