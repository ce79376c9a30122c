# SPDX-License-Identifier: BSD-2-Clause
"""WebSocket through the gateway: the upgrade is forwarded, the 101 turns
the connection into a two-way tunnel with its own idle timeout, and the
access log records the tunnel when it closes."""
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, proxytest, websocket  # noqa: E402
from lib.httpc import build  # noqa: E402


class WebSocketTunnel(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.app = websocket.EchoApp()
        cfg = proxytest.config([cls.app.addr], workers=2,
                               limits={"tunnel_idle_timeout_ms": 1000})
        cls.gw = gateway.Gateway(cfg).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.app.close()

    def client(self, **kw):
        host, port = self.gw.host_port()
        return websocket.Client(host, port, path="/chat", **kw)

    def test_echo_text_and_binary(self):
        c = self.client()
        self.assertEqual(c.status_line, "HTTP/1.1 101 Switching Protocols")
        self.assertTrue(c.accepted, c.headers)
        self.assertEqual(c.headers.get("upgrade", "").lower(), "websocket")
        c.send(websocket.TEXT, b"hello, switchyard")
        self.assertEqual(c.recv(), (websocket.TEXT, b"hello, switchyard"))
        c.send(websocket.BINARY, bytes(range(256)))
        self.assertEqual(c.recv(), (websocket.BINARY, bytes(range(256))))
        c.send(websocket.PING, b"p")
        self.assertEqual(c.recv(), (websocket.PONG, b"p"))
        self.assertEqual(c.close(1000), struct.pack("!H", 1000))
        self.assertTrue(c.closed_by_peer())

    def test_large_message(self):
        c = self.client(timeout=20)
        payload = os.urandom(8 << 20)
        c.send(websocket.BINARY, payload)
        opcode, echoed = c.recv()
        self.assertEqual((opcode, len(echoed)), (websocket.BINARY, len(payload)))
        self.assertEqual(echoed, payload)
        c.close()

    def test_upgrade_headers_reach_the_app(self):
        c = self.client(extra_headers=[("Sec-WebSocket-Protocol", "chat")])
        head = self.app.handshakes[-1].lower()
        self.assertIn(b"\r\nupgrade: websocket", head)
        self.assertIn(b"\r\nconnection: upgrade", head)
        self.assertIn(b"\r\nsec-websocket-protocol: chat", head)
        self.assertIn(b"\r\nsec-websocket-version: 13", head)
        c.close()

    def test_idle_tunnel_is_closed(self):
        c = self.client()
        c.send(websocket.TEXT, b"x")
        self.assertEqual(c.recv(), (websocket.TEXT, b"x"))
        t0 = time.monotonic()
        self.assertTrue(c.closed_by_peer(timeout=5))
        self.assertGreater(time.monotonic() - t0, 0.8)

    def test_access_log_line_when_the_tunnel_closes(self):
        c = self.client()
        c.send(websocket.TEXT, b"y" * 1000)
        c.recv()
        c.close()
        self.assertTrue(c.closed_by_peer())
        lines = [l for l in self.gw.access_log_lines(min_lines=1)
                 if l.get("proto") == "websocket" and l["path"] == "/chat"]
        self.assertTrue(lines)
        line = lines[-1]
        self.assertEqual(line["status"], 101)
        self.assertGreater(line["bytes_in"], 1000)
        self.assertGreater(line["bytes_out"], 1000)


class NotAWebSocket(unittest.TestCase):

    def test_app_refusing_the_upgrade_is_relayed(self):
        app = websocket.EchoApp()
        self.addCleanup(app.close)
        with gateway.Gateway(proxytest.config([app.addr])) as gw:
            raw = build("GET", "/", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")])
            resp = proxytest.once(gw, raw)   # no Sec-WebSocket-Key: the app answers 400
            self.assertEqual(resp.status, 400)

    def test_other_upgrades_are_not_forwarded(self):
        with backends.Testd([(0, "t")]) as td, gateway.Gateway(proxytest.config([td.addr()])) as gw:
            raw = build("GET", "/echo", headers=[("Upgrade", "h2c"), ("Connection", "Upgrade")])
            seen = proxytest.echo(proxytest.once(gw, raw))
            names = [n.lower() for n, _ in seen["headers"]]
            self.assertNotIn("upgrade", names)
            self.assertNotIn("connection", names)

    def test_unasked_101_is_a_502(self):
        def handler(req):
            return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        with backends.RawBackend(handler) as rb:
            with gateway.Gateway(proxytest.config(["127.0.0.1:%d" % rb.port])) as gw:
                self.assertEqual(proxytest.once(gw, build("GET", "/")).status, 502)


if __name__ == "__main__":
    unittest.main()
