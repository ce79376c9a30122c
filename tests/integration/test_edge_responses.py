# SPDX-License-Identifier: BSD-2-Clause
"""Edge hardening, upstream strictness: the app's response is parsed as
strictly as the client's request. A malformed head is a 502 and nothing of
it reaches the client; a body that goes bad after the head was relayed ends
the client connection without a clean end; the app connection that carried
either is closed, never reused, and the gateway goes on serving.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

CLOSE_WAIT_S = 3.0
MARK = b"LEAK"      # in every bad answer: must never reach the client

BAD_HEADS = {
    "not-http": b"LEAK NOT HTTP\r\n\r\n",
    "not-http-binary": b"\x16\x03\x01\x00\xa5LEAK\r\n\r\n",
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                 b"X-M: LEAK\r\n\r\n4\r\nLEAK\r\n0\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n"
                 b"X-M: LEAK\r\n\r\n4\r\nLEAK\r\n0\r\n\r\n",
    "two-different-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nLEAK!",
    "cl-list-differ": b"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\nLEAK!",
    "cl-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\nLEAK",
    "cl-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nLEAK",
    "cl-hex": b"HTTP/1.1 200 OK\r\nContent-Length: 0x4\r\n\r\nLEAK",
    "cl-overflow": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nLEAK",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n LEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "obs-fold-tab": b"HTTP/1.1 200 OK\r\nX-A: a\r\n\tLEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "status-2000": b"HTTP/1.1 2000 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "status-20": b"HTTP/1.1 20 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "status-letters": b"HTTP/1.1 2x0 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "status-missing": b"HTTP/1.1\r\nContent-Length: 4\r\n\r\nLEAK",
    "version-2": b"HTTP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "version-lowercase": b"http/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 4\nX-M: LEAK\n\nLEAK",
    "bare-lf-one-header": b"HTTP/1.1 200 OK\r\nX-M: LEAK\nContent-Length: 4\r\n\r\nLEAK",
    "bare-cr": b"HTTP/1.1 200 OK\r\nX-M: a\rLEAK: 1\r\nContent-Length: 4\r\n\r\nLEAK",
    "head-too-large": b"HTTP/1.1 200 OK\r\nX-Big: " + b"L" * 20000 + b"\r\nX-M: LEAK\r\n"
                      b"Content-Length: 4\r\n\r\nLEAK",
    "too-many-headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: LEAK\r\n" % i for i in range(300))
                        + b"Content-Length: 4\r\n\r\nLEAK",
    "nul-in-header-value": b"HTTP/1.1 200 OK\r\nX-M: LE\0AK\r\nContent-Length: 4\r\n\r\nLEAK",
    "ctl-in-header-value": b"HTTP/1.1 200 OK\r\nX-M: LE\x01AK\r\nContent-Length: 4\r\n\r\nLEAK",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 4\r\nX-M: LEAK\r\n\r\nLEAK",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nLEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "empty-header-name": b"HTTP/1.1 200 OK\r\n: LEAK\r\nContent-Length: 4\r\n\r\nLEAK",
}

# Heads that pass; the chunked body goes bad before MARK could be relayed.
BAD_BODIES = {
    "bad-chunk-size-first": b"zz\r\nLEAK\r\n0\r\n\r\n",
    "bad-chunk-size-later": b"5\r\nhello\r\nzz\r\nLEAK\r\n0\r\n\r\n",
    "chunk-size-overflow": b"5\r\nhello\r\n10000000000000004\r\nLEAK\r\n0\r\n\r\n",
    "chunk-size-negative": b"5\r\nhello\r\n-4\r\nLEAK\r\n0\r\n\r\n",
    "chunk-size-0x": b"5\r\nhello\r\n0x4\r\nLEAK\r\n0\r\n\r\n",
    "missing-crlf-after-data": b"5\r\nhelloXX4\r\nLEAK\r\n0\r\n\r\n",
    "bare-lf-after-size": b"5\nhello\r\n4\r\nLEAK\r\n0\r\n\r\n",
}

# Good answers followed by bytes the request did not ask for: a response
# injected for whoever is served next on that app connection (desync).
INJECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLEAK"
TRAILING = {
    "over-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
    "after-204": b"HTTP/1.1 204 No Content\r\n\r\n",
    "after-304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
    "after-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
    "unsolicited-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                       b"Connection: Upgrade\r\n\r\n",
}

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ngood\n"


def handler(req):
    """/bad/NAME and /body/NAME answer their malformed response, /good a
    good one; the app leaves the connection open: closing it is the
    gateway's job."""
    kind, _, name = req.target.strip("/").partition("/")
    if kind == "bad":
        return BAD_HEADS[name]
    if kind == "body":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + BAD_BODIES[name]
    if kind == "trailing":
        return TRAILING[name] + INJECTED
    return GOOD


class UpstreamStrictness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rb = backends.RawBackend(handler)
        cls.addClassCleanup(cls.rb.stop)
        pools = {"p": {"instances": [{"addr": cls.rb.addr}], "retries": 0}}
        cls.gw = gateway.Gateway(proxytest.config(pools=pools, workers=1)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def app_conn_for(self, target):
        """The app connection that carried the request for target."""
        reqs = proxytest.wait_until(
            lambda: [r for r in self.rb.requests if r.target == target])
        self.assertEqual(len(reqs), 1, "%s reached the app %d times" % (target, len(reqs)))
        return reqs[0].conn

    def assert_app_conn_closed(self, target):
        conn = self.app_conn_for(target)
        self.assertTrue(proxytest.wait_until(lambda: conn.closed, CLOSE_WAIT_S),
                        "the app connection that sent a bad response was kept")

    def assert_still_serving(self):
        """A good response right after, on a new client connection."""
        resp = proxytest.once(self.gw, build("GET", "/good"))
        self.assertEqual((resp.status, resp.body), (200, b"good\n"))
        self.assertTrue(self.gw.running())

    def test_malformed_head_is_502_and_never_relayed(self):
        for name in BAD_HEADS:
            with self.subTest(response=name):
                target = "/bad/" + name
                with proxytest.client(self.gw) as c:
                    resp = c.request(build("GET", target))
                    self.assertIsNotNone(resp, "closed without a response")
                    self.assertEqual(resp.status, 502, resp)
                    relayed = repr(resp.headers).encode() + resp.body
                    self.assertNotIn(MARK, relayed)
                self.assert_app_conn_closed(target)
                self.assert_still_serving()

    def test_malformed_chunked_body_cuts_the_client_off(self):
        for name in BAD_BODIES:
            with self.subTest(response=name):
                target = "/body/" + name
                with proxytest.client(self.gw) as c:
                    c.send(build("GET", target))
                    try:
                        resp = c.read_response()
                    except httpc.ProtocolError:
                        resp = None     # cut inside the body: no clean end
                    if resp is not None:
                        self.assertEqual(resp.status, 502, "a clean end of %r" % resp.body)
                        self.assertNotIn(MARK, resp.body)
                    self.assertNotIn(MARK, c.reader.buf)
                    self.assertTrue(c.closed(CLOSE_WAIT_S), "the client connection was kept")
                self.assert_app_conn_closed(target)
                self.assert_still_serving()

    def test_bytes_after_a_response_never_answer_another_request(self):
        for name in TRAILING:
            with self.subTest(response=name):
                with proxytest.client(self.gw) as c:
                    resp = c.request(build("GET", "/trailing/" + name))
                    self.assertNotIn(MARK, resp.body)
                    if name == "unsolicited-101":
                        self.assertEqual(resp.status, 502)
                    # the same client connection, then a new one
                    for _ in range(2):
                        self.assertEqual(c.request(build("GET", "/good")).body, b"good\n")
                self.assert_app_conn_closed("/trailing/" + name)
                self.assert_still_serving()

    def test_head_response_with_a_body_is_not_relayed_later(self):
        with proxytest.client(self.gw) as c:
            c.send(build("HEAD", "/trailing/over-content-length"))
            resp = c.read_response(head_request=True)
            self.assertEqual((resp.status, resp.header("Content-Length")), (200, "3"))
            self.assertEqual(c.request(build("GET", "/good")).body, b"good\n")
        self.assert_still_serving()

    def test_good_responses_reuse_the_app_connection(self):
        """The control: a good response keeps the app connection."""
        with proxytest.client(self.gw) as c:
            for _ in range(3):
                self.assertEqual(c.request(build("GET", "/good")).body, b"good\n")
        reqs = [r for r in self.rb.requests if r.target == "/good"]
        self.assertFalse(reqs[-1].conn.closed)
        self.assertIs(reqs[-1].conn, reqs[-2].conn)


class UpstreamHeadLimit(unittest.TestCase):
    """The app's head is held to limits.max_header_bytes too."""

    def test_response_head_over_max_header_bytes_is_502(self):
        def sized(req):
            pad = int(req.target.strip("/"))
            return b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * pad + b"\r\nContent-Length: 3\r\n\r\nok\n"

        with backends.RawBackend(sized) as rb:
            pools = {"p": {"instances": [{"addr": rb.addr}], "retries": 0}}
            cfg = proxytest.config(pools=pools, limits={"max_header_bytes": 4096,
                                                         "max_uri_bytes": 1024})
            with gateway.Gateway(cfg) as gw:
                self.assertEqual(proxytest.once(gw, build("GET", "/3500")).status, 200)
                resp = proxytest.once(gw, build("GET", "/5000"))
                self.assertEqual(resp.status, 502)
                self.assertNotIn(b"ppp", resp.body)
                self.assertEqual(proxytest.once(gw, build("GET", "/10")).body, b"ok\n")


if __name__ == "__main__":
    unittest.main()
