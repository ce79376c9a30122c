# SPDX-License-Identifier: BSD-2-Clause
"""Front-door route policies (issue 13): https_redirect, headers set and
removed both ways, and CORS. The real gateway in front of testd (whose
/echo reports the request it received), curl-like raw clients.
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, certs, gateway, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

H = "127.0.0.1"


def echo_headers(resp):
    return {n.lower(): v for n, v in json.loads(resp.body)["headers"]}


class Headers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)

    def test_set_and_remove_both_ways(self):
        cfg = proxytest.config([self.td.addr(0)], routes=[
            {"host": "*", "path": "/", "service": "svc", "headers": {
                "request": {"set": {"X-Env": "prod", "User-Agent": "gateway"},
                            "remove": ["X-Debug", "Cookie"]},
                "response": {"set": {"Strict-Transport-Security": "max-age=31536000"},
                             "remove": ["X-Instance", "x-port"]}}},
            {"host": "*", "path": "/plain", "service": "svc"}])
        with gateway.Gateway(cfg) as gw:
            r = proxytest.once(gw, build("GET", "/echo", headers=[
                ("User-Agent", "curl/8"), ("X-Debug", "1"), ("x-debug", "2"),
                ("Cookie", "a=b"), ("X-Keep", "yes")]))
            self.assertEqual(r.status, 200)
            seen = json.loads(r.body)["headers"]
            names = [n.lower() for n, _ in seen]
            self.assertEqual(names.count("user-agent"), 1)
            self.assertEqual(echo_headers(r)["user-agent"], "gateway")
            self.assertEqual(echo_headers(r)["x-env"], "prod")
            self.assertNotIn("x-debug", names)
            self.assertNotIn("cookie", names)
            self.assertEqual(echo_headers(r)["x-keep"], "yes")
            self.assertEqual(r.header("Strict-Transport-Security"), "max-age=31536000")
            self.assertIsNone(r.header("X-Instance"))
            self.assertIsNone(r.header("X-Port"))
            self.assertIsNotNone(r.header("X-Request-ID"))
            # another route is untouched
            r = proxytest.once(gw, build("GET", "/plain", headers=[("X-Debug", "1")]))
            self.assertIsNotNone(r.header("X-Instance"))
            self.assertIsNone(r.header("Strict-Transport-Security"))

    def test_framing_headers_are_refused_with_their_path(self):
        for edit in ({"request": {"set": {"Content-Length": "5"}}},
                     {"response": {"remove": ["Transfer-Encoding"]}},
                     {"request": {"remove": ["Host"]}},
                     {"request": {"set": {"X-Forwarded-Proto": "https"}}},
                     {"response": {"remove": ["x-request-id"]}}):
            with self.subTest(edit=edit):
                cfg = proxytest.config([self.td.addr(0)], routes=[
                    {"host": "*", "path": "/", "service": "svc", "headers": edit}])
                rc, out, _ = gateway.check_config(cfg)
                self.assertNotEqual(rc, 0)
                self.assertIn("routes[0].headers", out)


class HttpsRedirect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)
        cls.certdir = tempfile.mkdtemp(prefix="sy-policy-certs-")
        cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        ca = certs.CA(cls.certdir)
        cls.leaf = ca.issue("site", ["app.test", "*.wild.test"])

    def config(self, tls_port):
        return proxytest.config(
            [self.td.addr(0)],
            routes=[{"host": "*", "path": "/", "service": "svc", "https_redirect": True}],
            listen=[{"addr": "%s:%d" % (H, ports.free_port())},
                    {"addr": "%s:%d" % (H, tls_port), "tls": {"certificates": [
                        {"cert": self.leaf.cert, "key": self.leaf.key}]}}])

    def test_redirect_keeps_the_target_and_names_the_port(self):
        tls_port = ports.free_port()
        before = self.td.stats(self.td.port(0))["requests"]
        with gateway.Gateway(self.config(tls_port)) as gw:
            r = proxytest.once(gw, build("GET", "/a/b?x=1&y=2", host="app.test:8080"))
            self.assertEqual(r.status, 308)
            self.assertEqual(r.header("Location"),
                             "https://app.test:%d/a/b?x=1&y=2" % tls_port)
            r = proxytest.once(gw, build("POST", "/p", host="x.wild.test", body=b"data"))
            self.assertEqual(r.status, 308)
            self.assertEqual(r.header("Location"), "https://x.wild.test:%d/p" % tls_port)
            r = proxytest.once(gw, build("GET", "http://app.test/abs?q=1", host="app.test"))
            self.assertEqual(r.header("Location"), "https://app.test:%d/abs?q=1" % tls_port)
            # nothing reached the app (but the /stats request that asks)
            self.assertEqual(self.td.stats(self.td.port(0))["requests"], before + 1)

    def test_a_host_the_gateway_does_not_serve_is_refused(self):
        with gateway.Gateway(self.config(ports.free_port())) as gw:
            for host in ("evil.example", "a.b.wild.test", "[::1]:80", "127.0.0.1"):
                with self.subTest(host=host):
                    r = proxytest.once(gw, build("GET", "/", host=host))
                    self.assertEqual(r.status, 421, r)
                    self.assertIsNone(r.header("Location"))

    def test_redirect_without_a_tls_listener_is_refused_by_t(self):
        cfg = proxytest.config([self.td.addr(0)], routes=[
            {"host": "*", "path": "/", "service": "svc", "https_redirect": True}])
        rc, out, _ = gateway.check_config(cfg)
        self.assertNotEqual(rc, 0)
        self.assertIn("routes[0].https_redirect", out)


class Cors(unittest.TestCase):
    ORIGIN = "https://app.example.com"

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config([cls.td.addr(0)], routes=[
            {"host": "*", "path": "/api", "service": "svc",
             "cors": {"origins": [cls.ORIGIN], "methods": ["GET", "POST"], "max_age_s": 600}},
            {"host": "*", "path": "/", "service": "svc"}])
        cls.gw = gateway.Gateway(cfg)
        cls.gw.start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def preflight(self, origin, method="POST", headers=None):
        h = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if headers:
            h.append(("Access-Control-Request-Headers", headers))
        return proxytest.once(self.gw, build("OPTIONS", "/api/items", headers=h))

    def test_preflight_for_a_listed_origin(self):
        before = self.td.stats(self.td.port(0))["requests"]
        r = self.preflight(self.ORIGIN, headers="content-type, x-token")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.ORIGIN)
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "GET, POST")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "content-type, x-token")
        self.assertEqual(r.header("Access-Control-Max-Age"), "600")
        self.assertIn("Origin", r.header("Vary"))
        # answered here: the app saw only the /stats request that asks
        self.assertEqual(self.td.stats(self.td.port(0))["requests"], before + 1)

    def test_preflight_for_an_unlisted_origin_or_method_gets_no_cors_headers(self):
        for origin, method in (("https://evil.example", "POST"), (self.ORIGIN, "DELETE"),
                               ("https://app.example.com.evil.example", "GET")):
            with self.subTest(origin=origin, method=method):
                r = self.preflight(origin, method)
                self.assertEqual(r.status, 204)
                self.assertIsNone(r.header("Access-Control-Allow-Origin"))
                self.assertIsNone(r.header("Access-Control-Allow-Methods"))

    def test_a_long_preflight_keeps_its_head_whole(self):
        gw = gateway.Gateway(proxytest.config([self.td.addr(0)], routes=[
            {"host": "*", "path": "/", "service": "svc",
             "cors": {"origins": ["*"], "methods": ["GET", "POST"]}}]))
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        origin = "https://" + "o" * 1000 + ".example"
        asked = ", ".join("x-h%d" % i for i in range(150))[:1000]
        r = proxytest.once(gw, build("OPTIONS", "/", headers=[
            ("Origin", origin), ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", asked)]))
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), origin)
        self.assertEqual(r.header("Access-Control-Allow-Headers"), asked)
        self.assertIn(r.header("Connection"), ("keep-alive", "close"))

    def test_the_apps_own_cors_headers_give_way_to_the_gateways(self):
        def handler(req):
            body = b"app\n"
            return (b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n"
                    b"access-control-allow-credentials: true\r\nX-App: 1\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        with backends.RawBackend(handler) as rb:
            gw = gateway.Gateway(proxytest.config([rb.addr], routes=[
                {"host": "*", "path": "/", "service": "svc",
                 "cors": {"origins": [self.ORIGIN], "methods": ["GET"]}}]))
            gw.start()
            self.addCleanup(gw.__exit__, None, None, None)
            r = proxytest.once(gw, build("GET", "/", headers=[("Origin", self.ORIGIN)]))
            self.assertEqual(r.header_all("Access-Control-Allow-Origin"), [self.ORIGIN])
            self.assertIsNone(r.header("Access-Control-Allow-Credentials"))
            self.assertEqual(r.header("X-App"), "1")
            r = proxytest.once(gw, build("GET", "/", headers=[("Origin", "https://evil.test")]))
            self.assertEqual(r.header_all("Access-Control-Allow-Origin"), [])

    def test_simple_requests(self):
        r = proxytest.once(self.gw, build("GET", "/api/x", headers=[("Origin", self.ORIGIN)]))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.ORIGIN)
        self.assertIn("Origin", r.header_all("Vary"))
        r = proxytest.once(self.gw, build("GET", "/api/x",
                                          headers=[("Origin", "https://evil.example")]))
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        # a route without cors is left alone; so is OPTIONS without a preflight's headers
        r = proxytest.once(self.gw, build("GET", "/", headers=[("Origin", self.ORIGIN)]))
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        self.assertIsNone(r.header("Vary"))
        r = proxytest.once(self.gw, build("OPTIONS", "/api/x", headers=[("Origin", self.ORIGIN)]))
        self.assertEqual(r.status, 200)         # the app's answer


if __name__ == "__main__":
    unittest.main()
