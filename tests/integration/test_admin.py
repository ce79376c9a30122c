# SPDX-License-Identifier: BSD-2-Clause
"""The admin API (SPEC.md "Admin API", docs/admin-api.md) against a real
gateway: every endpoint with and without a token, good and bad input,
token rotation through a reload, security-log events that name a token's
index and never its text, /ready following health and drain, drain under
load (no new request reaches a drained instance, those in flight finish),
the start-up refusals, and a /metrics exposition that parses.
"""
import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, httpc, loadgen, ports, proxytest  # noqa: E402
from lib.admin import start_gateway, write_tokens  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

H = "127.0.0.1"
TOKENS = ["tok-first-1a2b3c4d", "tok-second-5e6f7a8b"]


def admin_conf(tokens=True):
    conf = {"listen": "%s:%d" % (H, ports.free_port())}
    if tokens:
        conf["token_file"] = "{tmp}/admin.token"
    return conf


def wait_for(pred, timeout=5.0, what="condition"):
    value = proxytest.wait_until(pred, timeout)
    if not value:
        raise AssertionError("%s not reached within %.1f s" % (what, timeout))
    return value


def error_log_has(gw, pattern, timeout=5.0):
    """Waits until the error log matches pattern (it is written off the loop)."""
    def matches():
        try:
            with open(gw.log_path("error")) as f:
                return re.search(pattern, f.read())
        except FileNotFoundError:
            return None
    return wait_for(matches, timeout, "%r in the error log" % pattern)


class AdminApi(unittest.TestCase):
    """One gateway, token file of two lines: pool p (instances a, b) behind
    service svc, pool s (one instance) behind service solo, and pool v6
    with an IPv6 instance nobody sends to."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "a"), (0, "b"), (0, "s")], threads=2).start()
        cls.v6 = "[::1]:%d" % ports.free_port()
        cls.cfg = proxytest.config(
            workers=2,
            pools={"p": {"instances": [{"addr": cls.td.addr(0)}, {"addr": cls.td.addr(1)}]},
                   "s": {"instances": [{"addr": cls.td.addr(2)}]},
                   "v6": {"instances": [{"addr": cls.v6}]}},
            services={"svc": {"blue": "p", "green": "p"},
                      "solo": {"blue": "s", "green": "s", "active": "green"}},
            routes=[{"host": "*", "path": "/solo", "service": "solo"},
                    {"host": "*", "path": "/", "service": "svc"}],
            admin=admin_conf())
        try:
            cls.gw = start_gateway(cls.cfg, TOKENS)
        except Exception:
            cls.td.stop()
            raise
        cls.api = admin.Admin(cls.gw, token=TOKENS[0])
        cls.a, cls.b = cls.td.addr(0), cls.td.addr(1)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.td.stop()

    def security(self, event, pred=lambda e: True, min_count=1, timeout=5.0):
        """Security-log events of kind event matching pred (waits for min_count)."""
        def found():
            lines = self.gw.log_lines("security")
            hits = [e for e in lines if e.get("event") == event and pred(e)]
            return hits if len(hits) >= min_count else None
        hits = proxytest.wait_until(found, timeout)
        self.assertTrue(hits, "no %s event matching in the security log:\n%s"
                        % (event, self.gw.log_lines("security")))
        return hits

    def assert_json_error(self, reply, status, *needles):
        self.assertEqual(reply.status, status, reply)
        self.assertTrue(reply.headers.get("content-type", "").startswith("application/json"),
                        reply.headers)
        self.assertEqual(reply.headers.get("cache-control"), "no-store")
        self.assertIsInstance(reply.json.get("error"), str, reply)
        for needle in needles:
            self.assertIn(needle, reply.json["error"])

    def drain_path(self, pool, addr, what="drain"):
        return "/api/v1/pools/%s/instances/%s/%s" % (pool, addr, what)

    def undrain_later(self, pool, addr):
        self.addCleanup(self.api.drain, pool, addr, True)

    # ---- probes ----

    def test_health_and_ready_need_no_token(self):
        r = self.api.get("/health", token=None)
        self.assertEqual((r.status, r.json), (200, {"status": "ok"}))
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(r.headers["cache-control"], "no-store")
        r = self.api.get("/ready", token=None)
        self.assertEqual((r.status, r.json), (200, {"status": "ready"}))
        r = self.api.request("HEAD", "/health", token=None)
        self.assertEqual((r.status, r.body), (200, b""))
        # a token, even a wrong one, changes nothing on the open endpoints
        r = self.api.get("/health", token="not-a-token")
        self.assertEqual(r.status, 200)

    def test_ready_follows_the_active_pool(self):
        self.api.drain("s", self.td.addr(2))
        self.undrain_later("s", self.td.addr(2))
        r = self.api.get("/ready", token=None)
        self.assertEqual((r.status, r.json), (503, {"status": "not_ready", "services": ["solo"]}))
        solo = [s for s in self.api.status()["services"] if s["name"] == "solo"][0]
        self.assertEqual((solo["active"], solo["ready"]), ("green", False))
        self.api.drain("s", self.td.addr(2), undrain=True)
        r = self.api.get("/ready", token=None)
        self.assertEqual((r.status, r.json), (200, {"status": "ready"}))

    # ---- auth ----

    def test_api_refuses_missing_wrong_and_malformed_tokens(self):
        requests = [("GET", "/api/v1/status"), ("GET", "/api/v1/pools"),
                    ("POST", self.drain_path("p", self.a)),
                    ("POST", self.drain_path("p", self.a, "undrain")),
                    ("POST", "/api/v1/reload"), ("GET", "/api/v1/no-such-thing"),
                    ("DELETE", "/api/v1/pools")]
        reloads = self.api.status()["reloads"]
        for method, path in requests:
            for headers in ({}, {"Authorization": "Bearer wrong-token"},
                            {"Authorization": "Basic " + TOKENS[0]},
                            {"Authorization": "Bearer"},
                            {"Authorization": "Bearer " + TOKENS[0] + "x"},
                            {"Authorization": "Bearer " + TOKENS[0][:-1]}):
                with self.subTest(method=method, path=path, headers=headers):
                    r = self.api.request(method, path, token=None, headers=headers)
                    self.assert_json_error(r, 401, "unauthorized")
                    self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        # nothing changed
        self.assertFalse(self.api.pools()["p"][self.a]["drained"])
        self.assertEqual(self.api.status()["reloads"], reloads)
        events = self.security("auth_failed", lambda e: e.get("path") == "/api/v1/pools",
                               min_count=6)
        for e in events:
            self.assertEqual(e["client_ip"], H)
            self.assertIn(e["reason"], ("no token", "wrong token",
                                        "malformed Authorization header"))
        reasons = {e["reason"] for e in events}
        self.assertEqual(len(reasons), 3, reasons)

    def test_every_token_line_works_and_is_logged_by_index(self):
        for i, token in enumerate(TOKENS):
            with self.subTest(token=i):
                r = self.api.get("/api/v1/status", token=token)
                self.assertEqual(r.status, 200, r)
                # the scheme is case-insensitive, extra blanks are allowed
                r = self.api.get("/api/v1/pools", token=None,
                                 headers={"Authorization": "bearer   %s " % token})
                self.assertEqual(r.status, 200, r)
                self.api.post(self.drain_path("p", self.b), token=token)
                self.undrain_later("p", self.b)
                self.security("admin_action", lambda e, i=i: e.get("action") == "drain"
                              and e.get("token") == i and e.get("instance") == self.b)

    def test_no_token_text_in_any_log(self):
        self.api.get("/api/v1/status", token=TOKENS[1])
        self.api.get("/api/v1/status", token="Wrong-" + TOKENS[1])
        self.api.drain("p", self.b)
        self.api.drain("p", self.b, undrain=True)
        self.security("admin_action", lambda e: e.get("action") == "undrain")
        self.security("auth_failed")
        for kind in ("security", "error", "access"):
            try:
                with open(self.gw.log_path(kind)) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            for token in TOKENS:
                self.assertNotIn(token, text, "a token in the %s log" % kind)
                self.assertNotIn(token[4:], text, "part of a token in the %s log" % kind)

    def test_auth_failures_are_summarised_under_a_flood(self):
        path = "/api/v1/flood-%d" % time.monotonic_ns()
        raw = httpc.build("GET", path, headers={"Authorization": "Bearer x"})
        sent = 0

        def events():
            return [e for e in self.gw.log_lines("security")
                    if e.get("event") == "auth_failed" and e.get("path") == path]
        deadline = time.monotonic() + 20
        with httpc.Client(H, admin.Admin(self.gw).port) as c:
            # a suppressed count is written with the next event logged
            while not any("suppressed" in e for e in events()):
                self.assertLess(time.monotonic(), deadline, "no \"suppressed\" event")
                for _ in range(100):
                    self.assertEqual(c.request(raw).status, 401)
                    sent += 1
        self.assertLess(len(events()), sent / 2, "the flood was not summarised")

        def accounted():
            # the first event of a new second carries what the last one left out
            nonlocal sent
            lines = events()
            if len(lines) + sum(e.get("suppressed", 0) for e in lines) == sent:
                return True
            self.assertEqual(self.api.get(path, token="y").status, 401)
            sent += 1
            time.sleep(0.1)
            return False
        wait_for(accounted, 5.0, "every refused request logged or counted as suppressed")

    # ---- status and pools ----

    def test_status(self):
        st = self.api.status()
        self.assertRegex(st["version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(st["pid"], self.gw.pid)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(st["config_file"], self.gw.config_path)
        self.assertIsInstance(st["uptime_s"], int)
        self.assertGreaterEqual(st["uptime_s"], 0)
        self.assertEqual(set(st["reloads"]), {"success", "failure"})
        svc = {s["name"]: s for s in st["services"]}
        scaling = svc["svc"].pop("scaling")
        self.assertEqual(svc["svc"], {"name": "svc", "active": "blue",
                                      "pools": {"blue": "p", "green": "p"},
                                      "canary_weight": 0, "ready": True, "rollout": "idle",
                                      "maintenance": False})
        self.assertEqual(set(scaling), {"recommendation", "reason", "p95_ms", "queue",
                                        "error_rate", "requests", "limits"})
        self.assertEqual(svc["solo"]["pools"], {"blue": "s", "green": "s"})
        pools = {p["name"]: p for p in st["pools"]}
        self.assertEqual(pools["p"], {"name": "p", "instances": 2, "healthy": 2, "usable": 2})
        self.assertEqual(pools["v6"]["instances"], 1)
        r = self.api.request("HEAD", "/api/v1/status")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_pools(self):
        r = self.api.get("/api/v1/pools")
        self.assertEqual(r.status, 200)
        pools = {p["name"]: p for p in r.json["pools"]}
        self.assertEqual(set(pools), {"p", "s", "v6"})
        p = pools["p"]
        self.assertEqual((p["balance"], p["health_checks"]), ("round_robin", False))
        self.assertEqual([i["addr"] for i in p["instances"]], [self.a, self.b])
        inst = p["instances"][0]
        self.assertEqual(inst, {"addr": self.a, "weight": 1, "state": "up", "health": "up",
                                "drained": False, "ejected_until": None, "in_flight": 0,
                                "last_check": {"at": None, "status": None, "error": None}})

    # ---- drain ----

    def test_drain_and_undrain(self):
        r = self.api.post(self.drain_path("p", self.a))
        self.undrain_later("p", self.a)
        self.assertEqual((r.status, r.json), (200, {"pool": "p", "instance": self.a,
                                                    "drained": True}))
        inst = self.api.pools()["p"][self.a]
        self.assertEqual((inst["state"], inst["health"], inst["drained"]),
                         ("drained", "up", True))
        st = {p["name"]: p for p in self.api.status()["pools"]}["p"]
        self.assertEqual((st["healthy"], st["usable"]), (1, 1))
        m = parse_metrics(self.api.get("/metrics", token=None).text)
        self.assertEqual(sample(m, "switchyard_upstream_up", pool="p", instance=self.a), 0)
        self.assertEqual(sample(m, "switchyard_upstream_up", pool="p", instance=self.b), 1)
        # draining twice is no error
        self.assertTrue(self.api.drain("p", self.a)["drained"])
        ev = self.security("admin_action", lambda e: e.get("action") == "drain"
                           and e.get("instance") == self.a)[-1]
        self.assertEqual((ev["pool"], ev["token"], ev["client_ip"]), ("p", 0, H))
        r = self.api.post(self.drain_path("p", self.a, "undrain"), body={})
        self.assertEqual((r.status, r.json), (200, {"pool": "p", "instance": self.a,
                                                    "drained": False}))
        self.assertEqual(self.api.pools()["p"][self.a]["state"], "up")
        self.security("admin_action", lambda e: e.get("action") == "undrain"
                      and e.get("instance") == self.a)

    def test_addresses_are_percent_decoded(self):
        enc = self.a.replace(":", "%3A")
        r = self.api.post(self.drain_path("%70", enc))          # %70 is "p"
        self.undrain_later("p", self.a)
        self.assertEqual((r.status, r.json["pool"], r.json["instance"]), (200, "p", self.a))
        port = self.v6.rsplit(":", 1)[1]
        for addr in ("%5B::1%5D:" + port, "%5B%3A%3A1%5D%3A" + port):
            with self.subTest(addr=addr):
                r = self.api.post(self.drain_path("v6", addr))
                self.assertEqual((r.status, r.json["instance"]), (200, self.v6), r)
                r = self.api.post(self.drain_path("v6", addr, "undrain"))
                self.assertEqual((r.status, r.json["drained"]), (200, False), r)
        r = self.api.post(self.drain_path("p", "127.0.0.1%00:1"))
        self.assert_json_error(r, 400)

    def test_unknown_names_are_404(self):
        r = self.api.post(self.drain_path("nope", self.a))
        self.assert_json_error(r, 404, "nope")
        r = self.api.post(self.drain_path("p", "127.0.0.1:1"))
        self.assert_json_error(r, 404, "127.0.0.1:1", "p")
        r = self.api.post(self.drain_path("p", self.td.addr(2)))   # an instance of s
        self.assert_json_error(r, 404, self.td.addr(2))
        for method, path in [("GET", "/nope"), ("GET", "/health/"),
                             ("GET", "/api/v1"), ("GET", "/api/v1/status/x"),
                             ("GET", "/api/v1/pools/p"),
                             ("POST", "/api/v1/pools/p/instances/%s/bounce" % self.a),
                             ("POST", "/api/v1/pools/p/instances//drain"),
                             ("POST", "/api/v1/services/nope/switch"),
                             ("POST", "/api/v1/services/nope/canary"),
                             ("GET", "/api/v1/services/nope/rollout"),
                             ("POST", "/api/v1/services/nope/maintenance")]:
            with self.subTest(method=method, path=path):
                self.assert_json_error(self.api.request(method, path), 404)
        self.assertFalse(self.api.pools()["p"][self.a]["drained"])

    def test_wrong_method_is_405_with_allow(self):
        for method, path, allow in [
                ("POST", "/health", "GET, HEAD"), ("DELETE", "/ready", "GET, HEAD"),
                ("PUT", "/metrics", "GET, HEAD"), ("POST", "/api/v1/status", "GET, HEAD"),
                ("DELETE", "/api/v1/pools", "GET, HEAD"), ("GET", "/api/v1/reload", "POST"),
                ("HEAD", "/api/v1/reload", "POST"), ("PATCH", "/api/v1/reload", "POST"),
                ("GET", self.drain_path("p", self.a), "POST"),
                ("OPTIONS", self.drain_path("p", self.a, "undrain"), "POST")]:
            with self.subTest(method=method, path=path):
                r = self.api.request(method, path)
                self.assertEqual(r.status, 405, r)
                self.assertEqual(r.headers.get("allow"), allow)
                if method != "HEAD":
                    self.assert_json_error(r, 405)
        self.assertFalse(self.api.pools()["p"][self.a]["drained"])

    def test_bodies_must_be_json_objects(self):
        reloads = self.api.status()["reloads"]
        for body in ("{nope", "[1]", '"drain"', "1", "null", '{"a":1,"a":2}', "{}x"):
            for path in (self.drain_path("p", self.a), "/api/v1/reload"):
                with self.subTest(body=body, path=path):
                    r = self.api.post(path, body=body)
                    self.assert_json_error(r, 400)
        self.assertFalse(self.api.pools()["p"][self.a]["drained"])
        self.assertEqual(self.api.status()["reloads"], reloads)
        # an object, an empty body or blank space are fine
        for body in ({"reason": "maintenance"}, None, " \r\n"):
            with self.subTest(body=body):
                r = self.api.post(self.drain_path("p", self.a), body=body)
                self.undrain_later("p", self.a)
                self.assertEqual(r.status, 200, r)

    def test_oversized_body_is_413(self):
        port = admin.Admin(self.gw).port
        head = httpc.build("POST", self.drain_path("p", self.a),
                           headers=[("Authorization", "Bearer " + TOKENS[0]),
                                    ("Content-Length", str(64 * 1024 + 1))])
        status, _, _, _ = httpc.request(H, port, head)
        self.assertEqual(status, 413)
        # exactly 64 KiB is accepted
        body = b'{"pad":"' + b"x" * (64 * 1024 - 10) + b'"}'
        self.assertEqual(len(body), 64 * 1024)
        r = self.api.post(self.drain_path("p", self.b), body=body)
        self.undrain_later("p", self.b)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(self.api.pools()["p"][self.a]["drained"])

    # ---- reload ----

    def test_reload(self):
        before = self.api.status()["reloads"]
        r = self.api.post("/api/v1/reload", token=TOKENS[1])
        self.assertEqual((r.status, r.json), (200, {"result": "reloaded",
                                                    "config_file": self.gw.config_path}))
        ev = self.security("admin_action", lambda e: e.get("action") == "reload")[-1]
        self.assertEqual((ev["token"], ev["result"]), (1, "reloaded"))
        bad = json.loads(json.dumps(self.gw.config))
        bad["services"]["svc"]["green"] = "no-such-pool"
        self.gw.write_config(bad)
        try:
            r = self.api.post("/api/v1/reload", body={})
        finally:
            self.gw.write_config(self.cfg)
        self.assert_json_error(r, 409, "reload refused: ", "no-such-pool")
        ev = self.security("admin_action", lambda e: e.get("action") == "reload"
                           and e.get("result") == "refused")[-1]
        self.assertIn("no-such-pool", ev["reason"])
        after = self.api.status()["reloads"]
        self.assertEqual(after, {"success": before["success"] + 1,
                                 "failure": before["failure"] + 1})
        m = parse_metrics(self.api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_config_reloads_total", result="failure"),
                         after["failure"])
        # the gateway still serves, and the API on the current snapshot
        self.assertEqual(self.api.status()["services"][0]["name"], "svc")
        self.assertEqual(httpc.get(self.gw.url("/"))[0], 200)

    # ---- metrics ----

    def test_metrics_parse(self):
        r = self.api.get("/metrics", token=None)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        m = parse_metrics(r.text)
        want = {"switchyard_upstream_up": "gauge",
                "switchyard_upstream_health_checks_total": "counter",
                "switchyard_config_reloads_total": "counter",
                "switchyard_connections_active": "gauge"}
        for name, kind in want.items():
            self.assertEqual(m[name]["type"], kind, name)
            self.assertTrue(m[name]["help"], name)
        for pool, addr in (("p", self.a), ("p", self.b), ("s", self.td.addr(2)),
                           ("v6", self.v6)):
            self.assertEqual(sample(m, "switchyard_upstream_up", pool=pool, instance=addr), 1)
            for result in ("success", "failure"):
                self.assertEqual(sample(m, "switchyard_upstream_health_checks_total",
                                        pool=pool, instance=addr, result=result), 0)
        self.assertGreaterEqual(sample(m, "switchyard_config_reloads_total", result="success"),
                                0)
        with proxytest.client(self.gw) as c:
            self.assertEqual(c.request(httpc.build("GET", "/")).status, 200)
            m = parse_metrics(self.api.get("/metrics").text)
            self.assertGreaterEqual(sample(m, "switchyard_connections_active"), 1)

    def test_metrics_parser_rejects_bad_text(self):
        for text in ('x 1\n', '# TYPE x gauge\nx{a="1} 1\n', '# TYPE x gauge\nx{a="\\q"} 1\n',
                     '# TYPE x gauge\nx 1\n# TYPE x gauge\n', '# TYPE x gauge\nx 1\nx 2\n',
                     '# TYPE x gauge\nx{a="1",} 1\n' + 'x{a="1"b="2"} 1\n',
                     # lib/promtext.py is stricter than the format where the gateway
                     # has no reason to differ, and a histogram has no bare sample
                     '', '# TYPE x gauge\n\nx 1\n', '# TYPE x gauge\n# x\nx 1\n',
                     '# TYPE x gauge\nx 1 1700000000000\n', '# TYPE x gauge\nx NaN\n',
                     '# TYPE x gauges\nx 1\n', '# TYPE h histogram\nh 1\n',
                     '# TYPE h histogram\nh_count 1\nh_count 1\n',
                     '# TYPE h gauge\nh_bucket 1\n'):
            with self.subTest(text=text):
                self.assertRaises(ValueError, parse_metrics, text)
        m = parse_metrics('# HELP x h\n# TYPE x gauge\nx{a="q\\"\\\\\\n",b=""} 2\n')
        self.assertEqual(m["x"]["samples"], [({"a": 'q"\\\n', "b": ""}, 2.0)])
        m = parse_metrics('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n')
        self.assertEqual(m["h"]["samples"], [({"le": "+Inf", "__name__": "h_bucket"}, 2.0),
                                             ({"__name__": "h_sum"}, 0.5),
                                             ({"__name__": "h_count"}, 2.0)])
        self.assertEqual(set(m), {"h"})

    # ---- drain under load ----

    def test_drain_under_load(self):
        """No new request reaches a drained instance once the drain is
        answered; requests already on it finish with 200; undrain brings
        traffic back."""
        a_port = self.td.port(0)
        slow = []

        def slow_get():
            try:
                slow.append(httpc.get(self.gw.url("/delay/1500"), timeout=10))
            except OSError as e:
                slow.append((None, [], str(e).encode()))
        a_base = self.td.stats(a_port)["requests"]
        threads = [threading.Thread(target=slow_get) for _ in range(6)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: [t.join(10) for t in threads])

        def slow_in_flight():
            p = self.api.pools()["p"]
            return p[self.a]["in_flight"] + p[self.b]["in_flight"] == 6 and p[self.a]["in_flight"]
        on_a = wait_for(slow_in_flight, 5.0, "6 slow requests in flight, some on a")
        with loadgen.Load(H, self.gw.host_port()[1], threads=2) as load:
            self.assertTrue(load.wait_count(20), "no traffic")
            self.api.drain("p", self.a)
            self.undrain_later("p", self.a)
            drained_at = time.monotonic()
            a_at_drain = self.td.stats(a_port)["requests"]
            self.assertEqual(self.api.pools()["p"][self.a]["state"], "drained")
            n = load.count()
            self.assertTrue(load.wait_count(n + 100), "traffic stopped after the drain")
            a_after = self.td.stats(a_port)["requests"]
            undrain_call = time.monotonic()
            self.api.drain("p", self.a, undrain=True)
            undrained_at = time.monotonic()
            self.assertTrue(load.wait_count(load.count() + 50), "traffic stopped")
        result = load.result
        back = [o.body for o in result.outcomes if o.start > undrained_at]
        self.assertIn(b"a\n", back, "no traffic on a after the undrain")
        self.assertFalse(result.failures, result.describe())
        # sent after the drain answer, answered before the undrain was asked
        late = [o for o in result.outcomes if drained_at < o.start and o.end < undrain_call]
        self.assertGreater(len(late), 50)
        self.assertEqual({o.body for o in late}, {b"b\n"},
                         "a request sent after the drain reached a: %r" % [
                             (o.start - drained_at, o.end - drained_at, o.body) for o in late
                             if o.body != b"b\n"])
        # at most one request per load thread was on its way to a at the drain
        self.assertLessEqual(a_after - a_at_drain - 1, 2)
        for t in threads:
            t.join(10)
        self.assertEqual([s[0] for s in slow], [200] * 6, slow)
        self.assertEqual(sum(1 for s in slow if s[2] == b"a\n"), on_a)
        self.assertGreaterEqual(a_at_drain - a_base, on_a)


class AdminLifecycle(unittest.TestCase):
    """Gateways of their own: token rotation, no token file, health-driven
    /ready, and the start-up refusals."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "a")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def start(self, cfg, tokens=None):
        gw = start_gateway(cfg, tokens)
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def config(self, **top):
        return proxytest.config([self.td.addr(0)], **top)

    def test_token_rotation_through_reload(self):
        gw = self.start(self.config(admin=admin_conf()), ["old-token-1"])
        api = admin.Admin(gw)
        self.assertEqual(api.get("/api/v1/status", token="old-token-1").status, 200)
        self.assertEqual(api.get("/api/v1/status", token="new-token-2").status, 401)
        # during the rotation both work; then the old line goes
        write_tokens(os.path.join(gw.tmp, "admin.token"), ["old-token-1", "new-token-2"])
        self.assertEqual(api.post("/api/v1/reload", token="old-token-1").status, 200)
        self.assertEqual(api.get("/api/v1/status", token="new-token-2").status, 200)
        write_tokens(os.path.join(gw.tmp, "admin.token"), ["new-token-2"])
        r = api.post("/api/v1/reload", token="new-token-2")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(api.get("/api/v1/status", token="old-token-1").status, 401)
        self.assertEqual(api.get("/api/v1/status", token="new-token-2").status, 200)
        # SIGHUP re-reads it too
        write_tokens(os.path.join(gw.tmp, "admin.token"), ["third-token-3"])
        gw.reload()
        wait_for(lambda: api.get("/api/v1/status", token="third-token-3").status == 200,
                 5.0, "the token file re-read on SIGHUP")
        self.assertEqual(api.get("/api/v1/status", token="new-token-2").status, 401)
        def actions():
            ev = [(e["action"], e["token"]) for e in gw.log_lines("security")
                  if e["event"] == "admin_action"]
            return ev if len(ev) >= 2 else None
        self.assertEqual(wait_for(actions, 5.0, "two admin_action events"),
                         [("reload", 0), ("reload", 1)])

    def test_no_token_file_leaves_the_api_open_on_loopback(self):
        gw = self.start(self.config(admin=admin_conf(tokens=False)))
        api = admin.Admin(gw)
        self.assertEqual(api.get("/api/v1/status").status, 200)
        self.assertEqual(api.get("/api/v1/pools", token="anything").status, 200)
        api.drain("p", self.td.addr(0))
        ev = wait_for(lambda: [e for e in gw.log_lines("security")
                               if e["event"] == "admin_action"], 5.0, "an admin_action event")[0]
        self.assertEqual((ev["action"], ev["token"]), ("drain", -1))
        self.assertEqual(api.get("/ready").status, 503)
        api.drain("p", self.td.addr(0), undrain=True)
        self.assertEqual(api.get("/ready").status, 200)
        error_log_has(gw, r"warn admin: .*no admin.token_file")

    def test_token_file_without_tokens_refuses_everything(self):
        gw = self.start(self.config(admin=admin_conf()), ["# tokens go here", ""])
        api = admin.Admin(gw)
        self.assertEqual(api.get("/api/v1/status").status, 401)
        self.assertEqual(api.get("/api/v1/status", token="#").status, 401)
        self.assertEqual(api.get("/health").status, 200)
        error_log_has(gw, r"warn admin: .*holds no token")

    def test_stop_with_admin_requests_in_flight(self):
        gw = self.start(self.config(admin=admin_conf()), ["t"])
        host, port = H, admin.Admin(gw).port
        idle = socket.create_connection((host, port))
        partial = socket.create_connection((host, port))
        partial.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
        self.addCleanup(idle.close)
        self.addCleanup(partial.close)
        # the admin listener has both (an answered request proves it accepts)
        self.assertEqual(admin.Admin(gw).get("/health").status, 200)
        self.assertEqual(gw.stop(timeout=20), 0)
        partial.settimeout(5)
        try:
            data = partial.recv(100)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"", "an answer to a request cut by the stop")

    def test_non_loopback_admin_needs_a_token_file(self):
        cfg = self.config(admin={"listen": "0.0.0.0:%d" % ports.free_port()})
        rc, out, path = gateway.check_config(cfg)
        self.assertEqual(rc, 1, out)
        self.assertIn("%s: admin: " % path, out)
        self.assertIn("token_file", out)
        with self.assertRaises(gateway.GatewayError) as cm:
            gateway.Gateway(cfg).start()
        self.assertIn("token_file", str(cm.exception))

    def test_admin_port_in_use(self):
        with socket.socket() as holder:
            holder.bind((H, 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            gw = gateway.Gateway(self.config(admin={"listen": "%s:%d" % (H, port)}))
            with self.assertRaises(gateway.GatewayError):
                gw.start()
            self.assertEqual(gw.proc.returncode, 1)
            self.assertIn("switchyard: admin.listen %s:%d: cannot listen: Address already in use"
                          % (H, port), gw.stderr_text())

    def test_ready_follows_health_checks(self):
        """/ready turns 503 when the active pool's only instance fails its
        checks, and 200 again when it comes back; an instance that never
        answers shows down, with the check's error, and up 0 in /metrics."""
        app = backends.Testd([(0, "h")]).start()
        self.addCleanup(lambda: app.stop())
        live, dead = app.addr(0), "%s:%d" % (H, ports.free_port())
        health = {"path": "/health", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1}
        cfg = proxytest.config(
            pools={"live": {"instances": [{"addr": live}], "health": health},
                   "dead": {"instances": [{"addr": dead}], "health": health}},
            services={"app": {"blue": "live", "green": "live"}},
            routes=[{"host": "*", "path": "/", "service": "app"}],
            admin=admin_conf(tokens=False))
        gw = self.start(cfg)
        api = admin.Admin(gw)

        def states(want_live, want_dead):
            p = api.pools()
            return p if (p["live"][live]["state"], p["dead"][dead]["state"]) \
                == (want_live, want_dead) else None
        pools = wait_for(lambda: states("up", "down"), 5.0, "live up and dead down")
        self.assertEqual(api.get("/ready").status, 200)
        self.assertEqual(pools["live"][live]["last_check"]["status"], 200)
        self.assertIsNone(pools["live"][live]["last_check"]["error"])
        gone = pools["dead"][dead]
        self.assertEqual((gone["health"], gone["last_check"]["status"]), ("down", None))
        self.assertTrue(gone["last_check"]["error"])
        self.assertRegex(gone["last_check"]["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_upstream_up", pool="live", instance=live), 1)
        self.assertEqual(sample(m, "switchyard_upstream_up", pool="dead", instance=dead), 0)
        self.assertGreater(sample(m, "switchyard_upstream_health_checks_total", pool="live",
                                  instance=live, result="success"), 0)
        self.assertGreater(sample(m, "switchyard_upstream_health_checks_total", pool="dead",
                                  instance=dead, result="failure"), 0)
        pools = {p["name"]: p for p in api.status()["pools"]}
        self.assertEqual((pools["dead"]["healthy"], pools["live"]["healthy"]), (0, 1))
        # the only instance of the active pool goes away, then comes back
        port = app.port(0)
        app.stop()
        wait_for(lambda: api.get("/ready").status == 503, 5.0, "/ready 503")
        r = api.get("/ready")
        self.assertEqual(r.json, {"status": "not_ready", "services": ["app"]})
        self.assertEqual(api.pools()["live"][live]["state"], "down")
        app = backends.Testd([(port, "h")]).start()
        wait_for(lambda: api.get("/ready").status == 200, 5.0, "/ready 200 again")


if __name__ == "__main__":
    unittest.main()
