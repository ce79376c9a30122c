#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# conf/demo/run.sh: `make run`. Starts four demo app instances (one build/testd
# process: blue on 9101/9102, green on 9111/9112) and Switchyard in front of
# them on 127.0.0.1:8080, admin API on 127.0.0.1:9901. Ctrl-C stops it all.
# The error log goes to this terminal; access and security logs to conf/demo/logs/.
set -u

cd "$(dirname "$0")/../.." || exit 1
CONF=conf/demo/switchyard.json
TOKEN_FILE=conf/demo/admin.token
TESTD=${TESTD:-build/testd}
GATEWAY=${SWITCHYARD:-build/switchyard}
GW_PID=
TESTD_PID=

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# curl exits 7 when nothing listens there; anything else means the port is taken.
port_free() {
    curl -s -o /dev/null --connect-timeout 1 -m 2 "http://127.0.0.1:$1/"
    [ $? -eq 7 ]
}

wait_port() {
    i=0
    while port_free "$1"; do
        i=$((i + 1))
        [ "$i" -ge 100 ] && return 1
        if [ -n "$2" ] && ! kill -0 "$2" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 0
}

# shellcheck disable=SC2317 # run from the traps, which shellcheck does not follow
cleanup() {
    trap - INT TERM EXIT
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID" 2>/dev/null
        wait "$GW_PID" 2>/dev/null
    fi
    if [ -n "$TESTD_PID" ]; then
        kill -TERM "$TESTD_PID" 2>/dev/null
        wait "$TESTD_PID" 2>/dev/null
    fi
}

for bin in "$TESTD" "$GATEWAY"; do
    [ -x "$bin" ] || die "$bin is missing: run ./configure && make first"
done
for port in 8080 9901 9101 9102 9111 9112; do
    port_free "$port" || die "port 127.0.0.1:$port is already in use; stop what holds it (ss -ltnp 'sport = :$port')"
done

mkdir -p conf/demo/logs conf/demo/state || exit 1
if [ ! -s "$TOKEN_FILE" ]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$TOKEN_FILE") \
        || die "cannot write $TOKEN_FILE"
    echo >> "$TOKEN_FILE"
fi
TOKEN=$(head -n 1 "$TOKEN_FILE")

trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

"$TESTD" --quiet --listen 127.0.0.1:9101=blue --listen 127.0.0.1:9102=blue \
    --listen 127.0.0.1:9111=green --listen 127.0.0.1:9112=green &
TESTD_PID=$!
wait_port 9112 "$TESTD_PID" || die "the demo backends (build/testd) did not start"

# The gateway runs on a copy of the demo configuration, so that switching
# slots by editing it and reloading leaves the tracked file alone.
RUN_CONF=conf/demo/state/switchyard.json
PID_FILE=conf/demo/state/switchyard.pid
cp "$CONF" "$RUN_CONF" || die "cannot write $RUN_CONF"

# Background plus wait (not a foreground child) so that INT/TERM reach the
# traps at once and the gateway gets a graceful SIGTERM.
"$GATEWAY" -c "$RUN_CONF" -p "$PID_FILE" &
GW_PID=$!
wait_port 8080 "$GW_PID" || {
    wait "$GW_PID"
    die "switchyard did not start (exit status $?); see the messages above"
}

cat <<BANNER

  Switchyard demo is running (Ctrl-C stops the gateway and the demo backends)

  app:     curl http://127.0.0.1:8080/                 -> "blue" (service demo, active slot blue)
  admin token: $TOKEN   (in $TOKEN_FILE, for the admin API on 127.0.0.1:9901)
  switch to green, by configuration and reload (no request fails):
           sed -i 's/"active": "blue"/"active": "green"/' $RUN_CONF
           $GATEWAY -s reload -p $PID_FILE
           curl http://127.0.0.1:8080/                 -> "green"
  or at run time, health-gated (and back the same way):
           build/switchyard-ctl --token-file $TOKEN_FILE switch demo green
           build/switchyard-ctl --token-file $TOKEN_FILE status
  dashboard: http://127.0.0.1:9901/   (sign in with the admin token)
  logs:    conf/demo/logs/access.log, conf/demo/logs/security.log

BANNER

rc=0
wait "$GW_PID" || rc=$?
GW_PID=
[ "$rc" -eq 0 ] || echo "run.sh: switchyard exited with status $rc" >&2
exit "$rc"
