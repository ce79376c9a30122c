#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""What one abusive client's flood does to another client (issue 8: a
100,000-request flood of one client leaves another client's p99 within
2 x its quiet p99).

usage: tests/bench/flood.py [--requests N] [--flood N] [--runs N] [--workers N]

The gateway (2 workers by default) limits every client to 100 requests/s
(burst 200) by client_ip; clients pose as addresses through a trusted
proxy (X-Forwarded-For from 127.0.0.1). A quiet client (10.0.0.2) sends N
requests one after another, paced at 50/s so that it stays within its own
budget, and its latencies give the quiet p99. Then wrk floods as 10.6.6.6
(4 connections, at least --flood requests, almost all answered 429,
for as long as the measurement lasts) while the quiet client measures again. Each run prints both p99s
and their ratio, then the median of the runs. Nothing here asserts: it
measures (STYLE: performance is measured, never asserted in a test).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from lib import backends, gateway, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402


def quiet_p99(gw, n, rate=50.0):
    """p99 in ms of n requests from 10.0.0.2, paced at rate per second."""
    lat = []
    raw = build("GET", "/", headers=[("X-Forwarded-For", "10.0.0.2")])
    with proxytest.client(gw) as c:
        next_at = time.monotonic()
        for _ in range(n):
            next_at += 1.0 / rate
            t0 = time.perf_counter()
            r = c.request(raw)
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status != 200:
                raise RuntimeError("the quiet client got %d" % r.status)
            time.sleep(max(0.0, next_at - time.monotonic()))
    lat.sort()
    return lat[int(len(lat) * 0.99) - 1]


def flood(gw, total, measured, out):
    """wrk as 10.6.6.6 until at least total requests were sent and the
    quiet client has measured; out: [requests, seconds]."""
    host, port = gw.host_port()
    t0 = time.monotonic()
    sent = 0
    while sent < total or not measured.is_set():
        res = subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-H", "X-Forwarded-For: 10.6.6.6",
                              "http://%s:%d/" % (host, port)], capture_output=True, text=True)
        m = re.search(r"(\d+) requests in", res.stdout)
        if not m:
            raise RuntimeError("wrk: " + res.stdout + res.stderr)
        sent += int(m.group(1))
    out[:] = [sent, time.monotonic() - t0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--flood", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    ratios = []
    with backends.Testd([0], threads=2) as td:
        cfg = proxytest.config(
            [td.addr(0)], workers=args.workers, trusted_proxies=["127.0.0.1/32"],
            routes=[{"host": "*", "path": "/", "service": "svc", "rate_limit": "per-ip"}],
            rate_limits={"per-ip": {"key": "client_ip", "rate": 100, "per_ms": 1000,
                                    "burst": 200}},
            admin={"listen": "127.0.0.1:%d" % ports.free_port()})
        with gateway.Gateway(cfg) as gw:
            for run in range(args.runs):
                quiet = quiet_p99(gw, args.requests)
                done, measured = [], threading.Event()
                t = threading.Thread(target=flood, args=(gw, args.flood, measured, done))
                t.start()
                time.sleep(0.3)
                loud = quiet_p99(gw, args.requests)
                measured.set()
                t.join()
                ratios.append(loud / quiet)
                print("run %d: quiet p99 %.2f ms, during a flood of %d requests in %.1f s: "
                      "%.2f ms, ratio %.2f" % (run + 1, quiet, done[0], done[1], loud,
                                               loud / quiet))
                time.sleep(2.5)     # the flooder's budget and the log summaries settle
    print("median ratio %.2f (target <= 2)" % statistics.median(ratios))


if __name__ == "__main__":
    main()
