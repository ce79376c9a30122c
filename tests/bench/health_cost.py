#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""What active health checks cost the gateway (issue 5: checking 1,000
instances at a 1 s interval must cost under 5 % of one core).

usage: tests/bench/health_cost.py [--instances N] [--interval-ms MS]
                                  [--duration S] [--runs N] [--warmup S]
                                  [--binary PATH]

One build/testd listens on 0.0.0.0:PORT; the gateway (1 worker, no client
traffic) has one pool of N instances 127.0.Y.X:PORT - distinct addresses,
all routed to lo - with health checks every interval. After a warm-up (the
first checks are spread over one interval), the gateway's CPU time
(utime + stime of every thread, /proc/PID/stat) is read over the duration;
each run prints its percentage of one core, then the median of the runs.
It also checks that the checks happened: every instance up, and testd
served about duration / interval checks per instance.
"""
import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from lib import backends, gateway, ports  # noqa: E402

CHANGE = re.compile(r"health: pool p instance (\S+) is (up|down) \(was ")


def instance_addrs(n, port):
    """n distinct loopback addresses 127.0.Y.X (X 1..250) with port."""
    return ["127.0.%d.%d:%d" % (i // 250, i % 250 + 1, port) for i in range(n)]


def config(addrs, interval_ms, timeout_ms):
    listen = ports.free_port()
    admin = ports.free_port()
    while admin == listen:
        admin = ports.free_port()
    return {
        "workers": 1,
        "listen": [{"addr": "127.0.0.1:%d" % listen}],
        "admin": {"listen": "127.0.0.1:%d" % admin},
        "pools": {"p": {"instances": [{"addr": a} for a in addrs],
                        "health": {"path": "/health", "interval_ms": interval_ms,
                                   "timeout_ms": timeout_ms, "rise": 1, "fall": 2}}},
        "services": {"svc": {"blue": "p", "green": "p"}},
        "routes": [{"host": "*", "path": "/", "service": "svc"}],
        "log": {"access": "{tmp}/logs/access.log", "security": "{tmp}/logs/security.log",
                "error": "{tmp}/logs/error.log", "level": "info"},
    }


def up_count(gw):
    """Instances whose last state change in the error log is to up (the
    security log summarises health_change events beyond 50 a second)."""
    state = {}
    try:
        with open(gw.log_path("error")) as f:
            for line in f:
                m = CHANGE.search(line)
                if m:
                    state[m.group(1)] = m.group(2)
    except FileNotFoundError:
        pass
    return sum(1 for h in state.values() if h == "up")


def one_run(td, args):
    addrs = instance_addrs(args.instances, td.port())
    with gateway.Gateway(config(addrs, args.interval_ms, args.timeout_ms),
                         binary=args.binary) as gw:
        deadline = time.monotonic() + args.warmup + 2 * args.interval_ms / 1000.0
        while up_count(gw) < len(addrs) and time.monotonic() < deadline:
            time.sleep(0.1)
        ups = up_count(gw)
        time.sleep(max(0.0, deadline - time.monotonic()))
        served0 = td.stats(td.port())["requests"]
        cpu0, t0 = gw.cpu_seconds(), time.monotonic()
        time.sleep(args.duration)
        cpu1, t1 = gw.cpu_seconds(), time.monotonic()
        served1 = td.stats(td.port())["requests"]
        if not gw.running():
            raise RuntimeError("the gateway exited:\n" + gw.stderr_text())
    pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    checks = served1 - served0 - 1      # less the first /stats call
    per_s = checks / (t1 - t0)
    return pct, ups, per_s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--interval-ms", type=int, default=1000)
    p.add_argument("--timeout-ms", type=int, default=500)
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds after every instance is up")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--binary", help="the gateway (default build/switchyard)")
    p.add_argument("--gateway-cpu", default=None, help="pin the gateway (taskset -c LIST)")
    p.add_argument("--backend-cpu", default=None, help="pin testd (taskset -c LIST)")
    args = p.parse_args()
    if args.instances > 250 * 256:
        p.error("at most %d instances" % (250 * 256))

    if args.gateway_cpu is not None:
        # gateway.py prefixes the command with it; taskset execs, so the pid is the gateway's
        os.environ["SY_GATEWAY_WRAPPER"] = "taskset -c %s" % args.gateway_cpu
    expected = args.instances * 1000.0 / args.interval_ms
    results = []
    with backends.Testd([0], host="0.0.0.0", taskset=args.backend_cpu) as td:
        for run in range(args.runs):
            pct, ups, per_s = one_run(td, args)
            results.append(pct)
            print("run %d: %.2f %% of one core, %d/%d instances up, %.0f checks/s "
                  "(expected %.0f)" % (run + 1, pct, ups, args.instances, per_s, expected),
                  flush=True)
            if ups < args.instances or per_s < 0.9 * expected:
                print("health_cost: checks did not all run: the figure is not valid",
                      file=sys.stderr)
                return 1
    print("health checks, %d instances every %d ms: %.2f %% of one core (median of %d runs "
          "of %.0f s)" % (args.instances, args.interval_ms, statistics.median(results),
                          args.runs, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
