# SPDX-License-Identifier: BSD-2-Clause
"""HTTP/2 toward clients (issue 12; SPEC.md listen[].http2, the access log's
"proto": "h2"), with real clients: curl --http2 (GET, large POST, bodies of
unknown length, --parallel), h2load (many streams on few connections), and
a frame-level client (lib/h2raw.py) for what a well-behaved client never
sends: malformed heads, floods, a reader that stops. Each stream is a
request through the same phases as HTTP/1.1 (routing, split, stickiness,
the HTTP/1.1 keep-alive pool upstream, access log, metrics); malformed
requests are closed with the RFC's error code and never reach the app
(testd counts what it got); floods end the connection with GOAWAY and a
bad_request security-log line while everyone else is served; a switch and a
reload under h2load fail no stream; a reload and a graceful stop send GOAWAY
and let streams in flight finish; a slow reader of 1 GiB and 120 slow
streams hold bounded memory; 100-continue; the switchyard_h2_* counters.
Trailers: test_h2_trailers.py.
"""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, certs, gateway, h2raw, ports, proxytest  # noqa: E402
from lib.promtext import parse_metrics  # noqa: E402

H = "127.0.0.1"
MB = 1 << 20
TOKEN = "h2-token"
HAVE_CURL_H2 = shutil.which("curl") is not None and "HTTP2" in subprocess.run(
    ["curl", "--version"], capture_output=True, text=True).stdout
HAVE_H2LOAD = shutil.which("h2load") is not None


def h2_config(td, port=None, http2=None, active="blue", canary=None, limits=None, leaf=None,
              **top):
    """A gateway with one TLS listener (leaf's certificate), pools blue and
    green on testd's ports 0 and 1, service "app", one catch-all route."""
    listen = {"addr": "%s:%d" % (H, port or ports.free_port()),
              "tls": {"certificates": [{"cert": leaf.cert, "key": leaf.key}]}}
    if http2 is not None:
        listen["http2"] = http2
    svc = {"blue": "blue", "green": "green", "active": active,
           "canary": dict({"weight": 0}, **(canary or {}))}
    cfg = proxytest.config(
        workers=1,
        pools={"blue": {"instances": [{"addr": td.addr(0)}]},
               "green": {"instances": [{"addr": td.addr(1)}]}},
        services={"app": svc},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})
    cfg["listen"] = [listen]
    if limits:
        cfg["limits"] = limits
    cfg.update(top)
    return cfg


def curl(gw, *args, timeout=60):
    """curl --http2 against the gateway's TLS listener ("URL" in args is
    its https://localhost:PORT); (returncode, stdout bytes, stderr text)."""
    host, port = gw.host_port()
    cmd = ["curl", "--http2", "-k", "-sS", "--no-progress-meter", "--max-time", str(timeout),
           "--connect-to", "localhost:%d:%s:%d" % (port, host, port)]
    proc = subprocess.run(cmd + [a.replace("URL", "https://localhost:%d" % port) for a in args],
                          capture_output=True, timeout=timeout + 10)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def h2load(gw, n, clients, streams, path="/", extra=()):
    """Runs h2load (n None: no -n, for a timed run with -D in extra); returns
    (output text, {"succeeded", "failed", "errored", "2xx"})."""
    host, port = gw.host_port()
    count = ["-n", str(n)] if n is not None else []
    proc = subprocess.run(["h2load"] + count + ["-c", str(clients), "-m", str(streams)] +
                          list(extra) + ["https://%s:%d%s" % (host, port, path)],
                          capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr, parse_h2load(proc.stdout)


def h2_counters(gw, family):
    """A switchyard_h2_* counter family from /metrics: {label value: count}."""
    status, _, body = _http_get(gw.admin_url("/metrics"))
    fam = parse_metrics(body.decode())[family]
    return {list(labels.values())[0]: v for labels, v in fam["samples"]}


def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items()}


def parse_h2load(out):
    counts = {}
    for line in out.splitlines():
        if line.startswith("requests:"):
            for part in line[len("requests:"):].split(","):
                value, _, name = part.strip().partition(" ")
                counts[name] = int(value)
        elif line.startswith("status codes:"):
            for part in line[len("status codes:"):].split(","):
                value, _, name = part.strip().partition(" ")
                counts[name] = int(value)
    return counts


def sanitized(gw):
    """An ASan build: its quarantine keeps freed memory resident, so no
    RSS bound holds (the transfers are still checked)."""
    with open(gw.binary, "rb") as f:
        return b"__asan_init" in f.read()


def served_requests(td, i):
    """Requests testd's port i served (with the /stats requests that asked:
    the count between two calls is the difference less one)."""
    return td.stats(td.port(i))["requests"]


@unittest.skipUnless(h2raw.AVAILABLE, "python3-h2 (hpack, hyperframe) is not installed")
class H2Case(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sy-h2-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.ca = certs.CA(cls.tmp)
        cls.leaf = cls.ca.issue("lo", ["localhost", "IP:127.0.0.1"])
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    @classmethod
    def start(cls, cfg):
        gw = admin.start_gateway(cfg, tokens=[TOKEN])
        return gw

    def gateway(self, **kw):
        gw = self.start(h2_config(self.td, leaf=self.leaf, **kw))
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def raw(self, gw, **kw):
        c = h2raw.Client(gw.host_port()[1], **kw)
        self.addCleanup(c.close)
        return c

    def get(self, c, path="/", fields=()):
        r = c.response(c.request("GET", path, fields=fields))
        self.assertEqual(r.status, 200, r)
        return r


class TestServing(H2Case):
    """One gateway for the class: the well-behaved client's view."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw = cls.start(h2_config(cls.td, leaf=cls.leaf, limits={"max_body_bytes": 64 * MB}))
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def test_alpn_offers_h2_and_http11(self):
        for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
            with self.subTest(offered=offered):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                ctx.set_alpn_protocols(offered)
                with socket.create_connection(self.gw.host_port(), timeout=5) as raw, \
                        ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    self.assertEqual(s.selected_alpn_protocol(), chosen)
                    if chosen == "http/1.1":
                        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        data = proxytest.read_to_close(s)
                        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)

    @unittest.skipUnless(HAVE_CURL_H2, "curl without HTTP/2")
    def test_curl_get_and_access_log(self):
        rc, out, err = curl(self.gw, "-D", "-", "URL/?q=1", "-H", "User-Agent: h2-test")
        self.assertEqual(rc, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/2 200"), out)
        self.assertEqual(body, b"blue\n")
        names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
        self.assertIn(b"x-request-id", names)
        self.assertEqual([n for n in names if n != n.lower()], [])
        deadline = time.monotonic() + 5
        while True:     # the log is written off the event loop: wait for our line
            lines = [l for l in self.gw.access_log_lines() if l["user_agent"] == "h2-test"]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 1, lines)
        line = lines[0]
        self.assertEqual((line["proto"], line["tls"], line["method"], line["path"], line["status"],
                          line["host"], line["user_agent"], line["slot"], line["pool"]),
                         ("h2", True, "GET", "/", 200, "localhost:%d" % self.gw.host_port()[1],
                          "h2-test", "blue", "blue"))
        self.assertEqual(len(line["request_id"]), 32)

    @unittest.skipUnless(HAVE_CURL_H2, "curl without HTTP/2")
    def test_post_large_body(self):
        body = os.urandom(8 * MB)
        path = os.path.join(self.tmp, "post.bin")
        with open(path, "wb") as f:
            f.write(body)
        rc, out, err = curl(self.gw, "--data-binary", "@" + path, "-H", "Content-Type: x/y",
                       "URL/echo")
        self.assertEqual(rc, 0, err)
        seen = proxytest.echo(out)
        self.assertEqual((seen["method"], seen["body_bytes"], seen["body_crc32"],
                          seen["body_chunked"]), ("POST", len(body), zlib.crc32(body), False))
        self.assertEqual(seen["version"], "HTTP/1.1")
        names = [n.lower() for n, _ in seen["headers"]]
        self.assertEqual(names.count("host"), 1)
        self.assertIn("content-length", names)

    def test_body_of_unknown_length_goes_upstream_chunked(self):
        c = self.raw(self.gw)
        body = os.urandom(300 * 1024)
        sid = c.request("PUT", "/upload", end_stream=False)
        c.send_body(sid, body)
        r = c.response(sid)
        self.assertEqual(r.status, 200, r)
        seen = proxytest.echo(r.body)
        self.assertEqual((seen["method"], seen["body_bytes"], seen["body_crc32"],
                          seen["body_chunked"]), ("PUT", len(body), zlib.crc32(body), True))

    @unittest.skipUnless(HAVE_CURL_H2, "curl without HTTP/2")
    def test_large_and_chunked_downloads(self):
        for path, n in (("/bytes/%d" % (20 * MB), 20 * MB),
                        ("/bytes/%d?chunked=1" % (3 * MB), 3 * MB)):
            with self.subTest(path=path):
                rc, out, err = curl(self.gw, "-D", "-", "URL" + path)
                self.assertEqual(rc, 0, err)
                head, _, body = out.partition(b"\r\n\r\n")
                self.assertNotIn(b"transfer-encoding", head.lower())
                self.assertEqual(len(body), n)
                self.assertEqual(hashlib.sha1(body).digest(),
                                 hashlib.sha1(backends.pattern_bytes(n)).digest())

    @unittest.skipUnless(HAVE_CURL_H2, "curl without HTTP/2")
    def test_parallel_requests_share_a_connection(self):
        args = ["--parallel", "--parallel-max", "50", "-w", "%{http_code} %{http_version} "
                "%{num_connects}\n"]
        for i in range(200):
            args += ["URL/bytes/%d" % (100 + i), "-o", "/dev/null"]
        rc, out, err = curl(self.gw, *args)
        self.assertEqual(rc, 0, err)
        lines = out.decode().split("\n")[:-1]
        self.assertEqual(len(lines), 200, out[-500:])
        self.assertEqual({l.split()[0] for l in lines}, {"200"})
        self.assertEqual({l.split()[1] for l in lines}, {"2"})
        self.assertLessEqual(sum(int(l.split()[2]) for l in lines), 5)

    @unittest.skipUnless(HAVE_H2LOAD, "h2load (nghttp2-client) is not installed")
    def test_h2load_many_streams_on_few_connections(self):
        before = served_requests(self.td, 0)
        out, counts = h2load(self.gw, 6000, 3, 64)
        self.assertEqual((counts.get("succeeded"), counts.get("failed"), counts.get("errored"),
                          counts.get("2xx")), (6000, 0, 0, 6000), out[-1500:])
        self.assertEqual(served_requests(self.td, 0) - before - 1, 6000)

    def test_response_head_translation(self):
        """Upper-case names from the app arrive lower case; hop-by-hop ones go."""
        def handler(req):
            return (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-App-Header: Yes\r\n"
                    b"Connection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n"
                    b"X-Private: secret\r\nProxy-Connection: keep-alive\r\n\r\nabc")
        with backends.RawBackend(handler) as rb:
            cfg = proxytest.config([rb.addr])
            cfg["listen"] = [{"addr": "%s:%d" % (H, ports.free_port()),
                              "tls": {"certificates": [{"cert": self.leaf.cert,
                                                        "key": self.leaf.key}]}}]
            with gateway.Gateway(cfg) as gw:
                c = h2raw.Client(gw.host_port()[1])
                r = self.get(c, "/a?b=c", fields=[("cookie", "a=1"), ("x-in", "v"),
                                                  ("cookie", "b=2")])
                c.close()
                names = [n for n, _ in r.headers]
                self.assertEqual(r.body, b"abc")
                self.assertEqual(r.header("x-app-header"), "Yes")
                self.assertEqual([n for n in names if n != n.lower()], [])
                for gone in ("connection", "keep-alive", "x-private", "proxy-connection",
                             "transfer-encoding"):
                    self.assertNotIn(gone, names)
                req = rb.wait_requests(1)[0]
        self.assertEqual((req.method, req.target, req.version), ("GET", "/a?b=c", "HTTP/1.1"))
        self.assertEqual(req.header("host"), "localhost")
        self.assertEqual(req.header("cookie"), "a=1; b=2")     # RFC 9113 8.2.3
        self.assertEqual(len([n for n, _ in req.headers if n.lower() == "cookie"]), 1)
        self.assertEqual(req.header("x-in"), "v")
        self.assertEqual(req.header("x-forwarded-proto"), "https")

    def test_head_and_local_responses(self):
        c = self.raw(self.gw)
        r = c.response(c.request("HEAD", "/bytes/1000"))
        self.assertEqual((r.status, r.body, r.header("content-length")), (200, b"", "1000"))
        # answered before its body: then RST_STREAM NO_ERROR asks the client to stop (8.1)
        sid = c.request("POST", "/", fields=[("content-length", str(1 << 40))], end_stream=False)
        r = c.response(sid)
        self.assertEqual((r.status, r.header("content-type")), (413, "application/json"), r)
        self.assertIn(b'"request_id"', r.body)
        c.pump(lambda: r.reset is not None, 5)
        self.assertEqual(r.reset, h2raw.NO_ERROR)
        self.get(c)         # the connection serves on

    def test_slow_reader_holds_bounded_memory_and_others_move(self):
        c = self.raw(self.gw)
        self.get(c)
        rss0 = self.gw.rss_kb()
        big = c.request("GET", "/bytes/%d" % (1 << 30))
        c.hold(big)                         # never gives this stream's window back
        c.pump(lambda: len(c.streams[big].body) >= 65535, 10)
        for _ in range(20):                 # others on the same connection keep moving
            self.get(c, "/bytes/5000")
        time.sleep(1.0)
        self.assertLess(len(c.streams[big].body), 1 * MB)
        self.assertLess(self.gw.rss_kb() - rss0, 4096)
        c.send(h2raw.rst(big, h2raw.CANCEL))
        self.get(c)

    def test_slow_reader_of_one_gib_keeps_rss_flat(self):
        """A client reading a 1 GiB download at about 40 MB/s (it gives the
        stream's window back at that pace, a MiB at a time) holds the
        gateway's memory flat: the app is read only as fast as the client
        takes the bytes. Bounded to take well under a minute."""
        n, rate, step = 1 << 30, 40 << 20, 1 << 20
        c = self.raw(self.gw)
        c.window_update(0, 1 << 30)     # the connection's window is not what paces it
        self.get(c)
        sid = c.request("GET", "/bytes/%d" % n)
        c.hold(sid)
        c.discard(sid)
        r = c.streams[sid]
        self.assertTrue(c.pump(lambda: r.received >= 65535, 10), r)
        started = time.monotonic()
        granted = 65535
        with proxytest.RssSampler(self.gw.pid, 0.1) as rss:
            while granted < n:
                # a MiB more once all but a MiB of what was granted came
                self.assertTrue(c.pump(lambda: r.received + step >= granted, 10), r)
                ahead = granted / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                more = min(step, n - granted)
                c.window_update(sid, more)
                granted += more
            self.assertTrue(c.pump(lambda: r.ended, 10), r)
        elapsed = time.monotonic() - started
        self.assertEqual((r.status, r.received, r.reset), (200, n, None), r)
        self.assertEqual(r.crc32, proxytest.pattern_crc32(n))
        growth = rss.peak - rss.first
        if not sanitized(self.gw):
            self.assertLess(growth, 4096, "RSS grew %d KiB over %d samples" % (growth,
                                                                              len(rss.samples)))
        self.assertLess(elapsed, 60)
        self.assertGreater(len(rss.samples), 100)

    def test_many_slow_streams_hold_bounded_memory(self):
        """120 downloads on one connection whose client reads none past its
        first window, then 120 uploads stalled half way: the gateway holds
        at most its per-stream bound each (h2.c: a head buffer, an upstream
        buffer, the request, about 46 KiB), and a stream on the same
        connection still moves meanwhile. Before the zero-copy response
        path and the staging that goes once forwarded it was 59 and 42 KiB
        a stream measured this way."""
        gw = self.gateway(limits={"max_body_bytes": 64 * MB})
        n, size, bound_kib = 120, 512 * 1024, 48
        c = self.raw(gw)
        c.window_update(0, 1 << 30)
        self.get(c)
        rss0 = gw.rss_kb()
        held = [c.request("GET", "/bytes/%d" % size) for _ in range(n)]
        for sid in held:
            c.hold(sid)
        self.assertTrue(c.pump(lambda: all(c.streams[s].received >= 65535 for s in held), 20))
        other = self.get(c, "/bytes/%d" % (2 * MB))        # moves past the held ones
        self.assertEqual(len(other.body), 2 * MB)
        time.sleep(0.5)
        growth = gw.rss_kb() - rss0
        if not sanitized(gw):
            self.assertLess(growth, n * bound_kib, "downloads: %d KiB for %d streams" % (growth, n))
        for sid in held:                    # the reader comes back: all of it arrives
            c.window_update(sid, size)
        for sid in held:
            r = c.response(sid, 20)
            self.assertEqual((r.status, r.received, r.reset), (200, size, None), r)

        rss0 = gw.rss_kb()
        body = os.urandom(96 * 1024)
        ups = [c.request("POST", "/echo", fields=[("content-length", str(len(body)))],
                         end_stream=False) for _ in range(n)]
        for sid in ups:
            c.send_body(sid, body[:48 * 1024], end_stream=False)
        time.sleep(0.5)
        growth = gw.rss_kb() - rss0
        if not sanitized(gw):
            self.assertLess(growth, n * bound_kib, "uploads: %d KiB for %d streams" % (growth, n))
        for sid in ups:
            c.send_body(sid, body[48 * 1024:])
        for sid in ups:
            r = c.response(sid, 20)
            self.assertEqual(r.status, 200, r)
            seen = proxytest.echo(r.body)
            self.assertEqual((seen["body_bytes"], seen["body_crc32"]),
                             (len(body), zlib.crc32(body)))

    def test_expect_100_continue(self):
        """The client waits for 100 before its body: the gateway sends it
        (an interim HEADERS frame) once the app is connected, and answers
        Expect itself (the app never sees it)."""
        c = self.raw(self.gw)
        body = os.urandom(200 * 1024)
        sid = c.request("POST", "/echo", end_stream=False,
                        fields=[("content-length", str(len(body))), ("expect", "100-continue")])
        r = c.streams[sid]
        self.assertTrue(c.pump(lambda: r.interim or r.status is not None, 5), r)
        self.assertEqual((r.interim, r.status), ([100], None))
        c.send_body(sid, body)
        r = c.response(sid)
        self.assertEqual((r.status, r.interim), (200, [100]), r)
        seen = proxytest.echo(r.body)
        self.assertEqual((seen["body_bytes"], seen["body_crc32"]), (len(body), zlib.crc32(body)))
        self.assertEqual(proxytest.echo_header(seen, "expect"), [])

    def test_expect_100_continue_refused_or_not_waited_for(self):
        """No 100 for a request answered before its body (413 here, then
        RST_STREAM NO_ERROR: the rest is not wanted); a client that sends
        its body without waiting is served (a 100 may still come: the head
        is dispatched before the DATA behind it is read)."""
        c = self.raw(self.gw)
        sid = c.request("POST", "/echo", end_stream=False,
                        fields=[("content-length", str(1 << 40)), ("expect", "100-continue")])
        r = c.response(sid)
        self.assertEqual((r.status, r.interim), (413, []), r)
        c.pump(lambda: r.reset is not None, 5)
        self.assertEqual(r.reset, h2raw.NO_ERROR)
        sid = c.request("POST", "/echo", end_stream=False,
                        fields=[("content-length", "5"), ("expect", "100-continue")])
        c.send_body(sid, b"hello")          # without waiting
        r = c.response(sid)
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.interim, ([], [100]))
        self.assertEqual(proxytest.echo(r.body)["body_bytes"], 5)

    def test_settings_advertise_the_limits(self):
        c = self.raw(self.gw)
        self.get(c)
        s = c.server_settings
        self.assertEqual(s.get(h2raw.hf.SettingsFrame.MAX_CONCURRENT_STREAMS), 128)
        self.assertEqual(s.get(h2raw.hf.SettingsFrame.ENABLE_PUSH), 0)

    def test_metrics_count_h2_requests(self):
        def count():
            status, _, body = _http_get(self.gw.admin_url("/metrics"))
            fam = parse_metrics(body.decode())["switchyard_http_requests_total"]
            return sum(v for labels, v in fam["samples"]
                       if labels.get("slot") == "blue" and labels.get("status") == "200")
        before = count()
        c = self.raw(self.gw)
        for _ in range(7):
            self.get(c)
        self.assertEqual(count() - before, 7)


class TestHostile(H2Case):
    """Malformed requests and floods: the RFC's error, nothing upstream, others served."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw = cls.start(h2_config(cls.td, leaf=cls.leaf))
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def bad_requests(self, gw, since=0, reason=None, timeout=5.0):
        """bad_request events after the first since; with reason, waits
        (the log is written off the event loop) until one has it."""
        deadline = time.monotonic() + timeout
        while True:
            events = [e for e in gw.log_lines("security")[since:] if e["event"] == "bad_request"]
            if reason is None or any(e["reason"] == reason for e in events) or \
                    time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def assert_served(self, gw):
        c = self.raw(gw)
        self.get(c)

    def test_malformed_heads_are_stream_errors(self):
        ok = [(":method", "GET"), (":scheme", "https"), (":path", "/"),
              (":authority", "localhost")]
        cases = {
            "uppercase name": (ok, [("X-Upper", "a")]),
            "second :path": (ok + [(":path", "/again")], []),
            "unknown pseudo-header": (ok + [(":foo", "1")], []),
            "pseudo after regular": (ok[:3], [("x-a", "1"), (":authority", "localhost")]),
            "no :path": ([p for p in ok if p[0] != ":path"], []),
            "empty :path": ([(":path", "") if n == ":path" else (n, v) for n, v in ok], []),
            "connection": (ok, [("connection", "keep-alive")]),
            "keep-alive": (ok, [("keep-alive", "timeout=5")]),
            "transfer-encoding": (ok, [("transfer-encoding", "chunked")]),
            "upgrade": (ok, [("upgrade", "websocket")]),
            "te other than trailers": (ok, [("te", "gzip")]),
            ":authority and host disagree": (ok, [("host", "other.example")]),
            "invalid name character": (ok, [("x y", "1")]),
            "newline in a value": (ok, [("x-a", "1\r\nx-b: 2")]),
        }
        since = len(self.gw.log_lines("security"))
        before = served_requests(self.td, 0)
        c = self.raw(self.gw)
        for name, (pseudo, fields) in cases.items():
            with self.subTest(case=name):
                r = c.response(c.request("GET", "/", pseudo=pseudo, fields=fields))
                self.assertEqual((r.status, r.reset), (None, h2raw.PROTOCOL_ERROR), r)
        self.get(c)                             # the same connection serves on
        self.assertEqual(served_requests(self.td, 0) - before - 1, 1)
        events = self.bad_requests(self.gw, since, "HTTP/2 :authority and Host disagree")
        self.assertGreaterEqual(len(events), len(cases) - 1, events)   # one may be summarised
        self.assertTrue(all(e.get("proto") == "h2" for e in events), events)
        self.assertTrue(any(e["reason"] == "HTTP/2 :authority and Host disagree"
                            for e in events), events)

    def test_header_list_too_large_is_431(self):
        # 30 KB of fields: a HEADERS frame and a CONTINUATION
        c = self.raw(self.gw)
        fields = [("x-big-%d" % i, os.urandom(500).hex()) for i in range(30)]
        r = c.response(c.request("GET", "/", fields=fields))
        self.assertEqual(r.status, 431, r)
        self.get(c)

    def flood(self, frames_of, reason):
        """On a gateway of its own, sends what frames_of(client) builds;
        expects GOAWAY ENHANCE_YOUR_CALM, the connection closed, one
        security-log line, others served. Returns how many requests reached
        the app."""
        gw = self.gateway()
        before = served_requests(self.td, 0)
        c = self.raw(gw)
        try:
            c.send(*frames_of(c))
        except (ConnectionError, ssl.SSLError):
            pass                    # closed while we still sent: the GOAWAY was read first
        self.assertEqual(c.goaway_code(), h2raw.ENHANCE_YOUR_CALM)
        self.assertTrue(c.wait_closed(10))
        reached = served_requests(self.td, 0) - before - 1
        self.assert_served(gw)
        events = self.bad_requests(gw, 0, reason)
        self.assertEqual([e["reason"] for e in events], [reason])
        self.assertEqual(events[0]["proto"], "h2")
        goaways = h2_counters(gw, "switchyard_h2_goaway_total")
        self.assertEqual((goaways["flood"], sum(goaways.values())), (1, 1), goaways)
        return reached

    def test_rapid_reset(self):
        def frames(c):
            out = []
            for _ in range(1000):
                sid = c.new_sid()
                out += [c.headers_frame(sid, [(":method", "GET"), (":scheme", "https"),
                                              (":path", "/"), (":authority", "localhost")]),
                        h2raw.rst(sid, h2raw.CANCEL)]
            return out
        reached = self.flood(frames, "HTTP/2 rapid reset")
        self.assertLessEqual(reached, 256)  # the reset budget: twice max_concurrent_streams

    def test_continuation_flood(self):
        def frames(c):
            sid = c.new_sid()
            out = [c.headers_frame(sid, [(":method", "GET"), (":scheme", "https"),
                                         (":path", "/"), (":authority", "localhost")],
                                   end_headers=False)]
            for i in range(200):
                f = h2raw.hf.ContinuationFrame(sid)
                f.data = c.enc.encode([(b"x-c-%d" % i, b"v" * 50)])
                out.append(f)
            return out
        self.assertEqual(self.flood(frames, "HTTP/2 CONTINUATION flood"), 0)

    def test_ping_flood(self):
        def frames(c):
            out = []
            for _ in range(5000):
                p = h2raw.hf.PingFrame(0)
                p.opaque_data = b"12345678"
                out.append(p)
            return out
        self.flood(frames, "HTTP/2 control frame flood")

    def test_settings_flood(self):
        def frames(c):
            return [h2raw.hf.SettingsFrame(0) for _ in range(5000)]
        self.flood(frames, "HTTP/2 control frame flood")

    def test_empty_data_flood(self):
        def frames(c):
            sid = c.new_sid()
            out = [c.headers_frame(sid, [(":method", "POST"), (":scheme", "https"),
                                         (":path", "/hang"), (":authority", "localhost")],
                                   end_stream=False)]
            return out + [h2raw.hf.DataFrame(sid) for _ in range(5000)]
        self.flood(frames, "HTTP/2 control frame flood")

    def test_not_http2_after_alpn_h2(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(self.gw.host_port(), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionError, ssl.SSLError):
                pass
        self.assertNotIn(b"HTTP/1.1 200", data)
        self.assert_served(self.gw)


class TestTraffic(H2Case):
    """Split, stickiness, switch, reload and stop over HTTP/2."""

    def test_canary_split_within_three_points(self):
        gw = self.gateway()
        api = admin.Admin(gw, token=TOKEN)
        api.post("/api/v1/services/app/canary", {"weight": 10})
        c = self.raw(gw)
        green, n = 0, 3000
        for batch in range(n // 100):       # 100 streams in flight at a time
            sids = [c.request("GET", "/") for _ in range(100)]
            for sid in sids:
                r = c.response(sid)
                self.assertEqual(r.status, 200, r)
                green += r.body == b"green\n"
        share = 100.0 * green / n
        self.assertLess(abs(share - 10), 3.0, share)

    def test_sticky_cookie_over_h2(self):
        gw = self.gateway(canary={"sticky": "cookie"})
        api = admin.Admin(gw, token=TOKEN)
        api.post("/api/v1/services/app/canary", {"weight": 50})
        c = self.raw(gw)
        slots = set()
        for i in range(40):
            r = self.get(c)
            cookie = r.header("set-cookie")
            self.assertIsNotNone(cookie, r.headers)
            value = cookie.split(";")[0]
            self.assertIn("; Secure", cookie)
            slot = r.body.decode().strip()
            slots.add(slot)
            # the cookie back as crumbs (RFC 9113 8.2.3): same slot, no new cookie
            for _ in range(3):
                r2 = self.get(c, fields=[("cookie", "a=1"), ("cookie", value), ("cookie", "b=2")])
                self.assertEqual(r2.body.decode().strip(), slot)
                self.assertIsNone(r2.header("set-cookie"))
        self.assertEqual(slots, {"blue", "green"})

    @unittest.skipUnless(HAVE_H2LOAD, "h2load (nghttp2-client) is not installed")
    def test_switch_under_h2load_fails_no_stream(self):
        gw = self.gateway()
        api = admin.Admin(gw, token=TOKEN)
        green_before = served_requests(self.td, 1)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            zip(("out", "counts"), h2load(gw, 30000, 4, 32))))
        t.start()
        time.sleep(0.5)
        r = api.post("/api/v1/services/app/switch", {"to": "green"})
        t.join(300)
        self.assertEqual(r.status, 200, r)
        counts = result["counts"]
        self.assertEqual((counts.get("failed"), counts.get("errored"), counts.get("2xx")),
                         (0, 0, 30000), result["out"][-1500:])
        self.assertGreater(served_requests(self.td, 1) - green_before - 1, 0)
        c = self.raw(gw)
        self.assertEqual(self.get(c).body, b"green\n")

    @unittest.skipUnless(HAVE_H2LOAD, "h2load (nghttp2-client) is not installed")
    def test_reload_under_h2load_fails_no_stream(self):
        """Each reload sends GOAWAY to the connections begun before it; their
        streams finish and the clients reconnect (h2load does in its timed
        mode, -D). A request h2load submits after it read a GOAWAY is refused
        by its own nghttp2 and never sent (h2load counts it as errored): the
        gateway's count shows that every stream that reached it was
        answered, one for each request h2load saw succeed."""
        gw = self.gateway()
        streams0 = h2_counters(gw, "switchyard_h2_streams_total")
        goaways0 = h2_counters(gw, "switchyard_h2_goaway_total")
        watcher = self.raw(gw)              # a frame-level client sees the GOAWAY
        self.get(watcher)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            zip(("out", "counts"), h2load(gw, None, 4, 32, extra=("-D", "5")))))
        t.start()
        time.sleep(0.5)
        slow = watcher.request("GET", "/delay/1500")
        for i in range(3):
            cfg = dict(gw.config)
            cfg["routes"] = [{"host": "*", "path": "/", "service": "app"},
                             {"host": "*", "path": "/v%d" % i, "service": "app"}]
            gw.write_config(cfg)
            gw.reload()
            if i == 0:
                self.assertEqual(watcher.goaway_code(5), h2raw.NO_ERROR)
            time.sleep(0.8)
        r = watcher.response(slow, 5)
        self.assertEqual((r.status, r.body, r.reset), (200, b"blue\n", None), r)
        self.assertTrue(watcher.wait_closed(5))
        self.assertGreaterEqual(watcher.goaway[0], slow)    # the final GOAWAY: slow was processed
        t.join(300)
        counts = result["counts"]
        self.assertEqual((counts.get("failed", 0) - counts.get("errored", 0),
                          counts.get("succeeded"), counts.get("timeout", 0)),
                         (0, counts.get("2xx"), 0), result["out"][-1500:])
        self.assertGreater(counts["succeeded"], 1000, result["out"][-1500:])
        self.assertLess(counts.get("errored", 0), 1000, result["out"][-1500:])
        streams = delta(h2_counters(gw, "switchyard_h2_streams_total"), streams0)
        self.assertEqual(streams, dict({k: 0 for k in streams}, ok=counts["succeeded"] + 2))
        goaways = delta(h2_counters(gw, "switchyard_h2_goaway_total"), goaways0)
        self.assertGreaterEqual(goaways["reload"], 5, goaways)     # h2load's 4 and the watcher
        self.assertEqual(sum(goaways.values()), goaways["reload"], goaways)
        deadline = time.monotonic() + 5
        while True:
            with open(gw.log_path("error")) as f:
                reloads = [l for l in f if "reloaded" in l]
            if len(reloads) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(reloads), 3, reloads)

    def test_stop_sends_goaway_and_streams_in_flight_finish(self):
        gw = self.start(h2_config(self.td, leaf=self.leaf))
        try:
            c = h2raw.Client(gw.host_port()[1])
            self.get(c)
            slow = c.request("GET", "/delay/1000")
            time.sleep(0.2)
            gw.signal(signal.SIGTERM)
            self.assertEqual(c.goaway_code(5), h2raw.NO_ERROR)
            r = c.response(slow, 5)
            self.assertEqual((r.status, r.body, r.reset), (200, b"blue\n", None), r)
            self.assertGreaterEqual(c.goaway[0], slow)
            self.assertTrue(c.wait_closed(5))
            c.close()
            self.assertEqual(gw.wait_exit(10), 0)
        finally:
            gw.__exit__(None, None, None)

    def test_reload_goaway_lets_streams_finish(self):
        """nginx-style: on a reload, a connection gets GOAWAY with the highest
        stream id possible first (RFC 9113 6.8), so a stream opened meanwhile
        is still served; then, a second later, the final GOAWAY naming the
        last stream processed; the streams in flight finish, the connection
        closes. A connection begun after the reload is left alone."""
        gw = self.gateway()
        goaways0 = h2_counters(gw, "switchyard_h2_goaway_total")
        c = self.raw(gw)
        self.get(c)
        slow = c.request("GET", "/delay/1500")
        time.sleep(0.1)
        gw.reload()
        self.assertEqual(c.goaway_code(5), h2raw.NO_ERROR)
        self.assertEqual(c.goaway[0], (1 << 31) - 1)         # the shutdown notice
        late = c.request("GET", "/")                         # sent before the final GOAWAY
        self.assertEqual(c.response(late, 5).status, 200)
        r = c.response(slow, 5)
        self.assertEqual((r.status, r.body, r.reset), (200, b"blue\n", None), r)
        self.assertTrue(c.wait_closed(5))
        self.assertEqual(c.goaway, (late, h2raw.NO_ERROR))     # the final one
        fresh = self.raw(gw)
        until = time.monotonic() + 2.5      # past a housekeeping second and the grace
        while time.monotonic() < until:
            self.get(fresh)
            time.sleep(0.05)
        self.assertIsNone(fresh.goaway)
        goaways = delta(h2_counters(gw, "switchyard_h2_goaway_total"), goaways0)
        self.assertEqual(goaways["reload"], 1, goaways)

    def test_metrics_count_streams_and_goaways(self):
        gw = self.gateway(limits={"keepalive_timeout_ms": 300})
        c = self.raw(gw)
        self.get(c)
        self.get(c, "/bytes/100000")
        sid = c.request("GET", "/hang")
        time.sleep(0.2)
        c.send(h2raw.rst(sid, h2raw.CANCEL))
        r = c.response(c.request("GET", "/", fields=[("X-Upper", "1")]))
        self.assertEqual(r.reset, h2raw.PROTOCOL_ERROR)
        self.assertEqual(c.goaway_code(5), h2raw.NO_ERROR)      # idle
        self.assertTrue(c.wait_closed(5))
        deadline = time.monotonic() + 5
        while True:
            streams = h2_counters(gw, "switchyard_h2_streams_total")
            if sum(streams.values()) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(streams, {"ok": 2, "client_reset": 1, "malformed": 1, "error": 0,
                                   "refused": 0, "connection_closed": 0})
        self.assertEqual(h2_counters(gw, "switchyard_h2_goaway_total"),
                         {"reload": 0, "shutdown": 0, "idle": 1, "header_timeout": 0,
                          "flood": 0, "protocol_error": 0})

    def test_http2_false_offers_http11_only(self):
        gw = self.gateway(http2=False)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(gw.host_port(), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")

    def test_idle_connection_gets_goaway(self):
        gw = self.gateway(limits={"keepalive_timeout_ms": 300})
        c = self.raw(gw)
        self.get(c)
        started = time.monotonic()
        self.assertEqual(c.goaway_code(5), h2raw.NO_ERROR)
        self.assertTrue(c.wait_closed(5))
        self.assertGreater(time.monotonic() - started, 0.2)

    def test_header_block_that_never_ends_times_out(self):
        gw = self.gateway(limits={"client_header_timeout_ms": 400})
        c = self.raw(gw)
        self.get(c)
        c.send(c.headers_frame(c.new_sid(), [(":method", "GET"), (":scheme", "https"),
                                             (":path", "/"), (":authority", "localhost")],
                               end_headers=False))
        self.assertTrue(c.wait_closed(5))
        events = [e for e in gw.log_lines("security", 1) if e["event"] == "bad_request"]
        self.assertEqual([e["reason"] for e in events], ["client header timeout"])

    def test_rate_limit_answers_429_over_h2(self):
        gw = self.gateway(
            rate_limits={"few": {"key": "client_ip", "rate": 1, "per_ms": 60000, "burst": 2}},
            routes=[{"host": "*", "path": "/", "service": "app", "rate_limit": "few"}])
        c = self.raw(gw)
        statuses = [c.response(c.request("GET", "/")).status for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])   # GCRA: burst + 1 at once
        r = c.response(c.request("GET", "/"))
        self.assertIsNotNone(r.header("retry-after"), r.headers)
        self.assertIn(b'"request_id"', r.body)

    def test_compress_policy_over_h2(self):
        gw = self.gateway(routes=[{"host": "*", "path": "/", "service": "app", "compress": True}])
        c = self.raw(gw)
        for path, n in (("/bytes/200000?type=json", 200000),
                        ("/bytes/100000?type=text&chunked=1", 100000)):
            with self.subTest(path=path):
                r = self.get(c, path, fields=[("accept-encoding", "gzip")])
                self.assertEqual(r.header("content-encoding"), "gzip")
                self.assertIsNone(r.header("content-length"))
                self.assertEqual(zlib.decompress(r.body, 31), backends.pattern_bytes(n))

    def test_max_concurrent_streams_is_configurable(self):
        gw = self.gateway(limits={"http2_max_concurrent_streams": 4})
        c = self.raw(gw)
        self.get(c)
        self.assertEqual(c.server_settings.get(h2raw.hf.SettingsFrame.MAX_CONCURRENT_STREAMS), 4)
        sids = [c.request("GET", "/delay/300") for _ in range(4)]
        for sid in sids:
            self.assertEqual(c.response(sid).status, 200)


def _http_get(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


if __name__ == "__main__":
    unittest.main()
