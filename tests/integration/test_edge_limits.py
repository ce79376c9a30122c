# SPDX-License-Identifier: BSD-2-Clause
"""Edge hardening, limits (SPEC.md `limits`): 431 for a head over
max_header_bytes or max_headers, 414 over max_uri_bytes, 413 over
max_body_bytes, 408 for a slow head (slowloris) or a stalled body, the idle
keep-alive timeout, 501 for an unknown transfer coding, max_connections and
max_connections_per_ip. Each limit is tested at its boundary where it has
one, and every rejection must close the connection without troubling the app.
"""
import concurrent.futures
import os
import select
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, loadgen, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

CLOSE_WAIT_S = 3.0


def backend_bytes(rb):
    return sum(len(d) for d in rb.received())


def head_of_size(size):
    """A GET head of exactly size bytes (request line to blank line)."""
    base = build("GET", "/", headers=[("X-Pad", "")])
    return build("GET", "/", headers=[("X-Pad", "p" * (size - len(base)))])


class RejectingCase(unittest.TestCase):
    """A gateway with cls.limits in front of one RawBackend."""

    limits = {}

    @classmethod
    def setUpClass(cls):
        cls.rb = backends.RawBackend()
        cls.addClassCleanup(cls.rb.stop)
        cls.gw = gateway.Gateway(proxytest.config([cls.rb.addr], limits=cls.limits)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def assert_served(self, raw):
        before = len(self.rb.requests)
        resp = proxytest.once(self.gw, raw)
        self.assertEqual(resp.status, 200, resp.body)
        return self.rb.wait_requests(before + 1)[before]

    def assert_rejected(self, raw, status):
        """status with Connection: close, then the close; nothing to the app;
        a bad_request event in the security log."""
        nbytes = backend_bytes(self.rb)
        events = len(self.gw.log_lines("security", timeout=0))
        with proxytest.client(self.gw) as c:
            try:
                c.send(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass    # answered and closed before all was sent
            resp = c.read_response()
            self.assertIsNotNone(resp, "closed without a response")
            self.assertEqual(resp.status, status, resp.body)
            self.assertIn("close", (resp.header("Connection") or "").lower())
            self.assertTrue(c.closed(CLOSE_WAIT_S), "the connection was kept open")
        self.assertEqual(backend_bytes(self.rb), nbytes, "the app received bytes")
        lines = self.gw.log_lines("security", min_lines=events + 1)[events:]
        self.assertEqual([(l["event"], l["status"]) for l in lines], [("bad_request", status)])
        self.assertTrue(lines[0].get("reason"), lines[0])
        return resp


class HeadLimits(RejectingCase):
    limits = {"max_header_bytes": 4096, "max_headers": 10, "max_uri_bytes": 1024}

    def test_head_at_the_limit_is_served(self):
        raw = head_of_size(4096)
        req = self.assert_served(raw)
        self.assertEqual(len(req.header("X-Pad")), raw.count(b"p"))

    def test_head_over_max_header_bytes_is_431(self):
        for size in (4097, 5000, 12000, 70000):
            with self.subTest(size=size):
                self.assert_rejected(head_of_size(size), 431)

    def test_head_over_the_limit_without_its_end_is_431(self):
        """A head that never ends is cut at the limit, not read forever."""
        raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + b"a" * 6000
        self.assert_rejected(raw, 431)

    def test_max_headers_boundary(self):
        fields = [("X-%d" % i, "v") for i in range(9)]      # + Host: 10 fields
        self.assert_served(build("GET", "/", headers=fields))
        self.assert_rejected(build("GET", "/", headers=fields + [("X-9", "v")]), 431)
        self.assert_rejected(build("GET", "/", headers=[("X-%d" % i, "v") for i in range(60)]),
                             431)

    def test_max_uri_bytes_boundary(self):
        at_limit = "/" + "u" * 1023
        req = self.assert_served(build("GET", at_limit))
        self.assertEqual(req.target, at_limit)
        self.assert_rejected(build("GET", at_limit + "u"), 414)
        self.assert_rejected(build("GET", "/" + "u" * 3000), 414)

    def test_long_query_counts_toward_the_target(self):
        self.assert_rejected(build("GET", "/?" + "q=1&" * 300), 414)

    def test_gzip_chunked_is_501(self):
        raw = build("POST", "/", headers=[("Transfer-Encoding", "gzip, chunked")],
                    body=httpc.chunked(b"\x1f\x8b not really gzip"))
        self.assert_rejected(raw, 501)


class LimitConfiguration(unittest.TestCase):
    def check(self, limits):
        """(exit code, output) of `switchyard -t` on a config with limits."""
        rc, out, path = gateway.check_config(proxytest.config(["127.0.0.1:9"], limits=limits))
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        return rc, out

    def test_max_header_bytes_below_the_default_uri_limit(self):
        """Lowering max_header_bytes alone is valid: the default
        max_uri_bytes (8192) must not then be refused as too large."""
        rc, out = self.check({"max_header_bytes": 4096})
        self.assertEqual(rc, 0, out)

    def test_max_uri_bytes_over_max_header_bytes_refused(self):
        rc, out = self.check({"max_header_bytes": 4096, "max_uri_bytes": 5000})
        self.assertNotEqual(rc, 0)
        self.assertIn("limits.max_uri_bytes", out)


class DefaultUriLimit(RejectingCase):
    def test_default_max_uri_bytes_is_8192(self):
        at_limit = "/" + "d" * 8191
        self.assertEqual(self.assert_served(build("GET", at_limit)).target, at_limit)
        self.assert_rejected(build("GET", at_limit + "d"), 414)


class BodyLimits(RejectingCase):
    limits = {"max_body_bytes": 1000}

    def test_content_length_at_the_limit_is_served(self):
        req = self.assert_served(build("POST", "/", body=b"b" * 1000))
        self.assertEqual(req.body, b"b" * 1000)

    def test_content_length_over_the_limit_is_413_without_the_app(self):
        """Answered from the head alone: the client need not send the body."""
        nconns = len(self.rb.conns)
        started = time.monotonic()
        with proxytest.client(self.gw) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 413)
            self.assertLess(time.monotonic() - started, 2.0)
            self.assertTrue(c.closed(CLOSE_WAIT_S))
        self.assertEqual(len(self.rb.conns), nconns, "the app was contacted")

    def test_huge_content_length_is_413(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 9000000000\r\n\r\n")
            self.assertEqual(resp.status, 413)
            self.assertTrue(c.closed(CLOSE_WAIT_S))

    def test_expect_100_continue_over_the_limit_gets_413_not_100(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                             b"Content-Length: 5000\r\n\r\n")
            self.assertEqual(resp.status, 413)
            self.assertEqual(resp.interim, [])
            self.assertTrue(c.closed(CLOSE_WAIT_S))

    def test_limit_is_per_request_not_per_connection(self):
        chunked = [("Transfer-Encoding", "chunked")]
        with proxytest.client(self.gw) as c:
            for hdrs, body in (([], b"a" * 900), (chunked, httpc.chunked(b"b" * 900, 100)),
                               ([], b"c" * 900)):
                resp = c.request(build("POST", "/", headers=hdrs, body=body))
                self.assertEqual(resp.status, 200)

    def test_chunked_body_at_the_limit_is_served(self):
        req = self.assert_served(build("POST", "/", headers=[("Transfer-Encoding", "chunked")],
                                       body=httpc.chunked(b"c" * 1000, 300)))
        self.assertEqual(req.body, b"c" * 1000)

    def test_chunked_body_growing_past_the_limit_is_413(self):
        requests = len(self.rb.requests)
        with proxytest.client(self.gw) as c:
            c.send(b"POST /grow HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(4):
                    c.send(b"190\r\n" + b"g" * 400 + b"\r\n")
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = c.read_response()
            self.assertEqual(resp.status, 413)
            self.assertTrue(c.closed(CLOSE_WAIT_S))
        # the app may have seen the start of the body, never a whole request
        time.sleep(0.2)
        self.assertEqual(len(self.rb.requests), requests)
        self.assertTrue(all(c.closed for c in self.rb.conns if b"/grow" in c.data))
        self.assertLessEqual(sum(c.data.count(b"g") for c in self.rb.conns), 1000)


def trickle(host, port, raw, interval, limit_s):
    """Sends raw one byte every interval seconds until the peer answers or
    closes; returns (seconds until then, Response or None, closed)."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=limit_s) as s:
        for i in range(len(raw)):
            if select.select([s], [], [], interval)[0]:
                break
            if time.monotonic() - started > limit_s:
                return time.monotonic() - started, None, False
            try:
                s.sendall(raw[i:i + 1])
            except OSError:
                break
        elapsed = time.monotonic() - started
        reader = httpc._Reader(s)
        try:
            resp = httpc._read_response(reader)
        except (OSError, httpc.ProtocolError):
            resp = None
        return elapsed, resp, httpc._peer_closed(s, reader, CLOSE_WAIT_S)


class Timeouts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, workers=2, **limits):
        gw = gateway.Gateway(proxytest.config([self.td.addr()], workers=workers, limits=limits))
        self.addCleanup(gw.__exit__, None, None, None)
        return gw.start()

    def test_slowloris_gets_408_and_others_are_unaffected(self):
        gw = self.gateway(client_header_timeout_ms=1000)
        host, port = gw.host_port()
        raw = build("GET", "/", headers=[("X-Slow", "s" * 60)])
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            with loadgen.Load(host, port, threads=20) as load:
                slow = [pool.submit(trickle, host, port, raw, 0.1, 8.0) for _ in range(5)]
                outcomes = [f.result() for f in slow]
                time.sleep(0.3)
            result = load.result
        for elapsed, resp, closed in outcomes:
            self.assertIsNotNone(resp, "no answer to the slow head after %.1f s" % elapsed)
            self.assertEqual(resp.status, 408)
            self.assertTrue(closed)
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 3.0)
        self.assertFalse(result.failures, result.describe())
        latencies = sorted(o.end - o.start for o in result.outcomes)
        self.assertGreater(len(latencies), 100, result.describe())
        p99 = latencies[int(len(latencies) * 0.99)]
        self.assertLess(p99, 0.5, "p99 %.3f s over %d requests" % (p99, len(latencies)))

    def test_slowloris_on_a_kept_alive_connection(self):
        """The head timeout runs again for the second request of a
        connection; the longer keep-alive timeout does not replace it."""
        gw = self.gateway(client_header_timeout_ms=1000, keepalive_timeout_ms=20000)
        with proxytest.client(gw) as c:
            self.assertEqual(c.request(build("GET", "/")).status, 200)
            started = time.monotonic()
            for byte in build("GET", "/", headers=[("X-Slow", "s" * 60)]):
                if select.select([c.sock], [], [], 0.1)[0] or time.monotonic() - started > 6:
                    break
                c.send(bytes([byte]))
            resp = c.read_response()
            self.assertIsNotNone(resp, "closed without an answer")
            self.assertEqual(resp.status, 408)
            self.assertLess(time.monotonic() - started, 3.0)
            self.assertTrue(c.closed(CLOSE_WAIT_S))

    def test_silent_connection_closed_after_the_header_timeout(self):
        gw = self.gateway(client_header_timeout_ms=500, keepalive_timeout_ms=60000)
        started = time.monotonic()
        with proxytest.client(gw) as c:
            self.assertTrue(c.closed(CLOSE_WAIT_S + 2), "an idle new connection stayed open")
            self.assertLess(time.monotonic() - started, 4.0)

    def test_stalled_body_gets_408(self):
        gw = self.gateway(client_body_timeout_ms=1000)
        with proxytest.client(gw) as c:
            started = time.monotonic()
            c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            resp = c.read_response()
            elapsed = time.monotonic() - started
            self.assertIsNotNone(resp, "closed without an answer")
            self.assertEqual(resp.status, 408)
            self.assertGreater(elapsed, 0.8)
            self.assertLess(elapsed, 4.0)
            self.assertTrue(c.closed(CLOSE_WAIT_S))

    def test_slow_but_steady_body_is_not_cut(self):
        """client_body_timeout_ms bounds a stall, not the whole upload."""
        gw = self.gateway(client_body_timeout_ms=600)
        with proxytest.client(gw) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n")
            for i in range(8):
                time.sleep(0.2)
                c.send(b"%d" % i)
            resp = c.read_response()
            self.assertEqual(resp.status, 200)
            self.assertEqual(proxytest.echo(resp)["body_bytes"], 8)

    def test_idle_keepalive_connection_closed(self):
        gw = self.gateway(keepalive_timeout_ms=600)
        with proxytest.client(gw) as c:
            self.assertEqual(c.request(build("GET", "/")).status, 200)
            started = time.monotonic()
            self.assertFalse(c.closed(0.2), "closed before the keep-alive timeout")
            self.assertTrue(c.closed(CLOSE_WAIT_S), "an idle keep-alive connection stayed open")
            self.assertGreater(time.monotonic() - started, 0.4)

    def test_keepalive_timeout_restarts_with_each_request(self):
        gw = self.gateway(keepalive_timeout_ms=800)
        with proxytest.client(gw) as c:
            for _ in range(4):
                self.assertEqual(c.request(build("GET", "/")).status, 200)
                time.sleep(0.4)
            self.assertEqual(c.request(build("GET", "/")).status, 200)


def outcome(host, port, source=None, timeout=2.0):
    """One request on a new connection, from source (an address to bind):
    "served" (200), "refused" (refused, reset, closed or an error status)
    or "hung" (nothing within timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        s.sendall(build("GET", "/"))
        resp = httpc._read_response(httpc._Reader(s))
    except socket.timeout:
        return "hung"
    except (ConnectionError, httpc.ProtocolError):
        return "refused"
    finally:
        s.close()
    return "served" if resp is not None and resp.status == 200 else "refused"


class Admission(unittest.TestCase):
    """max_connections and max_connections_per_ip: the gateway stays up,
    serves what it admitted, and refuses the rest at once, not by hanging."""

    def setUp(self):
        self.td = backends.Testd([0]).start()
        self.addCleanup(self.td.stop)
        self.held = []
        self.addCleanup(self.close_held)

    def close_held(self):
        for c in self.held:
            c.close()
        self.held = []

    def gateway(self, **limits):
        gw = gateway.Gateway(proxytest.config([self.td.addr()], workers=1, limits=limits))
        self.addCleanup(gw.__exit__, None, None, None)
        return gw.start()

    def hold(self, gw, n):
        """n connections, each having served one request, kept open. A
        refusal is retried for a while: a connection just closed (the
        start-up probe, an earlier one) counts until the gateway reads its
        end."""
        host, port = gw.host_port()
        deadline = time.monotonic() + 5.0
        while len(self.held) < n:
            c = httpc.Client(host, port, timeout=5.0)
            try:
                resp = c.request(build("GET", "/"))
            except ConnectionError:
                resp = None
            if resp is not None and resp.status == 200:
                self.held.append(c)
                continue
            c.close()
            self.assertLess(time.monotonic(), deadline, "could not open %d connections" % n)
            time.sleep(0.05)

    def outcomes(self, gw, n):
        """outcome() of n new connections at once."""
        host, port = gw.host_port()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: outcome(host, port), range(n)))

    def served_again(self, gw):
        host, port = gw.host_port()
        return proxytest.wait_until(lambda: outcome(host, port) == "served", 5.0, 0.1)

    def test_max_connections(self):
        # At the limit the gateway stops accepting (as nginx and HAProxy do):
        # new connections wait in the kernel's backlog, are not served while
        # the limit holds, and are served as soon as connections close.
        gw = self.gateway(max_connections=20)
        self.hold(gw, 20)
        host, port = gw.host_port()
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            waiting = [pool.submit(outcome, host, port, None, 15.0) for _ in range(10)]
            time.sleep(1.0)
            self.assertFalse(any(f.done() for f in waiting),
                             [f.result() for f in waiting if f.done()])
            self.assertTrue(gw.running())
            for c in self.held:         # the admitted ones still work
                self.assertEqual(c.request(build("GET", "/")).status, 200)
            self.close_held()
            extra = [f.result() for f in waiting]
        self.assertEqual(extra, ["served"] * 10)
        self.assertTrue(self.served_again(gw), "not serving after the connections closed")

    def test_max_connections_per_ip(self):
        gw = self.gateway(max_connections_per_ip=5)
        self.hold(gw, 5)
        extra = self.outcomes(gw, 5)
        self.assertEqual(extra, ["refused"] * 5)
        self.assertEqual(outcome(*gw.host_port(), source="127.0.0.2"), "served")
        for c in self.held:
            self.assertEqual(c.request(build("GET", "/")).status, 200)
        self.close_held()
        self.assertTrue(self.served_again(gw), "not serving 127.0.0.1 after its connections closed")
        self.assertTrue(gw.running())

    def test_per_ip_refusal_answers_429_when_it_can(self):
        gw = self.gateway(max_connections_per_ip=1)
        self.hold(gw, 1)
        with proxytest.client(gw) as c:
            resp = c.read_response()        # nothing sent: the refusal can be read
            self.assertIsNotNone(resp)
            self.assertEqual(resp.status, 429)
            self.assertTrue(c.closed(CLOSE_WAIT_S))


if __name__ == "__main__":
    unittest.main()
