#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# canary.sh: a whole canary deployment of one Switchyard service with
# switchyard-ctl. The new version is already running in the slot that is not
# active; this script waits until that slot's pool has a healthy instance,
# starts the gateway's rollout (services.NAME.rollout: the steps and the
# rollback limits live in the gateway's configuration) and watches it until
# the gateway promotes the canary or rolls it back. The gateway decides; the
# script only reports, and aborts the rollout when it gives up (timeout,
# Ctrl-C, SIGTERM) so that no half-done rollout is left behind.
#
# POSIX sh (dash, busybox ash, bash): it only reads switchyard-ctl's text
# output, so the host needs neither jq nor python. See contrib/deploy/README.md.

set -eu

prog=${0##*/}

usage()
{
    cat <<EOF
usage: $prog SERVICE [options]

Wait until the pool of SERVICE's inactive slot has a healthy instance, start
the gateway's canary rollout and follow it to the end, printing each change
(state, step, weight, last verdict).

options:
  --admin URL             admin API (default \$SWITCHYARD_ADMIN, else
                          switchyard-ctl's default http://127.0.0.1:9901)
  --token-file FILE       bearer token file (default \$SWITCHYARD_TOKEN_FILE, else
                          switchyard-ctl's default conf/admin.token)
  --timeout SECONDS       give up after this long, health wait included (default 3600)
  --interval SECONDS      how often to read the rollout status (default 5)
  --no-abort-on-timeout   on timeout, leave the rollout running (default: abort it)
  --ctl PATH              the switchyard-ctl to run (default: switchyard-ctl from PATH)
  -h, --help              this text

exit status:
  0    promoted: the canary slot is now active
  1    rolled back by the gateway, aborted, or the gateway refused to start
  2    usage error
  3    timed out (the rollout is aborted unless --no-abort-on-timeout)
  4    the gateway could not be reached, or answered something unexpected
  130  interrupted (SIGINT): the rollout was aborted
  143  terminated (SIGTERM): the rollout was aborted
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
timeout=3600
interval=5
abort_on_timeout=1
ctl_bin=switchyard-ctl

whole_number()
{
    case $2 in
    '' | *[!0-9]*) usage_error "$1 needs a whole number of seconds, not \"$2\"" ;;
    esac
}

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
        whole_number "$1" "$2"
        timeout=$2 ;;
    --interval)
        whole_number "$1" "$2"
        [ "$2" -gt 0 ] || usage_error "--interval must be at least 1"
        interval=$2 ;;
    --ctl)
        ctl_bin=$2 ;;
    esac
}

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0 ;;
    --no-abort-on-timeout)
        abort_on_timeout=0
        shift ;;
    --admin | --token-file | --timeout | --interval | --ctl)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        set_option "$1" "$2"
        shift 2 ;;
    --admin=* | --token-file=* | --timeout=* | --interval=* | --ctl=*)
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

# Text without colour codes, whatever the terminal.
NO_COLOR=1
export NO_COLOR

now()
{
    date +%s
}

# Sleeps $1 seconds in the background: a trapped signal then interrupts the
# wait at once instead of after the sleep.
pause()
{
    sleep "$1" &
    sleeper=$!
    wait "$sleeper" || :
    sleeper=
}

# --- before the rollout: the canary pool must have a healthy instance ----

# switchyard-ctl status, into $status_out; a failure ends the script (4).
read_status()
{
    if status_out=$("$ctl_bin" status); then
        return 0
    fi
    die 4 "switchyard-ctl status failed (its message is above)"
}

# Column $3 (a header) of the row named $2 in the table headed by $1
# (SERVICE or POOL) of $status_out.
table_field()
{
    printf '%s\n' "$status_out" | awk -v head="$1" -v name="$2" -v col="$3" '
        $1 == head { on = 1; for (i = 1; i <= NF; i++) at[$i] = i; next }
        NF == 0 { on = 0 }
        on && $1 == name && (col in at) { print $(at[col]); exit }'
}

sleeper=
started=0
# date +%s counts whole seconds: "after the deadline" waits at least timeout
deadline=$(($(now) + timeout))

# Before the start there is nothing to undo; after it, INT and TERM abort.
on_signal()
{
    trap - INT TERM
    [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || :
    if [ "$started" -eq 1 ]; then
        printf '%s: %s: aborting the rollout of %s\n' "$prog" "$1" "$service" >&2
        "$ctl_bin" rollout "$service" abort >&2 || :
    fi
    exit "$2"
}
trap 'on_signal interrupted 130' INT
trap 'on_signal terminated 143' TERM

read_status
active=$(table_field SERVICE "$service" ACTIVE)
[ -n "$active" ] || die 4 "no service \"$service\" in switchyard-ctl status"
case $active in
blue)  canary=green ;;
green) canary=blue ;;
*)     die 4 "service $service: unexpected active slot \"$active\"" ;;
esac
if [ "$canary" = green ]; then
    pool=$(table_field SERVICE "$service" GREEN)
else
    pool=$(table_field SERVICE "$service" BLUE)
fi
say "service $service: $active is active; canary slot $canary (pool $pool)"

last=
while :; do
    healthy=$(table_field POOL "$pool" HEALTHY)
    instances=$(table_field POOL "$pool" INSTANCES)
    [ -n "$healthy" ] || die 4 "no pool \"$pool\" in switchyard-ctl status"
    [ "$healthy" -gt 0 ] && break
    if [ "$healthy/$instances" != "$last" ]; then
        say "waiting for a healthy instance in pool $pool ($healthy of $instances healthy)"
        last=$healthy/$instances
    fi
    [ "$(now)" -le "$deadline" ] ||
        die 3 "timed out after ${timeout}s: pool $pool has no healthy instance" \
            "($instances configured); no rollout was started"
    pause 1
    read_status
done
say "pool $pool: $healthy of $instances instances healthy"

# --- the rollout -----------------------------------------------------------

# Set first: a signal that lands during the start still aborts (an abort of
# a rollout that did not start is refused, which is harmless).
started=1
rc=0
"$ctl_bin" rollout "$service" start >/dev/null || rc=$?
case $rc in
0) say "rollout of $service started" ;;
1) started=0
   die 1 "the gateway refused to start the rollout of $service (its reason is above)" ;;
*) die 4 "switchyard-ctl rollout start failed (exit $rc); see the rollout's state with" \
       "switchyard-ctl rollout $service status" ;;
esac

# "field: value" lines of switchyard-ctl rollout SERVICE status, in $rollout_out.
field()
{
    printf '%s\n' "$rollout_out" | sed -n "s/^$1: //p"
}

# A string member $1 of the last_analysis JSON (compact, one line), unescaped.
analysis_str()
{
    printf '%s\n' "$rollout_out" |
        sed -n -E 's/^last_analysis: .*"'"$1"'":"(([^"\\]|\\.)*)".*/\1/p' |
        sed -e 's/\\"/"/g' -e 's/\\\\/\\/g'
}

# The analysis "requests", "error_rate" and "p95_ms" of side $1 (canary or
# baseline), as "N requests, R errors, p95 P ms".
analysis_side()
{
    printf '%s\n' "$rollout_out" | sed -n "s/^last_analysis: .*\"$1\":{\([^}]*\)}.*/\1/p" |
        awk -F, '{
            for (i = 1; i <= NF; i++) {
                split($i, kv, ":"); k = kv[1]; gsub(/"/, "", k); v[k] = kv[2]
            }
            if ("requests" in v)
                printf "%d requests, %.1f%% errors, p95 %.1f ms", v["requests"],
                       100 * v["error_rate"], v["p95_ms"]
        }'
}

# Unreachable gateway while watching: tolerated until the deadline (a
# restart or a slow admin), reported once per outage.
unreachable=0
shown=
state=
reason=
while :; do
    if [ "$(now)" -gt "$deadline" ]; then
        if [ "$abort_on_timeout" -eq 1 ]; then
            printf '%s: timed out after %ss in state %s: aborting the rollout\n' \
                "$prog" "$timeout" "${state:-unknown}" >&2
            "$ctl_bin" rollout "$service" abort >&2 ||
                printf '%s: the abort failed: see switchyard-ctl rollout %s status\n' \
                    "$prog" "$service" >&2
            exit 3
        fi
        die 3 "timed out after ${timeout}s in state ${state:-unknown}; the rollout" \
            "goes on (--no-abort-on-timeout): switchyard-ctl rollout $service status"
    fi
    rc=0
    # switchyard-ctl writes nothing to stderr when it succeeds: on a failure
    # rollout_out holds its message
    rollout_out=$("$ctl_bin" rollout "$service" status 2>&1) || rc=$?
    case $rc in
    0) unreachable=0 ;;
    3) if [ "$unreachable" -eq 0 ]; then
           printf '%s\n%s: retrying until the timeout\n' "$rollout_out" "$prog" >&2
       fi
       unreachable=1
       pause "$interval"
       continue ;;
    *) printf '%s\n' "$rollout_out" >&2
       die 4 "switchyard-ctl rollout $service status failed (exit $rc)" ;;
    esac

    state=$(field state)
    step=$(field step)
    steps=$(field steps)
    weight=$(field weight)
    verdict=$(analysis_str verdict)
    reason=$(analysis_str reason)
    # steps is a JSON array of weights, e.g. [5,25,50,100]: count its items
    nsteps=$(printf '%s' "$steps" | awk -F, '$0 ~ /[0-9]/ { print NF; exit }')
    line="state $state"
    case $step in
    '' | *[!0-9]*) ;;
    *) step=$((step + 1))
       # after the last step (promoted) the index runs past the end
       [ -z "$nsteps" ] || [ "$step" -le "$nsteps" ] || step=$nsteps
       line="$line, step $step${nsteps:+/$nsteps}" ;;
    esac
    line="$line, weight ${weight:-?}%"
    if [ -n "$verdict" ]; then
        line="$line, last verdict $verdict${reason:+: $reason}"
        canary_figures=$(analysis_side canary)
        baseline_figures=$(analysis_side baseline)
        [ -z "$canary_figures" ] ||
            line="$line (canary $canary_figures; baseline ${baseline_figures:-none})"
    fi
    if [ "$line" != "$shown" ]; then
        say "[$(date +%H:%M:%S)] $line"
        shown=$line
    fi

    case $state in
    promoted)
        started=0
        say "service $service: promoted, $canary is active (pool $pool)"
        exit 0 ;;
    rolled_back)
        started=0
        die 1 "service $service: rolled back by the gateway, $active stays active:" \
            "${reason:-no analysis reason given}" ;;
    aborted)
        started=0
        die 1 "service $service: the rollout was aborted, $active stays active" \
            "${reason:+(last analysis: $reason)}" ;;
    running | waiting_for_traffic | paused) ;;
    *)
        die 4 "service $service: unexpected rollout state \"$state\"" ;;
    esac
    pause "$interval"
done
