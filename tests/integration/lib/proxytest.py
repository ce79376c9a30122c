# SPDX-License-Identifier: BSD-2-Clause
"""Shared pieces of the proxy-path tests (test_proxy_*.py).

    cfg = proxytest.config([td.addr(0)], workers=1)
    with gateway.Gateway(cfg) as gw:
        with proxytest.client(gw) as c:
            resp = c.request(build("GET", "/echo"))
            seen = proxytest.echo(resp)            # testd's /echo JSON

config() builds the minimal configuration of one listener, one service
"svc" (both slots on pool "p" unless told) and one catch-all route, with
every log under the gateway's temporary directory. The streaming helpers
move large bodies without holding them in memory; RssSampler watches the
gateway's resident memory while they run.
"""
import json
import socket
import threading
import time
import zlib

from . import backends, httpc, ports, procfs

H = "127.0.0.1"
LOGS = {"access": "{tmp}/logs/access.log", "security": "{tmp}/logs/security.log",
        "error": "{tmp}/logs/error.log"}


def config(instances=None, workers=1, pools=None, services=None, routes=None,
           pool_extra=None, **top):
    """A gateway configuration on a free port.

    instances: addrs of pool "p" (ignored when pools is given); pool_extra:
    keys merged into pool "p"; services default {"svc": blue=green="p"};
    routes default one "*" "/" route to "svc"; top: other top-level keys.
    """
    if pools is None:
        pools = {"p": dict({"instances": [{"addr": a} for a in instances]}, **(pool_extra or {}))}
    if services is None:
        services = {"svc": {"blue": "p", "green": "p"}}
    if routes is None:
        routes = [{"host": "*", "path": "/", "service": "svc"}]
    cfg = {"workers": workers, "listen": [{"addr": "%s:%d" % (H, ports.free_port())}],
           "pools": pools, "services": services, "routes": routes, "log": dict(LOGS)}
    cfg.update(top)
    return cfg


def client(gw, timeout=5.0):
    """An httpc.Client connected to the gateway's first listener."""
    host, port = gw.host_port()
    return httpc.Client(host, port, timeout)


def send(gw, raw, timeout=5.0):
    """httpc.request() to the gateway: (status, headers, body, closed)."""
    host, port = gw.host_port()
    return httpc.request(host, port, raw, timeout=timeout)


def once(gw, raw, timeout=5.0):
    """One request on a new connection, closed at once: the Response."""
    with client(gw, timeout) as c:
        return c.request(raw)


def echo(resp):
    """The JSON testd's /echo answered, from a Response or a body."""
    body = resp.body if isinstance(resp, httpc.Response) else resp
    return json.loads(body)


def echo_header(seen, name):
    """Every value of header name in an /echo report, in order."""
    return [v for n, v in seen["headers"] if n.lower() == name.lower()]


fd_count = procfs.fd_count
rss_kb = procfs.rss_kb


class RssSampler:
    """Samples a process's VmRSS every interval seconds in a thread.

        with RssSampler(gw.pid) as s:
            ... transfer ...
        growth = s.peak - s.first
    """

    def __init__(self, pid, interval=0.05):
        self.pid, self.interval = pid, interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(rss_kb(self.pid))
            except (OSError, ValueError):
                return
            self._stop.wait(self.interval)

    @property
    def first(self):
        return self.samples[0]

    @property
    def peak(self):
        return max(self.samples)

    def __enter__(self):
        self.samples.append(rss_kb(self.pid))
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pattern_crc32(n):
    """zlib.crc32 of testd's /bytes/N body, without building it whole."""
    block = backends.pattern_bytes(1 << 16)     # a multiple of the 64-byte period
    crc, left = 0, n
    while left >= len(block):
        crc = zlib.crc32(block, crc)
        left -= len(block)
    return zlib.crc32(block[:left], crc)


def send_pattern(sock, n, piece=1 << 18):
    """Sends n pattern bytes (as testd's /bytes) on sock; returns their crc32."""
    block = backends.pattern_bytes(piece)       # piece is a multiple of 64
    crc, left = 0, n
    view = memoryview(block)
    while left > 0:
        take = view[:min(left, piece)]
        sock.sendall(take)
        crc = zlib.crc32(take, crc)
        left -= len(take)
    return crc


def read_head(sock, limit=65536):
    """(status, headers dict lower-case, leftover bytes) of a response head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise httpc.ProtocolError("closed inside the head: %r" % buf[:200])
        buf += data
        if len(buf) > limit:
            raise httpc.ProtocolError("head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def read_counting(sock, n, first=b""):
    """Reads exactly n body bytes (first: bytes already read); returns crc32."""
    crc = zlib.crc32(first)
    got = len(first)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while got < n:
        k = sock.recv_into(view, min(len(buf), n - got))
        if k == 0:
            raise httpc.ProtocolError("closed after %d of %d body bytes" % (got, n))
        crc = zlib.crc32(view[:k], crc)
        got += k
    return crc


def read_to_close(sock):
    """Everything sock receives until the peer closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def connect(gw, timeout=10.0):
    host, port = gw.host_port()
    return socket.create_connection((host, port), timeout=timeout)


def wait_until(pred, timeout=5.0, interval=0.02):
    """Polls pred() until it is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
