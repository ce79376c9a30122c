# SPDX-License-Identifier: BSD-2-Clause
"""The app speaks before it has the whole request: interim replies (103)
while the body is still uploading must not stop the upload, and a final
answer ends the exchange without reusing either connection at a point that
is not a message boundary. Also: a request head close to max_header_bytes
still leaves the body room to stream.
"""
import os
import socket
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402


class EarlyApp:
    """A tiny app: after each request head it sends `first` (an interim or a
    final reply) at once, then reads the body by Content-Length and, when
    `first` was interim, answers 200 with the body's length and crc32."""

    def __init__(self, first):
        self.first = first
        self.connections = 0
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                c.sendall(self.first)
                while len(buf) < length:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:length], buf[length:]
                if self.first.startswith(b"HTTP/1.1 1"):
                    text = b"%d %d" % (len(body), zlib.crc32(body))
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))

    def close(self):
        self.ls.close()


class EarlyAnswers(unittest.TestCase):

    def test_early_hints_during_a_slow_upload(self):
        app = EarlyApp(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        self.addCleanup(app.close)
        body = os.urandom(300000)
        cfg = proxytest.config([app.addr], workers=1, pool_extra={"read_timeout_ms": 3000})
        with gateway.Gateway(cfg) as gw, proxytest.client(gw, timeout=10) as c:
            c.send(build("POST", "/up", headers=[("Content-Length", str(len(body)))]))
            for i in range(3):      # the body trickles in after the 103 went out
                time.sleep(0.1)
                c.send(body[i * 100000:(i + 1) * 100000])
            t0 = time.monotonic()
            resp = c.read_response()
            self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.body, b"%d %d" % (len(body), zlib.crc32(body)))

    def test_final_answer_before_the_body_closes_both_connections(self):
        app = EarlyApp(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        self.addCleanup(app.close)
        cfg = proxytest.config([app.addr], workers=1)
        with gateway.Gateway(cfg) as gw:
            host, port = gw.host_port()
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(build("POST", "/up", headers=[("Content-Length", "1000000")]) + b"x" * 1000)
            head = s.recv(4096)
            self.assertTrue(head.startswith(b"HTTP/1.1 401"), head)
            self.assertIn(b"Connection: close", head)
            s.close()
            # The next request must not be sent on the upload's connection.
            resp = proxytest.once(gw, build("GET", "/next", headers=[("Content-Length", "0")]))
            self.assertEqual(resp.status, 401)
            self.assertEqual(app.connections, 2)


class LingeringClose(unittest.TestCase):

    def test_error_answer_survives_an_unread_upload(self):
        # 404 without reading the body: closing at once would make the
        # kernel reset the connection while the client is still uploading.
        routes = [{"host": "app.example", "path": "/", "service": "svc"}]
        with backends.Testd([(0, "x")]) as td:
            cfg = proxytest.config([td.addr()], workers=1, routes=routes)
            with gateway.Gateway(cfg) as gw:
                host, port = gw.host_port()
                for _ in range(3):
                    s = socket.create_connection((host, port), timeout=5)
                    body = b"x" * (3 << 20)     # more than loopback's socket buffers hold
                    # The whole upload goes out without a reset (curl would abort on one)...
                    s.sendall(build("POST", "/up", host="other.example",
                                    headers=[("Content-Length", str(len(body)))]) + body)
                    answer = b""       # ...and then the answer is there to read
                    try:
                        while b"\r\n\r\n" not in answer:
                            d = s.recv(4096)
                            if not d:
                                break
                            answer += d
                    except ConnectionResetError:
                        pass
                    s.close()
                    self.assertTrue(answer.startswith(b"HTTP/1.1 404"), answer[:80])


class LargeHead(unittest.TestCase):

    def test_body_behind_a_head_at_the_limit(self):
        # A head just under max_header_bytes (16384) must not leave the body
        # a few bytes of buffer: it would crawl at a byte per system call.
        with backends.Testd([(0, "big")]) as td:
            with gateway.Gateway(proxytest.config([td.addr()], workers=1)) as gw:
                body = os.urandom(2 << 20)
                headers = [("X-Filler", ""), ("Content-Length", str(len(body)))]
                short = 16383 - len(build("POST", "/echo", headers=headers))
                headers[0] = ("X-Filler", "a" * short)
                raw = build("POST", "/echo", headers=headers)
                self.assertEqual(len(raw), 16383)   # one byte under the limit
                t0 = time.monotonic()
                with proxytest.client(gw, timeout=20) as c:
                    resp = c.request(raw + body)
                took = time.monotonic() - t0
                self.assertEqual(resp.status, 200, resp.body)
                seen = proxytest.echo(resp)
                self.assertEqual((seen["body_bytes"], seen["body_crc32"]),
                                 (len(body), zlib.crc32(body)))
                self.assertLess(took, 5.0)


if __name__ == "__main__":
    unittest.main()
