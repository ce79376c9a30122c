# SPDX-License-Identifier: BSD-2-Clause
"""A small RFC 6455 client and echo app (standard library only): enough to
drive a real WebSocket conversation through the gateway."""
import base64
import hashlib
import os
import socket
import struct
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def encode(opcode, payload, mask):
    """One final frame; clients mask (RFC 6455 5.3), servers do not."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + masked


class Reader:
    def __init__(self, sock, buf=b""):
        self.sock, self.buf = sock, buf

    def exact(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(max(65536, n - len(self.buf)))
            if not d:
                raise ConnectionError("closed after %d of %d bytes" % (len(self.buf), n))
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(opcode, payload) of the next frame, unmasking as needed."""
        b0, b1 = self.exact(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self.exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.exact(8))[0]
        key = self.exact(4) if b1 & 0x80 else None
        payload = self.exact(n)
        if key:
            payload = (int.from_bytes(payload, "big") ^
                       int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        return b0 & 0x0f, payload


class Client:
    """Connects through host:port and performs the opening handshake."""

    def __init__(self, host, port, path="/", timeout=5.0, extra_headers=()):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        lines = [b"GET %s HTTP/1.1" % path.encode(), b"Host: %s:%d" % (host.encode(), port),
                 b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Key: " + key, b"Sec-WebSocket-Version: 13"]
        lines += [("%s: %s" % h).encode() for h in extra_headers]
        self.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.sock.recv(4096)
            if not d:
                raise ConnectionError("closed during the handshake: %r" % buf)
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n")[0].decode()
        self.headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower().decode()] = value.strip().decode()
        self.accepted = self.headers.get("sec-websocket-accept", "").encode() == accept_key(key)
        self.reader = Reader(self.sock, rest)

    def send(self, opcode, payload):
        self.sock.sendall(encode(opcode, payload, mask=True))

    def recv(self):
        return self.reader.frame()

    def close(self, code=1000):
        """The closing handshake: returns the app's close frame payload."""
        self.send(CLOSE, struct.pack("!H", code))
        opcode, payload = self.recv()
        while opcode != CLOSE:
            opcode, payload = self.recv()
        return payload

    def closed_by_peer(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


class EchoApp:
    """A WebSocket app that echoes every data frame and answers close and ping."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.handshakes = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            self.handshakes.append(head)
            key = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            if not key:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
            reader = Reader(c, rest)
            try:
                while True:
                    opcode, payload = reader.frame()
                    if opcode == CLOSE:
                        c.sendall(encode(CLOSE, payload, mask=False))
                        return
                    if opcode == PING:
                        c.sendall(encode(PONG, payload, mask=False))
                    elif opcode in (TEXT, BINARY):
                        c.sendall(encode(opcode, payload, mask=False))
            except (ConnectionError, OSError):
                return

    def close(self):
        self.ls.close()
