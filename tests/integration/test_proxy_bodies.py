# SPDX-License-Identifier: BSD-2-Clause
"""The proxy path, bodies: Content-Length and chunked uploads checked by
crc32 at the app, 1 GiB streamed each way in flat memory, chunked and
read-until-close responses, Expect: 100-continue, and the bodiless
answers (HEAD, 204, 304) that must leave the connection usable.
"""
import os
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

GIB = 1 << 30
RSS_GROWTH_LIMIT_KB = 30 * 1024


def body_of(n, seed=0):
    """n bytes that are not one repeated pattern (so a shifted copy shows)."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7fffffff
        out += x.to_bytes(4, "little")
    return bytes(out[:n])


class Bodies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "bodies")]).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config([cls.td.addr()], workers=2,
                               limits={"max_body_bytes": 2 * GIB})
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def assert_echo(self, resp, body, chunked):
        self.assertEqual(resp.status, 200, resp.body[:300])
        seen = proxytest.echo(resp)
        self.assertEqual(seen["body_bytes"], len(body))
        self.assertEqual(seen["body_crc32"], zlib.crc32(body))
        self.assertEqual(seen["body_chunked"], chunked)
        return seen

    def test_content_length_uploads(self):
        with proxytest.client(self.gw) as c:
            for n in (0, 1, 100, 16383, 16384, 16385, 100000, 3 * 1024 * 1024 + 7):
                with self.subTest(n=n):
                    body = body_of(n, n)
                    seen = self.assert_echo(c.request(build("POST", "/echo", body=body)),
                                            body, False)
                    self.assertEqual(proxytest.echo_header(seen, "Content-Length"), [str(n)])
                    self.assertEqual(proxytest.echo_header(seen, "Transfer-Encoding"), [])

    def test_content_length_upload_trickled(self):
        body = body_of(5000, 5)
        raw = build("PUT", "/echo", body=body)
        with proxytest.client(self.gw) as c:
            for i in range(0, len(raw), 997):
                c.send(raw[i:i + 997])
                time.sleep(0.002)
            self.assert_echo(c.read_response(), body, False)

    def test_chunked_uploads(self):
        with proxytest.client(self.gw) as c:
            for n, size in ((0, 10), (1, 1), (1000, 7), (100000, 4096), (2000000, 65536)):
                with self.subTest(n=n, size=size):
                    body = body_of(n, size)
                    raw = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                                body=httpc.chunked(body, size))
                    seen = self.assert_echo(c.request(raw), body, True)
                    self.assertEqual(proxytest.echo_header(seen, "Transfer-Encoding"),
                                     ["chunked"])

    def test_chunked_upload_with_extensions_and_trailer(self):
        wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
        raw = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=wire)
        with proxytest.client(self.gw) as c:
            self.assert_echo(c.request(raw), b"hello world", True)
            self.assertEqual(c.request(build("GET", "/health")).body, b"ok")

    def test_chunked_upload_split_everywhere(self):
        body = body_of(3000, 9)
        raw = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                    body=httpc.chunked(body, 333))
        with proxytest.client(self.gw) as c:
            for i in range(0, len(raw), 61):
                c.send(raw[i:i + 61])
                time.sleep(0.001)
            self.assert_echo(c.read_response(), body, True)

    def test_pipelined_request_after_a_large_body(self):
        body = body_of(100000, 11)
        raw = build("POST", "/echo?first", body=body) + build("GET", "/echo?second")
        with proxytest.client(self.gw) as c:
            c.send(raw)
            first, second = c.read_response(), c.read_response()
        self.assertEqual(proxytest.echo(first)["target"], "/echo?first")
        self.assert_echo(first, body, False)
        self.assertEqual(proxytest.echo(second)["target"], "/echo?second")
        self.assertEqual(proxytest.echo(second)["body_bytes"], 0)

    def test_download_sizes(self):
        with proxytest.client(self.gw) as c:
            for n in (0, 1, 16384, 16385, 1000000):
                with self.subTest(n=n):
                    resp = c.request(build("GET", "/bytes/%d" % n))
                    self.assertEqual(resp.status, 200)
                    self.assertEqual(resp.header("Content-Length"), str(n))
                    self.assertEqual(resp.body, backends.pattern_bytes(n))

    def test_chunked_response_relayed(self):
        n = 10 * 1024 * 1024 + 3
        with proxytest.client(self.gw, timeout=10) as c:
            resp = c.request(build("GET", "/bytes/%d?chunked=1" % n))
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(resp.header("Content-Length"))
            self.assertEqual(len(resp.body), n)
            self.assertEqual(zlib.crc32(resp.body), proxytest.pattern_crc32(n))
            self.assertEqual(c.request(build("GET", "/health")).body, b"ok")  # still usable

    def test_until_close_response_relayed(self):
        n = 2 * 1024 * 1024 + 1
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", "/bytes/%d?close=1" % n))
            self.assertEqual(resp.status, 200)
            self.assertIsNone(resp.header("Content-Length"))
            self.assertIsNone(resp.header("Transfer-Encoding"))
            self.assertEqual((resp.header("Connection") or "").lower(), "close")
            self.assertTrue(resp.close_delimited)
            self.assertEqual(resp.body, backends.pattern_bytes(n))

    def test_expect_100_continue(self):
        body = body_of(50000, 3)
        head = build("POST", "/echo", headers=[("Expect", "100-continue"),
                                                ("Content-Length", str(len(body)))])
        with proxytest.client(self.gw) as c:
            c.send(head)
            interim = c.reader.until(b"\r\n\r\n")
            self.assertIsNotNone(interim, "closed instead of 100 Continue")
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim)
            c.send(body)
            resp = c.read_response()
            seen = self.assert_echo(resp, body, False)
            self.assertEqual(proxytest.echo_header(seen, "Expect"), [])
            # and the connection goes on
            self.assertEqual(c.request(build("GET", "/health")).body, b"ok")

    def test_expect_100_continue_chunked(self):
        body = body_of(20000, 4)
        head = build("PUT", "/echo", headers=[("Expect", "100-continue"),
                                               ("Transfer-Encoding", "chunked")])
        with proxytest.client(self.gw) as c:
            c.send(head)
            interim = c.reader.until(b"\r\n\r\n")
            self.assertTrue(interim and interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim)
            c.send(httpc.chunked(body, 5000))
            seen = self.assert_echo(c.read_response(), body, True)
            self.assertEqual(proxytest.echo_header(seen, "Expect"), [])

    def test_expect_with_body_already_sent(self):
        body = b"z" * 1000
        raw = build("POST", "/echo", headers=[("Expect", "100-continue")], body=body)
        with proxytest.client(self.gw) as c:
            resp = c.request(raw)
            seen = self.assert_echo(resp, body, False)
            self.assertEqual(proxytest.echo_header(seen, "Expect"), [])

    def test_head_has_no_body(self):
        with proxytest.client(self.gw) as c:
            for n in (0, 10, 100000):
                resp = c.request(build("HEAD", "/bytes/%d" % n))
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.header("Content-Length"), str(n))
                self.assertEqual(resp.body, b"")
                # no stray body bytes: the next response parses
                self.assertEqual(c.request(build("GET", "/health")).body, b"ok")
            self.assertFalse(c.closed(0.05))

    def test_204_and_304_keep_alive(self):
        with proxytest.client(self.gw) as c:
            for code in (204, 304, 204):
                resp = c.request(build("GET", "/status/%d" % code))
                self.assertEqual(resp.status, code)
                self.assertEqual(resp.body, b"")
                self.assertIsNone(resp.header("Transfer-Encoding"))
                self.assertEqual(c.request(build("GET", "/echo?after=%d" % code)).status, 200)
            self.assertFalse(c.closed(0.05))


class BodilessFraming(unittest.TestCase):
    """Responses whose headers announce a body that must not come."""

    def test_head_and_304_with_content_length_from_raw_app(self):
        def handler(req):
            if req.method == "HEAD":
                return b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
            if req.target == "/304":
                return (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n"
                        b"ETag: \"x\"\r\n\r\n")
            return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    for _ in range(2):
                        resp = c.request(build("HEAD", "/"))
                        self.assertEqual((resp.status, resp.header("Content-Length")),
                                         (200, "5000"))
                        self.assertEqual(c.request(build("GET", "/")).body, b"ok\n")
                        resp = c.request(build("GET", "/304"))
                        self.assertEqual(resp.status, 304)
                        self.assertEqual(resp.header("ETag"), '"x"')
                        t0 = time.monotonic()
                        self.assertEqual(c.request(build("GET", "/")).body, b"ok\n")
                        self.assertLess(time.monotonic() - t0, 1.0)
                # the app connection was reused all along: it framed them right too
                self.assertEqual(len(rb.received()), 1)


class AppFraming(unittest.TestCase):
    """Odd but valid things an app sends around a response."""

    def test_interim_responses_from_app_not_relayed(self):
        def handler(req):
            return (b"HTTP/1.1 100 Continue\r\n\r\n"
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    for _ in range(2):
                        resp = c.request(build("GET", "/"))
                        self.assertEqual((resp.status, resp.body), (200, b"final"))
                        self.assertEqual([s for s, _ in resp.interim if s == 100], [])

    def test_bytes_after_the_response_body_never_reach_the_client(self):
        def handler(req):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 666 EXTRA\r\n\r\n"

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    for _ in range(5):
                        resp = c.request(build("GET", "/"))
                        self.assertEqual((resp.status, resp.body), (200, b"hi"))
                    self.assertFalse(c.closed(0.1))


class Limits(unittest.TestCase):
    def test_body_over_max_body_bytes_is_413(self):
        with backends.Testd([0]) as td:
            cfg = proxytest.config([td.addr()], limits={"max_body_bytes": 1000})
            with gateway.Gateway(cfg) as gw:
                with proxytest.client(gw) as c:
                    self.assert_ok(c.request(build("POST", "/echo", body=b"a" * 1000)))
                resp = proxytest.once(gw, build("POST", "/echo", body=b"a" * 1001))
                self.assertEqual(resp.status, 413)
                raw = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                            body=httpc.chunked(b"b" * 1001, 100))
                with proxytest.client(gw) as c:
                    resp = c.request(raw)
                    self.assertEqual(resp.status, 413)
                    self.assertTrue(c.closed(2.0))
                raw = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                            body=httpc.chunked(b"b" * 1000, 100))
                self.assert_ok(proxytest.once(gw, raw))

    def assert_ok(self, resp):
        self.assertEqual(resp.status, 200, resp.body)


class Streaming(unittest.TestCase):
    """1 GiB each way; the gateway's resident memory must stay flat. One
    worker, so that each transfer reuses the app connection of the last."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "big")]).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config([cls.td.addr()], workers=1,
                               limits={"max_body_bytes": 2 * GIB})
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def assert_flat(self, sampler):
        growth = sampler.peak - sampler.first
        self.assertGreater(len(sampler.samples), 3)
        self.assertLess(growth, RSS_GROWTH_LIMIT_KB,
                        "gateway RSS grew %d KiB (from %d) during the transfer"
                        % (growth, sampler.first))

    def test_1gib_download(self):
        with proxytest.connect(self.gw, timeout=30) as s:
            with proxytest.RssSampler(self.gw.pid) as rss:
                s.sendall(build("GET", "/bytes/%d" % GIB))
                status, headers, first = proxytest.read_head(s)
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("content-length"), str(GIB))
                crc = proxytest.read_counting(s, GIB, first)
            self.assertEqual(crc, proxytest.pattern_crc32(GIB))
            self.assert_flat(rss)
            s.sendall(build("GET", "/health"))
            status, headers, rest = proxytest.read_head(s)
            self.assertEqual(status, 200)

    def test_1gib_upload(self):
        with proxytest.client(self.gw, timeout=30) as c:
            with proxytest.RssSampler(self.gw.pid) as rss:
                c.send(build("POST", "/upload", headers=[("Content-Length", str(GIB))]))
                crc = proxytest.send_pattern(c.sock, GIB)
                resp = c.read_response()
            self.assertEqual(resp.status, 200, resp.body[:300])
            seen = proxytest.echo(resp)
            self.assertEqual(seen["body_bytes"], GIB)
            self.assertEqual(seen["body_crc32"], crc)
            self.assert_flat(rss)

    def test_64mib_chunked_upload(self):
        n = 64 * 1024 * 1024
        block = backends.pattern_bytes(1 << 18)
        with proxytest.client(self.gw, timeout=30) as c:
            c.send(build("POST", "/upload", headers=[("Transfer-Encoding", "chunked")]))
            chunk = b"%x\r\n%s\r\n" % (len(block), block)
            for _ in range(n // len(block)):
                c.send(chunk)
            c.send(b"0\r\n\r\n")
            resp = c.read_response()
        seen = proxytest.echo(resp)
        self.assertEqual(seen["body_bytes"], n)
        self.assertEqual(seen["body_crc32"], proxytest.pattern_crc32(n))
        self.assertTrue(seen["body_chunked"])


if __name__ == "__main__":
    unittest.main()
