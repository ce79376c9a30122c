# SPDX-License-Identifier: BSD-2-Clause
"""The `compress` route policy: gzip toward clients that accept it, for
compressible types, whatever framing the app used (length, chunked, until
close), decompressing to the app's exact bytes; skipped for HEAD, 304,
images, no-transform, small bodies, refusing or garbled Accept-Encoding and
bodies the app compressed itself; a slow 50 MB download in flat memory.
"""
import os
import socket
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402

MIB = 1 << 20
GZ_HOST = "gz.test"
AE = [("Accept-Encoding", "gzip, deflate, br")]
RSS_GROWTH_LIMIT_KB = 30 * 1024


def gunzip(data):
    """The one gzip member in data, decoded; fails on trailing junk or a cut stream."""
    d = zlib.decompressobj(31)
    out = d.decompress(data) + d.flush()
    assert d.eof, "gzip stream not finished"
    assert not d.unused_data, "bytes after the gzip stream"
    return out


class Compress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "gz")]).start()
        cls.addClassCleanup(cls.td.stop)
        routes = [{"host": GZ_HOST, "path": "/", "service": "svc", "compress": True},
                  {"host": "*", "path": "/", "service": "svc"}]
        cfg = proxytest.config([cls.td.addr()], workers=1, routes=routes)
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.stop_gateway)

    @classmethod
    def stop_gateway(cls):
        # under SY_GATEWAY_WRAPPER="valgrind --error-exitcode=99" an error shows here
        rc = cls.gw.stop()
        stderr = cls.gw.stderr_text()
        cls.gw.__exit__(None, None, None)
        if rc != 0:
            raise AssertionError("gateway exited with %s\n%s" % (rc, stderr[-4000:]))

    def get(self, path, headers=AE, method="GET", host=GZ_HOST, version="HTTP/1.1"):
        with proxytest.client(self.gw, timeout=20) as c:
            return c.request(build(method, path, headers=headers, host=host, version=version))

    def assert_gzipped(self, resp, n, chunked=True):
        self.assertEqual(resp.status, 200, resp.body[:200])
        self.assertEqual(resp.header_all("Content-Encoding"), ["gzip"])
        self.assertIsNone(resp.header("Content-Length"))
        if chunked:
            self.assertEqual(resp.header("Transfer-Encoding"), "chunked")
        self.assertIn("Accept-Encoding", ", ".join(resp.header_all("Vary")))
        self.assertEqual(gunzip(resp.body), backends.pattern_bytes(n))
        self.assertLess(len(resp.body), n)

    def assert_plain(self, resp, n, encoding=None):
        self.assertEqual(resp.status, 200, resp.body[:200])
        self.assertEqual(resp.header("Content-Encoding"), encoding)
        self.assertEqual(resp.header("Content-Length"), str(n))
        self.assertEqual(resp.body, backends.pattern_bytes(n))

    def test_json_1mb_round_trip_keeps_the_connection(self):
        with proxytest.client(self.gw, timeout=20) as c:
            for _ in range(2):
                resp = c.request(build("GET", "/bytes/%d?type=json" % MIB, headers=AE,
                                       host=GZ_HOST))
                self.assert_gzipped(resp, MIB)
            self.assertFalse(c.closed(0.05))

    def test_app_framings(self):
        for query in ("type=text&chunked=1", "type=svg&close=1", "type=text"):
            for n in (256, 5000, 300000):
                with self.subTest(query=query, n=n):
                    self.assert_gzipped(self.get("/bytes/%d?%s" % (n, query)), n)

    def test_http10_client_gets_close_delimited_gzip(self):
        resp = self.get("/bytes/100000?type=text", version="HTTP/1.0")
        self.assert_gzipped(resp, 100000, chunked=False)
        self.assertIsNone(resp.header("Transfer-Encoding"))
        self.assertTrue(resp.close_delimited)

    def test_skipped(self):
        n = 20000
        cases = {
            "head": dict(path="/bytes/%d?type=json" % n, method="HEAD"),
            "image": dict(path="/bytes/%d?type=png" % n),
            "octet-stream": dict(path="/bytes/%d" % n),
            "no-transform": dict(path="/bytes/%d?type=text&nt=1" % n),
            "below the minimum": dict(path="/bytes/255?type=text"),
            "no Accept-Encoding": dict(path="/bytes/%d?type=text" % n, headers=[]),
            "gzip refused": dict(path="/bytes/%d?type=text" % n,
                                 headers=[("Accept-Encoding", "br, gzip;q=0")]),
            "garbage": dict(path="/bytes/%d?type=text" % n,
                            headers=[("Accept-Encoding", "gzip;q=7;;, @@")]),
            "route without compress": dict(path="/bytes/%d?type=text" % n, host="localhost"),
        }
        for name, kw in cases.items():
            with self.subTest(name):
                resp = self.get(**kw)
                want = 255 if "255" in kw["path"] else n
                if kw.get("method") == "HEAD":
                    self.assertEqual(resp.status, 200)
                    self.assertIsNone(resp.header("Content-Encoding"))
                    self.assertEqual(resp.header("Content-Length"), str(n))
                    self.assertEqual(resp.body, b"")
                else:
                    self.assert_plain(resp, want)

    def test_app_already_compressed(self):
        resp = self.get("/bytes/20000?type=text&enc=gzip")
        # the app's own coding (testd claims gzip on plain bytes): passed through untouched
        self.assert_plain(resp, 20000, encoding="gzip")
        self.assertEqual(resp.header_all("Content-Encoding"), ["gzip"])

    def test_304_untouched(self):
        resp = self.get("/status/304")
        self.assertEqual(resp.status, 304)
        self.assertIsNone(resp.header("Content-Encoding"))
        self.assertEqual(resp.header_all("Vary"), [])

    def test_etag_weakened_and_vary_appended(self):
        resp = self.get("/bytes/4000?type=json&etag=1&vary=1")
        self.assert_gzipped(resp, 4000)
        self.assertEqual(resp.header_all("ETag"), ['W/"pattern"'])
        self.assertEqual(resp.header_all("Vary"), ["Origin", "Accept-Encoding"])
        plain = self.get("/bytes/4000?type=json&etag=1", headers=[])
        self.assertEqual(plain.header_all("ETag"), ['"pattern"'])

    def test_bytes_out_counts_what_the_client_got(self):
        with proxytest.connect(self.gw) as s:
            s.sendall(build("GET", "/bytes/200000?type=text", host=GZ_HOST,
                            headers=AE + [("Connection", "close")]))
            got = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                got += data
        head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        rid = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
               if l.lower().startswith("x-request-id:")][0]
        line = proxytest.wait_until(
            lambda: [l for l in self.gw.access_log_lines() if l.get("request_id") == rid])
        self.assertTrue(line, "no access log line for %s" % rid)
        self.assertEqual(line[0]["bytes_out"], len(got))

    def test_slow_50mb_text_download_in_flat_memory(self):
        n = 50 * MIB
        with proxytest.connect(self.gw, timeout=60) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            with proxytest.RssSampler(self.gw.pid) as rss:
                s.sendall(build("GET", "/bytes/%d?type=text&chunked=1" % n, host=GZ_HOST,
                                headers=AE + [("Connection", "close")]))
                status, headers, wire = proxytest.read_head(s)
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("content-encoding"), "gzip")
                chunks = bytearray(wire)
                start = time.monotonic()
                while True:
                    data = s.recv(2048)     # a slow reader: small reads with pauses
                    if not data:
                        break
                    chunks += data
                    time.sleep(0.005)
            elapsed = time.monotonic() - start
        body = dechunk(bytes(chunks))
        d = zlib.decompressobj(31)
        crc, total = 0, 0
        for i in range(0, len(body), 65536):
            out = d.decompress(body[i:i + 65536])
            crc, total = zlib.crc32(out, crc), total + len(out)
        out = d.flush()
        crc, total = zlib.crc32(out, crc), total + len(out)
        self.assertTrue(d.eof)
        self.assertEqual(total, n)
        self.assertEqual(crc, proxytest.pattern_crc32(n))
        growth = rss.peak - rss.first
        self.assertLess(growth, RSS_GROWTH_LIMIT_KB,
                        "gateway RSS grew %d KiB (from %d) over %.1f s" % (growth, rss.first,
                                                                          elapsed))


def dechunk(wire):
    """The data of a chunked body that ends with the last chunk and no trailers."""
    out, i = bytearray(), 0
    while True:
        eol = wire.index(b"\r\n", i)
        size = int(wire[i:eol], 16)
        i = eol + 2
        if size == 0:
            assert wire[i:] == b"\r\n", wire[i:i + 20]
            return bytes(out)
        out += wire[i:i + size]
        assert wire[i + size:i + size + 2] == b"\r\n"
        i += size + 2


if __name__ == "__main__":
    unittest.main()
