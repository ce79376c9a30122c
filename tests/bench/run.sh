#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# tests/bench/run.sh: `make bench`. Installs nginx-light, haproxy and wrk when
# missing (Debian packages), builds build/testd if needed, and runs
# tests/bench/bench.py:
# Switchyard, nginx and HAProxy side by side. Method: docs/benchmarks.md.
# Environment: RUNS, DURATION, CONNS, IDLE_CONNS, PROXY_CPU, LOAD_CPU, ... (bench.py).
set -eu

cd "$(dirname "$0")/../.."

need_pkg() {
    # $1 command, $2 Debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    PKGS="${PKGS:-} $2"
}

PKGS=
need_pkg nginx nginx-light
need_pkg haproxy haproxy
need_pkg wrk wrk
need_pkg h2load nghttp2-client
need_pkg taskset util-linux
need_pkg python3 python3
need_pkg redis-server redis-server
if [ -n "$PKGS" ]; then
    echo "bench: installing$PKGS"
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench: need root to install$PKGS (or install them yourself)" >&2
        exit 1
    fi
    # nginx and haproxy packages start their system services: keep them off
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # shellcheck disable=SC2086 # PKGS is a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PKGS >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PKGS >/dev/null; }
fi

if [ "$(nproc)" -lt 2 ]; then
    echo "bench: needs 2 CPUs (proxy on one, testd and wrk on the other)" >&2
    exit 1
fi

if [ ! -x build/testd ]; then
    mkdir -p build
    # shellcheck disable=SC2046 # pkg-config prints several flags
    gcc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -o build/testd tests/backend/testd.c \
        $(pkg-config --cflags --libs libevent) -pthread
fi

# bench.py raises the open-file limit itself (POSIX sh has no ulimit -n).
exec python3 tests/bench/bench.py
