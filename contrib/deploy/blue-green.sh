#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# blue-green.sh: a whole blue-green deployment of one Switchyard service with
# switchyard-ctl. The new version is already running in the slot that is not
# active; this script waits until that slot's pool has a healthy instance,
# switches the service to it and checks that the switch took.
#
# POSIX sh (dash, busybox ash, bash): it only reads switchyard-ctl's tables,
# so the host needs neither jq nor python. See contrib/deploy/README.md.

set -eu

prog=${0##*/}

usage()
{
    cat <<EOF
usage: $prog SERVICE [options]

Switch SERVICE to the slot that is not active, once that slot's pool has a
healthy instance, and check that the switch took.

options:
  --admin URL         admin API (default \$SWITCHYARD_ADMIN, else switchyard-ctl's
                      default http://127.0.0.1:9901)
  --token-file FILE   bearer token file (default \$SWITCHYARD_TOKEN_FILE, else
                      switchyard-ctl's default conf/admin.token)
  --timeout SECONDS   how long to wait for a healthy instance (default 300)
  --ctl PATH          the switchyard-ctl to run (default: switchyard-ctl from PATH)
  -h, --help          this text

exit status:
  0  switched and checked
  1  the gateway refused the switch, or the switch did not take
  2  usage error
  3  timed out waiting for a healthy instance in the new slot's pool
  4  the gateway could not be reached, or answered something unexpected
EOF
}

die()
{
    code=$1
    shift
    printf '%s: %s\n' "$prog" "$*" >&2
    exit "$code"
}

usage_error()
{
    printf '%s: %s\n' "$prog" "$*" >&2
    printf 'Try "%s -h".\n' "$prog" >&2
    exit 2
}

say()
{
    printf '%s: %s\n' "$prog" "$*"
}

service=
timeout=300
ctl_bin=switchyard-ctl

set_option()
{
    case $1 in
    --admin)
        SWITCHYARD_ADMIN=$2
        export SWITCHYARD_ADMIN ;;
    --token-file)
        [ -r "$2" ] || usage_error "cannot read token file $2"
        SWITCHYARD_TOKEN_FILE=$2
        export SWITCHYARD_TOKEN_FILE ;;
    --timeout)
        case $2 in
        '' | *[!0-9]*) usage_error "--timeout needs a whole number of seconds, not \"$2\"" ;;
        esac
        timeout=$2 ;;
    --ctl)
        ctl_bin=$2 ;;
    esac
}

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0 ;;
    --admin | --token-file | --timeout | --ctl)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        set_option "$1" "$2"
        shift 2 ;;
    --admin=* | --token-file=* | --timeout=* | --ctl=*)
        set_option "${1%%=*}" "${1#*=}"
        shift ;;
    --)
        shift
        if [ $# -gt 1 ] || { [ $# -eq 1 ] && [ -n "$service" ]; }; then
            usage_error "one SERVICE only"
        fi
        [ $# -eq 0 ] || service=$1
        break ;;
    -*)
        usage_error "unknown option $1" ;;
    *)
        [ -z "$service" ] || usage_error "one SERVICE only (\"$service\" and \"$1\")"
        service=$1
        shift ;;
    esac
done
[ -n "$service" ] || usage_error "SERVICE is missing"
command -v "$ctl_bin" >/dev/null 2>&1 || usage_error "cannot run $ctl_bin (see --ctl)"

# Tables without colour codes, whatever the terminal.
NO_COLOR=1
export NO_COLOR

now()
{
    date +%s
}

# switchyard-ctl status, into $status_out; a failure ends the script (4).
read_status()
{
    if status_out=$("$ctl_bin" status); then
        return 0
    fi
    die 4 "switchyard-ctl status failed (its message is above)"
}

# Column $2 (a header of the SERVICE table) of service $1 in $status_out.
service_field()
{
    printf '%s\n' "$status_out" | awk -v name="$1" -v col="$2" '
        $1 == "SERVICE" { on = 1; for (i = 1; i <= NF; i++) at[$i] = i; next }
        NF == 0 { on = 0 }
        on && $1 == name && (col in at) { print $(at[col]); exit }'
}

# Column $2 (a header of the POOL table) of pool $1 in $status_out.
pool_field()
{
    printf '%s\n' "$status_out" | awk -v name="$1" -v col="$2" '
        $1 == "POOL" { on = 1; for (i = 1; i <= NF; i++) at[$i] = i; next }
        NF == 0 { on = 0 }
        on && $1 == name && (col in at) { print $(at[col]); exit }'
}

read_status
active=$(service_field "$service" ACTIVE)
[ -n "$active" ] || die 4 "no service \"$service\" in switchyard-ctl status"
case $active in
blue)  target=green ;;
green) target=blue ;;
*)     die 4 "service $service: unexpected active slot \"$active\"" ;;
esac
if [ "$target" = green ]; then
    pool=$(service_field "$service" GREEN)
else
    pool=$(service_field "$service" BLUE)
fi
rollout=$(service_field "$service" ROLLOUT)
case $rollout in
running | waiting_for_traffic | paused)
    die 1 "service $service: a rollout owns the traffic split (state $rollout):" \
        "finish or abort it first (switchyard-ctl rollout $service abort)" ;;
esac
say "service $service: $active is active; switching to $target (pool $pool)"

# Wait for a healthy instance: the gateway refuses the switch without one.
# date +%s counts whole seconds: "after the deadline" waits at least timeout
deadline=$(($(now) + timeout))
last=
while :; do
    healthy=$(pool_field "$pool" HEALTHY)
    instances=$(pool_field "$pool" INSTANCES)
    [ -n "$healthy" ] || die 4 "no pool \"$pool\" in switchyard-ctl status"
    [ "$healthy" -gt 0 ] && break
    if [ "$healthy/$instances" != "$last" ]; then
        say "waiting for a healthy instance in pool $pool ($healthy of $instances healthy," \
            "timeout ${timeout}s)"
        last=$healthy/$instances
    fi
    [ "$(now)" -le "$deadline" ] ||
        die 3 "timed out after ${timeout}s: pool $pool has no healthy instance" \
            "($instances configured); $service stays on $active"
    sleep 1
    read_status
done
say "pool $pool: $healthy of $instances instances healthy"

rc=0
"$ctl_bin" switch "$service" "$target" >/dev/null || rc=$?
case $rc in
0) ;;
1) die 1 "the gateway refused the switch to $target; $service stays on $active" ;;
*) die 4 "switchyard-ctl switch failed (exit $rc); see which slot is active with" \
       "switchyard-ctl status" ;;
esac

# The switch applies to every worker's next request when the call returns:
# one read says whether it took.
read_status
now_active=$(service_field "$service" ACTIVE)
weight=$(service_field "$service" CANARY)
if [ "$now_active" != "$target" ]; then
    die 1 "the switch did not take: $service's active slot is \"$now_active\", not $target"
fi
if [ "$weight" != "0%" ]; then
    die 1 "the switch did not take fully: $service's canary weight is $weight, not 0%"
fi
say "service $service: $target is active (pool $pool); roll back with:" \
    "switchyard-ctl switch $service $active"
