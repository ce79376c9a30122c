# SPDX-License-Identifier: BSD-2-Clause
"""WebSocket tunnels across a switch or a rollback (issue 7, SPEC.md
"Long-lived connections"): open tunnels stay on their slot; once that slot
has lost its traffic for services.NAME.tunnel_drain_ms, the gateway closes
them with a close frame 1001, to the client unmasked and to the app masked,
never inside a frame the app is sending; switchyard_tunnels_active counts
them. Real gateway, real blue and green WebSocket apps, the admin API.
"""
import os
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, ports, proxytest, websocket  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

TOKEN = "tunnel-token"
DRAIN_MS = 1000
GOING_AWAY = struct.pack("!H", 1001)
# a switch is seen within a second (the sweep), then closes follow at once
CLOSE_DEADLINE_S = DRAIN_MS / 1000 + 6


def read_frame(reader):
    """(opcode, masked, payload) of the next frame from a websocket.Reader."""
    b0, b1 = reader.exact(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", reader.exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", reader.exact(8))[0]
    key = reader.exact(4) if b1 & 0x80 else None
    payload = reader.exact(n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0f, key is not None, payload


class SlotApp(websocket.EchoApp):
    """A WebSocket app that echoes data frames and records, per connection,
    the close frame it received as (masked, payload). The text message
    b"big N" makes it send a binary frame of N bytes in two halves, the
    second only once a frame has come back (the gateway's close)."""

    def __init__(self):
        self.closes = []
        self.lock = threading.Lock()
        super().__init__()

    def _serve(self, c):
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            with self.lock:
                self.handshakes.append(head)
            key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + websocket.accept_key(key)
                      + b"\r\n\r\n")
            reader = websocket.Reader(c, rest)
            try:
                while True:
                    opcode, masked, payload = read_frame(reader)
                    if opcode == websocket.CLOSE:
                        with self.lock:
                            self.closes.append((masked, payload))
                        c.sendall(websocket.encode(websocket.CLOSE, payload, mask=False))
                        return
                    if payload.startswith(b"big "):
                        self._send_in_halves(c, reader, int(payload[4:]))
                        return
                    c.sendall(websocket.encode(opcode, payload, mask=False))
            except (ConnectionError, OSError):
                return

    def _send_in_halves(self, c, reader, n):
        frame = websocket.encode(websocket.BINARY, pattern(n), mask=False)
        half = len(frame) // 2
        c.sendall(frame[:half])
        opcode, masked, payload = read_frame(reader)
        with self.lock:
            self.closes.append((masked, payload))
        c.sendall(frame[half:])
        if opcode == websocket.CLOSE:
            c.sendall(websocket.encode(websocket.CLOSE, payload, mask=False))

    def count(self):
        with self.lock:
            return len(self.handshakes)

    def close_frames(self):
        with self.lock:
            return list(self.closes)


def pattern(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def config(blue, green, drain_ms=DRAIN_MS, weight=0):
    svc = {"blue": "blue", "green": "green", "active": "blue", "canary": {"weight": weight}}
    if drain_ms is not None:
        svc["tunnel_drain_ms"] = drain_ms
    return proxytest.config(
        workers=2,
        pools={"blue": {"instances": [{"addr": blue.addr}]},
               "green": {"instances": [{"addr": green.addr}]}},
        services={"app": svc},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})


def poll(check, timeout=5.0):
    """check()'s first true value within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


class TunnelDrain(unittest.TestCase):

    def setUp(self):
        self.blue, self.green = SlotApp(), SlotApp()
        self.addCleanup(self.blue.close)
        self.addCleanup(self.green.close)

    def gateway(self, **kw):
        gw = admin.start_gateway(config(self.blue, self.green, **kw), tokens=[TOKEN])
        self.addCleanup(gw.__exit__, None, None, None)
        self.gw, self.api = gw, admin.Admin(gw, token=TOKEN)

    def open(self, app):
        """A tunnel that must land on app (the blue or the green one)."""
        before = app.count()
        host, port = self.gw.host_port()
        c = websocket.Client(host, port, path="/ws", timeout=CLOSE_DEADLINE_S)
        self.addCleanup(c.sock.close)
        self.assertEqual(c.status_line, "HTTP/1.1 101 Switching Protocols")
        self.assertEqual(app.count(), before + 1, "the upgrade reached the other slot")
        return c

    def echoes(self, c, text=b"still there"):
        c.send(websocket.TEXT, text)
        self.assertEqual(c.recv(), (websocket.TEXT, text))

    def post(self, path, body):
        r = self.api.post("/api/v1/services/app/" + path, body)
        self.assertEqual(r.status, 200, r)

    def tunnels(self):
        """switchyard_tunnels_active of service app: (blue, green)."""
        r = self.api.get("/metrics")
        self.assertEqual(r.status, 200, r)
        m = parse_metrics(r.text)
        return tuple(sample(m, "switchyard_tunnels_active", service="app", slot=slot)
                     for slot in ("blue", "green"))

    def assert_tunnels(self, blue, green):
        poll(lambda: self.tunnels() == (blue, green))
        self.assertEqual(self.tunnels(), (blue, green), "switchyard_tunnels_active (blue, green)")

    def close(self, c):
        """The client's closing handshake, then its socket."""
        self.assertEqual(c.close(1000), struct.pack("!H", 1000))
        c.sock.close()

    def assert_going_away(self, c, since, app, closes=1):
        """c gets a close 1001 (unmasked) not before DRAIN_MS after since,
        then the end of the stream; app got a masked close 1001 (closes of
        them in all). The client answers the close, as clients do, and closes."""
        c.sock.settimeout(CLOSE_DEADLINE_S)
        self.assertEqual(read_frame(c.reader), (websocket.CLOSE, False, GOING_AWAY))
        self.assertGreaterEqual(time.monotonic() - since, DRAIN_MS / 1000 - 0.05)
        try:
            c.send(websocket.CLOSE, GOING_AWAY)
        except OSError:
            pass                # the gateway may be gone already
        self.assertTrue(c.closed_by_peer(timeout=5))
        c.sock.close()
        self.assertTrue(poll(lambda: app.close_frames().count((True, GOING_AWAY)) >= closes),
                        app.close_frames())

    def test_switch_closes_old_tunnels_after_the_drain(self):
        self.gateway()
        old = [self.open(self.blue) for _ in range(3)]
        self.assert_tunnels(3, 0)
        switched = time.monotonic()
        self.post("switch", {"to": "green"})
        new = self.open(self.green)
        for c in old:
            self.echoes(c)      # before the drain, old tunnels still work
        self.assert_tunnels(3, 1)
        for i, c in enumerate(old):
            self.assert_going_away(c, switched, self.blue, closes=i + 1)
        self.assertEqual(self.blue.close_frames(), [(True, GOING_AWAY)] * 3)
        self.echoes(new)
        self.assert_tunnels(0, 1)
        self.close(new)
        self.assert_tunnels(0, 0)
        self.assertEqual(self.green.close_frames(), [(True, struct.pack("!H", 1000))])

    def test_no_drain_by_default(self):
        self.gateway(drain_ms=None)
        c = self.open(self.blue)
        self.post("switch", {"to": "green"})
        time.sleep(DRAIN_MS / 1000 + 1.5)   # past a drain and a sweep: nothing may happen
        self.echoes(c)
        self.assert_tunnels(1, 0)
        self.assertEqual(self.blue.close_frames(), [])

    def test_switching_back_before_the_deadline_keeps_them(self):
        self.gateway()
        c = self.open(self.blue)
        self.post("switch", {"to": "green"})
        on_green = self.open(self.green)
        back = time.monotonic()
        self.post("switch", {"to": "blue"})
        # the green tunnel's slot lost its traffic in turn
        self.assert_going_away(on_green, back, self.green)
        self.echoes(c)
        time.sleep(0.5)
        self.echoes(c)
        self.assert_tunnels(1, 0)
        self.assertEqual(self.blue.close_frames(), [])

    def test_rollback_by_canary_weight_closes_canary_tunnels(self):
        self.gateway()
        on_blue = self.open(self.blue)
        self.post("canary", {"weight": 100})
        on_green = self.open(self.green)
        self.assert_tunnels(1, 1)
        time.sleep(0.3)     # a weight above 0 is no loss: nothing is due
        self.echoes(on_green)
        rolled_back = time.monotonic()
        self.post("canary", {"weight": 0})
        self.close(self.open(self.blue))
        self.echoes(on_green)
        self.assert_going_away(on_green, rolled_back, self.green)
        self.echoes(on_blue)
        self.assert_tunnels(1, 0)
        self.assertEqual(self.blue.close_frames(), [(True, struct.pack("!H", 1000))])

    def test_close_waits_for_the_end_of_a_frame(self):
        self.gateway()
        c = self.open(self.blue)
        size = 1 << 20
        c.send(websocket.TEXT, b"big %d" % size)
        c.sock.settimeout(CLOSE_DEADLINE_S)
        while len(c.reader.buf) < 4096:     # the gateway is inside the frame
            d = c.sock.recv(65536)
            self.assertTrue(d)
            c.reader.buf += d
        switched = time.monotonic()
        self.post("switch", {"to": "green"})
        # the app sends the rest only after the gateway's close reached it
        self.assertEqual(read_frame(c.reader), (websocket.BINARY, False, pattern(size)))
        self.assert_going_away(c, switched, self.blue)
        self.assertEqual(self.blue.close_frames(), [(True, GOING_AWAY)])


if __name__ == "__main__":
    unittest.main()
