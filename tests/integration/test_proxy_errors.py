# SPDX-License-Identifier: BSD-2-Clause
"""The proxy path when the app fails: refused connections, retries,
timeouts, resets, garbage, bodies cut short; a dead backend must not
hurt other routes, and failures must not leak file descriptors.
"""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402


def dead_addr():
    """An address where nothing listens (a port that was free a moment ago)."""
    return "127.0.0.1:%d" % ports.free_port()


class Failures(unittest.TestCase):
    """One gateway, a pool per failure mode, a route per pool."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "live")]).start()
        cls.addClassCleanup(cls.td.stop)
        live = cls.td.addr()
        pools = {
            "live": {"instances": [{"addr": live}], "retries": 0},
            "dead": {"instances": [{"addr": dead_addr()}]},
            "slow": {"instances": [{"addr": live}], "read_timeout_ms": 300, "retries": 0},
        }
        services = {n: {"blue": n, "green": n} for n in pools}
        routes = [{"host": "*", "path": "/", "service": "live"},
                  {"host": "dead.test", "path": "/", "service": "dead"},
                  {"host": "slow.test", "path": "/", "service": "slow"}]
        cfg = proxytest.config(workers=2, pools=pools, services=services, routes=routes)
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def assert_error_json(self, resp, status):
        self.assertEqual(resp.status, status, resp.body[:300])
        self.assertIn("application/json", resp.header("Content-Type", ""))
        body = json.loads(resp.body)
        self.assertEqual(body["status"], status)
        rid = resp.header("X-Request-ID")
        self.assertRegex(rid or "", r"^[0-9a-f]{32}$")
        self.assertEqual(body["request_id"], rid)
        self.assertIsInstance(body["reason"], str)
        return body

    def test_refused_connection_is_502_json(self):
        for method in ("GET", "POST", "HEAD", "DELETE"):
            with self.subTest(method=method), proxytest.client(self.gw) as c:
                resp = c.request(build(method, "/x", host="dead.test",
                                       body=b"abc" if method == "POST" else None))
                if method == "HEAD":
                    self.assertEqual(resp.status, 502)
                    self.assertEqual(resp.body, b"")
                else:
                    self.assert_error_json(resp, 502)
                if (resp.header("Connection") or "").lower() == "close":
                    self.assertEqual(method, "POST")  # only a body left unread may close
                    self.assertTrue(c.closed(2.0))
                else:
                    self.assertEqual(c.request(build("GET", "/")).status, 200)
        rid = resp.header("X-Request-ID")
        lines = proxytest.wait_until(lambda: [l for l in self.gw.access_log_lines()
                                              if l["request_id"] == rid])
        self.assertTrue(lines)
        self.assertEqual(lines[0]["status"], 502)
        self.assertEqual(lines[0]["service"], "dead")

    def test_hang_times_out_with_504(self):
        with proxytest.client(self.gw) as c:
            t0 = time.monotonic()
            resp = c.request(build("GET", "/hang", host="slow.test"))
            took = time.monotonic() - t0
            self.assert_error_json(resp, 504)
            self.assertGreaterEqual(took, 0.25)
            self.assertLess(took, 1.5)
            self.assertEqual(c.request(build("GET", "/")).status, 200)

    def test_slow_but_in_time_is_fine(self):
        status, _, body, _ = proxytest.send(self.gw, build("GET", "/delay/100", host="slow.test"))
        self.assertEqual((status, body), (200, b"live\n"))

    def test_reset_and_garbage_are_502(self):
        with proxytest.client(self.gw) as c:
            for path in ("/reset", "/garbage", "/reset", "/garbage"):
                with self.subTest(path=path):
                    self.assert_error_json(c.request(build("GET", path)), 502)
            self.assertEqual(c.request(build("GET", "/")).status, 200)

    def test_app_errors_are_relayed_not_replaced(self):
        with proxytest.client(self.gw) as c:
            for code in (500, 502, 503, 504):
                resp = c.request(build("GET", "/status/%d" % code))
                self.assertEqual((resp.status, resp.body), (code, b"status %d\n" % code))
                self.assertEqual(resp.header("X-Instance"), "live")

    def test_dead_backend_does_not_affect_other_routes(self):
        with proxytest.client(self.gw) as good, proxytest.client(self.gw) as bad:
            t0 = time.monotonic()
            for _ in range(50):
                self.assertEqual(bad.request(build("GET", "/", host="dead.test")).status, 502)
                self.assertEqual(good.request(build("GET", "/")).body, b"live\n")
            self.assertLess(time.monotonic() - t0, 10)
        # a hanging request on one route leaves the others answering at once
        with proxytest.client(self.gw) as hung, proxytest.client(self.gw) as good:
            hung.send(build("GET", "/hang", host="slow.test"))
            t0 = time.monotonic()
            for _ in range(20):
                self.assertEqual(good.request(build("GET", "/")).status, 200)
            self.assertLess(time.monotonic() - t0, 0.25 * 20)
            self.assertEqual(hung.read_response().status, 504)

    def test_no_fd_leak_after_failures(self):
        pid = self.gw.pid
        proxytest.once(self.gw, build("GET", "/"))
        base = proxytest.fd_count(pid)
        kinds = [("dead.test", "/"), ("localhost", "/reset"), ("localhost", "/garbage"),
                 ("slow.test", "/reset")]
        with proxytest.client(self.gw) as c:
            for i in range(400):
                host, path = kinds[i % len(kinds)]
                self.assertEqual(c.request(build("GET", path, host=host)).status, 502)
        for i in range(100):    # and on connections of their own
            host, path = kinds[i % len(kinds)]
            self.assertEqual(proxytest.once(self.gw, build("GET", path, host=host)).status, 502)
        after = proxytest.wait_until(lambda: proxytest.fd_count(pid) <= base + 2, timeout=3)
        self.assertTrue(after, "fds: %d before, %d after 500 failures"
                        % (base, proxytest.fd_count(pid)))


class Retries(unittest.TestCase):
    def test_dead_instance_retried_on_live_one(self):
        with backends.Testd([(0, "live")]) as td:
            pools = {"p": {"instances": [{"addr": dead_addr()}, {"addr": td.addr()}],
                           "retries": 1}}
            with gateway.Gateway(proxytest.config(pools=pools, workers=2)) as gw:
                with proxytest.client(gw) as c:
                    for i in range(50):
                        body = b"p%d" % i
                        resp = c.request(build("POST" if i % 2 else "GET", "/echo", body=body))
                        self.assertEqual(resp.status, 200, resp.body)
                        self.assertEqual(proxytest.echo(resp)["body_bytes"], len(body))
                for _ in range(20):
                    self.assertEqual(proxytest.once(gw, build("GET", "/")).status, 200)

    def test_without_retries_the_dead_instance_fails(self):
        with backends.Testd([(0, "live")]) as td:
            pools = {"p": {"instances": [{"addr": dead_addr()}, {"addr": td.addr()}],
                           "retries": 0}}
            with gateway.Gateway(proxytest.config(pools=pools, workers=1)) as gw:
                statuses = [proxytest.once(gw, build("GET", "/")).status for _ in range(6)]
        self.assertIn(502, statuses)
        self.assertIn(200, statuses)

    def test_no_response_retried_only_when_idempotent(self):
        def closes(req):
            return None     # close without a byte of response

        with backends.Testd([(0, "live")]) as td, backends.RawBackend(closes) as rb:
            pools = {"p": {"instances": [{"addr": rb.addr}, {"addr": td.addr()}],
                           "retries": 1}}
            with gateway.Gateway(proxytest.config(pools=pools, workers=1)) as gw:
                for i in range(6):
                    resp = proxytest.once(gw, build("GET", "/echo?%d" % i))
                    self.assertEqual(resp.status, 200)
                gets = len(rb.requests)
                self.assertGreater(gets, 0)
                posts = [proxytest.once(gw, build("POST", "/echo", body=b"once")).status
                         for _ in range(6)]
                self.assertIn(502, posts)
                self.assertIn(200, posts)
                # a POST that reached the app is never sent twice
                seen = rb.requests[gets:]
                self.assertEqual(len(seen), posts.count(502))


class Truncated(unittest.TestCase):
    """The app dies inside the response body: the client must see the cut."""

    def run_app(self, response, request_path="/"):
        def handler(req):
            req.conn.send(response)
            return None

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    c.send(build("GET", request_path))
                    with self.assertRaises(httpc.ProtocolError):
                        c.read_response()
                    self.assertTrue(c.closed(2.0))
                # the gateway goes on serving
                with proxytest.client(gw) as c:
                    c.send(build("GET", "/"))
                    with self.assertRaises(httpc.ProtocolError):
                        c.read_response()
                self.assertTrue(gw.running())

    def test_content_length_body_cut(self):
        self.run_app(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 30000)

    def test_chunked_body_cut(self):
        self.run_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"1000\r\n" + b"y" * 4096 + b"\r\n10\r\nshort")

    def test_cut_inside_the_head_is_502(self):
        def handler(req):
            req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")
            return None

        with backends.RawBackend(handler) as rb:
            pools = {"p": {"instances": [{"addr": rb.addr}], "retries": 0}}
            with gateway.Gateway(proxytest.config(pools=pools)) as gw:
                resp = proxytest.once(gw, build("GET", "/"))
                self.assertEqual(resp.status, 502)

    def test_ambiguous_response_framing_is_502(self):
        bad = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
               b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
               b"NOT HTTP AT ALL\r\n\r\n"]
        for raw in bad:
            with self.subTest(raw=raw[:60]):
                with backends.RawBackend(lambda req, raw=raw: raw) as rb:
                    pools = {"p": {"instances": [{"addr": rb.addr}], "retries": 0}}
                    with gateway.Gateway(proxytest.config(pools=pools)) as gw:
                        resp = proxytest.once(gw, build("GET", "/"))
                        self.assertEqual(resp.status, 502, resp)


class ReusedConnection(unittest.TestCase):
    """A keep-alive connection taken from the idle pool must carry the
    pool's read_timeout_ms, not the idle timer it had while parked."""

    def test_long_request_on_a_reused_connection(self):
        with backends.Testd([(0, "reuse")]) as td:
            with gateway.Gateway(proxytest.config([td.addr()], workers=1)) as gw:
                with proxytest.client(gw, timeout=10) as c:
                    self.assertEqual(c.request(build("GET", "/")).status, 200)
                    t0 = time.monotonic()
                    resp = c.request(build("GET", "/delay/4500"))
                    took = time.monotonic() - t0
                self.assertEqual(resp.status, 200,
                                 "%s after %.1f s: %s" % (resp.status, took, resp.body))
                self.assertEqual(td.stats(td.port())["connections"], 2)   # reused + /stats

    def test_slow_request_body_on_a_reused_connection(self):
        with backends.Testd([(0, "reuse")]) as td:
            with gateway.Gateway(proxytest.config([td.addr()], workers=1)) as gw:
                with proxytest.client(gw, timeout=10) as c:
                    self.assertEqual(c.request(build("GET", "/")).status, 200)
                    c.send(build("POST", "/echo", headers=[("Content-Length", "10")]) + b"12345")
                    time.sleep(4.5)     # past the idle timer the connection had while parked
                    c.send(b"67890")
                    resp = c.read_response()
                self.assertEqual(resp.status, 200, resp.body)
                self.assertEqual(proxytest.echo(resp)["body_bytes"], 10)

    def test_response_slower_than_the_client_timeouts(self):
        # The head and keep-alive timers of the client connection must not
        # fire while the app is still answering.
        limits = {"client_header_timeout_ms": 500, "keepalive_timeout_ms": 500}
        with backends.Testd([(0, "slow")]) as td:
            with gateway.Gateway(proxytest.config([td.addr()], workers=1, limits=limits)) as gw:
                with proxytest.client(gw, timeout=10) as c:
                    for path in ("/delay/1200", "/delay/1200"):
                        resp = c.request(build("GET", path))
                        self.assertEqual(resp.status, 200, resp.body)

    def test_client_gone_mid_response_then_serving(self):
        with backends.Testd([(0, "gone")]) as td:
            with gateway.Gateway(proxytest.config([td.addr()], workers=1)) as gw:
                for _ in range(5):
                    s = proxytest.connect(gw)
                    s.sendall(build("GET", "/bytes/50000000"))
                    s.recv(1000)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    s.close()
                resp = proxytest.once(gw, build("GET", "/bytes/1000"))
                self.assertEqual(resp.body, backends.pattern_bytes(1000))
                self.assertTrue(gw.running())


if __name__ == "__main__":
    unittest.main()
