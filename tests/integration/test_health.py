# SPDX-License-Identifier: BSD-2-Clause
"""Active health checks (SPEC.md pools.*.health) and what balancing does
with health: passive ejection and panic mode (issue 5).

Every instance's state is read from the security log's health_change
events (and, where the admin API answers, from GET /api/v1/pools); the
backends record what they were asked, when, and on which address.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, certs, gateway, httpc, loadgen, ports, proxytest  # noqa: E402

H = "127.0.0.1"


# ---- a recording app instance ---------------------------------------------------

class Record:
    """One request an AppBackend received: at (time.monotonic()), local
    (the address it was sent to, "IP:PORT"), path, head (bytes), conn (the
    connection's number, in accept order)."""

    def __init__(self, at, local, path, head, conn):
        self.at, self.local, self.path, self.head, self.conn = at, local, path, head, conn


class AppBackend:
    """A threaded HTTP/1.1 app that records every request.

    answer(path) decides: (status, body) answers (keep-alive unless the
    request said Connection: close, then it closes after the answer);
    "close" closes without answering; "hang" never answers. The default
    answers 200 "ok" on /health and 200 NAME elsewhere. host "0.0.0.0"
    takes every 127.0.0.X address; tls: an ssl.SSLContext (server side).
    """

    def __init__(self, answer=None, name="app", host=H, tls=None):
        self.answer = answer or (lambda path: (200, b"ok" if path == "/health" else name.encode()))
        self.name = name
        self.tls = tls
        self.records = []
        self.connections = 0
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (H, self.port)
        self.socks = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
                self.socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, n), daemon=True).start()

    def _serve(self, sock, n):
        try:
            local = "%s:%d" % sock.getsockname()[:2]
            if self.tls is not None:
                sock.settimeout(10)
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self.lock:
                    self.socks.append(sock)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                with self.lock:
                    self.records.append(Record(time.monotonic(), local, path, head + b"\r\n\r\n", n))
                if not self._respond(sock, head, path):
                    return
        except (OSError, ssl.SSLError, IndexError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _respond(self, sock, head, path):
        """Answers one request; False when the connection must end."""
        what = self.answer(path)
        if what == "close":
            return False
        if what == "hang":
            while self.running and sock.recv(65536):
                pass
            return False
        status, body = what
        close = b"connection: close" in head.lower()
        sock.sendall(("HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                      % (status, len(body), "Connection: close\r\n" if close else "")).encode()
                     + body)
        return not close

    def requests(self, path=None, local=None):
        """The Records so far, of path and address local when given."""
        with self.lock:
            return [r for r in self.records
                    if (path is None or r.path == path) and (local is None or r.local == local)]

    def count(self, path=None):
        return len(self.requests(path))

    def others(self):
        """Requests other than health checks."""
        return [r for r in self.requests() if r.path != "/health"]

    def stop(self):
        self.running = False
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- helpers ------------------------------------------------------------------------

def health(interval_ms=300, timeout_ms=200, rise=2, fall=2, **extra):
    return dict({"interval_ms": interval_ms, "timeout_ms": timeout_ms, "rise": rise,
                 "fall": fall}, **extra)


def config(pools, **top):
    """proxytest.config with pools {name: {...}}, "svc" on pool "p", and an
    admin listener of its own (the default 127.0.0.1:9901 may be taken)."""
    cfg = proxytest.config(pools=pools, **top)
    port = ports.free_port()
    while cfg["listen"][0]["addr"].endswith(":%d" % port):     # released twice: may repeat
        port = ports.free_port()
    cfg["admin"] = {"listen": "%s:%d" % (H, port)}
    return cfg


def pool(addrs, **extra):
    return dict({"instances": [{"addr": a} for a in addrs]}, **extra)


def parse_ts(ts):
    """Wall-clock seconds of a log "ts" (RFC 3339 UTC, milliseconds)."""
    t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + float("0" + ts[19:23])


def wait_until(pred, timeout, what, interval=0.02):
    """pred()'s first true value; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("after %.1f s: %s" % (timeout, what))
        time.sleep(interval)


class HealthCase(unittest.TestCase):
    def start(self, cfg):
        gw = gateway.Gateway(cfg)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        self.addCleanup(self.assert_clean_exit, gw)
        return gw

    def assert_clean_exit(self, gw):
        """A graceful stop exits 0 (under SY_GATEWAY_WRAPPER=valgrind
        --error-exitcode=99, also: no memory error, no leak)."""
        if gw.running():
            self.assertEqual(gw.stop(), 0, gw.stderr_text()[-3000:])

    def backend(self, *args, **kwargs):
        b = AppBackend(*args, **kwargs)
        self.addCleanup(b.stop)
        return b

    def start_testd(self, specs):
        td = backends.Testd(specs).start()
        self.addCleanup(td.stop)
        return td

    @staticmethod
    def events(gw, instance=None, health=None):
        """health_change events so far, of instance and to health when given."""
        return [e for e in gw.log_lines("security", timeout=0)
                if e.get("event") == "health_change"
                and (instance is None or e.get("instance") == instance)
                and (health is None or e.get("health") == health)]

    def wait_event(self, gw, instance, health, timeout=5.0, after=0):
        """The first health_change of instance to health beyond the first
        `after` such events."""
        def found():
            evs = self.events(gw, instance, health)
            return evs[after] if len(evs) > after else None
        return wait_until(found, timeout, "no health_change of %s to %s; events: %s"
                          % (instance, health, self.events(gw)))

    @staticmethod
    def error_text(gw):
        try:
            with open(gw.log_path("error")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_error_log(self, gw, needle, timeout=5.0, count=1):
        return wait_until(lambda: self.error_text(gw).count(needle) >= count and
                          self.error_text(gw), timeout, "%r not in the error log:\n%s"
                          % (needle, self.error_text(gw)))

    @staticmethod
    def admin_instances(gw):
        """{(pool, addr): instance} from GET /api/v1/pools, or None when the
        admin API does not answer it (yet)."""
        host, _, port = gw.config["admin"]["listen"].rpartition(":")
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/api/v1/pools")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status != 200:
                return None
            doc = json.loads(body)
            return {(p["name"], i["addr"]): i for p in doc["pools"] for i in p["instances"]}
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            return None

    def reload(self, gw, cfg):
        """Writes cfg, SIGHUP, waits for the "reloaded" line."""
        before = self.error_text(gw).count("reloaded")
        gw.write_config(cfg)
        gw.reload()
        self.wait_error_log(gw, "reloaded", count=before + 1)

    def get(self, gw, path="/"):
        status, _, body = httpc.get(gw.url(path))
        return status, body


# ---- states and results ------------------------------------------------------------

class TestStates(HealthCase):
    def test_unknown_goes_up_at_the_first_success(self):
        app = self.backend()
        gw = self.start(config({"p": pool([app.addr], health=health(interval_ms=500, rise=3))}))
        ev = self.wait_event(gw, app.addr, "up", timeout=3)
        self.assertEqual(ev["previous"], "unknown")
        self.assertEqual(ev["pool"], "p")
        self.assertEqual(ev["reason"], "status 200")
        text = self.wait_error_log(gw, "is up")
        self.assertIn("pool p instance %s is up (was unknown) after 1 passed check" % app.addr,
                      text)
        # the request, on a connection of its own per check
        checks = wait_until(lambda: len(app.requests("/health")) >= 2 and app.requests("/health"),
                            3, "a second check")
        self.assertEqual(checks[0].head, ("GET /health HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                                          "switchyard-health\r\nConnection: close\r\n\r\n"
                                          % app.addr).encode())
        self.assertEqual(len({r.conn for r in checks}), len(checks))
        inst = self.admin_instances(gw)
        if inst is not None:
            self.assertEqual(inst[("p", app.addr)]["health"], "up")
            self.assertEqual(inst[("p", app.addr)]["last_check"]["status"], 200)

    def test_fall_then_rise(self):
        state = {"status": 200, 200: 0, 500: 0}

        def answer(path):
            status = state["status"]
            state[status] += 1
            return status, b"x"
        app = self.backend(answer)
        gw = self.start(config({"p": pool([app.addr], health=health(interval_ms=300, fall=3,
                                                                      rise=2))}))
        self.wait_event(gw, app.addr, "up", timeout=3)
        state["status"] = 500
        ev = self.wait_event(gw, app.addr, "down", timeout=3 * 0.3 + 3)
        self.assertEqual(ev["previous"], "up")
        self.assertEqual(ev["reason"], "status 500")
        self.assertGreaterEqual(state[500], 3, "down before fall failures")
        self.assertIn("is down (was up) after 3 failed check(s) in a row: status 500",
                      self.wait_error_log(gw, "is down"))
        inst = self.admin_instances(gw)
        if inst is not None:
            self.assertEqual(inst[("p", app.addr)]["health"], "down")
            self.assertEqual(inst[("p", app.addr)]["last_check"]["error"], "status 500")
        ok_before = state[200]
        state["status"] = 200
        ev = self.wait_event(gw, app.addr, "up", timeout=2 * 0.3 + 3, after=1)
        self.assertEqual(ev["previous"], "down")
        self.assertGreaterEqual(state[200] - ok_before, 2, "up before rise successes")
        self.assertIn("is up (was down) after 2 passed check(s)",
                      self.wait_error_log(gw, "(was down)"))
        self.assertEqual(len(self.events(gw, app.addr)), 3, self.events(gw))


class TestFailureReasons(HealthCase):
    """Each way a check fails, with its reason; none disturbs the others."""

    def test_reasons(self):
        td = self.start_testd([(0, "ok")])
        closer = self.backend(lambda path: "close")
        refused = "%s:%d" % (H, ports.free_port())
        checks = {
            # pool: (instance, path, expect, health wanted, reason wanted)
            "p": (td.addr(), "/health", None, "up", "status 200"),
            "p500": (td.addr(), "/status/500", None, "down", "status 500"),
            "phang": (td.addr(), "/hang", None, "down",
                      "timed out after 300 ms waiting for the response"),
            "pslow": (td.addr(), "/delay/900", None, "down",
                      "timed out after 300 ms waiting for the response"),
            "pgarbage": (td.addr(), "/garbage", None, "down", "bad response: "),
            "pclose": (closer.addr, "/health", None, "down", "closed before a response"),
            "preset": (td.addr(), "/reset", None, "down", "connection reset before a response"),
            "prefused": (refused, "/health", None, "down", "connect refused"),
            "p418": (td.addr(), "/status/418", "200-299,418", "up", "status 418"),
            "p404": (td.addr(), "/status/404", "200-299,418", "down", "status 404"),
        }
        pools = {}
        for name, (addr, path, expect, _, _) in checks.items():
            h = health(interval_ms=500, timeout_ms=300, fall=1, rise=1, path=path)
            if expect:
                h["expect_status"] = expect
            pools[name] = pool([addr], health=h)
        gw = self.start(config(pools))
        for name, (addr, _, _, want, reason) in checks.items():
            ev = wait_until(lambda: [e for e in self.events(gw, addr) if e["pool"] == name],
                            5, "no health_change for pool %s" % name)[0]
            self.assertEqual(ev["health"], want, (name, ev))
            self.assertTrue(ev["reason"].startswith(reason), (name, ev))
            if name == "pgarbage":
                self.assertGreater(len(ev["reason"]), len(reason), ev)
        # the good instance serves all along, and never went down
        for _ in range(20):
            self.assertEqual(self.get(gw), (200, b"ok\n"))
        downs = [e for e in self.events(gw, td.addr(), "down") if e["pool"] in ("p", "p418")]
        self.assertEqual(downs, [])
        inst = self.admin_instances(gw)
        if inst is not None:
            for name, (addr, _, _, want, reason) in checks.items():
                last = inst[(name, addr)]["last_check"]
                if want == "down":
                    self.assertTrue((last["error"] or "").startswith(reason), (name, last))
        self.assertTrue(gw.running())


# ---- killed and restarted under load -------------------------------------------------------

class TestKillUnderLoad(HealthCase):
    INTERVAL_MS, TIMEOUT_MS, FALL, RISE = 500, 300, 2, 2

    def test_killed_instance_is_marked_down_and_comes_back(self):
        a = backends.Testd([(0, "a")]).start()
        self.addCleanup(lambda: a.stop())
        b = self.start_testd([(0, "b")])
        addr_a, port_a = a.addr(), a.port()
        h = health(interval_ms=self.INTERVAL_MS, timeout_ms=self.TIMEOUT_MS, fall=self.FALL,
                   rise=self.RISE)
        # passive health off: this is about the active checks (and retries)
        cfg = config({"p": pool([addr_a, b.addr()], health=h, retries=2,
                                passive={"max_fails": 0})}, workers=2)
        gw = self.start(cfg)
        self.wait_event(gw, addr_a, "up", timeout=3)
        self.wait_event(gw, b.addr(), "up", timeout=3)
        host, port = gw.host_port()
        with loadgen.Load(host, port, threads=4) as load:
            self.assertTrue(load.wait_count(200), "the load did not run")
            killed_at = time.time()
            a.proc.kill()
            a.proc.wait()
            ev = self.wait_event(gw, addr_a, "down", timeout=10)
            took = parse_ts(ev["ts"]) - killed_at
            bound = (self.INTERVAL_MS * self.FALL + self.TIMEOUT_MS) / 1000.0
            self.assertLess(took, bound + 1.0, "down %.2f s after the kill" % took)
            self.assertEqual(ev["reason"], "connect refused")
            n = load.count()
            self.assertTrue(load.wait_count(n + 200), "the load stalled")
            # restarted on the same port: up again after rise successes
            a2 = backends.Testd([(port_a, "a")]).start()
            self.addCleanup(a2.stop)
            restarted_at = time.time()
            ev = self.wait_event(gw, addr_a, "up", timeout=10, after=1)
            self.assertEqual(ev["previous"], "down")
            back = parse_ts(ev["ts"]) - restarted_at
            self.assertGreater(back, (self.RISE - 1) * self.INTERVAL_MS / 1000.0 - 0.1,
                               "up %.2f s after the restart: before rise successes" % back)
            self.assertIn("is up (was down) after %d passed" % self.RISE,
                          self.error_text(gw))
            # and takes traffic again
            seen = a2.stats(port_a)["requests"]
            wait_until(lambda: a2.stats(port_a)["requests"] > seen + 20, 5,
                       "the restarted instance got no traffic")
        result = load.result
        self.assertFalse(result.failures, result.describe())
        self.assertGreater(len(result.outcomes), 400)
        bodies = result.bodies()
        self.assertIn(b"a\n", bodies)
        self.assertIn(b"b\n", bodies)


# ---- what balancing does with health ----------------------------------------------------------

class TestTraffic(HealthCase):
    def test_down_instance_gets_no_traffic(self):
        td = self.start_testd([(0, "a")])
        sick = self.backend(lambda path: (500, b"sick") if path == "/health" else (200, b"b\n"))
        gw = self.start(config({"p": pool([td.addr(), sick.addr],
                                          health=health(interval_ms=300, fall=1))}))
        self.wait_event(gw, sick.addr, "down", timeout=3)
        self.wait_event(gw, td.addr(), "up", timeout=3)
        before = td.stats(td.port())["requests"]
        for _ in range(30):
            self.assertEqual(self.get(gw), (200, b"a\n"))
        self.assertEqual(sick.others(), [], "a down instance got proxied requests")
        self.assertGreaterEqual(td.stats(td.port())["requests"] - before, 30)
        inst = self.admin_instances(gw)
        if inst is not None:
            self.assertEqual(inst[("p", sick.addr)]["state"], "down")
            self.assertEqual(inst[("p", td.addr())]["state"], "up")

    def test_panic_mode_serves_from_down_instances(self):
        sick = [self.backend(lambda path, n=n: (500, b"no") if path == "/health"
                             else (200, b"%d\n" % n)) for n in range(2)]
        gw = self.start(config({"p": pool([s.addr for s in sick],
                                          health=health(interval_ms=300, fall=1))}))
        for s in sick:
            self.wait_event(gw, s.addr, "down", timeout=3)
        bodies = set()
        for _ in range(10):
            status, body = self.get(gw)
            self.assertEqual(status, 200)
            bodies.add(body)
        self.assertEqual(bodies, {b"0\n", b"1\n"})
        self.assertIn("pool p has no usable instance: panic mode", self.wait_error_log(
            gw, "panic mode"))

    def test_passive_ejection_and_its_end(self):
        td = self.start_testd([(0, "a")])
        bad = self.backend(lambda path: (503, b"unavailable\n"))
        eject_ms = 1500
        gw = self.start(config({"p": pool([td.addr(), bad.addr],
                                          passive={"max_fails": 3, "eject_ms": eject_ms})}))
        statuses = []
        for _ in range(40):
            statuses.append(self.get(gw)[0])
            if self.events(gw, bad.addr, "ejected"):
                break
        ev = self.wait_event(gw, bad.addr, "ejected", timeout=3)
        ejected_at = time.monotonic()
        self.assertEqual(ev["pool"], "p")
        self.assertEqual(ev["eject_ms"], eject_ms)
        self.assertEqual(len(bad.others()), 3, "ejected after %d failures, not 3"
                         % len(bad.others()))
        self.assertIn(503, statuses)
        # ejected: every request goes to the other instance
        n = len(bad.others())
        while time.monotonic() - ejected_at < eject_ms / 1000.0 - 0.5:
            self.assertEqual(self.get(gw), (200, b"a\n"))
        self.assertEqual(len(bad.others()), n, "an ejected instance got a request")
        # after eject_ms it takes requests again
        def back():
            self.get(gw)
            return len(bad.others()) > n
        wait_until(back, eject_ms / 1000.0 + 3, "the instance never got traffic back")
        first_back = bad.others()[n].at
        self.assertGreater(first_back - ejected_at, eject_ms / 1000.0 - 0.3)


# ---- reloads ----------------------------------------------------------------------------------

class TestReload(HealthCase):
    def test_reload_without_health_stops_the_checks(self):
        app = self.backend()
        cfg = config({"p": pool([app.addr], health=health(interval_ms=200, timeout_ms=100))})
        gw = self.start(cfg)
        wait_until(lambda: app.count("/health") >= 3, 3, "no checks")
        cfg["pools"]["p"].pop("health")
        self.reload(gw, cfg)
        # a check in flight when the reload landed may still arrive: let it settle
        time.sleep(0.3)
        n = app.count("/health")
        # nothing for ten intervals (an absence: waiting is the test)
        time.sleep(2.0)
        self.assertEqual(app.count("/health"), n, "checks went on after the reload")
        self.assertEqual(self.get(gw), (200, b"app"))
        self.assertIn("checking 0 instance(s)", self.error_text(gw))

    def test_reload_without_health_brings_a_down_instance_up(self):
        app = self.backend(lambda path: (500, b"no") if path == "/health" else (200, b"b"))
        td = self.start_testd([(0, "a")])
        cfg = config({"p": pool([app.addr, td.addr()], health=health(interval_ms=200, timeout_ms=100, fall=1))})
        gw = self.start(cfg)
        self.wait_event(gw, app.addr, "down", timeout=3)
        cfg["pools"]["p"].pop("health")
        self.reload(gw, cfg)
        ev = self.wait_event(gw, app.addr, "up", timeout=3)
        self.assertEqual(ev["previous"], "down")
        self.assertEqual(ev["reason"], "health checks removed from the pool")
        wait_until(lambda: self.get(gw) == (200, b"b"), 3, "no traffic to it after the reload")

    def test_reload_cancels_checks_in_flight(self):
        td = self.start_testd([(0, "a")])
        # a check is in flight nearly all the time
        cfg = config({"p": pool([td.addr()], health=health(interval_ms=1000, timeout_ms=900,
                                                           path="/hang"))})
        gw = self.start(cfg)
        wait_until(lambda: td.stats(td.port())["connections"] >= 2, 3, "no check")
        fds = proxytest.fd_count(gw.pid)
        for i in range(6):
            if i % 2 == 0:
                cfg["pools"]["other"] = pool([td.addr()], health=health(path="/hang"))
            else:
                cfg["pools"].pop("other")
            self.reload(gw, cfg)
        wait_until(lambda: proxytest.fd_count(gw.pid) <= fds + 1, 3,
                   "descriptors leaked: %d before, %d after" % (fds, proxytest.fd_count(gw.pid)))
        self.assertEqual(self.get(gw), (200, b"a\n"))

    def rate(self, app, seconds):
        """/health requests app receives in the next `seconds` (a window: waiting is the test)."""
        n = app.count("/health")
        time.sleep(seconds)
        return app.count("/health") - n

    def test_reload_changing_the_interval(self):
        app = self.backend()
        cfg = config({"p": pool([app.addr], health=health(interval_ms=2000, timeout_ms=100))})
        gw = self.start(cfg)
        wait_until(lambda: app.count("/health") >= 1, 4, "no first check")
        cfg["pools"]["p"]["health"]["interval_ms"] = 200
        self.reload(gw, cfg)
        self.assertGreaterEqual(self.rate(app, 1.5), 5, "the shorter interval did not take")
        cfg["pools"]["p"]["health"]["interval_ms"] = 2000
        self.reload(gw, cfg)
        time.sleep(0.3)
        self.assertLessEqual(self.rate(app, 3.0), 3, "the longer interval did not take")

    def test_reload_keeps_the_phase(self):
        app = self.backend(host="0.0.0.0")
        addrs = ["127.0.0.%d:%d" % (i, app.port) for i in range(1, 6)]
        cfg = config({"p": pool(addrs, health=health(interval_ms=1000, timeout_ms=500))})
        gw = self.start(cfg)
        wait_until(lambda: all(len(app.requests("/health", a)) >= 2 for a in addrs), 5,
                   "not every instance was checked twice")
        cfg["pools"]["other"] = pool([addrs[0]])
        self.reload(gw, cfg)
        reloaded = time.monotonic()
        wait_until(lambda: all(any(r.at > reloaded + 0.5 for r in app.requests("/health", a))
                               for a in addrs), 4, "checks stopped after the reload")
        for a in addrs:
            times = [r.at for r in app.requests("/health", a)]
            gaps = [y - x for x, y in zip(times, times[1:])]
            self.assertGreater(min(gaps), 0.7, "%s checked again at once: gaps %s" % (a, gaps))


# ---- jitter -------------------------------------------------------------------------------------

class TestJitter(HealthCase):
    def test_checks_are_spread_and_keep_their_phase(self):
        app = self.backend(host="0.0.0.0")
        addrs = ["127.0.0.%d:%d" % (i, app.port) for i in range(1, 11)]
        gw = self.start(config({"p": pool(addrs, health=health(interval_ms=1000,
                                                                   timeout_ms=500))}))
        wait_until(lambda: all(len(app.requests("/health", a)) >= 5 for a in addrs), 10,
                   "not every instance was checked 5 times")
        first = sorted(app.requests("/health", a)[0].at for a in addrs)
        self.assertGreater(first[-1] - first[0], 0.3,
                           "the first checks came together: %s" % [t - first[0] for t in first])
        self.assertLess(first[-1] - first[0], 1.2, "a first check came after the first interval")
        for a in addrs:
            times = [r.at for r in app.requests("/health", a)][:5]
            gaps = [y - x for x, y in zip(times, times[1:])]
            for g in gaps:
                self.assertAlmostEqual(g, 1.0, delta=0.25, msg="%s: gaps %s" % (a, gaps))
            # the phase holds: no drift accumulates over the intervals
            self.assertAlmostEqual(times[4] - times[0], 4.0, delta=0.25,
                                   msg="%s drifted: %s" % (a, gaps))


# ---- TLS --------------------------------------------------------------------------------------------

class TestTLS(HealthCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sy-health-certs-")
        cls.ca = certs.CA(os.path.join(cls.dir, "ca"))
        cls.other_ca = certs.CA(os.path.join(cls.dir, "other"), name="Other CA")
        cls.leaf = cls.ca.issue("app", ["localhost", "IP:127.0.0.1"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls_backend(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.leaf.cert, self.leaf.key)
        return self.backend(tls=ctx)

    def test_tls_pool_is_checked_over_tls(self):
        app = self.tls_backend()
        by_name = "localhost:%d" % app.port
        td = self.start_testd([(0, "plain")])
        # a plain HTTP server answers a ClientHello with a 400 and closes
        plain = backends.RawBackend(on_data=lambda conn, data: (conn.send(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            conn.close()))
        self.addCleanup(plain.stop)
        # roomy: a TLS handshake under valgrind takes a while
        h = health(interval_ms=2000, timeout_ms=1800, fall=1)
        h_up = dict(h, fall=2)
        gw = self.start(config({
            "p": pool([app.addr], tls={"ca_file": self.ca.cert}, health=h_up),
            "byname": pool([by_name], tls={"ca_file": self.ca.cert}, health=h_up),
            "plain": pool([plain.addr], tls={"ca_file": self.ca.cert}, health=h),
            "waits": pool([td.addr()], tls={"ca_file": self.ca.cert}, health=h),
            "wrongca": pool([app.addr], tls={"ca_file": self.other_ca.cert}, health=h),
        }))
        for name, addr in (("p", app.addr), ("byname", by_name)):
            ev = self.wait_event_pool(gw, name, addr)[0]
            self.assertEqual((ev["health"], ev["reason"]), ("up", "status 200"), ev)
        heads = [r.head for r in app.requests("/health")]
        self.assertIn(("GET /health HTTP/1.1\r\nHost: %s\r\nUser-Agent: switchyard-health\r\n"
                       "Connection: close\r\n\r\n" % by_name).encode(), heads)
        ev = self.wait_event_pool(gw, "plain", plain.addr)[0]
        self.assertEqual(ev["health"], "down")
        self.assertTrue(ev["reason"].startswith("TLS handshake failed: "), ev)
        # testd waits for the end of a request head that never comes
        ev = self.wait_event_pool(gw, "waits", td.addr())[0]
        self.assertEqual((ev["health"], ev["reason"]),
                         ("down", "timed out after 1800 ms in the TLS handshake"), ev)
        ev = self.wait_event_pool(gw, "wrongca", app.addr)[0]
        self.assertEqual(ev["health"], "down")
        self.assertEqual(ev["reason"], "TLS handshake failed: certificate verify failed")
        self.assertEqual(self.get(gw), (200, b"app"))

    def wait_event_pool(self, gw, pool_name, addr):
        return wait_until(lambda: [e for e in self.events(gw, addr) if e["pool"] == pool_name],
                          8, "no health_change for %s in pool %s" % (addr, pool_name))


if __name__ == "__main__":
    unittest.main()
