#!/usr/bin/env bash
# The side-by-side benchmark: installs what it needs, builds, then runs
# fence-bench-peers, which starts fence-store, Redis, PostgreSQL, etcd and
# nginx on free loopback ports and measures them in one run. Arguments go to
# fence-bench-peers (--help lists them; --smoke is a seconds-long check).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: bash deploy/bench.sh [fence-bench-peers options]  (see build/bin/fence-bench-peers --help)"
  exit 0
fi
bash deploy/install-deps.sh
bash deploy/build.sh
exec build/bin/fence-bench-peers "$@"
