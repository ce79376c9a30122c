# SPDX-License-Identifier: BSD-2-Clause
"""Local rate limiting (issue 8): the real gateway in front of testd, real
clients posing as different addresses through a trusted proxy
(X-Forwarded-For from 127.0.0.1). The budget a client gets is the
configured one for the time that passed, on one worker or two; clients do
not share budgets; the 429 and the allowed responses carry the headers of
the configured form; floods are counted in switchyard_rate_limited_total
and collapsed in the security log without losing a count.
"""
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402


def config(td, limit=None, workers=1, route_extra=None, **limit_extra):
    limit = dict({"key": "client_ip", "rate": 50, "per_ms": 1000, "burst": 10},
                 **(limit or {}), **limit_extra)
    return proxytest.config(
        [td.addr(0)], workers=workers,
        routes=[dict({"host": "*", "path": "/", "service": "svc", "rate_limit": "per-ip"},
                     **(route_extra or {})),
                {"host": "*", "path": "/free", "service": "svc"}],
        rate_limits={"per-ip": limit},
        trusted_proxies=["127.0.0.1/32"],
        admin={"listen": "127.0.0.1:%d" % ports.free_port()})


def as_client(ip, path="/", extra=()):
    return build("GET", path, headers=[("X-Forwarded-For", ip)] + list(extra))


def burst_count(gw, n, ip="10.0.0.1", path="/", extra=()):
    """Sends n requests as fast as one keep-alive connection goes; returns
    (allowed, limited, span) where span is (shortest, longest) time the
    gateway's decisions can have spanned: from the first answer received to
    the last request sent, and from the first request sent to the last
    answer received."""
    allowed = limited = 0
    with proxytest.client(gw) as c:
        for i in range(n):
            sent = time.monotonic()
            r = c.request(as_client(ip, path, extra))
            got = time.monotonic()
            if i == 0:
                first_sent, first_got = sent, got
            if r.status == 200:
                allowed += 1
            elif r.status == 429:
                limited += 1
            else:
                raise AssertionError("unexpected %r" % r)
    return allowed, limited, (max(0.0, sent - first_got), got - first_sent)


class RateLimit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg):
        gw = gateway.Gateway(cfg)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def assert_budget(self, allowed, span, rate=50, burst=10):
        # GCRA: burst + 1 at once, then one every 1/rate s, over the decisions' span
        low, high = (burst + 1 + rate * t for t in span)
        self.assertTrue(low - 2 <= allowed <= high + 2,
                        "allowed %d, budget %.1f-%.1f for %.3f-%.3f s" % (
                            allowed, low, high, span[0], span[1]))

    def test_one_client_gets_the_budget_for_the_elapsed_time(self):
        gw = self.gateway(config(self.td))
        allowed, limited, elapsed = burst_count(gw, 1000)
        self.assertEqual(allowed + limited, 1000)
        self.assert_budget(allowed, elapsed)

    def test_two_workers_share_one_budget_per_client(self):
        gw = self.gateway(config(self.td, workers=2))
        results = []
        start = time.monotonic()

        def one_connection():
            results.append(burst_count(gw, 300))
        # many connections: SO_REUSEPORT spreads them over both workers
        threads = [threading.Thread(target=one_connection) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - start
        allowed = sum(r[0] for r in results)
        self.assertEqual(sum(r[0] + r[1] for r in results), 1800)
        # the decisions span at least the longest connection's shortest span
        self.assert_budget(allowed, (max(r[2][0] for r in results), elapsed))

    def test_clients_do_not_share_a_budget(self):
        gw = self.gateway(config(self.td))
        a, _, ta = burst_count(gw, 100, ip="10.0.0.1")
        b, _, tb = burst_count(gw, 100, ip="10.0.0.2")
        self.assert_budget(a, ta)
        self.assert_budget(b, tb)
        # another route without a limit is not limited, and does not spend the budget
        free, limited, _ = burst_count(gw, 50, ip="10.0.0.1", path="/free")
        self.assertEqual((free, limited), (50, 0))

    def test_headers_on_allowed_and_limited_responses(self):
        gw = self.gateway(config(self.td, burst=2, rate=1, per_ms=10000))
        with proxytest.client(gw) as c:
            seen = [c.request(as_client("10.0.0.9")) for _ in range(4)]
        self.assertEqual([r.status for r in seen], [200, 200, 200, 429])
        self.assertEqual([r.header("RateLimit-Limit") for r in seen], ["3"] * 4)
        self.assertEqual([r.header("RateLimit-Remaining") for r in seen], ["2", "1", "0", "0"])
        resets = [int(r.header("RateLimit-Reset")) for r in seen]
        self.assertTrue(all(1 <= x <= 30 for x in resets), resets)
        limited = seen[3]
        self.assertIsNone(seen[0].header("Retry-After"))
        retry = int(limited.header("Retry-After"))
        self.assertTrue(9 <= retry <= 10, retry)
        body = json.loads(limited.body)
        self.assertEqual(body["status"], 429)
        self.assertEqual(body["request_id"], limited.header("X-Request-ID"))
        self.assertIn("per-ip", body["reason"])
        self.assertEqual(limited.header("Content-Type"), "application/json")

    def test_header_forms(self):
        for form, present, absent in [
                ("draft", ["RateLimit-Policy", "RateLimit"], ["RateLimit-Limit"]),
                ("both", ["RateLimit-Policy", "RateLimit", "RateLimit-Limit"], []),
                ("none", [], ["RateLimit-Policy", "RateLimit", "RateLimit-Limit"])]:
            with self.subTest(form=form):
                gw = self.gateway(config(self.td, burst=0, rate=1, per_ms=60000, headers=form))
                with proxytest.client(gw) as c:
                    ok = c.request(as_client("10.0.0.3"))
                    no = c.request(as_client("10.0.0.3"))
                self.assertEqual((ok.status, no.status), (200, 429))
                for r in (ok, no):
                    for name in present:
                        self.assertIsNotNone(r.header(name), (form, name, r.headers))
                    for name in absent:
                        self.assertIsNone(r.header(name), (form, name))
                self.assertIsNotNone(no.header("Retry-After"))     # on every 429
                if form != "none":
                    self.assertEqual(ok.header("RateLimit-Policy"), '"per-ip";q=1;w=60')
                    self.assertEqual(no.header("RateLimit"), '"per-ip";r=0;t=60')
                gw.stop()

    def test_header_key_and_an_absent_header_shares_the_empty_key(self):
        gw = self.gateway(config(self.td, {"key": "header:X-Api-Key", "rate": 1,
                                           "per_ms": 60000, "burst": 1}))
        with proxytest.client(gw) as c:
            a = [c.request(as_client("10.0.0.1", extra=[("X-Api-Key", "alpha")])).status
                 for _ in range(3)]
            b = [c.request(as_client("10.0.0.1", extra=[("X-Api-Key", "beta")])).status
                 for _ in range(3)]
            # two different clients without the header share one budget
            none = [c.request(as_client(ip)).status for ip in ("10.0.0.5", "10.0.0.6", "10.0.0.7")]
        self.assertEqual(a, [200, 200, 429])
        self.assertEqual(b, [200, 200, 429])
        self.assertEqual(none, [200, 200, 429])

    def test_limited_requests_belong_to_no_slot(self):
        # A 429 is the gateway's answer, not the app's: its access-log line and
        # its metrics name the service and route but no slot, and the slot's
        # latency histogram (what a rollout is judged on) never sees it.
        gw = self.gateway(config(self.td, burst=1, rate=1, per_ms=60000))
        with proxytest.client(gw) as c:
            statuses = [c.request(as_client("10.0.0.3")).status for _ in range(5)]
        self.assertEqual(statuses, [200, 200, 429, 429, 429])
        lines = gw.log_lines("access", 5)
        self.assertEqual([(l["status"], l["slot"], l["pool"]) for l in lines],
                         [(200, "blue", "p")] * 2 + [(429, "", "")] * 3)
        self.assertEqual({l["service"] for l in lines}, {"svc"})
        api = admin.Admin(gw)
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_http_requests_total", service="svc", slot="",
                                route="*/", status="429"), 3)
        self.assertEqual(sample(m, "switchyard_http_requests_total", service="svc", slot="blue",
                                route="*/", status="200"), 2)
        self.assertEqual(sample(m, "switchyard_http_request_duration_seconds",
                                service="svc", slot="blue",
                                __name__="switchyard_http_request_duration_seconds_count"), 2)

    def test_route_key_is_one_budget_for_everyone(self):
        gw = self.gateway(config(self.td, {"key": "route", "rate": 1, "per_ms": 60000,
                                           "burst": 2}))
        with proxytest.client(gw) as c:
            statuses = [c.request(as_client("10.0.%d.1" % i)).status for i in range(5)]
        self.assertEqual(statuses, [200, 200, 200, 429, 429])

    def test_untrusted_forwarded_for_is_ignored(self):
        cfg = config(self.td, burst=1, rate=1, per_ms=60000)
        cfg["trusted_proxies"] = ["10.9.9.9/32"]       # 127.0.0.1 is not trusted
        gw = self.gateway(cfg)
        with proxytest.client(gw) as c:
            # a client rotating X-Forwarded-For still spends its own budget
            statuses = [c.request(as_client("10.0.0.%d" % i)).status for i in range(1, 5)]
        self.assertEqual(statuses, [200, 200, 429, 429])
        events = [e for e in gw.log_lines("security", 1) if e["event"] == "rate_limited"]
        self.assertEqual(events[0]["client_ip"], "127.0.0.1")

    def test_flood_is_counted_and_collapsed_in_the_security_log(self):
        gw = self.gateway(config(self.td, workers=2, burst=5, rate=10, per_ms=1000))
        n, limited = 20000, [0]
        lock = threading.Lock()

        def flood():
            got = 0
            with proxytest.client(gw) as c:
                for _ in range(n // 4):
                    got += c.request(as_client("10.6.6.6")).status == 429
            with lock:
                limited[0] += got
        threads = [threading.Thread(target=flood) for _ in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        seconds = time.monotonic() - started
        self.assertGreater(limited[0], n * 0.9)
        api = admin.Admin(gw, token=None)
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_rate_limited_total", limit="per-ip",
                                route="*/"), limited[0])

        def logged():
            events = [e for e in gw.log_lines("security") if e["event"] == "rate_limited"]
            return events, sum(1 + e.get("suppressed", 0) for e in events)
        # the last summaries come with the workers' next tick
        self.assertTrue(proxytest.wait_until(lambda: logged()[1] == limited[0], timeout=5),
                        (logged()[1], limited[0]))
        events = logged()[0]
        # one line per key per second and worker, and the summaries of the last second
        self.assertLessEqual(len(events), 2 * 2 * (seconds + 2), len(events))
        e = events[0]
        self.assertEqual((e["client_ip"], e["limit"], e["route"], e["key"]),
                         ("10.6.6.6", "per-ip", "*/", "10.6.6.6"))
        self.assertIn("reason", e)
        self.assertIn("country", e)


class RateLimitConfig(unittest.TestCase):
    def test_bad_limits_are_refused_with_their_path(self):
        td_addr = "127.0.0.1:9"
        for limit, words in [
                ({"key": "client_ip", "rate": 10000000, "per_ms": 1, "burst": 1}, "rate"),
                ({"key": "client_ip", "rate": 1, "per_ms": 1000000000000, "burst": 1000},
                 "per-ip")]:
            with self.subTest(limit=limit):
                cfg = proxytest.config([td_addr], rate_limits={"per-ip": limit},
                                       routes=[{"host": "*", "path": "/", "service": "svc",
                                                "rate_limit": "per-ip"}])
                rc, out, _ = gateway.check_config(cfg)
                self.assertNotEqual(rc, 0, out)
                self.assertIn("rate_limits.per-ip", out)


if __name__ == "__main__":
    unittest.main()
