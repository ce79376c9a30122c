# SPDX-License-Identifier: BSD-2-Clause
"""Load for reload and stop tests: keep-alive client threads that record
every request, a wrk wrapper, and the small gateway configuration those
tests share.

    with loadgen.Load("127.0.0.1", port, threads=4) as load:
        ...                     # reload, signal, switch
    result = load.result
    assert not result.failures, result.describe()

A request counts as failed when it gets no complete response, a response
other than `expect`, or a protocol error. A connection the gateway closes
after a complete response (Connection: close, or after a keep-alive limit)
is not a failure: the thread opens a new one, as every HTTP client does.
"""
import os
import re
import shutil
import subprocess
import threading
import time

from . import httpc, ports

H = "127.0.0.1"


_admin_ports = {}       # listener port -> its admin port


def minimal_config(port, pools, active=None, workers=2, **extra):
    """The gateway configuration of the lifecycle tests: one listener on
    127.0.0.1:port, pools {name: [addr, ...]}, service "svc" with slot blue
    on the first pool and green on the second (or the first again), one
    catch-all route, logs under {tmp}/logs. extra keys are added at the top
    level (e.g. shutdown_timeout_ms=500). The admin listener gets a free
    port (the default 127.0.0.1:9901 may be taken by another gateway), the
    same one for every configuration of this listener port, so that a
    reload to a new minimal_config does not move it."""
    names = list(pools)
    svc = {"blue": names[0], "green": names[1] if len(names) > 1 else names[0]}
    if active is not None:
        svc["active"] = active
    cfg = {
        "workers": workers,
        "listen": [{"addr": "%s:%d" % (H, port)}],
        "pools": {name: {"instances": [{"addr": a} for a in addrs]}
                  for name, addrs in pools.items()},
        "services": {"svc": svc},
        "routes": [{"host": "*", "path": "/", "service": "svc"}],
        "log": {"access": "{tmp}/logs/access.log", "security": "{tmp}/logs/security.log",
                "error": "{tmp}/logs/error.log"},
        "admin": {"listen": "%s:%d" % (H, _admin_ports.setdefault(port, ports.free_port()))},
    }
    cfg.update(extra)
    return cfg


class Outcome:
    """One request: start and end (time.monotonic()), status (None when
    no response came), body (bytes), error (text, None when it answered),
    reused (sent on a connection that had served a request before)."""

    __slots__ = ("start", "end", "status", "body", "error", "reused")

    def __init__(self, start, end, status, body, error, reused):
        self.start, self.end = start, end
        self.status, self.body, self.error, self.reused = status, body, error, reused

    def __repr__(self):
        return "<Outcome %s %r err=%r reused=%s at %.3f>" % (
            self.status, self.body[:40], self.error, self.reused, self.start)


class LoadResult:
    """Every Outcome of a Load, in completion order per thread."""

    def __init__(self, outcomes, expect):
        self.outcomes = outcomes
        self.expect = expect
        self.failures = [o for o in outcomes if o.error or o.status != expect]
        self.connections = 0

    def bodies(self):
        """{body: count} of the successful requests."""
        out = {}
        for o in self.outcomes:
            if not o.error and o.status == self.expect:
                out[o.body] = out.get(o.body, 0) + 1
        return out

    def describe(self, limit=10):
        """A short text for an assertion message."""
        return "%d requests on %d connections, %d failed: %s" % (
            len(self.outcomes), self.connections, len(self.failures), self.failures[:limit])


class Load:
    """threads client threads, each sending GET path on one keep-alive
    connection as fast as answers come, until stop() (or the `with` block
    ends). expect: the status that counts as success (default 200)."""

    def __init__(self, host, port, threads=4, path="/", expect=200, timeout=10.0,
                 headers=None):
        self.host, self.port = host, port
        self.nthreads = threads
        self.raw = httpc.build("GET", path, headers=headers)
        self.expect = expect
        self.timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes = []
        self._connections = 0
        self._threads = []
        self.result = None

    def start(self):
        for _ in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def count(self):
        """Requests completed so far (failed ones included)."""
        with self._lock:
            return len(self._outcomes)

    def wait_count(self, n, timeout=10.0):
        """Wait until n requests completed; True when they did."""
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self):
        """Stop the threads (each finishes its request in flight); returns
        the LoadResult, also kept in self.result."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        with self._lock:
            self.result = LoadResult(list(self._outcomes), self.expect)
            self.result.connections = self._connections
        return self.result

    def _record(self, outcome):
        with self._lock:
            self._outcomes.append(outcome)

    def _run(self):
        client, served = None, 0
        while not self._stop.is_set():
            if client is None:
                try:
                    client = httpc.Client(self.host, self.port, self.timeout)
                except OSError as e:
                    now = time.monotonic()
                    self._record(Outcome(now, now, None, b"", "connect: %r" % e, False))
                    time.sleep(0.01)
                    continue
                served = 0
                with self._lock:
                    self._connections += 1
            start = time.monotonic()
            try:
                resp = client.request(self.raw)
                err = None if resp is not None else "closed before a response byte"
            except (OSError, httpc.ProtocolError) as e:
                resp, err = None, repr(e)
            self._record(Outcome(start, time.monotonic(), resp.status if resp else None,
                                 resp.body if resp else b"", err, served > 0))
            served += 1
            if resp is None or resp.close_delimited or \
                    "close" in (resp.header("Connection") or "").lower():
                client.close()
                client = None
        if client is not None:
            client.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.result is None:
            self.stop()


WRK_LINE = {
    "requests": re.compile(r"^\s*(\d+) requests in"),
    "non_2xx": re.compile(r"Non-2xx or 3xx responses:\s*(\d+)"),
    "socket_errors": re.compile(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"),
}


def have_wrk():
    return shutil.which("wrk") is not None


def wrk(url, duration_s=3, threads=2, connections=8, timeout_s=5):
    """Run wrk against url; returns {"requests", "non_2xx", "connect",
    "read", "write", "timeout", "output"} (counts as ints)."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration_s,
           "--timeout", "%ds" % timeout_s, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30,
                          env=dict(os.environ, LC_ALL="C"))
    out = {"requests": 0, "non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
           "output": proc.stdout + proc.stderr}
    for line in proc.stdout.splitlines():
        m = WRK_LINE["requests"].match(line)
        if m:
            out["requests"] = int(m.group(1))
        m = WRK_LINE["non_2xx"].search(line)
        if m:
            out["non_2xx"] = int(m.group(1))
        m = WRK_LINE["socket_errors"].search(line)
        if m:
            for key, val in zip(("connect", "read", "write", "timeout"), m.groups()):
                out[key] = int(val)
    return out
