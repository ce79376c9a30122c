# SPDX-License-Identifier: BSD-2-Clause
"""Trailers pass both ways (issue 12), over HTTP/2 and HTTP/1.1.

A request's trailer fields (HTTP/2: a HEADERS frame after its DATA; HTTP/1.1:
the chunked body's trailer section) reach the app in the chunked body it gets;
the app's response trailers (its chunked trailer section) reach an HTTP/2
client as a trailing HEADERS frame and an HTTP/1.1 client as they came.
Fields that must not travel in a trailer section (RFC 9110 6.5.1: framing,
routing, authentication, request modifiers, response controls; the
connection-specific ones; those the gateway sets, such as X-Forwarded-For)
are dropped on every path. The app is a RawBackend, so every byte it got is
seen; the limits are the head's (max_header_bytes, max_headers).
"""
import os
import shutil
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, certs, gateway, h2raw, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

H = "127.0.0.1"

# sent by the client or the app: the first two travel, the others never do
ALLOWED = [("x-checksum", "sha1=abc"), ("grpc-status", "0")]
REFUSED = [("host", "evil.example"), ("authorization", "Bearer x"),
           ("x-forwarded-for", "10.9.9.9"), ("x-request-id", "forged"),
           ("set-cookie", "a=1"), ("content-type", "text/evil"), ("cache-control", "no-store"),
           ("location", "https://evil.example/")]


def chunked_response(body, trailers, piece=4096):
    """A 200 with a chunked body in pieces and a trailer section."""
    out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: x/y\r\n"
           b"Trailer: X-Checksum\r\n\r\n"]
    for at in range(0, len(body), piece):
        out.append(b"%x\r\n%s\r\n" % (len(body[at:at + piece]), body[at:at + piece]))
    out.append(b"0\r\n")
    out += [b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in trailers]
    out.append(b"\r\n")
    return b"".join(out)


def trailer_section(raw):
    """The trailer field lines of the chunked body at the end of raw bytes
    (after the last chunk), as [(name, value)] with names as sent."""
    at = raw.rindex(b"\r\n0\r\n") + 5
    lines = raw[at:].split(b"\r\n")
    fields = []
    for line in lines:
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        fields.append((name, value.strip(" \t")))
    return fields


def lower(fields):
    return [(n.lower(), v) for n, v in fields]


@unittest.skipUnless(h2raw.AVAILABLE, "python3-h2 (hpack, hyperframe) is not installed")
class TestTrailers(unittest.TestCase):
    """One gateway (a plain and a TLS listener) in front of a RawBackend
    whose answer each test sets."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sy-h2t-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        leaf = certs.CA(cls.tmp).issue("lo", ["localhost", "IP:127.0.0.1"])
        cls.answer = backends.default_handler
        cls.rb = backends.RawBackend(lambda req: cls.answer(req))
        cls.addClassCleanup(cls.rb.stop)
        cfg = proxytest.config([cls.rb.addr], limits={"max_body_bytes": 64 << 20})
        cfg["listen"].append({"addr": "%s:%d" % (H, ports.free_port()),
                              "tls": {"certificates": [{"cert": leaf.cert, "key": leaf.key}]}})
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def setUp(self):
        type(self).answer = staticmethod(backends.default_handler)
        self.seen = len(self.rb.wait_requests(0))

    def respond_with(self, handler):
        type(self).answer = staticmethod(handler)

    def h2(self):
        c = h2raw.Client(self.gw.host_port(1)[1])
        self.addCleanup(c.close)
        return c

    def last_request(self):
        return self.rb.wait_requests(self.seen + 1)[self.seen]

    # ---- requests -----------------------------------------------------------

    def test_h2_request_trailers_go_upstream_in_the_chunked_body(self):
        c = self.h2()
        body = os.urandom(100 * 1024)
        sid = c.request("POST", "/up", end_stream=False)
        c.send_body(sid, body, end_stream=False)
        c.send_trailers(sid, ALLOWED + REFUSED)
        r = c.response(sid)
        self.assertEqual((r.status, r.body), (200, b"raw\n"), r)
        req = self.last_request()
        self.assertEqual(req.header("transfer-encoding"), "chunked")
        self.assertIsNone(req.header("content-length"))
        self.assertEqual(zlib.crc32(req.body), zlib.crc32(body))
        self.assertEqual(trailer_section(req.raw), ALLOWED)
        # none of the refused ones reached the head either
        self.assertNotEqual(req.header("authorization"), "Bearer x")
        self.assertNotIn("10.9.9.9", req.header("x-forwarded-for"))

    def test_h2_request_trailers_without_data(self):
        """HEADERS, then HEADERS with the trailers: an empty chunked body."""
        c = self.h2()
        sid = c.request("POST", "/up", end_stream=False)
        c.send_trailers(sid, [("x-only", "1")])
        self.assertEqual(c.response(sid).status, 200)
        req = self.last_request()
        self.assertEqual(req.body, b"")
        self.assertTrue(req.raw.endswith(b"\r\n\r\n0\r\nx-only: 1\r\n\r\n"), req.raw[-80:])

    def test_h2_request_with_content_length_drops_trailers(self):
        """HTTP/1.1 has no trailer section after a Content-Length body."""
        c = self.h2()
        sid = c.request("POST", "/up", fields=[("content-length", "5")], end_stream=False)
        c.send_body(sid, b"hello", end_stream=False)
        c.send_trailers(sid, ALLOWED)
        self.assertEqual(c.response(sid).status, 200)
        req = self.last_request()
        self.assertEqual((req.header("content-length"), req.body), ("5", b"hello"))
        self.assertNotIn(b"x-checksum", req.raw)

    def test_h2_malformed_trailers_reset_the_stream(self):
        """A pseudo-field or a connection-specific field in trailers is
        malformed (RFC 9113 8.1): RST_STREAM, and the connection serves on."""
        for fields in ([(":path", "/x")], [("connection", "close")], [("X-Upper", "1")],
                       [("content-length", "4")]):     # nghttp2 holds it to the DATA's length
            with self.subTest(fields=fields):
                c = self.h2()
                sid = c.request("POST", "/up", end_stream=False)
                c.send_body(sid, b"abc", end_stream=False)
                c.send_trailers(sid, fields)
                r = c.response(sid)
                self.assertEqual(r.reset, h2raw.PROTOCOL_ERROR, r)
                r = c.response(c.request("GET", "/"))
                self.assertEqual(r.status, 200)

    def test_h2_request_trailers_at_the_limits(self):
        """Up to max_headers fields of max_header_bytes in all pass; the rest
        are dropped, the request still goes (a field line of up to 4000 bytes)."""
        c = self.h2()
        many = [("x-t-%03d" % i, "v" * 100) for i in range(150)]
        big = [("x-big", "b" * 3900)]
        sid = c.request("POST", "/up", end_stream=False)
        c.send_body(sid, b"x" * 70000, end_stream=False)
        c.send_trailers(sid, big + many)
        self.assertEqual(c.response(sid, 10).status, 200)
        got = trailer_section(self.last_request().raw)
        self.assertEqual(got[0], big[0])
        self.assertLessEqual(len(got), 100)
        self.assertLessEqual(sum(len(n) + len(v) + 4 for n, v in got), 16384)
        self.assertEqual(got[1:], many[:len(got) - 1])
        self.assertGreater(len(got), 50)

    def test_h1_request_trailers_pass_filtered(self):
        fields = ALLOWED + REFUSED + [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]
        wire = b"5\r\nhello\r\n0\r\n" + b"".join(b"%s: %s\r\n" % (n.encode(), v.encode())
                                                for n, v in fields) + b"\r\n"
        raw = build("POST", "/up", headers=[("Transfer-Encoding", "chunked")], body=wire)
        with proxytest.client(self.gw) as c:
            self.assertEqual(c.request(raw).status, 200)
            self.assertEqual(c.request(build("GET", "/next")).status, 200)     # keep-alive
        req = self.rb.wait_requests(self.seen + 2)[self.seen]
        self.assertEqual(req.body, b"hello")
        self.assertEqual(trailer_section(req.raw), ALLOWED)

    def test_h1_request_trailer_section_too_large_is_400(self):
        wire = b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T-%d: %s\r\n" % (i, b"v" * 200)
                                                for i in range(90)) + b"\r\n"
        raw = build("POST", "/up", headers=[("Transfer-Encoding", "chunked")], body=wire)
        with proxytest.client(self.gw) as c:
            self.assertEqual(c.request(raw).status, 400)

    # ---- responses ----------------------------------------------------------

    def test_app_trailers_reach_an_h2_client(self):
        body = os.urandom(300 * 1024)
        self.respond_with(lambda req: chunked_response(body, [("X-Checksum", "sha1=abc"),
                                                              ("Grpc-Status", "0")] + REFUSED))
        c = self.h2()
        r = c.response(c.request("GET", "/dl"), 10)
        self.assertEqual((r.status, len(r.body), r.reset), (200, len(body), None), r)
        self.assertEqual(r.body, body)
        self.assertEqual(r.trailers, ALLOWED)       # lower case, the refused ones gone
        self.assertTrue(r.ended)
        self.assertEqual(r.header("trailer"), None)     # hop-by-hop here, as on HTTP/1.1

    def test_app_trailers_after_an_empty_chunked_body(self):
        self.respond_with(lambda req: chunked_response(b"", [("X-A", "1")]))
        c = self.h2()
        r = c.response(c.request("GET", "/dl"))
        self.assertEqual((r.status, r.body, r.trailers), (200, b"", [("x-a", "1")]), r)

    def test_app_without_trailers_ends_with_data(self):
        self.respond_with(lambda req: chunked_response(b"abc", []))
        c = self.h2()
        r = c.response(c.request("GET", "/dl"))
        self.assertEqual((r.status, r.body, r.trailers, r.ended), (200, b"abc", None, True), r)

    def test_app_trailers_to_a_slow_h2_reader(self):
        """The trailers wait behind data the client's window holds back."""
        body = os.urandom(2 << 20)
        self.respond_with(lambda req: chunked_response(body, [("X-Checksum", "z")], 16000))
        c = self.h2()
        sid = c.request("GET", "/dl")
        c.hold(sid)
        c.pump(lambda: len(c.streams[sid].body) >= 65535, 10)
        time.sleep(0.3)
        self.assertIsNone(c.streams[sid].trailers)
        got = 65535
        while got < len(body):
            c.window_update(sid, 65536)
            got += 65536
            self.assertTrue(c.pump(lambda: len(c.streams[sid].body) >= min(got, len(body)), 10))
        r = c.response(sid)
        self.assertEqual((r.body == body, r.trailers), (True, [("x-checksum", "z")]))

    def test_app_trailers_reach_an_h1_client_filtered(self):
        self.respond_with(lambda req: chunked_response(
            b"hello", ALLOWED + REFUSED + [("Content-Length", "5"), ("TE", "trailers")]))
        s = proxytest.connect(self.gw)
        try:
            s.sendall(build("GET", "/dl", headers=[("Connection", "close")]))
            data = proxytest.read_to_close(s)
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertEqual(lower(trailer_section(data)), ALLOWED)
        self.assertTrue(data.endswith(b"\r\n\r\n"))

    def test_app_trailers_not_to_an_http10_client(self):
        """HTTP/1.0 gets plain data until the close: no trailer section."""
        self.respond_with(lambda req: chunked_response(b"hello", ALLOWED))
        s = proxytest.connect(self.gw)
        try:
            s.sendall(build("GET", "/dl", version="HTTP/1.0"))
            data = proxytest.read_to_close(s)
        finally:
            s.close()
        self.assertTrue(data.endswith(b"\r\n\r\nhello"), data)

    def test_app_trailer_section_too_large_is_cut_off(self):
        """Past max_header_bytes the app's body is bad: the stream is reset,
        the connection serves on."""
        many = [("X-T-%d" % i, "v" * 200) for i in range(90)]
        self.respond_with(lambda req: chunked_response(b"abc", many))
        c = self.h2()
        r = c.response(c.request("GET", "/dl"))
        self.assertEqual(r.reset, h2raw.INTERNAL_ERROR, r)
        self.assertIsNone(r.trailers)
        self.respond_with(backends.default_handler)
        self.assertEqual(c.response(c.request("GET", "/")).status, 200)


if __name__ == "__main__":
    unittest.main()
