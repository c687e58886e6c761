#!/usr/bin/env bash
# Installs every Debian bookworm package the project needs to build, test and
# run its demos. Idempotent and non-interactive; run as root (or with sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates curl ccache clang-tidy-14
  # fuzzing (deploy/fuzz.sh): clang with its libFuzzer runtime
  clang-14 libfuzzer-14-dev
  # libraries (all with CMake packages except the ZooKeeper C client)
  libboost-dev libboost-system-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev librocksdb-dev libcli11-dev
  libzookeeper-mt-dev
  # TLS of the daemons and clients (OpenSSL), and the openssl command the
  # TLS tests make their own CA with
  libssl-dev openssl
  # the daemons' allocator (CMakeLists.txt: fence_link_allocator)
  libjemalloc-dev
  # libpq: fence-store --storage postgresql (PostgreSQL 15 itself, below, runs
  # its tests)
  libpq-dev
  # real servers used by tests and demos
  etcd-server etcd-client zookeeper prometheus prometheus-alertmanager
  # partition experiment
  iproute2 iptables
  # systemd-analyze verifies the units in deploy/systemd/
  systemd
  # the peers and clients of fence-bench-peers (deploy/bench.sh, and its
  # smoke run in the tests)
  redis-server redis-tools nginx wrk fio postgresql-15 postgresql-client-15
  # its plot (bench.png)
  gnuplot-nox
  # high availability for the PostgreSQL store: Patroni on etcd (its etcd
  # client is an alternative dependency: named, so apt cannot pick another)
  patroni python3-etcd
  # headless browser: the tests load report.html and fence-logscan --html
  # pages in it, count the marks in the DOM it rendered and take screenshots
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -q
# --no-install-recommends keeps the footprint small; the servers' own services
# are not started by their packages (prometheus is stopped below if it was).
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# Where no policy-rc.d stops them, some packages start their service on
# install; the tests and the bench start instances of their own, so the
# system's copies are stopped.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  for service in redis-server nginx postgresql patroni prometheus prometheus-alertmanager etcd zookeeper; do
    if systemctl is-active --quiet "$service"; then
      "${sudo_cmd[@]}" systemctl stop "$service" || true
    fi
  done
fi
