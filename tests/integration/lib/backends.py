# SPDX-License-Identifier: BSD-2-Clause
"""App instances for tests: Testd runs build/testd; RawBackend records bytes.

Testd serves real traffic fast (the endpoints are listed in
tests/backend/testd.c: /, /health, /status/CODE, /delay/MS, /bytes/N,
/echo, /hang, /reset, /garbage, /close, /slow-body/MS, /stats).
RawBackend is a python server that keeps every byte each connection
received, so smuggling tests can assert exactly what the gateway forwarded.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time

from . import httpc, root_path

PATTERN_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/"


def pattern_bytes(n, offset=0):
    """Bytes [offset, offset + n) of the body testd's /bytes/N sends."""
    start = offset % 64
    reps = (start + n) // 64 + 1
    return (PATTERN_ALPHABET * reps)[start:start + n]


class Testd:
    """build/testd serving one or more ports, as a context manager.

        with Testd([(0, "blue"), (0, "green")]) as t:
            url = "http://127.0.0.1:%d/" % t.port(0)

    ports_and_names: items are a port (int, name "testd"), (port, name) or
    (port, name, faults) with faults a dict of testd's per-port options,
    e.g. {"fail": 20, "delay": 60}: the name endpoint answers 500 for 20 % of
    the requests (evenly spread) and every one after 60 ms;
    port 0 lets testd pick a free port (read back from its output, no race).
    threads: testd --threads N. taskset: e.g. "1" to pin it to CPU 1.
    """

    def __init__(self, ports_and_names, threads=None, binary=None, host="127.0.0.1",
                 taskset=None, start_timeout=5.0):
        self.binary = binary or root_path("build", "testd")
        self.host = host
        self.specs = [(p, "testd", {}) if isinstance(p, int)
                      else (int(p[0]), p[1], dict(p[2]) if len(p) > 2 else {})
                      for p in ports_and_names]
        self.threads = threads
        self.taskset = taskset
        self.start_timeout = start_timeout
        self.proc = None
        self.ports = []
        self.names = [name for _, name, _ in self.specs]

    def start(self):
        """Start testd and wait until every port listens."""
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("%s is missing: build it first (make)" % self.binary)
        cmd = ["taskset", "-c", str(self.taskset)] if self.taskset is not None else []
        cmd.append(self.binary)
        for port, name, faults in self.specs:
            opts = "".join(",%s=%d" % (k, int(v)) for k, v in sorted(faults.items()))
            cmd += ["--listen", "%s:%d=%s%s" % (self.host, port, name, opts)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.ports = self._read_ports()
        return self

    def _read_ports(self):
        """Ports from testd's "listening HOST:PORT name=NAME" lines, up to "ready"."""
        out, ports = b"", []
        deadline = time.monotonic() + self.start_timeout
        fd = self.proc.stdout.fileno()
        while b"testd: ready\n" not in out:
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                try:
                    self.proc.wait(1.0)     # stdout closed: it is exiting
                    err = self.proc.stderr.read()
                except subprocess.TimeoutExpired:
                    err = b"no \"ready\" line within %.1f s" % self.start_timeout
                self.stop()
                raise RuntimeError("testd did not start: %s" % err.decode(errors="replace"))
            out += chunk
        self.proc.stdout.close()
        for line in out.decode().splitlines():
            if line.startswith("testd: listening "):
                ports.append(int(line.split()[2].rsplit(":", 1)[1]))
        return ports

    def port(self, i=0):
        """Port of the i-th --listen."""
        return self.ports[i]

    def addr(self, i=0):
        """"HOST:PORT" of the i-th --listen, as a pool instance addr."""
        return "%s:%d" % (self.host, self.ports[i])

    def url(self, path="/", i=0):
        return "http://%s:%d%s" % (self.host, self.ports[i], path)

    def stats(self, port):
        """{"requests", "connections", "port", "instance"} of one port; the
        /stats request itself is counted in requests and connections."""
        status, _, body = httpc.get("http://%s:%d/stats" % (self.host, port))
        if status != 200:
            raise RuntimeError("testd /stats answered %s" % status)
        return json.loads(body)

    def stop(self, timeout=3.0):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f and not f.closed:
                f.close()
        return self.proc.returncode

    @property
    def pid(self):
        return self.proc.pid

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RawRequest:
    """One request as RawBackend framed it: raw (all its bytes), head (bytes
    up to and including the blank line), method, target, version, headers
    [(name, value)] (latin-1 str), body (de-chunked bytes), conn (RawConn)."""

    def __init__(self, raw, head, body, conn):
        self.raw, self.head, self.body, self.conn = raw, head, body, conn
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.method = parts[0]
        self.target = parts[1] if len(parts) > 1 else ""
        self.version = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name, value.strip(" \t")))

    def header(self, name, default=None):
        """First value of header name (case-insensitive), or default."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default


class RawConn:
    """One accepted connection: index (0, 1, ... in accept order), chunks
    (every recv() result, in order), closed (the peer closed), send(bytes),
    close(reset=False)."""

    def __init__(self, sock, index):
        self.sock, self.index = sock, index
        self.chunks = []
        self.closed = False
        self.pending = b""

    @property
    def data(self):
        return b"".join(self.chunks)

    def send(self, data):
        self.sock.sendall(data)

    def close(self, reset=False):
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def default_handler(req):
    """200 with Content-Length and body b"raw\\n"."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nraw\n"


def _split_request(buf):
    """(head, body, rest) for the first complete request in buf, or None.

    Framing is deliberately minimal: chunked when Transfer-Encoding contains
    "chunked", else Content-Length when it parses, else no body.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, rest = buf[:end + 4], buf[end + 4:]
    te, cl = "", None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "transfer-encoding":
            te += value.lower()
        elif name.strip().lower() == "content-length" and value.strip().isdigit():
            cl = int(value.strip())
    if "chunked" in te:
        return _split_chunked(head, rest)
    n = cl or 0
    if len(rest) < n:
        return None
    return head, rest[:n], rest[n:]


def _split_chunked(head, rest):
    body, pos = [], 0
    while True:
        eol = rest.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(rest[pos:eol].split(b";")[0].strip() or b"x", 16)
        except ValueError:
            size = 0    # unparseable: treat as the last chunk
        pos = eol + 2
        if size == 0:
            break
        if len(rest) < pos + size + 2:
            return None
        body.append(rest[pos:pos + size])
        pos += size + 2
    while True:         # trailers up to the blank line
        eol = rest.find(b"\r\n", pos)
        if eol < 0:
            return None
        pos, line = eol + 2, rest[pos:eol]
        if not line:
            return head, b"".join(body), rest[pos:]


class RawBackend:
    """A threaded TCP server that records every byte per connection.

        with RawBackend() as rb:                  # answers 200 "raw\\n"
            ... send through the gateway to rb.addr ...
            self.assertEqual(rb.received()[0], b"GET / HTTP/1.1\\r\\n...")

    handler(req: RawRequest) -> bytes to send (b"" sends nothing, None closes
    the connection without answering); it may also use req.conn.send/close.
    on_data(conn, data): optional, called for every recv() instead of the
    request framing (full control, e.g. answer before the body arrives).
    """

    def __init__(self, handler=None, on_data=None, host="127.0.0.1", port=0):
        self.handler = handler or default_handler
        self.on_data = on_data
        self.host = host
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (host, self.port)
        self.conns = []
        self.requests = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.running = True
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def received(self):
        """Bytes received on each connection, in accept order."""
        with self.lock:
            return [c.data for c in self.conns]

    def wait_requests(self, n, timeout=5.0):
        """Wait until n requests were framed; returns the list of RawRequest."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError("%d of %d requests arrived" % (len(self.requests), n))
            return list(self.requests)

    def wait_connections(self, n, timeout=5.0):
        """Wait until n connections were accepted; returns the RawConn list."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.conns) >= n, timeout):
                raise TimeoutError("%d of %d connections arrived" % (len(self.conns), n))
            return list(self.conns)

    def _accept_loop(self):
        while self.running:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            with self.cond:
                conn = RawConn(sock, len(self.conns))
                self.conns.append(conn)
                self.cond.notify_all()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                data = conn.sock.recv(65536)
                with self.cond:
                    if data:
                        conn.chunks.append(data)
                    else:
                        conn.closed = True
                    self.cond.notify_all()
                if not data:
                    return
                if self.on_data is not None:
                    self.on_data(conn, data)
                elif not self._answer(conn, data):
                    conn.close()
                    return
        except OSError:
            with self.cond:
                conn.closed = True
                self.cond.notify_all()

    def _answer(self, conn, data):
        """Frames and answers complete requests; False to close."""
        conn.pending += data
        while True:
            buf = conn.pending
            split = _split_request(buf)
            if split is None:
                return True
            head, body, conn.pending = split
            req = RawRequest(buf[:len(buf) - len(conn.pending)], head, body, conn)
            with self.cond:
                self.requests.append(req)
                self.cond.notify_all()
            out = self.handler(req)
            if out is None:
                return False
            if out:
                conn.send(out)

    def stop(self):
        """Close the listener and every connection."""
        self.running = False
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for c in list(self.conns):
            try:
                c.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
