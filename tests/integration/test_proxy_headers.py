# SPDX-License-Identifier: BSD-2-Clause
"""The proxy path, headers: what the gateway forwards to the app (seen
byte for byte by a RawBackend) and to the client: hop-by-hop fields
dropped both ways, X-Forwarded-*, X-Request-ID, trusted proxies, and the
access log line with every SPEC field.
"""
import datetime
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

HOP_BY_HOP = ("connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
              "transfer-encoding")
ACCESS_FIELDS = ("ts", "request_id", "client_ip", "country", "method", "host", "path",
                 "status", "bytes_in", "bytes_out", "duration_ms", "upstream_ms", "upstream",
                 "service", "slot", "pool", "route", "user_agent", "tls", "proto")
HEX32 = r"^[0-9a-f]{32}$"


def names(req):
    return [n.lower() for n, _ in req.headers]


def values(req, name):
    return [v for n, v in req.headers if n.lower() == name.lower()]


class Forwarded(unittest.TestCase):
    """Untrusted clients: the gateway's own view replaces theirs."""

    trusted = None

    @classmethod
    def setUpClass(cls):
        cls.rb = backends.RawBackend()
        cls.addClassCleanup(cls.rb.stop)
        top = {"trusted_proxies": cls.trusted} if cls.trusted else {}
        cls.gw = gateway.Gateway(proxytest.config([cls.rb.addr], workers=1, **top)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def forward(self, raw):
        """Sends raw through the gateway; (Response, RawRequest the app got)."""
        before = len(self.rb.requests)
        with proxytest.client(self.gw) as c:
            resp = c.request(raw)
        self.assertEqual(resp.status, 200, resp.body)
        return resp, self.rb.wait_requests(before + 1)[before]

    def test_hop_by_hop_request_headers_removed(self):
        resp, req = self.forward(build("GET", "/h", headers=[
            ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Trailer", "X-Foo"), ("Proxy-Connection", "keep-alive"),
            ("X-Secret", "s3cret"), ("X-Keep", "kept"), ("Upgrade", "h2c")]))
        got = names(req)
        for name in HOP_BY_HOP + ("x-secret",):
            self.assertNotIn(name, got, req.head)
        self.assertNotIn(b"s3cret", req.head)
        self.assertEqual(values(req, "X-Keep"), ["kept"])
        self.assertEqual(values(req, "Host"), ["localhost"])
        self.assertEqual(req.version, "HTTP/1.1")

    def test_connection_close_named_header_not_forwarded(self):
        resp, req = self.forward(build("GET", "/c", headers=[
            ("Connection", "close, X-Secret"), ("X-Secret", "no")]))
        self.assertNotIn("x-secret", names(req))
        self.assertNotIn("connection", names(req))
        self.assertEqual((resp.header("Connection") or "").lower(), "close")

    def test_connection_cannot_drop_framing_or_host(self):
        body = b"0123456789"
        resp, req = self.forward(build("POST", "/f", headers=[
            ("Connection", "Content-Length, Host"), ("Content-Length", "10")], body=body))
        self.assertEqual(values(req, "Content-Length"), ["10"])
        self.assertEqual(values(req, "Host"), ["localhost"])
        self.assertEqual(req.body, body)

    def test_forwarded_headers_from_untrusted_peer_replaced(self):
        resp, req = self.forward(build("GET", "/x", host="site.example:8080", headers=[
            ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "5.6.7.8"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"),
            ("X-Request-ID", "client-chosen-id")]))
        self.assertEqual(values(req, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(values(req, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(values(req, "X-Forwarded-Host"), ["site.example:8080"])
        rid = values(req, "X-Request-ID")
        self.assertEqual(len(rid), 1)
        self.assertRegex(rid[0], HEX32)
        self.assertEqual(resp.header_all("X-Request-ID"), rid)

    def test_underscore_twins_of_gateway_headers_dropped(self):
        # CGI-style apps read X_Forwarded_For as X-Forwarded-For: a client's
        # underscore copy must not reach them; other underscore names pass.
        resp, req = self.forward(build("GET", "/u", headers=[
            ("X_Forwarded_For", "6.6.6.6"), ("x-forwarded_proto", "https"),
            ("X_FORWARDED_HOST", "evil.example"), ("X_Request_ID", "mine"),
            ("X_Custom_Thing", "kept")]))
        self.assertNotIn(b"6.6.6.6", req.head)
        self.assertNotIn(b"evil.example", req.head)
        self.assertNotIn(b"mine", req.head)
        self.assertEqual(values(req, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(values(req, "X_Custom_Thing"), ["kept"])
        self.assertEqual(values(req, "X-Forwarded-For"), ["127.0.0.1"])

    def test_generated_request_id_matches_both_sides(self):
        resp, req = self.forward(build("GET", "/id"))
        self.assertRegex(resp.header("X-Request-ID") or "", HEX32)
        self.assertEqual(values(req, "X-Request-ID"), [resp.header("X-Request-ID")])
        self.assertEqual(values(req, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(values(req, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(values(req, "X-Forwarded-Host"), ["localhost"])

    def test_request_line_and_other_headers_kept_in_order(self):
        resp, req = self.forward(build("GET", "/p/a%20b?q=1&r=%2F", headers=[
            ("Accept", "text/plain"), ("X-A", "1"), ("Cookie", "a=b"), ("X-A", "2")]))
        self.assertTrue(req.raw.startswith(b"GET /p/a%20b?q=1&r=%2F HTTP/1.1\r\n"), req.raw)
        kept = [(n, v) for n, v in req.headers if n in ("Accept", "X-A", "Cookie")]
        self.assertEqual(kept, [("Accept", "text/plain"), ("X-A", "1"), ("Cookie", "a=b"),
                                ("X-A", "2")])

    def test_absolute_form_target_becomes_origin_form(self):
        resp, req = self.forward(b"GET http://localhost/abs/path?x=1 HTTP/1.1\r\n"
                                 b"Host: localhost\r\n\r\n")
        self.assertEqual(req.target, "/abs/path?x=1")

    def test_chunked_request_forwarded_chunked(self):
        wire = httpc.chunked(b"a" * 100, 30)
        resp, req = self.forward(build("POST", "/ch", headers=[
            ("Transfer-Encoding", "chunked")], body=wire))
        self.assertEqual(values(req, "Transfer-Encoding"), ["chunked"])
        self.assertNotIn("content-length", names(req))
        self.assertEqual(req.body, b"a" * 100)

    def test_expect_not_forwarded(self):
        resp, req = self.forward(build("POST", "/e", headers=[("Expect", "100-continue")],
                                       body=b"xyz"))
        self.assertNotIn("expect", names(req))
        self.assertEqual(req.body, b"xyz")


class TrustedForwarded(Forwarded):
    """Behind a trusted proxy the incoming chain is extended, ids are kept.
    The untrusted-peer tests above are overridden where trust changes them."""

    trusted = ["127.0.0.1/32"]

    def test_forwarded_headers_from_untrusted_peer_replaced(self):
        resp, req = self.forward(build("GET", "/x", headers=[("X-Forwarded-For", "1.2.3.4")]))
        self.assertEqual(values(req, "X-Forwarded-For"), ["1.2.3.4, 127.0.0.1"])

    def test_xff_appended(self):
        resp, req = self.forward(build("GET", "/x", headers=[
            ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "front.example")]))
        self.assertEqual(values(req, "X-Forwarded-For"), ["1.2.3.4, 127.0.0.1"])
        self.assertEqual(values(req, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(values(req, "X-Forwarded-Host"), ["front.example"])
        line = self.log_line(resp)
        self.assertEqual(line["client_ip"], "1.2.3.4")

    def test_xff_lines_joined_and_client_is_rightmost_untrusted(self):
        cases = [([("X-Forwarded-For", "9.9.9.9, 1.2.3.4")], "9.9.9.9, 1.2.3.4, 127.0.0.1",
                  "1.2.3.4"),
                 ([("X-Forwarded-For", "9.9.9.9"), ("X-Forwarded-For", "1.2.3.4")],
                  "9.9.9.9, 1.2.3.4, 127.0.0.1", "1.2.3.4"),
                 ([("X-Forwarded-For", "1.2.3.4, 127.0.0.1")], "1.2.3.4, 127.0.0.1, 127.0.0.1",
                  "1.2.3.4")]
        for hdrs, chain, client in cases:
            with self.subTest(hdrs=hdrs):
                resp, req = self.forward(build("GET", "/x", headers=hdrs))
                self.assertEqual(values(req, "X-Forwarded-For"), [chain])
                self.assertEqual(self.log_line(resp)["client_ip"], client)

    def test_request_id_kept_from_trusted_peer(self):
        resp, req = self.forward(build("GET", "/x", headers=[("X-Request-ID", "edge-42.abc")]))
        self.assertEqual(values(req, "X-Request-ID"), ["edge-42.abc"])
        self.assertEqual(resp.header_all("X-Request-ID"), ["edge-42.abc"])
        self.assertEqual(self.log_line(resp)["request_id"], "edge-42.abc")

    def test_invalid_request_id_from_trusted_peer_replaced(self):
        resp, req = self.forward(build("GET", "/x", headers=[("X-Request-ID", 'a"b\\c')]))
        self.assertRegex(resp.header("X-Request-ID") or "", HEX32)
        self.assertEqual(values(req, "X-Request-ID"), [resp.header("X-Request-ID")])

    def log_line(self, resp):
        rid = resp.header("X-Request-ID")
        lines = proxytest.wait_until(lambda: [l for l in self.gw.access_log_lines()
                                              if l["request_id"] == rid])
        self.assertTrue(lines, "no access log line for %s" % rid)
        return lines[0]


class ResponseHeaders(unittest.TestCase):
    def test_hop_by_hop_response_headers_removed(self):
        def handler(req):
            return (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Drop\r\n"
                    b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
                    b"Trailer: X-T\r\nUpgrade: h2c\r\nX-Drop: 1\r\nX-Request-ID: app-id\r\n"
                    b"X-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                    b"Content-Length: 3\r\n\r\nok\n")

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    resp = c.request(build("GET", "/"))
                    got = [n.lower() for n, _ in resp.headers]
                    for name in ("keep-alive", "proxy-connection", "trailer", "upgrade",
                                 "x-drop"):
                        self.assertNotIn(name, got, resp.headers)
                    self.assertNotIn("keep-alive", (resp.header("Connection") or "").lower())
                    self.assertEqual(resp.header("X-Kept"), "yes")
                    self.assertEqual(resp.header_all("Set-Cookie"), ["a=1", "b=2"])
                    rid = resp.header_all("X-Request-ID")
                    self.assertEqual(len(rid), 1)
                    self.assertRegex(rid[0], HEX32)
                    self.assertEqual(resp.body, b"ok\n")
                    self.assertEqual(c.request(build("GET", "/")).body, b"ok\n")

    def test_chunked_response_has_one_transfer_encoding(self):
        def handler(req):
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n0\r\n\r\n")

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    resp = c.request(build("GET", "/"))
                    self.assertEqual(resp.header_all("Transfer-Encoding"), ["chunked"])
                    self.assertEqual(resp.body, b"abc")

    def test_http10_app_answer_becomes_http11(self):
        def handler(req):
            return b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"

        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config([rb.addr])) as gw:
                with proxytest.client(gw) as c:
                    for _ in range(2):
                        resp = c.request(build("GET", "/"))
                        self.assertEqual((resp.version, resp.status, resp.body),
                                         ("HTTP/1.1", 200, b"hi"))

    def test_pool_without_keepalive_sends_connection_close(self):
        with backends.RawBackend() as rb:
            pools = {"p": {"instances": [{"addr": rb.addr}], "keepalive": 0}}
            with gateway.Gateway(proxytest.config(pools=pools)) as gw:
                with proxytest.client(gw) as c:
                    for _ in range(3):
                        self.assertEqual(c.request(build("GET", "/")).status, 200)
                reqs = rb.wait_requests(3)
                self.assertTrue(all(values(r, "Connection") == ["close"] for r in reqs))
                self.assertEqual(len({id(r.conn) for r in reqs}), 3)


class AccessLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "logged")]).start()
        cls.addClassCleanup(cls.td.stop)
        cls.gw = gateway.Gateway(proxytest.config([cls.td.addr()], workers=2)).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)


    def exchange(self, raw):
        """raw on its own connection, read to the close; (bytes received, rid)."""
        with proxytest.connect(self.gw) as s:
            s.sendall(raw)
            data = proxytest.read_to_close(s)
        m = re.search(rb"\r\nX-Request-ID: ([^\r]+)\r\n", data)
        self.assertIsNotNone(m, data[:500])
        return data, m.group(1).decode()

    def line_for(self, rid):
        lines = proxytest.wait_until(lambda: [l for l in self.gw.access_log_lines()
                                              if l["request_id"] == rid])
        self.assertEqual(len(lines), 1, "access log lines for %s: %r" % (rid, lines))
        return lines[0]

    def test_every_field_with_its_value(self):
        body = b"q" * 1234
        raw = build("POST", "/delay/200?x=1", host="Logged.Example:8080", body=body,
                    headers=[("User-Agent", "proxy-test/1.0 \"quoted\""),
                             ("Connection", "close")])
        t0 = datetime.datetime.now(datetime.timezone.utc)
        data, rid = self.exchange(raw)
        line = self.line_for(rid)
        for field in ACCESS_FIELDS:
            self.assertIn(field, line)
        self.assertRegex(line["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        ts = datetime.datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        self.assertLess(abs((ts - t0).total_seconds()), 5)
        self.assertRegex(line["request_id"], HEX32)
        self.assertEqual(line["client_ip"], "127.0.0.1")
        self.assertEqual(line["country"], "")
        self.assertEqual(line["method"], "POST")
        self.assertEqual(line["host"], "Logged.Example:8080")
        self.assertEqual(line["path"], "/delay/200")
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["bytes_in"], len(raw))
        self.assertEqual(line["bytes_out"], len(data))
        self.assertGreaterEqual(line["upstream_ms"], 195)
        self.assertGreaterEqual(line["duration_ms"], line["upstream_ms"])
        self.assertLess(line["duration_ms"], 5000)
        self.assertEqual(line["upstream"], self.td.addr())
        self.assertEqual((line["service"], line["slot"], line["pool"]), ("svc", "blue", "p"))
        self.assertIsInstance(line["route"], str)
        self.assertTrue(line["route"])
        self.assertEqual(line["user_agent"], 'proxy-test/1.0 "quoted"')
        self.assertIs(line["tls"], False)
        self.assertEqual(line["proto"], "http/1.1")

    def test_http10(self):
        raw = build("PUT", "/echo", version="HTTP/1.0", body=b"z" * 5000)
        data, rid = self.exchange(raw)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
        line = self.line_for(rid)
        self.assertEqual(line["proto"], "http/1.0")
        self.assertEqual(line["method"], "PUT")
        self.assertEqual(line["bytes_in"], len(raw))
        self.assertEqual(line["bytes_out"], len(data))
        self.assertEqual(line["user_agent"], "")

    def test_chunked_request_bytes_in_counts_the_wire(self):
        wire = httpc.chunked(b"z" * 5000, 1000)
        raw = build("POST", "/echo", body=wire, headers=[("Transfer-Encoding", "chunked"),
                                                         ("Connection", "close")])
        data, rid = self.exchange(raw)
        line = self.line_for(rid)
        self.assertEqual(line["bytes_in"], len(raw))
        self.assertEqual(line["bytes_out"], len(data))

    def test_app_errors_logged(self):
        with proxytest.client(self.gw) as c:
            resp = c.request(build("GET", "/status/503"))
        line = self.line_for(resp.header("X-Request-ID"))
        self.assertEqual(line["status"], 503)
        self.assertEqual(line["upstream"], self.td.addr())

    def test_one_line_per_request_on_keep_alive(self):
        with proxytest.client(self.gw) as c:
            rids = [c.request(build("GET", "/k%d" % i)).header("X-Request-ID") for i in range(20)]
        for i, rid in enumerate(rids):
            self.assertEqual(self.line_for(rid)["path"], "/k%d" % i)


if __name__ == "__main__":
    unittest.main()
