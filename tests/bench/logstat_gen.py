#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Writes realistic Switchyard access-log lines (with a few security-log
lines mixed in when --security is given) for switchyard-logstat's
benchmark: the gateway's own field layout, a day of timestamps, Zipf-like
clients and paths, a blue/green split, 404s from scanners, 429s, 5xx.

    logstat_gen.py LINES OUT [--security OUT2] [--seed N]
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lines", type=int)
    ap.add_argument("out")
    ap.add_argument("--security")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=1795392000, help="epoch seconds of the first line")
    args = ap.parse_args()
    rnd = random.Random(args.seed)

    clients = ["10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
               for _ in range(50000)]
    scanners = ["203.0.113.%d" % i for i in range(1, 6)]
    paths = ["/api/v1/items/%d" % i for i in range(2000)] + \
            ["/static/app.%d.js" % i for i in range(50)] + ["/", "/login", "/cart", "/health"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/%d.0.0.0 Safari/537.36" % v for v in range(100, 130)] + \
             ["curl/8.%d.0" % v for v in range(10)] + ["python-requests/2.31.0"]
    countries = ["DE", "US", "FR", "GB", "NL", "JP", "BR", "IN", ""]
    upstreams = {"blue": ["10.0.1.%d:8080" % i for i in range(1, 5)],
                 "green": ["10.0.2.%d:8080" % i for i in range(1, 5)]}
    # Precomputed Zipf-ish weights: the first keys are the busiest.
    cw = [1.0 / (i + 1) ** 0.8 for i in range(len(clients))]
    pw = [1.0 / (i + 1) for i in range(len(paths))]
    span = 86400.0
    step = span / max(args.lines, 1)
    batch = 10000
    client_pick = rnd.choices(clients, cw, k=batch * 4)
    path_pick = rnd.choices(paths, pw, k=batch * 4)
    sec = open(args.security, "w") if args.security else None
    with open(args.out, "w", buffering=1 << 20) as out:
        t = float(args.start)
        buf = []
        for n in range(args.lines):
            t += step
            secs = int(t)
            ms = int((t - secs) * 1000)
            ts = "%s.%03dZ" % (_iso(secs), ms)
            slot = "green" if (n % 10 == 0) else "blue"
            r = rnd.random()
            if r < 0.01:
                client = scanners[n % len(scanners)]
                path = "/wp-admin/%d.php" % rnd.randrange(100000)
                status = 404
            else:
                client = client_pick[n % len(client_pick)]
                path = path_pick[(n * 7) % len(path_pick)]
                status = 200 if r < 0.95 else 429 if r < 0.97 else 500 if r < 0.98 else 404
            dur = rnd.expovariate(1 / 20.0) + (30 if slot == "green" else 0)
            up = max(dur - 0.3, 0.01)
            buf.append(
                '{"ts":"%s","request_id":"%016x","client_ip":"%s","country":"%s","method":"GET",'
                '"host":"shop.example.com","path":"%s","status":%d,"bytes_in":%d,"bytes_out":%d,'
                '"duration_ms":%.3f,"upstream_ms":%s,"upstream":"%s","service":"shop",'
                '"slot":"%s","pool":"shop-%s","route":"shop.example.com/","user_agent":"%s",'
                '"tls":true,"proto":"http/1.1"}\n'
                % (ts, rnd.getrandbits(64), client, countries[n % len(countries)], path, status,
                   200 + n % 300, 1000 + (n * 37) % 50000, dur,
                   "null" if status == 429 else "%.3f" % up,
                   "" if status == 429 else upstreams[slot][n % 4], slot, slot,
                   agents[n % len(agents)]))
            if sec is not None and status == 429:
                sec.write('{"ts":"%s","event":"rate_limited","client_ip":"%s","country":"%s",'
                          '"reason":"over 100/s","limit":"per-client","route":"shop.example.com/"}\n'
                          % (ts, client, countries[n % len(countries)]))
            if len(buf) >= batch:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    if sec is not None:
        sec.close()


_cache = {}


def _iso(secs):
    base = secs - secs % 60
    head = _cache.get(base)
    if head is None:
        import time
        head = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(base))
        _cache.clear()
        _cache[base] = head
    return "%s%02d" % (head, secs - base)


if __name__ == "__main__":
    main()
