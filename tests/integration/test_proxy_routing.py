# SPDX-License-Identifier: BSD-2-Clause
"""The proxy path, routing side: host and path routing to services and
their active slot, 404 for no route, the three balancers, and keep-alive
on both sides (sequential, pipelined, HTTP/1.0 clients).
Real gateway (build/switchyard), real app instances (build/testd).
"""
import collections
import json
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

NAMES = ["exact", "wild", "wildlong", "any", "api", "api2", "only", "blue", "green"]


def instance(resp):
    """Which testd instance answered (its name)."""
    return resp.header("X-Instance")


class Routing(unittest.TestCase):
    """One testd instance per service, so the answering name tells the route."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, n) for n in NAMES]).start()
        cls.addClassCleanup(cls.td.stop)
        addr = {n: cls.td.addr(i) for i, n in enumerate(NAMES)}
        pools = {n: {"instances": [{"addr": addr[n]}]} for n in NAMES}
        services = {n: {"blue": n, "green": n} for n in NAMES if n not in ("blue", "green")}
        services["slots"] = {"blue": "blue", "green": "green", "active": "green"}
        routes = [
            {"host": "*", "path": "/", "service": "any"},
            {"host": "*", "path": "/api", "service": "api"},
            {"host": "*", "path": "/api/v2", "service": "api2"},
            {"host": "api.example.com", "path": "/", "service": "exact"},
            {"host": "*.example.com", "path": "/", "service": "wild"},
            {"host": "*.b.example.com", "path": "/", "service": "wildlong"},
            {"host": "only.example.com", "path": "/only", "service": "only"},
            {"host": "slots.test", "path": "/", "service": "slots"},
        ]
        cfg = proxytest.config(workers=2, pools=pools, services=services, routes=routes)
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def route(self, host, path):
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", path, host=host))
        self.assertEqual(resp.status, 200, (host, path, resp.body))
        return instance(resp)

    def test_exact_host_beats_wildcards(self):
        self.assertEqual(self.route("api.example.com", "/"), "exact")
        self.assertEqual(self.route("api.example.com", "/api/x"), "exact")

    def test_host_is_case_insensitive_and_port_ignored(self):
        self.assertEqual(self.route("API.Example.COM", "/"), "exact")
        self.assertEqual(self.route("api.example.com:8080", "/"), "exact")
        self.assertEqual(self.route("Api.EXAMPLE.com:1", "/x"), "exact")

    def test_wildcard_host_longest_suffix(self):
        self.assertEqual(self.route("x.example.com", "/"), "wild")
        self.assertEqual(self.route("X.Example.Com:99", "/y"), "wild")
        self.assertEqual(self.route("y.b.example.com", "/"), "wildlong")
        self.assertEqual(self.route("z.y.b.example.com", "/"), "wildlong")
        self.assertEqual(self.route("b.example.com", "/"), "wild")

    def test_catch_all_host(self):
        self.assertEqual(self.route("other.org", "/"), "any")
        self.assertEqual(self.route("example.com", "/"), "any")   # "*.x" needs a label
        self.assertEqual(self.route("localhost", "/anything/else"), "any")

    def test_path_prefix_on_segment_boundaries(self):
        cases = [("/api", "api"), ("/api/", "api"), ("/api/x", "api"), ("/apix", "any"),
                 ("/api/v2", "api2"), ("/api/v2/y", "api2"), ("/api/v2x", "api"),
                 ("/api?q=1", "api"), ("/", "any")]
        for path, want in cases:
            with self.subTest(path=path):
                self.assertEqual(self.route("localhost", path), want)

    def test_falls_back_to_less_specific_host(self):
        self.assertEqual(self.route("only.example.com", "/only/x"), "only")
        self.assertEqual(self.route("only.example.com", "/other"), "wild")

    def test_active_slot_answers(self):
        for _ in range(5):
            self.assertEqual(self.route("slots.test", "/"), "green")

    def test_access_log_names_route_service_slot_pool(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", "/api/v2/logged", host="slots.test",
                                   headers=[("User-Agent", "route-test")]))
        self.assertEqual(resp.status, 200)
        rid = resp.header("X-Request-ID")
        line = proxytest.wait_until(lambda: [l for l in self.gw.access_log_lines()
                                             if l["request_id"] == rid])
        self.assertTrue(line, "no access log line for %s" % rid)
        line = line[0]
        self.assertEqual((line["service"], line["slot"], line["pool"], line["route"]),
                         ("slots", "green", "green", "slots.test/"))


class NoRoute(unittest.TestCase):
    def test_404_json_with_request_id(self):
        with backends.Testd([0]) as td:
            cfg = proxytest.config(routes=[{"host": "known.test", "path": "/app",
                                            "service": "svc"}], instances=[td.addr()])
            with gateway.Gateway(cfg) as gw:
                for host, path in [("other.test", "/app"), ("known.test", "/"),
                                   ("known.test", "/apple")]:
                    with self.subTest(host=host, path=path), proxytest.client(gw) as c:
                        resp = c.request(build("GET", path, host=host))
                        self.assertEqual(resp.status, 404)
                        self.assertIn("application/json", resp.header("Content-Type", ""))
                        body = json.loads(resp.body)
                        self.assertEqual(body["status"], 404)
                        self.assertIsInstance(body["error"], str)
                        self.assertIsInstance(body["reason"], str)
                        rid = resp.header("X-Request-ID")
                        self.assertRegex(rid or "", r"^[0-9a-f]{32}$")
                        self.assertEqual(body["request_id"], rid)
                        # the connection survives a 404
                        self.assertEqual(c.request(build("GET", "/app", host="known.test")).status,
                                         200)
                st = td.stats(td.port())
                self.assertEqual(st["requests"], 4)  # 3 good ones and the /stats itself


class Balancing(unittest.TestCase):
    def test_round_robin_weighted_smooth(self):
        with backends.Testd([(0, "a"), (0, "b")]) as td:
            pools = {"p": {"balance": "round_robin",
                           "instances": [{"addr": td.addr(0), "weight": 3},
                                         {"addr": td.addr(1), "weight": 1}]}}
            with gateway.Gateway(proxytest.config(pools=pools, workers=1)) as gw:
                seq = []
                with proxytest.client(gw) as c:
                    for _ in range(400):
                        resp = c.request(build("GET", "/"))
                        self.assertEqual(resp.status, 200)
                        seq.append(instance(resp))
        self.assertEqual(collections.Counter(seq), {"a": 300, "b": 100})
        # smooth: every period of 4 has exactly one "b", never "aaaa"
        for i in range(0, 400, 4):
            self.assertEqual(seq[i:i + 4].count("b"), 1, seq[i:i + 4])
        self.assertNotIn("aaaa", "".join(seq))

    def test_round_robin_equal_weights_alternate(self):
        with backends.Testd([(0, "a"), (0, "b"), (0, "c")]) as td:
            cfg = proxytest.config([td.addr(0), td.addr(1), td.addr(2)], workers=1)
            with gateway.Gateway(cfg) as gw:
                seq = []
                for _ in range(30):     # a new client connection each time
                    resp = proxytest.once(gw, build("GET", "/"))
                    self.assertEqual(resp.status, 200)
                    seq.append(instance(resp))
        self.assertEqual(collections.Counter(seq), {"a": 10, "b": 10, "c": 10})
        for i in range(0, 30, 3):
            self.assertEqual(sorted(seq[i:i + 3]), ["a", "b", "c"])

    def test_least_conn_prefers_the_fast_instance(self):
        def slow(req):
            time.sleep(0.2)
            return b"HTTP/1.1 200 OK\r\nX-Instance: slow\r\nContent-Length: 5\r\n\r\nslow\n"

        counts = collections.Counter()
        lock = threading.Lock()
        with backends.Testd([(0, "fast")]) as td, backends.RawBackend(slow) as rb:
            pools = {"p": {"balance": "least_conn",
                           "instances": [{"addr": td.addr(0)}, {"addr": rb.addr}]}}
            with gateway.Gateway(proxytest.config(pools=pools, workers=1)) as gw:
                deadline = time.monotonic() + 1.5

                def loop():
                    with proxytest.client(gw) as c:
                        while time.monotonic() < deadline:
                            resp = c.request(build("GET", "/"))
                            with lock:
                                counts[instance(resp) if resp.status == 200 else resp.status] += 1

                threads = [threading.Thread(target=loop) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(10)
        self.assertEqual(set(counts) - {"fast", "slow"}, set(), counts)
        self.assertGreater(counts["fast"], 50, counts)
        self.assertGreater(counts["fast"], 5 * counts["slow"], counts)

    def test_ip_hash_same_client_same_instance(self):
        with backends.Testd([(0, "a"), (0, "b"), (0, "c")]) as td:
            pools = {"p": {"balance": "ip_hash",
                           "instances": [{"addr": td.addr(i)} for i in range(3)]}}
            cfg = proxytest.config(pools=pools, workers=2, trusted_proxies=["127.0.0.1/32"])
            with gateway.Gateway(cfg) as gw:
                seen = set()
                for _ in range(20):
                    resp = proxytest.once(gw, build("GET", "/"))
                    self.assertEqual(resp.status, 200)
                    seen.add(instance(resp))
                self.assertEqual(len(seen), 1, seen)
                # behind a trusted proxy the client is the X-Forwarded-For address
                by_ip = collections.defaultdict(set)
                for rnd in range(3):
                    for i in range(1, 25):
                        ip = "10.0.%d.%d" % (i, i * 7 % 250)
                        raw = build("GET", "/", headers=[("X-Forwarded-For", ip)])
                        resp = proxytest.once(gw, raw)
                        self.assertEqual(resp.status, 200)
                        by_ip[ip].add(instance(resp))
                for ip, names in by_ip.items():
                    self.assertEqual(len(names), 1, (ip, names))
                used = set().union(*by_ip.values())
                self.assertGreaterEqual(len(used), 2, "24 clients all hashed to %s" % used)


class KeepAlive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "ka")]).start()
        cls.addClassCleanup(cls.td.stop)
        cls.gw = gateway.Gateway(proxytest.config([cls.td.addr()], workers=2)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def upstream_connections(self):
        return self.td.stats(self.td.port())["connections"]

    def test_sequential_requests_reuse_both_sides(self):
        before = self.upstream_connections()
        with proxytest.client(self.gw) as c:
            for i in range(200):
                resp = c.request(build("GET", "/echo?i=%d" % i))
                self.assertEqual(resp.status, 200)
                self.assertEqual(proxytest.echo(resp)["target"], "/echo?i=%d" % i)
            self.assertFalse(c.closed(0.05))
        made = self.upstream_connections() - before - 1     # minus our /stats
        self.assertGreaterEqual(made, 0)
        self.assertLessEqual(made, 3, "200 requests opened %d upstream connections" % made)

    def test_reuse_across_client_connections(self):
        before = self.upstream_connections()
        for i in range(50):
            self.assertEqual(proxytest.once(self.gw, build("GET", "/")).status, 200)
        made = self.upstream_connections() - before - 1
        self.assertLessEqual(made, 6, "50 client connections opened %d upstream ones" % made)

    def test_pipelined_in_order(self):
        reqs = [build("GET", "/delay/100?n=0")]
        reqs += [build("GET", "/echo?n=%d" % i) for i in range(1, 5)]
        reqs += [build("POST", "/echo?n=%d" % i, body=b"x" * (i * 100)) for i in range(5, 8)]
        reqs += [build("POST", "/echo?n=8", headers=[("Transfer-Encoding", "chunked")],
                       body=httpc.chunked(b"y" * 3000, 1000))]
        reqs += [build("GET", "/status/404?n=9"), build("GET", "/echo?n=10")]
        with proxytest.client(self.gw) as c:
            c.send(b"".join(reqs))
            resps = [c.read_response() for _ in reqs]
            self.assertFalse(c.closed(0.05))
        self.assertEqual(resps[0].status, 200)
        self.assertEqual(resps[0].body, b"ka\n")
        for i in range(1, 9):
            seen = proxytest.echo(resps[i])
            self.assertEqual(seen["target"], "/echo?n=%d" % i)
            want = {5: 500, 6: 600, 7: 700, 8: 3000}.get(i, 0)
            self.assertEqual(seen["body_bytes"], want, i)
        self.assertEqual(resps[9].status, 404)
        self.assertEqual(proxytest.echo(resps[10])["target"], "/echo?n=10")
        ids = [r.header("X-Request-ID") for r in resps]
        self.assertEqual(len(set(ids)), len(ids))

    def test_pipelined_byte_by_byte_split(self):
        raw = build("GET", "/echo?a") + build("GET", "/echo?b") + build("GET", "/echo?c")
        with proxytest.client(self.gw) as c:
            for i in range(0, len(raw), 7):
                c.send(raw[i:i + 7])
                time.sleep(0.001)
            targets = [proxytest.echo(c.read_response())["target"] for _ in range(3)]
        self.assertEqual(targets, ["/echo?a", "/echo?b", "/echo?c"])

    def test_client_connection_close(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", "/", headers=[("Connection", "close")]))
            self.assertEqual(resp.status, 200)
            self.assertEqual((resp.header("Connection") or "").lower(), "close")
            self.assertTrue(c.closed(2.0))

    def test_connection_close_ends_the_pipeline(self):
        with backends.RawBackend() as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    c.send(build("GET", "/one", headers=[("Connection", "close")]) +
                           build("GET", "/two"))
                    self.assertEqual(c.read_response().status, 200)
                    self.assertIsNone(c.read_response())
                time.sleep(0.1)
                self.assertEqual([r.target for r in rb.requests], ["/one"])

    def test_http10_closes_by_default(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", "/echo", version="HTTP/1.0"))
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.version, "HTTP/1.1")
            seen = proxytest.echo(resp)
            self.assertEqual(seen["version"], "HTTP/1.1")  # upstream speaks 1.1
            self.assertTrue(c.closed(2.0))

    def test_http10_without_host(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(b"GET /echo HTTP/1.0\r\n\r\n")
            self.assertEqual(resp.status, 200)
            self.assertEqual(len(proxytest.echo_header(proxytest.echo(resp), "Host")), 1)

    def test_http10_keep_alive(self):
        with proxytest.client(self.gw) as c:
            for i in range(3):
                resp = c.request(build("GET", "/echo?k=%d" % i, version="HTTP/1.0",
                                       headers=[("Connection", "keep-alive")]))
                self.assertEqual(resp.status, 200)
                self.assertEqual((resp.header("Connection") or "").lower(), "keep-alive")
                self.assertIsNotNone(resp.header("Content-Length"))
                self.assertEqual(proxytest.echo(resp)["target"], "/echo?k=%d" % i)
            self.assertFalse(c.closed(0.1))

    def test_http10_gets_chunked_response_dechunked(self):
        for extra in ([], [("Connection", "keep-alive")]):
            with self.subTest(headers=extra), proxytest.client(self.gw) as c:
                resp = c.request(build("GET", "/bytes/100000?chunked=1", version="HTTP/1.0",
                                       headers=extra))
                self.assertEqual(resp.status, 200)
                self.assertIsNone(resp.header("Transfer-Encoding"))
                self.assertEqual(resp.body, backends.pattern_bytes(100000))
                self.assertTrue(resp.close_delimited or c.closed(2.0))

    def test_http11_gets_chunked_response_as_is(self):
        with proxytest.client(self.gw) as c:
            for _ in range(2):      # and the connection is reusable after it
                c.send(build("GET", "/bytes/70000?chunked=1"))
                resp = c.read_response()
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.header("Transfer-Encoding"), "chunked")
                self.assertEqual(resp.body, backends.pattern_bytes(70000))
            self.assertFalse(c.closed(0.05))

    def test_request_ids_are_unique_hex(self):
        ids = set()
        with proxytest.client(self.gw) as c:
            for _ in range(50):
                rid = c.request(build("GET", "/")).header("X-Request-ID")
                self.assertTrue(re.match(r"^[0-9a-f]{32}$", rid or ""), rid)
                ids.add(rid)
        self.assertEqual(len(ids), 50)


if __name__ == "__main__":
    unittest.main()
