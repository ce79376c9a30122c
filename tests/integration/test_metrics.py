# SPDX-License-Identifier: BSD-2-Clause
"""GET /metrics (SPEC.md "Metrics") through a real gateway with known
traffic: a backend that answers after a fixed 100 ms (testd /delay/100) and
one route where 5 of every 100 requests get a 500 (testd /status/500).
Exported counts, _sum and bucket placement are checked against the access
log's own durations; the p95 that Prometheus's histogram_quantile computes
over the scraped buckets falls in the bucket that holds the exact p95;
certificate expiry matches openssl's notAfter; `promtool check metrics`
accepts the text; counters and histograms survive reloads (good and bad)
while the gauges follow the new configuration.
"""
import calendar
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, certs, gateway, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

H = "127.0.0.1"
DUR = "switchyard_http_request_duration_seconds"
UP = "switchyard_upstream_response_seconds"
REQ = "switchyard_http_requests_total"
EXPIRY = "switchyard_tls_certificate_expiry_timestamp_seconds"
SLOW_N, SLOW_THREADS = 40, 4        # GET /delay/100, on 4 connections at once
FLAKY_N, FLAKY_THREADS = 200, 2     # every 20th is /status/500: 5 %
UNROUTED_N = 3                      # Host other.test: no route, 404


def drive(gw, paths, host, threads, want_status):
    """Sends paths (a list) spread over threads keep-alive connections;
    asserts each answer's status (want_status(path))."""
    errors = []

    def run(part):
        try:
            with proxytest.client(gw, timeout=10.0) as c:
                for path in part:
                    st = c.request(build("GET", path, host=host)).status
                    if st != want_status(path):
                        errors.append("%s answered %d" % (path, st))
        except Exception as e:      # reported below, not lost in the thread
            errors.append(repr(e))
    ts = [threading.Thread(target=run, args=(paths[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise AssertionError("traffic failed: %s" % errors[:5])


def flaky_paths(n):
    return ["/status/500" if i % 20 == 0 else "/" for i in range(n)]


def flaky_status(path):
    return 500 if path == "/status/500" else 200


def scrape(gw):
    r = admin.Admin(gw).get("/metrics")
    if r.status != 200:
        raise AssertionError("/metrics answered %r" % r)
    return r.text


def histogram_quantile(q, bks):
    """Prometheus's histogram_quantile (promql/quantile.go, bucketQuantile):
    linear interpolation inside the bucket that holds rank q x count.
    Returns (value, lower, upper) of that bucket."""
    if not bks or not math.isinf(bks[-1][0]):
        return float("nan"), None, None
    total = bks[-1][1]
    if total == 0:
        return float("nan"), None, None
    rank = q * total
    b = next(i for i, (_, c) in enumerate(bks) if c >= rank)
    if b == len(bks) - 1:
        return bks[-2][0], bks[-2][0], math.inf
    lower = 0.0 if b == 0 else bks[b - 1][0]
    below = 0 if b == 0 else bks[b - 1][1]
    upper, count = bks[b][0], bks[b][1] - below
    return lower + (upper - lower) * (rank - below) / count, lower, upper


def nearest_rank(values, q):
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


def not_after(cert):
    """openssl's notAfter of a PEM file, as seconds since the epoch."""
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", cert],
                         capture_output=True, text=True, check=True).stdout
    text = out.strip().split("=", 1)[1]         # "Nov 23 12:00:00 2025 GMT"
    return calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z"))


def tls_listener(leaves):
    return {"addr": "%s:%d" % (H, ports.free_port()),
            "tls": {"certificates": [{"cert": l.cert, "key": l.key} for l in leaves]}}


class MetricsCase(unittest.TestCase):
    """Histogram series come in the text under the family name plus
    _bucket, _sum and _count: these helpers read them."""

    def hist(self, families, name, **labels):
        """(buckets [(le, cumulative)], sum, count) of one series, checked:
        cumulative, +Inf last, _count equal to it."""
        bks, total, count = [], None, None
        for got, value in families[name]["samples"]:
            rest = {k: v for k, v in got.items() if k not in ("le", "__name__")}
            if rest != labels:
                continue
            kind = got["__name__"][len(name):]
            if kind == "_bucket":
                bks.append((float(got["le"]), value))
            elif kind == "_sum":
                total = value
            elif kind == "_count":
                count = value
        self.assertTrue(bks, "no %s%r" % (name, labels))
        self.assertTrue(math.isinf(bks[-1][0]), "+Inf is not the last bucket: %r" % bks)
        self.assertEqual(bks, sorted(bks))
        self.assertEqual([c for _, c in bks], sorted(c for _, c in bks), "not cumulative")
        self.assertEqual(count, bks[-1][1], "_count is not the +Inf bucket")
        return bks, total, count

    @staticmethod
    def le(bks, bound):
        return next(c for b, c in bks if b == bound)


class Metrics(MetricsCase):
    """One gateway (2 workers; a plain and a TLS listener), traffic driven
    once: 40 slow requests, 200 with 5 % 500s, 3 with no route."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="sy-metrics-certs-")
        ca = certs.CA(cls.certdir)
        cls.leaves = [ca.issue("a", ["a.test"], days=30), ca.issue("b", ["b.test"], days=90)]
        cls.td = backends.Testd([(0, "slow"), (0, "flaky")], threads=2).start()
        cfg = proxytest.config(
            workers=2,
            pools={"slow": {"instances": [{"addr": cls.td.addr(0)}]},
                   "flaky": {"instances": [{"addr": cls.td.addr(1)}]}},
            services={"slow": {"blue": "slow", "green": "slow"},
                      "flaky": {"blue": "flaky", "green": "flaky", "active": "green"}},
            routes=[{"host": "*", "path": "/delay", "service": "slow"},
                    {"host": "flaky.test", "path": "/", "service": "flaky"}])
        cfg["listen"].append(tls_listener(cls.leaves + [cls.leaves[0]]))
        try:
            cls.gw = gateway.Gateway(cfg).start()
            cls.gw.wait_admin()
            drive(cls.gw, ["/delay/100"] * SLOW_N, "slow.test", SLOW_THREADS, lambda p: 200)
            drive(cls.gw, flaky_paths(FLAKY_N), "flaky.test", FLAKY_THREADS, flaky_status)
            drive(cls.gw, ["/"] * UNROUTED_N, "other.test", 1, lambda p: 404)
            total = SLOW_N + FLAKY_N + UNROUTED_N
            cls.log = cls.gw.access_log_lines(total, timeout=10.0)
            cls.text = scrape(cls.gw)
        except Exception:
            cls.tearDownClass()
            raise
        cls.m = parse_metrics(cls.text)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "gw", None):
            cls.gw.__exit__(None, None, None)
        cls.td.stop()
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def logged(self, service, field="duration_ms"):
        """Seconds of one access-log field over the requests of a service."""
        lines = [l for l in self.log if l["service"] == service]
        return [l[field] / 1000.0 for l in lines]

    def test_requests_by_route_and_status(self):
        self.assertEqual(len(self.log), SLOW_N + FLAKY_N + UNROUTED_N)
        self.assertEqual(self.m[REQ]["type"], "counter")
        want = {("slow", "blue", "*/delay", "200"): SLOW_N,
                ("flaky", "green", "flaky.test/", "200"): FLAKY_N - FLAKY_N // 20,
                ("flaky", "green", "flaky.test/", "500"): FLAKY_N // 20,
                ("", "", "", "404"): UNROUTED_N}
        got = {(l["service"], l["slot"], l["route"], l["status"]): v
               for l, v in self.m[REQ]["samples"]}
        self.assertEqual(got, want)

    def test_slow_durations_land_between_100_and_200_ms(self):
        bks, total, count = self.hist(self.m, DUR, service="slow", slot="blue")
        self.assertEqual(self.m[DUR]["type"], "histogram")
        self.assertEqual([b for b, _ in bks], [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5,
                                                1, 2, 2.5, 5, 10, math.inf])
        self.assertEqual(count, SLOW_N)
        # 100 ms plus the trip through the gateway: never in le="0.1"
        self.assertEqual(self.le(bks, 0.1), 0)
        logged = self.logged("slow")
        self.assertTrue(all(d > 0.1 for d in logged), logged)
        # le="0.2" holds what the access log timed at 200 ms or less: all
        # of them unless this machine stalled one past 100 ms of overhead
        self.assertEqual(self.le(bks, 0.2), sum(d <= 0.2 for d in logged), logged)
        self.assertGreaterEqual(self.le(bks, 0.2), SLOW_N * 9 // 10, logged)
        # the access log reads the clock just before the metrics do
        self.assertGreaterEqual(total, sum(logged) - 1e-6 * SLOW_N)
        self.assertLess(total, sum(logged) + 0.002 * SLOW_N)
        self.assertGreater(total, 0.1 * SLOW_N)

    def test_flaky_durations_and_the_idle_slot(self):
        bks, total, count = self.hist(self.m, DUR, service="flaky", slot="green")
        self.assertEqual(count, FLAKY_N)
        logged = self.logged("flaky")
        for bound, cum in bks[:-1]:
            self.assertEqual(cum, sum(d <= bound for d in logged), "le=%g" % bound)
        self.assertAlmostEqual(total, sum(logged), delta=0.002 * FLAKY_N)
        # the slot that took no traffic is exported, empty
        bks, total, count = self.hist(self.m, DUR, service="flaky", slot="blue")
        self.assertEqual((count, total), (0, 0))

    def test_p95_like_prometheus(self):
        """histogram_quantile(0.95, ...) over the scraped buckets lands in the
        bucket that holds the exact p95 of the same requests (access log)."""
        for service, slot in (("slow", "blue"), ("flaky", "green")):
            bks, _, _ = self.hist(self.m, DUR, service=service, slot=slot)
            p95, lower, upper = histogram_quantile(0.95, bks)
            exact = nearest_rank(self.logged(service), 0.95)
            self.assertTrue(lower < exact <= upper, (service, exact, lower, upper))
            self.assertTrue(lower <= p95 <= upper, (service, p95, lower, upper))
        bks, _, _ = self.hist(self.m, DUR, service="slow", slot="blue")
        if self.le(bks, 0.2) == SLOW_N:
            # all in (0.1, 0.2]: rank 38 of 40 interpolates to 0.195
            self.assertAlmostEqual(histogram_quantile(0.95, bks)[0], 0.195, places=9)

    def test_upstream_response_times(self):
        bks, total, count = self.hist(self.m, UP, pool="slow", instance=self.td.addr(0))
        self.assertEqual(count, SLOW_N)
        self.assertEqual(self.le(bks, 0.1), 0)
        ups = self.logged("slow", "upstream_ms")
        self.assertEqual(self.le(bks, 0.2), sum(d <= 0.2 for d in ups))
        self.assertGreater(total, 0.1 * SLOW_N)
        bks, total, count = self.hist(self.m, UP, pool="flaky", instance=self.td.addr(1))
        self.assertEqual(count, FLAKY_N)
        ups = self.logged("flaky", "upstream_ms")
        self.assertAlmostEqual(total, sum(ups), delta=0.002 * FLAKY_N)

    def test_gauges_and_counters_of_the_snapshot(self):
        m = self.m
        self.assertEqual(sample(m, "switchyard_service_active_slot", service="flaky",
                                slot="green"), 1)
        self.assertEqual(sample(m, "switchyard_service_active_slot", service="flaky",
                                slot="blue"), 0)
        self.assertEqual(sample(m, "switchyard_service_active_slot", service="slow",
                                slot="blue"), 1)
        self.assertEqual(sample(m, "switchyard_service_canary_weight", service="slow"), 0)
        for log in ("access", "security", "error"):
            self.assertEqual(sample(m, "switchyard_log_dropped_total", log=log), 0)
        self.assertEqual(sample(m, "switchyard_upstream_up", pool="slow",
                                instance=self.td.addr(0)), 1)
        self.assertEqual(m["switchyard_connections_active"]["type"], "gauge")
        for name, fam in m.items():
            self.assertTrue(fam["help"], name)

    def test_certificate_expiry(self):
        got = {l["certificate"]: v for l, v in self.m[EXPIRY]["samples"]}
        # one sample per file, though the listener lists "a" twice
        self.assertEqual(got, {l.cert: not_after(l.cert) for l in self.leaves})
        self.assertEqual(self.m[EXPIRY]["type"], "gauge")

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian package prometheus): "
                          "the exposition was not checked with it")
        r = subprocess.run([promtool, "check", "metrics"], input=self.text,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))


class MetricsAcrossReloads(MetricsCase):
    """Counters and histograms outlive snapshots; gauges follow them."""

    def setUp(self):
        self.certdir = tempfile.mkdtemp(prefix="sy-metrics-certs-")
        self.addCleanup(shutil.rmtree, self.certdir, True)
        self.ca = certs.CA(self.certdir)
        self.leaf = self.ca.issue("r", ["r.test"], days=30)
        self.td = backends.Testd([(0, "app")]).start()
        self.addCleanup(self.td.stop)

    def config(self, active="green", weight=0, extra_routes=()):
        cfg = proxytest.config(
            workers=2, pools={"app": {"instances": [{"addr": self.td.addr(0)}]}},
            services={"flaky": {"blue": "app", "green": "app", "active": active,
                                "canary": {"weight": weight}}},
            routes=list(extra_routes) + [{"host": "flaky.test", "path": "/",
                                          "service": "flaky"}])
        cfg["listen"].append(tls_listener([self.leaf]))
        return cfg

    def reload_to(self, gw, cfg, result="success"):
        before = parse_metrics(scrape(gw))
        n = sample(before, "switchyard_config_reloads_total", result=result)
        if cfg is not None:
            cfg["listen"] = gw.config["listen"]
            gw.write_config(cfg)
        else:
            with open(gw.config_path, "w") as f:
                f.write("{ not json")
        gw.reload()
        after = proxytest.wait_until(
            lambda: (lambda m: m if sample(m, "switchyard_config_reloads_total",
                                           result=result) == n + 1 else None)(
                parse_metrics(scrape(gw))), 10.0)
        self.assertTrue(after, "the reload was not counted as %s" % result)
        return after

    def test_counters_survive_reloads(self):
        gw = gateway.Gateway(self.config()).start()
        self.addCleanup(gw.__exit__, None, None, None)
        gw.wait_admin()
        drive(gw, flaky_paths(100), "flaky.test", 2, flaky_status)
        # a request is counted just after its response is out: wait for its log line
        gw.access_log_lines(100, timeout=10.0)
        m0 = parse_metrics(scrape(gw))
        route = dict(service="flaky", slot="green", route="flaky.test/")
        self.assertEqual(sample(m0, REQ, status="200", **route), 95)
        self.assertEqual(sample(m0, REQ, status="500", **route), 5)
        bks0, sum0, count0 = self.hist(m0, DUR, service="flaky", slot="green")
        self.assertEqual(count0, 100)
        self.assertEqual(sample(m0, EXPIRY, certificate=self.leaf.cert),
                         not_after(self.leaf.cert))

        # a good reload: another slot and weight, a new route, a renewed
        # certificate in the same file
        self.leaf = self.ca.issue("r", ["r.test"], days=60)
        m1 = self.reload_to(gw, self.config(
            active="blue", weight=25,
            extra_routes=[{"host": "flaky.test", "path": "/new", "service": "flaky"}]))
        self.assertEqual(sample(m1, REQ, status="200", **route), 95)
        self.assertEqual(sample(m1, REQ, status="500", **route), 5)
        self.assertEqual(self.hist(m1, DUR, service="flaky", slot="green"),
                         (bks0, sum0, count0))
        self.assertEqual(sample(m1, "switchyard_service_active_slot", service="flaky",
                                slot="blue"), 1)
        self.assertEqual(sample(m1, "switchyard_service_canary_weight", service="flaky"), 25)
        self.assertEqual(sample(m1, EXPIRY, certificate=self.leaf.cert),
                         not_after(self.leaf.cert))

        # a refused reload changes nothing either
        m2 = self.reload_to(gw, None, result="failure")
        self.assertEqual(sample(m2, REQ, status="200", **route), 95)
        self.assertEqual(self.hist(m2, DUR, service="flaky", slot="green")[2], 100)

        # new traffic adds up: the slot is blue now (with the canary off, so
        # that every new request lands there), the old series stay
        r = admin.Admin(gw).post("/api/v1/services/flaky/canary", {"weight": 0})
        self.assertEqual(r.status, 200, r)
        drive(gw, flaky_paths(20) + ["/new"] * 3, "flaky.test", 2,
              lambda p: 500 if p == "/status/500" else 200)
        gw.access_log_lines(123, timeout=10.0)
        m3 = parse_metrics(scrape(gw))
        blue = dict(service="flaky", slot="blue", route="flaky.test/")
        self.assertEqual(sample(m3, REQ, status="200", **route), 95)
        self.assertEqual(sample(m3, REQ, status="200", **blue), 19)
        self.assertEqual(sample(m3, REQ, status="500", **blue), 1)
        self.assertEqual(sample(m3, REQ, status="200", service="flaky", slot="blue",
                                route="flaky.test/new"), 3)
        self.assertEqual(self.hist(m3, DUR, service="flaky", slot="blue")[2], 23)
        self.assertEqual(self.hist(m3, DUR, service="flaky", slot="green")[2], 100)
        bks, total, count = self.hist(m3, UP, pool="app", instance=self.td.addr(0))
        self.assertEqual(count, 123)


if __name__ == "__main__":
    unittest.main()
