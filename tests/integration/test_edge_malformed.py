# SPDX-License-Identifier: BSD-2-Clause
"""Edge hardening, strict HTTP/1.1: every malformed request of the catalogue
(tests/integration/data/malformed_requests.txt) through the real gateway to
a recording backend, then the request-smuggling classics. A rejection must
carry the catalogue's status and Connection: close, the gateway must close
the connection, the app must receive nothing and the security log must get
one bad_request event. What the app does receive must be framed beyond doubt.
"""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, catalogue, gateway, httpc, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

CLOSE_WAIT_S = 3.0
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def backend_bytes(rb):
    return sum(len(d) for d in rb.received())


class StrictFramer:
    """Frames the bytes one upstream connection carried as a strict origin
    server would; fails the test on anything two parsers could read two ways.

    requests: [(head text, body bytes)] of the complete requests; rest: the
    bytes after them (an unfinished request, the gateway having given up)."""

    def __init__(self, test, data):
        self.t = test
        self.requests = []
        self.rest = data
        while self.rest:
            split = self._one(self.rest)
            if split is None:
                break
            head, body, self.rest = split
            self.requests.append((head, body))

    def _one(self, data):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = data[:end].decode("latin-1")
        self.t.assertNotRegex(head, r"\r(?!\n)|(?<!\r)\n", "bare CR or LF in %r" % head)
        lines = head.split("\r\n")
        self.t.assertRegex(lines[0], r"^[A-Z]+ \S+ HTTP/1\.1$")
        cl, te = [], []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            self.t.assertTrue(sep and TOKEN.match(name), "bad header line %r" % line)
            if name.lower() == "content-length":
                cl.append(value.strip(" \t"))
            elif name.lower() == "transfer-encoding":
                te.append(value.strip(" \t"))
        self.t.assertFalse(cl and te, "both Content-Length and Transfer-Encoding: %r" % head)
        self.t.assertLessEqual(len(cl), 1, head)
        self.t.assertLessEqual(len(te), 1, head)
        rest = data[end + 4:]
        if te:
            self.t.assertEqual(te[0], "chunked", head)
            return self._chunked(head, rest)
        n = int(cl[0]) if cl else 0
        if cl:
            self.t.assertRegex(cl[0], r"^[0-9]+$", head)
        if len(rest) < n:
            return None
        return head, rest[:n], rest[n:]

    def _chunked(self, head, data):
        body, pos = [], 0
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                return None
            size_text = data[pos:eol]
            self.t.assertRegex(size_text, rb"^[0-9A-Fa-f]{1,15}$", "chunk size %r" % size_text)
            size, pos = int(size_text, 16), eol + 2
            if size == 0:
                break
            if len(data) < pos + size + 2:
                return None
            body.append(data[pos:pos + size])
            self.t.assertEqual(data[pos + size:pos + size + 2], b"\r\n")
            pos += size + 2
        if len(data) < pos + 2:
            return None
        self.t.assertEqual(data[pos:pos + 2], b"\r\n", "trailers forwarded")
        return head, b"".join(body), data[pos + 2:]


class GatewayCase(unittest.TestCase):
    """One gateway (one worker) in front of one RawBackend for the class."""

    @classmethod
    def setUpClass(cls):
        cls.rb = backends.RawBackend()
        cls.addClassCleanup(cls.rb.stop)
        cls.gw = gateway.Gateway(proxytest.config([cls.rb.addr], workers=1)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def security_events(self):
        return self.gw.log_lines("security", timeout=0)

    def assert_rejected(self, raw, status, events_before, bytes_before):
        """raw on its own connection gets status, Connection: close and a
        close; the app gets nothing; one bad_request event is logged."""
        with proxytest.client(self.gw) as c:
            try:
                c.send(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass    # the gateway may answer and close before all is sent
            resp = c.read_response()
            self.assertIsNotNone(resp, "closed without a response")
            self.assertEqual(resp.status, status, resp.body)
            self.assertIn("close", (resp.header("Connection") or "").lower(), resp.headers)
            self.assertTrue(c.closed(CLOSE_WAIT_S), "the gateway kept the connection open")
        self.assertEqual(backend_bytes(self.rb), bytes_before, "the app received bytes")
        events = self.gw.log_lines("security", min_lines=events_before + 1)[events_before:]
        self.assertEqual(len(events), 1, events)
        ev = events[0]
        self.assertEqual((ev.get("event"), ev.get("client_ip"), ev.get("status")),
                         ("bad_request", "127.0.0.1", status), ev)
        self.assertIsInstance(ev.get("reason"), str)
        self.assertTrue(ev["reason"], ev)
        return ev


class Catalogue(GatewayCase):
    def test_catalogue_has_enough_distinct_cases(self):
        cases = catalogue.load()
        self.assertGreaterEqual(len({c.raw for c in cases}), 40)
        self.assertEqual(len({c.raw for c in cases}), len(cases), "duplicate byte sequences")

    def test_every_case_rejected_with_its_status(self):
        received = self.rb.received()
        for case in catalogue.load():
            with self.subTest(case=case.name, status=case.status):
                self.assert_rejected(case.raw, case.status, len(self.security_events()),
                                     backend_bytes(self.rb))
        self.assertEqual(self.rb.received()[:len(received)], received)
        self.assertEqual(len(self.rb.received()), len(received))
        # the route works: the silence above is the gateway refusing
        before = len(self.rb.requests)
        resp = proxytest.once(self.gw, build("GET", "/after"))
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.rb.wait_requests(before + 1)[before].target, "/after")

    def test_case_after_a_good_request_on_one_connection(self):
        """A rejection on a kept-alive connection: the earlier request is
        served, nothing of the bad one reaches the app."""
        for name in ("obs-fold", "cl-and-te", "te-chunked-identity", "bare-lf-header"):
            case = next(c for c in catalogue.load() if c.name == name)
            with self.subTest(case=name):
                before = len(self.rb.requests)
                with proxytest.client(self.gw) as c:
                    self.assertEqual(c.request(build("GET", "/first")).status, 200)
                    nbytes = backend_bytes(self.rb)
                    resp = c.request(case.raw)
                    self.assertEqual(resp.status, case.status)
                    self.assertTrue(c.closed(CLOSE_WAIT_S))
                self.assertEqual(backend_bytes(self.rb), nbytes)
                self.assertEqual(len(self.rb.requests), before + 1)

    def test_case_pipelined_behind_a_good_request(self):
        for name in ("cl-and-te", "several-content-length-differ", "obs-fold"):
            case = next(c for c in catalogue.load() if c.name == name)
            with self.subTest(case=name):
                before = len(self.rb.requests)
                with proxytest.client(self.gw) as c:
                    c.send(build("GET", "/first") + case.raw)
                    self.assertEqual(c.read_response().status, 200)
                    self.assertEqual(c.read_response().status, case.status)
                    self.assertTrue(c.closed(CLOSE_WAIT_S))
                reqs = self.rb.wait_requests(before + 1)[before:]
                self.assertEqual([r.target for r in reqs], ["/first"])
                self.assertEqual(reqs[0].conn.pending, b"")


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


class Smuggling(GatewayCase):
    """The classics. Each either is rejected (nothing reaches the app) or
    reaches it as requests framed beyond doubt, one per response."""

    def exchange(self, raw, expect=1, bad_chunks=False):
        """raw on one connection, then up to expect responses; (responses,
        StrictFramer per upstream connection that carried new bytes).
        bad_chunks: a broken body after a good head, so the app may see the
        head, never a complete request, and its connection must be closed."""
        offsets = [len(d) for d in self.rb.received()]
        responses = []
        with proxytest.client(self.gw) as c:
            c.send(raw)
            while len(responses) < expect:
                resp = c.read_response()
                if resp is None:
                    break
                responses.append(resp)
                if "close" in (resp.header("Connection") or "").lower():
                    self.assertTrue(c.closed(CLOSE_WAIT_S), "not closed after Connection: close")
                    break
        ok = [r for r in responses if r.status == 200]
        if ok:
            self.rb.wait_requests(len(ok))
        if bad_chunks:
            self.settle(offsets)
        # keep-alive upstream connections: each one's new bytes start a request
        framed = [StrictFramer(self, conn.data[off:]) for conn, off in self.touched(offsets)]
        got = [req for f in framed for req in f.requests]
        self.assertEqual(len(got), len(ok), (responses, got))
        return responses, framed

    def touched(self, offsets):
        """[(RawConn, offset)] of the connections that got bytes since offsets."""
        conns = list(self.rb.conns)
        offs = offsets + [0] * (len(conns) - len(offsets))
        return [(c, off) for c, off in zip(conns, offs) if len(c.data) > off]

    def settle(self, offsets):
        """The gateway may still be sending the head upstream when the client
        has its 400: wait until the app's bytes stop changing for a moment
        and every connection that got some since offsets is closed."""
        def quiet():
            data = self.rb.received()
            for _ in range(5):
                time.sleep(0.05)
                if self.rb.received() != data:
                    return False
            return all(c.closed for c, _ in self.touched(offsets))
        self.assertTrue(proxytest.wait_until(quiet, CLOSE_WAIT_S),
                        "the app's connection was left open after a broken body")

    def assert_rejected_nothing_sent(self, raw, statuses=(400,)):
        bytes_before = backend_bytes(self.rb)
        responses, framed = self.exchange(raw)
        self.assertEqual(len(responses), 1, responses)
        self.assertIn(responses[0].status, statuses)
        self.assertEqual(backend_bytes(self.rb), bytes_before)

    def test_cl_te(self):
        self.assert_rejected_nothing_sent(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + SMUGGLED)

    def test_te_cl(self):
        self.assert_rejected_nothing_sent(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED))

    def test_te_te_obfuscations_with_content_length(self):
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
        for te in (b"Transfer-Encoding: xchunked", b"Transfer-Encoding : chunked",
                   b"Transfer-Encoding: chunked\r\nTransfer-encoding: x",
                   b"Transfer-Encoding:\tchunked", b"Transfer-Encoding: chunked\x0b",
                   b"Transfer-Encoding\n: chunked", b"X: y\nTransfer-Encoding: chunked",
                   b"Transfer-Encoding: chunk", b"Transfer-Encoding: identity, chunked",
                   b"Transfer-Encoding: CHUNKED", b"Transfer-Encoding: \"chunked\"",
                   b"Transfer-Encoding: chunked, chunked",
                   b"Transfer-Encoding:\r\n chunked"):
            with self.subTest(te=te):
                self.assert_rejected_nothing_sent(
                    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n%s\r\n\r\n%s"
                    % (te, body), statuses=(400, 501))

    def test_te_obfuscations_alone(self):
        """Without Content-Length: rejected, or honoured as chunked."""
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
        for te in (b"Transfer-Encoding:\tchunked", b"Transfer-Encoding: CHUNKED",
                   b"Transfer-Encoding: chunked \t", b"Transfer-Encoding: xchunked",
                   b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                   b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked;q=1"):
            with self.subTest(te=te):
                responses, framed = self.exchange(
                    b"POST / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n%s" % (te, body))
                self.assertEqual(len(responses), 1, responses)
                if responses[0].status == 200:
                    head, got = framed[-1].requests[-1]
                    self.assertIn("Transfer-Encoding: chunked", head)
                    self.assertEqual(got, SMUGGLED)
                else:
                    self.assertIn(responses[0].status, (400, 501))

    def test_content_length_plus_and_duplicates(self):
        for cls in (b"Content-Length: +4", b"Content-Length: 4\r\nContent-Length: 4",
                    b"Content-Length: 4\r\nContent-Length: 40", b"Content-Length: 4, 4",
                    b"Content-Length: 04x", b"Content-Length: 4 4", b"Content-Length:4\x00"):
            with self.subTest(cl=cls):
                self.assert_rejected_nothing_sent(
                    b"POST / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\nabcd%s" % (cls, SMUGGLED))

    def test_leading_zeros_content_length_is_one_value(self):
        responses, framed = self.exchange(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 004\r\n\r\nabcd")
        self.assertEqual([r.status for r in responses], [200])
        head, body = framed[-1].requests[-1]
        self.assertEqual(body, b"abcd")

    def assert_bad_chunked_body(self, body):
        raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        responses, framed = self.exchange(raw, bad_chunks=True)
        self.assertEqual(len(responses), 1, "an answer to the client, then the close")
        self.assertEqual(responses[0].status, 400)
        for f in framed:
            self.assertEqual(f.requests, [])
            self.assertNotIn(b"smuggled", f.rest)

    def test_chunk_size_overflow(self):
        for size in (b"10000000000000000", b"fffffffffffffffff", b"1" * 40,
                     b"ffffffffffffffff"):
            with self.subTest(size=size):
                self.assert_bad_chunked_body(b"%s\r\nabc\r\n0\r\n\r\n%s" % (size, SMUGGLED))

    def test_bad_chunk_sizes(self):
        for body in (b"-5\r\nabcde\r\n0\r\n\r\n", b"0x5\r\nabcde\r\n0\r\n\r\n",
                     b"5 \r\nabcde\r\n0\r\n\r\n", b" 5\r\nabcde\r\n0\r\n\r\n",
                     b"\r\nabcde\r\n0\r\n\r\n", b"5\nabcde\r\n0\r\n\r\n",
                     b"g\r\nabcde\r\n0\r\n\r\n"):
            with self.subTest(body=body):
                self.assert_bad_chunked_body(body + SMUGGLED)

    def test_missing_crlf_after_chunk_data(self):
        for body in (b"5\r\nabcdeXX0\r\n\r\n", b"5\r\nabcde0\r\n\r\n",
                     b"3\r\nabcde\r\n0\r\n\r\n", b"5\r\nabcde\n0\r\n\r\n"):
            with self.subTest(body=body):
                self.assert_bad_chunked_body(body + SMUGGLED)

    def test_request_hidden_in_a_content_length_body(self):
        responses, framed = self.exchange(
            b"POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
            % (len(SMUGGLED), SMUGGLED))
        self.assertEqual([r.status for r in responses], [200])
        reqs = [r for f in framed for r in f.requests]
        self.assertEqual(len(reqs), 1)
        self.assertTrue(reqs[0][0].startswith("POST /outer HTTP/1.1\r\n"))
        self.assertEqual(reqs[0][1], SMUGGLED)

    def test_request_hidden_in_a_chunked_body(self):
        responses, framed = self.exchange(
            b"POST /outer HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + httpc.chunked(SMUGGLED, 7))
        self.assertEqual([r.status for r in responses], [200])
        reqs = [r for f in framed for r in f.requests]
        self.assertEqual(len(reqs), 1)
        self.assertIn("Transfer-Encoding: chunked", reqs[0][0])
        self.assertNotIn("Content-Length", reqs[0][0])
        self.assertEqual(reqs[0][1], SMUGGLED)

    def test_request_hidden_in_a_get_body(self):
        responses, framed = self.exchange(
            b"GET /outer HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
            % (len(SMUGGLED), SMUGGLED))
        self.assertEqual([r.status for r in responses], [200])
        reqs = [r for f in framed for r in f.requests]
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0][1], SMUGGLED)

    def test_pipelined_after_chunked_body_is_a_second_request(self):
        """Bytes after the last chunk are the client's next request, framed
        by the gateway on its own: the app sees two requests, two answers."""
        responses, framed = self.exchange(
            b"POST /outer HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n" + SMUGGLED, expect=2)
        self.assertEqual([r.status for r in responses], [200, 200])
        reqs = [r for f in framed for r in f.requests]
        self.assertEqual([h.split(" ", 2)[1] for h, _ in reqs], ["/outer", "/smuggled"])
        self.assertEqual(reqs[0][1], b"abc")


if __name__ == "__main__":
    unittest.main()
