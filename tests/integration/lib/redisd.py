# SPDX-License-Identifier: BSD-2-Clause
"""A real redis-server for a test, on a free loopback port, and a small
RESP client to talk to it (python3 standard library only).

    with redisd.RedisServer(password="pw") as r:
        cfg["redis"] = {"url": r.url(db=1)}
        ...
        r.command("SET", "k", "v")         # -> b"OK"
        r.calls("evalsha")                 # INFO commandstats: calls so far
        r.kill(); r.start()                # an outage, then the same port again
        r.pause(); r.resume()              # SIGSTOP / SIGCONT: a Redis that hangs

    RedisServer(debug=True)                # DEBUG SLEEP allowed (Redis 7 refuses it by default)
    with redisd.Relay(r.port) as relay:    # a TCP relay in front: relay.port for the URL
        relay.blackhole()                  # its connections go silent, still open

No persistence (--save "" --appendonly no): a restart starts empty, as a
failover to a replica that lacks the scripts would. available() tells
whether redis-server is installed (configure --install-deps installs it).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from . import ports

HOST = "127.0.0.1"


class RedisError(Exception):
    """An error reply (-ERR ...) from the server."""


def available():
    """Whether redis-server is on PATH."""
    return shutil.which("redis-server") is not None


def version():
    """redis-server's version as a tuple of ints, (0,) when unknown."""
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return (0,)
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("bad RESP line %r" % line)


class Connection:
    """One client connection (AUTH'd when the server has a password)."""

    def __init__(self, port, password=None, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.reader = _Reader(self.sock)
        if password:
            self.command("AUTH", password)

    def command(self, *args):
        self.sock.sendall(_encode(args))
        return self.reader.reply()

    def close(self):
        self.sock.close()


class RedisServer:
    """redis-server --port PORT on 127.0.0.1, as a context manager.

    password: --requirepass; extra: more arguments; wrapper: a command
    prefix (the benchmark pins it: ["taskset", "-c", "1"]); debug: allow
    DEBUG (SLEEP: a Redis that answers late), which Redis 7 refuses unless
    started with --enable-debug-command (older ones allow it anyway). The
    port stays the same across stop()/kill() and start(), so a gateway's URL
    stays valid.
    """

    def __init__(self, port=None, password=None, extra=(), wrapper=(), debug=False):
        self.port = port or ports.free_port()
        self.password = password
        self.extra = list(extra)
        if debug and version() >= (7,):
            self.extra += ["--enable-debug-command", "yes"]
        self.wrapper = list(wrapper)
        self.tmp = tempfile.mkdtemp(prefix="sy-redis-")
        self.proc = None
        self.paused = False

    def url(self, db=0, password=None):
        """redis://[:password@]127.0.0.1:PORT/db (the server's password unless given)."""
        pw = self.password if password is None else password
        auth = ":%s@" % pw if pw else ""
        return "redis://%s%s:%d/%d" % (auth, HOST, self.port, db)

    def start(self, timeout=10.0):
        cmd = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
               "--appendonly", "no", "--dir", self.tmp,
               "--logfile", os.path.join(self.tmp, "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(self.wrapper + cmd + self.extra, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.paused = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.command("PING") == b"PONG":
                    return self
            except (OSError, RedisError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s" % self.proc.returncode)
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server on port %d did not answer" % self.port)
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def connect(self, timeout=5.0):
        """A Connection of its own (for MONITOR-like or pipelined use)."""
        return Connection(self.port, self.password, timeout)

    def command(self, *args, timeout=5.0):
        """One command on a fresh connection; the reply (bytes, int, list, None)."""
        c = Connection(self.port, self.password, timeout)
        try:
            return c.command(*args)
        finally:
            c.close()

    def info(self, section):
        """INFO section as a dict of its key: value lines."""
        text = self.command("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith("#"))

    def commandstats(self):
        """INFO commandstats as {command (lower case, "script|load"): calls}."""
        return {key[len("cmdstat_"):]: int(value.split(",")[0].split("=")[1])
                for key, value in self.info("commandstats").items()
                if key.startswith("cmdstat_")}

    def calls(self, name=None):
        """Calls of one command (lower case) so far, or of all together."""
        stats = self.commandstats()
        return sum(stats.values()) if name is None else stats.get(name, 0)

    def pause(self):
        """SIGSTOP: the server holds its connections and answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        """SIGKILL, as a crash: connections drop at once."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class Relay:
    """A TCP relay on a free loopback port in front of 127.0.0.1:port: the
    proxy, balancer or NAT between a gateway and Redis. blackhole() makes
    every connection relayed so far silent both ways while it stays open (a
    peer gone without a FIN or a RST: a dead link the kernel does not
    notice, since the relay's own sockets still acknowledge); connections
    made afterwards are relayed as usual. accepted: connections so far."""

    def __init__(self, port):
        self.target = (HOST, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []             # [client, upstream, {"silent": bool}]
        self.accepted = 0
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                if self.closing:
                    return
                continue
            upstream.settimeout(None)
            state = {"silent": False}
            with self.lock:
                self.pairs.append((client, upstream, state))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, state), daemon=True).start()

    @staticmethod
    def _pump(src, dst, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not state["silent"]:
                    dst.sendall(data)
        except OSError:
            pass
        if not state["silent"]:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def blackhole(self):
        with self.lock:
            for _, _, state in self.pairs:
                state["silent"] = True

    def close(self):
        self.closing = True
        self.listener.close()
        with self.lock:
            for client, upstream, _ in self.pairs:
                client.close()
                upstream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
