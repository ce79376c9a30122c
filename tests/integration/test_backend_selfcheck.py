# SPDX-License-Identifier: BSD-2-Clause
"""Self-checks of the test tools: build/testd's endpoints, RawBackend, httpc,
ports and the Gateway harness (against a stub, so the gateway is not needed).
Every other integration test trusts these tools; they are tested here first.
"""
import json
import os
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, ports, procfs  # noqa: E402
from lib.httpc import build  # noqa: E402

H = "127.0.0.1"



def sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


class TestdEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")]).start()
        cls.port = cls.td.port(0)

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def req(self, raw, **kw):
        return httpc.request(H, self.port, raw, **kw)

    def test_name_and_instance_headers(self):
        status, headers, body, closed = self.req(build("GET", "/anything"))
        self.assertEqual((status, body, closed), (200, b"blue\n", False))
        hd = dict(headers)
        self.assertEqual(hd["X-Instance"], "blue")
        self.assertEqual(hd["X-Port"], str(self.port))
        status, _, body, _ = httpc.request(H, self.td.port(1), build())
        self.assertEqual((status, body), (200, b"green\n"))

    def test_health_and_status(self):
        self.assertEqual(self.req(build("GET", "/health"))[2], b"ok")
        status, headers, body, _ = self.req(build("GET", "/status/503"))
        self.assertEqual((status, body), (503, b"status 503\n"))
        status, headers, body, _ = self.req(build("GET", "/status/204"))
        self.assertEqual((status, body), (204, b""))
        self.assertNotIn("Content-Length", dict(headers))
        self.assertEqual(self.req(build("GET", "/status/99"))[0], 400)
        self.assertEqual(self.req(build("GET", "/status/abc"))[0], 400)

    def test_delay(self):
        t0 = time.monotonic()
        status, _, body, _ = self.req(build("GET", "/delay/300"))
        self.assertEqual((status, body), (200, b"blue\n"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_delay_does_not_block_others(self):
        t = threading.Thread(target=self.req, args=(build("GET", "/delay/500"),))
        t.start()
        t0 = time.monotonic()
        self.assertEqual(self.req(build())[0], 200)
        self.assertLess(time.monotonic() - t0, 0.3)
        t.join()

    def test_bytes_content_length_chunked_close(self):
        n = 300001
        status, headers, body, closed = self.req(build("GET", "/bytes/%d" % n))
        self.assertEqual(dict(headers)["Content-Length"], str(n))
        self.assertEqual(body, backends.pattern_bytes(n))
        self.assertFalse(closed)
        status, headers, body, closed = self.req(build("GET", "/bytes/%d?chunked=1" % n))
        self.assertEqual(dict(headers)["Transfer-Encoding"], "chunked")
        self.assertEqual(body, backends.pattern_bytes(n))
        status, headers, body, closed = self.req(build("GET", "/bytes/%d?close=1" % n))
        self.assertNotIn("Content-Length", dict(headers))
        self.assertEqual(body, backends.pattern_bytes(n))
        self.assertTrue(closed)
        self.assertEqual(self.req(build("GET", "/bytes/0"))[2], b"")

    def test_head_has_length_no_body(self):
        with httpc.Client(H, self.port) as c:
            r = c.request(build("HEAD", "/bytes/1000"))
            self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1000", b""))
            r = c.request(build("GET", "/"))
            self.assertEqual(r.body, b"blue\n")

    def test_echo_get(self):
        status, _, body, _ = self.req(build("GET", "/echo?x=1", [("X-Test", "a\"b\x01"),
                                                                  ("X-Empty", "")]))
        doc = json.loads(body)
        self.assertEqual((doc["method"], doc["target"], doc["version"]),
                         ("GET", "/echo?x=1", "HTTP/1.1"))
        self.assertIn(["X-Test", "a\"b\x01"], doc["headers"])
        self.assertIn(["X-Empty", ""], doc["headers"])
        self.assertEqual((doc["body_bytes"], doc["body_crc32"], doc["instance"]), (0, 0, "blue"))

    def test_echo_content_length_and_chunked(self):
        data = os.urandom(200000)
        for raw in (build("POST", "/echo", body=data),
                    build("PUT", "/upload", [("Transfer-Encoding", "chunked")],
                          httpc.chunked(data, 7777))):
            status, _, body, closed = self.req(raw)
            doc = json.loads(body)
            self.assertEqual((doc["body_bytes"], doc["body_crc32"]), (len(data), zlib.crc32(data)))
            self.assertFalse(closed)

    def test_chunked_extensions_and_trailers(self):
        raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n")
        with httpc.Client(H, self.port) as c:
            doc = json.loads(c.request(raw).body)
            self.assertEqual(doc["body_bytes"], 5)
            self.assertEqual(c.request(build()).body, b"blue\n")

    def test_non_ascii_header_is_valid_json(self):
        raw = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\xe9\r\n\r\n"
        doc = json.loads(self.req(raw)[2])
        self.assertIn(["X-Bin", "\xff\xe9"], doc["headers"])

    def test_keepalive_reuses_one_connection(self):
        port = self.td.port(1)
        before = self.td.stats(port)
        with httpc.Client(H, port) as c:
            for _ in range(5):
                self.assertEqual(c.request(build()).body, b"green\n")
            self.assertFalse(c.closed(0.05))
        after = self.td.stats(port)
        self.assertEqual(after["connections"] - before["connections"], 2)  # client + /stats
        self.assertEqual(after["requests"] - before["requests"], 6)

    def test_pipelining(self):
        with httpc.Client(H, self.port) as c:
            c.send(build("GET", "/a") + build("POST", "/echo", body=b"xyz")
                   + build("GET", "/bytes/70000") + build("GET", "/health"))
            self.assertEqual(c.read_response().body, b"blue\n")
            self.assertEqual(json.loads(c.read_response().body)["body_bytes"], 3)
            self.assertEqual(c.read_response().body, backends.pattern_bytes(70000))
            self.assertEqual(c.read_response().body, b"ok")

    def test_http10(self):
        status, headers, body, closed = self.req(build("GET", "/", version="HTTP/1.0"))
        self.assertEqual((status, body, closed), (200, b"blue\n", True))
        raw = build("GET", "/", [("Connection", "keep-alive")], version="HTTP/1.0")
        status, headers, body, closed = self.req(raw)
        self.assertEqual(dict(headers).get("Connection"), "keep-alive")
        self.assertFalse(closed)
        status, headers, body, closed = self.req(build("GET", "/bytes/100?chunked=1",
                                                       version="HTTP/1.0"))
        self.assertEqual((body, closed), (backends.pattern_bytes(100), True))

    def test_connection_close_request(self):
        status, headers, _, closed = self.req(build("GET", "/", [("Connection", "close")]))
        self.assertEqual(dict(headers)["Connection"], "close")
        self.assertTrue(closed)

    def test_close_endpoint(self):
        status, headers, body, closed = self.req(build("GET", "/close"))
        self.assertEqual((status, dict(headers)["Connection"], closed), (200, "close", True))

    def test_hang(self):
        with httpc.Client(H, self.port, timeout=0.5) as c:
            c.send(build("GET", "/hang"))
            with self.assertRaises(socket.timeout):
                c.read_response()

    def test_reset(self):
        with socket.create_connection((H, self.port)) as s:
            s.sendall(build("GET", "/reset"))
            with self.assertRaises(ConnectionResetError):
                while s.recv(100):
                    pass
        self.assertEqual(self.req(build("GET", "/reset"))[0], None)

    def test_garbage(self):
        with socket.create_connection((H, self.port), timeout=2) as s:
            s.sendall(build("GET", "/garbage"))
            got = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got, b"NOT HTTP\r\n\r\n")
        with self.assertRaises(httpc.ProtocolError):
            self.req(build("GET", "/garbage"))

    def test_slow_body(self):
        with httpc.Client(H, self.port) as c:
            t0 = time.monotonic()
            c.send(build("GET", "/slow-body/500"))
            head = c.reader.until(b"\r\n\r\n")
            self.assertIn(b"Content-Length: 100", head)
            self.assertLess(time.monotonic() - t0, 0.2)
            body = c.reader.exact(100)
            self.assertGreaterEqual(time.monotonic() - t0, 0.4)
            self.assertEqual(body, backends.pattern_bytes(100))

    def test_bad_requests(self):
        for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n",
                    b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                    b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            status, _, _, closed = self.req(raw)
            self.assertEqual((status, closed), (400, True), raw)
        status, _, _, closed = self.req(b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertEqual((status, closed), (431, True))

    def test_half_close_still_answered(self):
        with socket.create_connection((H, self.port), timeout=2) as s:
            s.sendall(build("GET", "/delay/100"))
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK"))
        self.assertTrue(got.endswith(b"blue\n"))


class TestdStreaming(unittest.TestCase):
    """Large bodies both ways stay streamed: testd's memory stays small."""

    def test_large_download_and_upload_bounded_rss(self):
        with backends.Testd([0]) as td:
            base = procfs.rss_kb(td.pid)
            n = 512 << 20
            with socket.create_connection((H, td.port())) as s:
                s.sendall(build("GET", "/bytes/%d" % n))
                reader = httpc._Reader(s)
                self.assertIn(b"Content-Length: %d\r\n" % n, reader.until(b"\r\n\r\n"))
                got, buf = len(reader.buf), bytearray(1 << 20)
                self.assertEqual(bytes(reader.buf[:64]), backends.pattern_bytes(64)[:len(reader.buf)])
                while got < n:
                    k = s.recv_into(buf)
                    self.assertGreater(k, 0)
                    got += k
                self.assertEqual(got, n)
            crc = 0
            with socket.create_connection((H, td.port())) as s:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n)
                block = b"x" * (1 << 20)
                for _ in range(n >> 20):
                    s.sendall(block)
                    crc = zlib.crc32(block, crc)
                resp = httpc._read_response(httpc._Reader(s))
                doc = json.loads(resp.body)
                self.assertEqual((doc["body_bytes"], doc["body_crc32"]), (n, crc))
            # ASan's quarantine keeps freed memory resident: no bound to check then
            if not sanitized(td.binary):
                self.assertLess(procfs.rss_kb(td.pid) - base, 8 * 1024)

    def test_threads(self):
        with backends.Testd([(0, "t")], threads=2) as td:
            for _ in range(4):
                self.assertEqual(httpc.get(td.url("/"))[2], b"t\n")
            self.assertEqual(td.stats(td.port())["requests"], 5)

    def test_per_port_faults(self):
        """fail=30,delay=60 on one port: its name endpoint fails 3 in 10, each
        answer after >= 60 ms; /health and the other port stay fast and 200."""
        with backends.Testd([(0, "green", {"fail": 30, "delay": 60}), (0, "blue")]) as td:
            statuses = []
            with httpc.Client(H, td.port(0)) as c:
                for i in range(20):
                    t0 = time.monotonic()
                    r = c.request(build("GET", "/any/%d" % i))
                    self.assertGreaterEqual(time.monotonic() - t0, 0.055)
                    statuses.append(r.status)
                    self.assertEqual(r.body, b"green failed\n" if r.status == 500 else b"green\n")
                r = c.request(build("GET", "/health"))
                self.assertEqual((r.status, r.body), (200, b"ok"))
            # request k (from 1) fails when (k * 30) % 100 < 30: k = 4, 7, 10, ...
            self.assertEqual([k + 1 for k, s in enumerate(statuses) if s == 500],
                             [4, 7, 10, 14, 17, 20])
            for _ in range(10):
                status, _, body = httpc.get(td.url("/", 1))
                self.assertEqual((status, body), (200, b"blue\n"))
        with self.assertRaises(RuntimeError):
            backends.Testd([(0, "x", {"fail": 101})]).start()

    def test_port_taken_fails_clearly(self):
        with socket.socket() as s:
            s.bind((H, 0))
            s.listen(1)
            with self.assertRaises(RuntimeError) as cm:
                backends.Testd([(s.getsockname()[1], "x")]).start()
            self.assertIn("Address already in use", str(cm.exception))


class RawBackendTests(unittest.TestCase):
    def test_records_bytes_and_answers(self):
        with backends.RawBackend() as rb:
            raw1 = build("POST", "/a", body=b"hello") + build("GET", "/b")
            with httpc.Client(H, rb.port) as c:
                c.send(raw1)
                self.assertEqual(c.read_response().body, b"raw\n")
                self.assertEqual(c.read_response().body, b"raw\n")
            status, _, body, _ = httpc.request(H, rb.port, build("GET", "/c"))
            self.assertEqual((status, body), (200, b"raw\n"))
            reqs = rb.wait_requests(3)
            self.assertEqual([r.target for r in reqs], ["/a", "/b", "/c"])
            self.assertEqual(reqs[0].body, b"hello")
            self.assertEqual(reqs[0].header("content-length"), "5")
            self.assertEqual(reqs[1].conn.index, 0)
            self.assertEqual(reqs[2].conn.index, 1)
            self.assertEqual(rb.received()[0], raw1)
            self.assertEqual(reqs[0].raw + reqs[1].raw, raw1)

    def test_chunked_framing_and_custom_handler(self):
        def handler(req):
            if req.target == "/close":
                return None
            body = req.body[::-1]
            return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

        with backends.RawBackend(handler) as rb:
            raw = build("POST", "/x", [("Transfer-Encoding", "chunked")], httpc.chunked(b"abcdef", 4))
            with httpc.Client(H, rb.port) as c:
                r = c.request(raw)
                self.assertEqual((r.status, r.body), (201, b"fedcba"))
                self.assertIsNone(c.request(build("GET", "/close")))
            self.assertEqual(rb.received()[0], raw + build("GET", "/close"))

    def test_on_data_full_control(self):
        def on_data(conn, data):
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            conn.close()

        with backends.RawBackend(on_data=on_data) as rb:
            status, _, body, closed = httpc.request(H, rb.port, build())
            self.assertEqual((status, body, closed), (200, b"abc", True))
            conns = rb.wait_connections(1)
            self.assertTrue(conns[0].data.startswith(b"GET / HTTP/1.1\r\n"))


class HttpcAndPorts(unittest.TestCase):
    def test_free_and_wait_port(self):
        p = ports.free_port()
        self.assertFalse(ports.port_open(H, p))
        with self.assertRaises(TimeoutError):
            ports.wait_port(H, p, timeout=0.1)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((H, p))
            s.listen(1)
            ports.wait_port(H, p, timeout=1)

    def test_build(self):
        self.assertEqual(build("POST", "/p", {"X-A": "1"}, b"ab", host="h"),
                         b"POST /p HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nab")
        self.assertEqual(build(host=None), b"GET / HTTP/1.1\r\n\r\n")

    def test_interim_responses_skipped(self):
        def on_data(conn, data):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        with backends.RawBackend(on_data=on_data) as rb:
            with httpc.Client(H, rb.port) as c:
                r = c.request(build())
                self.assertEqual((r.status, r.body, r.interim[0][0]), (200, b"ok", 100))

    def test_get(self):
        with backends.Testd([(0, "g")]) as td:
            status, headers, body = httpc.get(td.url("/status/404"))
            self.assertEqual((status, body), (404, b"status 404\n"))


STUB = textwrap.dedent('''\
    import json, os, signal, socket, sys, threading, time
    cfg = json.load(open(sys.argv[sys.argv.index("-c") + 1]))
    log = open(cfg["log"]["access"], "a")
    sys.stderr.write("stub gateway starting\\n"); sys.stderr.flush()
    if cfg.get("fail"):
        sys.exit(3)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    def on_hup(*a):
        log.write(json.dumps({"reload": 1}) + "\\n")
        log.flush()
    signal.signal(signal.SIGHUP, on_hup)
    def serve(ls):
        while True:
            c, _ = ls.accept()
            if c.recv(65536):
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nstub\\n")
                log.write(json.dumps({"status": 200, "path": "/"}) + "\\n"); log.flush()
            c.close()
    for l in cfg["listen"]:
        h, p = l["addr"].rsplit(":", 1)
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((h, int(p))); ls.listen(16)
        threading.Thread(target=serve, args=(ls,), daemon=True).start()
    open("switchyard.pid", "w").write("%d\\n" % os.getpid())   # as the gateway: once serving
    while not stop.wait(0.05):
        pass
    sys.exit(0)
''')


class GatewayHarness(unittest.TestCase):
    """The Gateway class against a stub gateway (a python script)."""

    def setUp(self):
        fd, self.stub = tempfile.mkstemp(suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write("#!%s\n%s" % (sys.executable, STUB))
        os.chmod(self.stub, 0o755)

    def tearDown(self):
        os.unlink(self.stub)

    def test_start_request_log_stop(self):
        cfg = {"listen": [{"addr": "127.0.0.1:%d" % ports.free_port()}],
               "log": {"access": "{tmp}/access.log"}}
        with gateway.Gateway(cfg, binary=self.stub) as gw:
            self.assertTrue(gw.config["log"]["access"].startswith(gw.tmp))
            status, _, body = httpc.get(gw.url("/"))
            self.assertEqual((status, body), (200, b"stub\n"))
            self.assertEqual(gw.access_log_lines(min_lines=1)[0]["status"], 200)
            self.assertGreater(gw.rss_kb(), 0)
            self.assertGreaterEqual(gw.cpu_seconds(), 0)
            gw.reload()
            self.assertEqual(gw.access_log_lines(min_lines=2)[1], {"reload": 1})
            self.assertIn("stub gateway starting", gw.stderr_text())
            self.assertEqual(gw.stop(), 0)
            tmp = gw.tmp
        self.assertFalse(os.path.exists(tmp))

    def test_start_failure_raises_with_stderr(self):
        cfg = {"fail": True, "listen": [{"addr": "127.0.0.1:%d" % ports.free_port()}],
               "log": {"access": "{tmp}/access.log"}}
        with self.assertRaises(gateway.GatewayError) as cm:
            gateway.Gateway(cfg, binary=self.stub).start()
        self.assertIn("stub gateway starting", str(cm.exception))

    def test_wrapper_env(self):
        cfg = {"listen": [{"addr": "127.0.0.1:%d" % ports.free_port()}],
               "log": {"access": "{tmp}/a.log"}}
        os.environ["SY_GATEWAY_WRAPPER"] = "env SY_WRAPPED=1"
        try:
            with gateway.Gateway(cfg, binary=self.stub) as gw:
                with open("/proc/%d/environ" % gw.pid, "rb") as f:
                    self.assertIn(b"SY_WRAPPED=1", f.read())
                self.assertEqual(gw.stop(graceful=True), 0)
        finally:
            del os.environ["SY_GATEWAY_WRAPPER"]

    def test_missing_binary(self):
        with self.assertRaises(gateway.GatewayError):
            gateway.Gateway({"listen": []}, binary="/nonexistent/switchyard").start()


if __name__ == "__main__":
    unittest.main()
