# SPDX-License-Identifier: BSD-2-Clause
"""TLS (SPEC.md listen[].tls, pools.NAME.tls): certificates chosen by SNI
(exact, then wildcard, else the first), TLS 1.2 and 1.3 only, ALPN
h2 then http/1.1, session resumption, X-Forwarded-Proto: https and "tls": true in
the access log, keep-alive, big bodies and pipelining over TLS, renewed
certificates picked up by a reload (a bad one refuses it), verified TLS
toward upstreams, WebSocket over TLS, and handshakes that stall or are not
TLS at all, closed by client_header_timeout_ms while others are served.
Certificates come from lib/certs.py (openssl CLI), made once per class.
"""
import base64
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, certs, gateway, httpc, ports, proxytest, websocket  # noqa: E402
from lib.httpc import build  # noqa: E402

H = "127.0.0.1"
MB = 1 << 20
RELOAD_S = 5.0          # a reload takes well under a second; margin for a noisy host


# ---- clients ----------------------------------------------------------------

def client_context(ca, minimum=None, maximum=None, alpn=None, check_hostname=True,
                   tickets=True, ciphers=None):
    """A verifying client context trusting ca (a PEM path)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = check_hostname
    with warnings.catch_warnings():
        # TLS 1.0/1.1 bounds are deprecated in Python: exactly what we test
        warnings.simplefilter("ignore", DeprecationWarning)
        if ciphers:
            ctx.set_ciphers(ciphers)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def tls_connect(port, ctx, server_name="a.test", session=None, timeout=10.0):
    """A TLS socket to 127.0.0.1:port, handshake done; server_name None
    sends no SNI."""
    raw = socket.create_connection((H, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name, session=session)
    except BaseException:
        raw.close()
        raise


class TLSClient(httpc.Client):
    """httpc.Client over TLS: keep-alive, pipelining, raw bytes."""

    def __init__(self, port, ctx, server_name="a.test", timeout=10.0, session=None):
        self.sock = tls_connect(port, ctx, server_name, session, timeout)
        self.reader = httpc._Reader(self.sock)


class BioClient:
    """TLS through memory BIOs over a plain socket, so that a test decides
    which encrypted bytes go out and when (half a record, then a stall).
    recv() decrypts, so httpc's reader frames responses from it."""

    def __init__(self, port, ctx, server_name="a.test", timeout=10.0):
        self.sock = socket.create_connection((H, port), timeout=timeout)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        self.flush()
        self.reader = httpc._Reader(self)

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.incoming.write(data)

    def records(self, plaintext):
        """plaintext encrypted into TLS records, returned, not sent."""
        self.obj.write(plaintext)
        return self.outgoing.read()

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self.feed()
            except ssl.SSLZeroReturnError:
                return b""

    def read_response(self):
        return httpc._read_response(self.reader)

    def close(self):
        self.sock.close()


def peer_names(sock):
    """The DNS names of the server certificate's subjectAltName."""
    return [v for k, v in sock.getpeercert().get("subjectAltName", ()) if k == "DNS"]


def peer_serial(sock):
    return sock.getpeercert()["serialNumber"]


def wait_closed(sock, timeout):
    """Reads and drops whatever comes until the peer closes (EOF or reset);
    returns the seconds that took, or None if still open after timeout."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return time.monotonic() - t0


def client_hello(server_name="a.test"):
    """The bytes of a complete TLS ClientHello (1.2 and 1.3 offered)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_listener(port, leaves):
    return {"addr": "%s:%d" % (H, port),
            "tls": {"certificates": [{"cert": l.cert, "key": l.key} for l in leaves]}}


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# ---- an HTTPS app instance ----------------------------------------------------

class HTTPSBackend:
    """A python HTTPS/1.1 app (keep-alive) with leaf's certificate.

    Every GET answers 200 with body, X-Echo-Probe (the request's X-Probe)
    and X-Echo-Proto (its X-Forwarded-Proto). connections: TCP connections
    accepted; handshake_errors: the handshakes that failed, as exceptions.
    """

    def __init__(self, leaf, body=b"tls-backend\n"):
        owner = self
        self.body = body
        self.connections = 0
        self.handshake_errors = []
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(leaf.cert, leaf.key)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(owner.body)))
                self.send_header("X-Echo-Probe", self.headers.get("X-Probe", ""))
                self.send_header("X-Echo-Proto", self.headers.get("X-Forwarded-Proto", ""))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address):
                # the handshake runs in the connection's thread, not the accept loop
                with owner.lock:
                    owner.connections += 1
                try:
                    tls = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with owner.lock:
                        owner.handshake_errors.append(e)
                    return
                try:
                    Handler(tls, client_address, self)
                finally:
                    tls.close()

            def handle_error(self, request, client_address):
                pass

        self.server = Server((H, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- base ---------------------------------------------------------------------

class TLSCase(unittest.TestCase):
    """Certificates shared by a class: a CA; a.test (the default), b.test,
    *.wild.test and localhost/127.0.0.1 leaves, all signed by it."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="sy-tls-certs-")
        cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.ca = certs.CA(cls.certdir)
        cls.a = cls.ca.issue("a", ["a.test"])
        cls.b = cls.ca.issue("b", ["b.test"])
        cls.wild = cls.ca.issue("wild", ["*.wild.test"])
        cls.local = cls.ca.issue("local", ["localhost", "IP:127.0.0.1"])

    def ctx(self, **kw):
        return client_context(self.ca.cert, **kw)

    def wait_log(self, gw, needle, kind="error", timeout=5.0):
        """gw's log text once it contains needle (fails otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            text = read_text(gw.log_path(kind))
            if needle in text:
                return text
            self.assertLess(time.monotonic(), deadline,
                            "%r not in the %s log:\n%s\n--- stderr ---\n%s"
                            % (needle, kind, text, gw.stderr_text()))
            time.sleep(0.02)

    def access_line(self, gw, user_agent):
        """The access log line of the request that sent user_agent."""
        found = proxytest.wait_until(
            lambda: [l for l in gw.access_log_lines(timeout=0)
                     if l.get("user_agent") == user_agent])
        self.assertTrue(found, "no access log line with user_agent %r" % user_agent)
        return found[-1]


# ---- termination ----------------------------------------------------------------

class TestTermination(TLSCase):
    """One gateway: listen[0] TLS (a.test default, b.test, *.wild.test),
    listen[1] plain, both to one testd."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.td = backends.Testd([(0, "tls-app")]).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config([cls.td.addr()], workers=2,
                               limits={"max_body_bytes": 64 * MB})
        plain = cfg["listen"][0]
        cfg["listen"] = [tls_listener(ports.free_port(), [cls.a, cls.b, cls.wild]),
                         plain]
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)
        cls.port = cls.gw.host_port(0)[1]
        cls.plain_port = cls.gw.host_port(1)[1]

    def connect(self, name="a.test", **kw):
        s = tls_connect(self.port, self.ctx(**kw), name)
        self.addCleanup(s.close)
        return s

    def client(self, name="a.test", **kw):
        c = TLSClient(self.port, self.ctx(**kw), name)
        self.addCleanup(c.close)
        return c

    # 1. SNI

    def test_sni_selects_the_named_certificate(self):
        for name, want in (("b.test", ["b.test"]), ("a.test", ["a.test"]),
                           ("x.wild.test", ["*.wild.test"]), ("other.wild.test", ["*.wild.test"])):
            with self.subTest(sni=name):
                self.assertEqual(peer_names(self.connect(name)), want)

    def test_unknown_sni_gets_the_default_certificate(self):
        # check_hostname off: the point is which certificate comes, and it
        # still must verify against the CA
        for name in ("unknown.test", "wild.test", "a.b.wild.test"):
            with self.subTest(sni=name):
                s = self.connect(name, check_hostname=False)
                self.assertEqual(peer_names(s), ["a.test"])

    def test_no_sni_gets_the_default_certificate(self):
        s = self.connect(None, check_hostname=False)
        self.assertEqual(peer_names(s), ["a.test"])

    def test_get_through_each_certificate_reaches_the_app(self):
        for name in ("a.test", "b.test", "x.wild.test"):
            with self.subTest(sni=name):
                r = self.client(name).request(build("GET", "/", host=name))
                self.assertEqual((r.status, r.body), (200, b"tls-app\n"))

    # 2. protocol floor

    def test_tls11_client_is_refused_by_the_server(self):
        ctx = self.ctx(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1,
                       ciphers="DEFAULT:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError) as cm:
            tls_connect(self.port, ctx, "a.test").close()
        # the server's protocol_version alert, not the client refusing itself
        # ("no protocols available")
        self.assertIn("alert protocol version", str(cm.exception).lower(), cm.exception)
        r = self.client("a.test").request(build())
        self.assertEqual(r.status, 200, "the gateway stopped serving after a refused handshake")

    def s_client(self, *args):
        proc = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (H, self.port),
                               "-servername", "a.test", "-CAfile", self.ca.cert] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)
        return proc.returncode, proc.stdout + proc.stderr

    def test_openssl_s_client_tls11_is_refused(self):
        rc, out = self.s_client("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("alert protocol version", out, "not refused by the server:\n" + out)
        # the same client does speak TLS 1.2 to it
        rc, out = self.s_client("-tls1_2")
        self.assertEqual(rc, 0, out)
        self.assertIn("Protocol  : TLSv1.2", out)
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_tls12_and_tls13_are_served(self):
        for version, text in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(version=text):
                c = self.client(minimum=version, maximum=version)
                self.assertEqual(c.sock.version(), text)
                r = c.request(build())
                self.assertEqual((r.status, r.body), (200, b"tls-app\n"))

    # 3. ALPN

    def test_alpn_prefers_h2_then_http11(self):
        # HTTP/2 itself is tested in test_h2.py; listen[].http2 defaults to true
        s = self.connect(alpn=["http/1.1", "h2"])
        self.assertEqual(s.selected_alpn_protocol(), "h2")
        s = self.connect(alpn=["http/1.1"])
        self.assertEqual(s.selected_alpn_protocol(), "http/1.1")

    def test_no_alpn_still_serves_http11(self):
        c = self.client()
        self.assertIsNone(c.sock.selected_alpn_protocol())
        self.assertEqual(c.request(build()).status, 200)

    # 4. forwarded proto, access log

    def test_forwarded_proto_and_access_log(self):
        c = self.client()
        r = c.request(build("GET", "/echo", headers=[("User-Agent", "tls-probe-1")]))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(proxytest.echo_header(proxytest.echo(r), "X-Forwarded-Proto"), ["https"])
        line = self.access_line(self.gw, "tls-probe-1")
        self.assertIs(line.get("tls"), True, line)
        self.assertEqual(line["status"], 200)
        # the plain listener of the same gateway: http, "tls": false
        with httpc.Client(H, self.plain_port) as p:
            r = p.request(build("GET", "/echo", headers=[("User-Agent", "plain-probe-1")]))
        self.assertEqual(proxytest.echo_header(proxytest.echo(r), "X-Forwarded-Proto"), ["http"])
        self.assertIs(self.access_line(self.gw, "plain-probe-1").get("tls"), False)

    def test_client_forwarded_proto_does_not_pass_as_the_scheme(self):
        # a direct client claiming "http" over TLS: the app still learns https
        r = self.client().request(build("GET", "/echo", headers=[("X-Forwarded-Proto", "http")]))
        self.assertEqual(proxytest.echo_header(proxytest.echo(r), "X-Forwarded-Proto")[-1:],
                         ["https"])

    # 5. keep-alive and big bodies

    def test_fifty_requests_on_one_connection(self):
        c = self.client()
        for i in range(50):
            r = c.request(build("GET", "/echo?n=%d" % i))
            self.assertEqual(r.status, 200)
            self.assertEqual(proxytest.echo(r)["target"], "/echo?n=%d" % i)

    def test_4mb_download_is_byte_exact(self):
        n = 4 * MB
        r = self.client().request(build("GET", "/bytes/%d" % n))
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), n)
        self.assertTrue(r.body == backends.pattern_bytes(n), "the body differs from the pattern")

    def test_4mb_upload_is_echoed(self):
        body = os.urandom(4 * MB)
        c = self.client()
        r = c.request(build("POST", "/echo", body=body))
        self.assertEqual(r.status, 200, r.body[:300])
        seen = proxytest.echo(r)
        self.assertEqual((seen["body_bytes"], seen["body_crc32"]), (len(body), zlib.crc32(body)))
        # and the connection goes on
        self.assertEqual(c.request(build()).status, 200)

    def test_pipelined_requests_in_one_write(self):
        c = self.client()
        body = b"x" * 100000
        raws = [build("GET", "/echo?n=%d" % i) for i in range(8)]
        raws.insert(4, build("POST", "/echo?n=post", body=body))
        c.send(b"".join(raws))
        targets = []
        for _ in raws:
            r = c.read_response()
            self.assertIsNotNone(r, "closed after %d responses" % len(targets))
            self.assertEqual(r.status, 200)
            seen = proxytest.echo(r)
            targets.append(seen["target"])
            if seen["target"] == "/echo?n=post":
                self.assertEqual(seen["body_crc32"], zlib.crc32(body))
        want = ["/echo?n=%d" % i for i in range(8)]
        want.insert(4, "/echo?n=post")
        self.assertEqual(targets, want)

    def test_requests_split_inside_tls_records(self):
        c = BioClient(self.port, self.ctx())
        self.addCleanup(c.close)
        for i in range(3):
            data = c.records(build("POST", "/echo?split=%d" % i, body=b"y" * 3000))
            # one byte of the record header, the rest of it, then the payload in pieces
            for piece in (data[:1], data[1:5], data[5:100], data[100:2000], data[2000:]):
                c.sock.sendall(piece)
                time.sleep(0.05)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            seen = proxytest.echo(r)
            self.assertEqual((seen["target"], seen["body_bytes"]), ("/echo?split=%d" % i, 3000))

    # 6. session resumption

    def assert_resumes(self, ticket, **kw):
        """A second connection resumes the first one's session, which came
        as a ticket (ticket True) or as a session id (server-side cache)."""
        ctx = self.ctx(**kw)
        first = TLSClient(self.port, ctx, "a.test")
        self.addCleanup(first.close)
        self.assertFalse(first.sock.session_reused)
        # TLS 1.3 tickets come after the handshake: read a response first
        self.assertEqual(first.request(build()).status, 200)
        session = first.sock.session
        self.assertIsNotNone(session)
        self.assertEqual(session.has_ticket, ticket)
        first.close()
        for i in range(3):      # two workers: whichever takes it resumes
            second = TLSClient(self.port, ctx, "a.test", session=session)
            self.addCleanup(second.close)
            self.assertTrue(second.sock.session_reused, "connection %d: full handshake" % i)
            self.assertEqual(second.request(build()).status, 200)
            session = second.sock.session
            second.close()

    def test_session_resumption_tls12_ticket(self):
        v = ssl.TLSVersion.TLSv1_2
        self.assert_resumes(True, minimum=v, maximum=v)

    def test_session_resumption_tls12_session_cache(self):
        v = ssl.TLSVersion.TLSv1_2
        self.assert_resumes(False, minimum=v, maximum=v, tickets=False)

    def test_session_resumption_tls13(self):
        v = ssl.TLSVersion.TLSv1_3
        self.assert_resumes(True, minimum=v, maximum=v)


# ---- certificates and reload ------------------------------------------------------

class TestCertificateReload(TLSCase):
    """Each test has its own gateway, serving copies of a.test's files from
    its directory, which the test overwrites in place."""

    def setUp(self):
        self.td = backends.Testd([(0, "reload-app")]).start()
        self.addCleanup(self.td.stop)
        port = ports.free_port()
        cfg = proxytest.config([self.td.addr()], workers=2,
                               limits={"keepalive_timeout_ms": 60000})
        cfg["listen"] = [{"addr": "%s:%d" % (H, port),
                          "tls": {"certificates": [{"cert": "{tmp}/tls/site.pem",
                                                    "key": "{tmp}/tls/site.key"}]}}]
        self.gw = gateway.Gateway(cfg)
        os.makedirs(os.path.join(self.gw.tmp, "tls"))
        self.cert_path = os.path.join(self.gw.tmp, "tls", "site.pem")
        self.key_path = os.path.join(self.gw.tmp, "tls", "site.key")
        self.install(self.a)
        self.addCleanup(self.gw.__exit__, None, None, None)
        self.gw.start()
        self.port = port

    def install(self, leaf):
        """Overwrites the served files in place with leaf's."""
        for src, dst in ((leaf.cert, self.cert_path), (leaf.key, self.key_path)):
            with open(src, "rb") as f:
                data = f.read()
            with open(dst, "wb") as f:
                f.write(data)

    def serial_now(self):
        s = tls_connect(self.port, self.ctx(), "a.test")
        try:
            return peer_serial(s)
        finally:
            s.close()

    def wait_serial(self, want, timeout=RELOAD_S):
        got = proxytest.wait_until(lambda: self.serial_now() == want, timeout)
        self.assertTrue(got, "new connections still get serial %s, not %s, %.0f s after "
                        "the reload" % (self.serial_now(), want, timeout))

    def refused_line(self, before):
        """The newest "reload refused" error line, once there are more than before."""
        deadline = time.monotonic() + 5
        while True:
            lines = [l for l in read_text(self.gw.log_path("error")).split("\n")
                     if "reload refused" in l]
            if len(lines) > before:
                return lines[-1]
            self.assertLess(time.monotonic(), deadline, "no new \"reload refused\" line:\n%s"
                            % read_text(self.gw.log_path("error")))
            time.sleep(0.02)

    def count_refused(self):
        return read_text(self.gw.log_path("error")).count("reload refused")

    # 7.

    def test_reload_serves_a_renewed_certificate(self):
        self.assertEqual(self.serial_now(), self.a.serial_hex())
        with TLSClient(self.port, self.ctx(), "a.test") as old:
            self.assertEqual(old.request(build()).status, 200)
            renewed = self.ca.issue("a-renewed", ["a.test"])
            self.assertNotEqual(renewed.serial, self.a.serial)
            self.install(renewed)
            self.gw.reload()
            self.wait_serial(renewed.serial_hex())
            # the connection from before the reload still serves
            r = old.request(build())
            self.assertEqual((r.status, r.body), (200, b"reload-app\n"))
            self.assertEqual(peer_serial(old.sock), self.a.serial_hex())
        self.assertEqual(self.count_refused(), 0, read_text(self.gw.log_path("error")))

    # 8.

    def test_bad_certificate_refuses_the_reload(self):
        rc, out, _ = gateway.check_config(self.gw.config)
        self.assertEqual(rc, 0, out)
        with open(self.cert_path, "w") as f:
            f.write("this is not a certificate\n")
        before = self.count_refused()
        self.gw.reload()
        line = self.refused_line(before)
        self.assertIn("listen[0].tls.certificates[0].cert", line)
        self.assertIn(self.cert_path, line)
        self.assertTrue(self.gw.running())
        # the old certificate keeps serving new connections
        self.assertEqual(self.serial_now(), self.a.serial_hex())
        with TLSClient(self.port, self.ctx(), "a.test") as c:
            self.assertEqual(c.request(build()).status, 200)
        # switchyard -t loads the certificates too
        rc, out, _ = gateway.check_config(self.gw.config)
        self.assertEqual(rc, 1, out)
        self.assertIn("listen[0].tls.certificates[0].cert", out)
        self.assertIn(self.cert_path, out)
        # fixed files: the next reload takes
        renewed = self.ca.issue("a-fixed", ["a.test"])
        self.install(renewed)
        self.gw.reload()
        self.wait_serial(renewed.serial_hex())

    def test_key_not_matching_the_certificate_refuses_the_reload(self):
        with open(self.b.key, "rb") as f:
            other_key = f.read()
        with open(self.key_path, "wb") as f:
            f.write(other_key)
        before = self.count_refused()
        self.gw.reload()
        line = self.refused_line(before)
        self.assertIn("listen[0].tls.certificates[0]", line)
        self.assertEqual(self.serial_now(), self.a.serial_hex())
        rc, out, _ = gateway.check_config(self.gw.config)
        self.assertEqual(rc, 1, out)
        self.assertIn("listen[0].tls.certificates[0]", out)

    def test_missing_key_file_fails_the_check(self):
        cfg = dict(self.gw.config)
        cfg["listen"] = [tls_listener(ports.free_port(), [self.a])]
        cfg["listen"][0]["tls"]["certificates"][0]["key"] = os.path.join(self.certdir, "nope.key")
        rc, out, _ = gateway.check_config(cfg)
        self.assertEqual(rc, 1, out)
        self.assertIn("listen[0].tls.certificates[0].key", out)


# ---- TLS toward upstreams ----------------------------------------------------------

class TestUpstreamTLS(TLSCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_ca = certs.CA(os.path.join(cls.certdir, "other"), name="Other CA")
        cls.mismatch = cls.ca.issue("mismatch", ["other.test"])

    def backend(self, leaf=None):
        be = HTTPSBackend(leaf or self.local)
        self.addCleanup(be.stop)
        return be

    def start_gateway(self, addr, tls, listen_tls=False):
        pool = {"instances": [{"addr": addr}], "tls": tls, "keepalive": 8}
        cfg = proxytest.config(pools={"p": pool}, workers=1)
        if listen_tls:
            cfg["listen"] = [tls_listener(ports.free_port(), [self.a])]
        gw = gateway.Gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        gw.addr = addr
        return gw.start()

    def get(self, gw, probe="p"):
        return proxytest.once(gw, build("GET", "/", headers=[("X-Probe", probe)]))

    def assert_served(self, gw, be):
        r = self.get(gw, "probe-1")
        self.assertEqual((r.status, r.body), (200, b"tls-backend\n"),
                         read_text(gw.log_path("error")))
        self.assertEqual(r.header("X-Echo-Probe"), "probe-1")
        self.assertEqual(be.handshake_errors, [])

    def assert_verify_failure(self, gw, be):
        r = self.get(gw)
        self.assertEqual(r.status, 502, r.body)
        # one error line says why, naming the instance
        deadline = time.monotonic() + 5
        while not [line for line in read_text(gw.log_path("error")).split("\n")
                   if "certificate verify failed" in line and gw.addr in line]:
            self.assertLess(time.monotonic(), deadline, "the error log does not say why:\n%s"
                            % read_text(gw.log_path("error")))
            time.sleep(0.02)
        # the backend saw its handshake aborted: no request was sent in clear
        self.assertTrue(proxytest.wait_until(lambda: be.handshake_errors), "no failed handshake")

    def test_ca_file_and_dns_name(self):
        be = self.backend()
        gw = self.start_gateway("localhost:%d" % be.port, {"ca_file": self.ca.cert})
        self.assert_served(gw, be)

    def test_ca_file_and_ip_literal(self):
        be = self.backend()
        gw = self.start_gateway("127.0.0.1:%d" % be.port, {"ca_file": self.ca.cert})
        self.assert_served(gw, be)

    def test_keepalive_reuses_one_tls_connection(self):
        be = self.backend()
        gw = self.start_gateway("localhost:%d" % be.port, {"ca_file": self.ca.cert})
        for i in range(10):
            r = self.get(gw, "seq-%d" % i)
            self.assertEqual((r.status, r.header("X-Echo-Probe")), (200, "seq-%d" % i))
        self.assertEqual(be.connections, 1, "upstream TLS connections were not reused")

    def test_tls_on_both_sides(self):
        be = self.backend()
        gw = self.start_gateway("localhost:%d" % be.port, {"ca_file": self.ca.cert},
                                listen_tls=True)
        with TLSClient(gw.host_port()[1], self.ctx(), "a.test") as c:
            for i in range(5):
                r = c.request(build("GET", "/", headers=[("X-Probe", "both-%d" % i)]))
                self.assertEqual((r.status, r.body), (200, b"tls-backend\n"))
                self.assertEqual(r.header("X-Echo-Probe"), "both-%d" % i)
                self.assertEqual(r.header("X-Echo-Proto"), "https")
        self.assertEqual(be.connections, 1)

    def test_unknown_ca_is_a_502(self):
        be = self.backend()
        gw = self.start_gateway("localhost:%d" % be.port, {"ca_file": self.other_ca.cert})
        self.assert_verify_failure(gw, be)

    def test_name_not_in_the_certificate_is_a_502(self):
        be = self.backend(self.mismatch)     # signed by the right CA, for other.test
        gw = self.start_gateway("localhost:%d" % be.port, {"ca_file": self.ca.cert})
        self.assert_verify_failure(gw, be)

    def test_ip_not_in_the_certificate_is_a_502(self):
        be = self.backend(self.a)            # a.test only: no IP SAN
        gw = self.start_gateway("127.0.0.1:%d" % be.port, {"ca_file": self.ca.cert})
        self.assert_verify_failure(gw, be)

    def test_tls_true_uses_the_system_store(self):
        be = self.backend()                  # our test CA is not a system CA
        gw = self.start_gateway("localhost:%d" % be.port, True)
        self.assert_verify_failure(gw, be)

    def test_plain_backend_behind_tls_pool_is_a_502(self):
        with backends.Testd([(0, "plain")]) as td:
            gw = self.start_gateway(td.addr(), {"ca_file": self.ca.cert})
            self.assertEqual(self.get(gw).status, 502)
            self.assertTrue(gw.running())


# ---- WebSocket over TLS --------------------------------------------------------------

def wss_client(port, ctx, server_name="a.test", path="/chat", timeout=20.0):
    """A websocket.Client whose socket is TLS: the opening handshake as
    websocket.Client does it, over tls_connect()."""
    sock = tls_connect(port, ctx, server_name, timeout=timeout)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 % (path.encode(), server_name.encode(), key))
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            raise ConnectionError("closed during the handshake: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    c = websocket.Client.__new__(websocket.Client)
    c.sock = sock
    c.status_line = head.split(b"\r\n")[0].decode()
    c.headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        c.headers[name.strip().lower().decode()] = value.strip().decode()
    c.accepted = c.headers.get("sec-websocket-accept", "").encode() == websocket.accept_key(key)
    c.reader = websocket.Reader(sock, rest)
    return c


class TestWebSocketOverTLS(TLSCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.app = websocket.EchoApp()
        cls.addClassCleanup(cls.app.close)
        cfg = proxytest.config([cls.app.addr], workers=2)
        cfg["listen"] = [tls_listener(ports.free_port(), [cls.a])]
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)

    def test_wss_echo_of_a_1mb_message(self):
        c = wss_client(self.gw.host_port()[1], self.ctx())
        self.addCleanup(c.sock.close)
        self.assertEqual(c.status_line, "HTTP/1.1 101 Switching Protocols")
        self.assertTrue(c.accepted, c.headers)
        c.send(websocket.TEXT, b"hello over tls")
        self.assertEqual(c.recv(), (websocket.TEXT, b"hello over tls"))
        payload = os.urandom(MB)
        c.send(websocket.BINARY, payload)
        opcode, echoed = c.recv()
        self.assertEqual((opcode, len(echoed)), (websocket.BINARY, len(payload)))
        self.assertTrue(echoed == payload, "the echoed message differs")
        self.assertEqual(c.close(1000), b"\x03\xe8")
        self.assertTrue(c.closed_by_peer(timeout=5))
        c.sock.close()      # the tunnel ends (and is logged) when both sides closed
        lines = proxytest.wait_until(lambda: [
            l for l in self.gw.access_log_lines(timeout=0)
            if l.get("proto") == "websocket" and l.get("path") == "/chat"])
        self.assertTrue(lines, "no access log line for the tunnel")
        self.assertIs(lines[-1].get("tls"), True, lines[-1])
        self.assertGreater(lines[-1]["bytes_in"], MB)


# ---- hostile handshakes ---------------------------------------------------------------

class TestHostileHandshakes(TLSCase):
    """client_header_timeout_ms 1000; one worker, so what stalls shares the
    event loop with the client that must still be served."""

    TIMEOUT_S = 1.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.td = backends.Testd([(0, "hostile-app")]).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config([cls.td.addr()], workers=1,
                               limits={"client_header_timeout_ms": int(cls.TIMEOUT_S * 1000)})
        cfg["listen"] = [tls_listener(ports.free_port(), [cls.a])]
        cls.gw = gateway.Gateway(cfg).start()
        cls.addClassCleanup(cls.gw.__exit__, None, None, None)
        cls.port = cls.gw.host_port()[1]

    def raw(self):
        s = socket.create_connection((H, self.port), timeout=10)
        self.addCleanup(s.close)
        return s

    def assert_serves(self):
        with TLSClient(self.port, self.ctx(), "a.test") as c:
            r = c.request(build())
            self.assertEqual((r.status, r.body), (200, b"hostile-app\n"))

    def assert_closed_by_timeout(self, sock, what):
        took = wait_closed(sock, self.TIMEOUT_S + 5)
        self.assertIsNotNone(took, "%s: still open %.0f s after the header timeout"
                             % (what, 5))
        return took

    def test_plain_http_on_the_tls_port_is_closed(self):
        s = self.raw()
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        took = wait_closed(s, 5)
        self.assertIsNotNone(took, "a plain HTTP request on the TLS port left it open")
        self.assertTrue(self.gw.running())
        self.assert_serves()

    def test_silent_client_is_closed_after_the_header_timeout(self):
        s = self.raw()
        t0 = time.monotonic()
        self.assert_closed_by_timeout(s, "silent client")
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT_S * 0.8, "closed too early")

    def assert_idle_cpu(self, cpu0, what):
        """The gateway spent little CPU since cpu0 (it waited, it did not spin)."""
        spent = self.gw.cpu_seconds() - cpu0
        self.assertLess(spent, 0.5, "%s: the gateway used %.2f s of CPU meanwhile (spinning?)"
                        % (what, spent))

    def test_one_byte_of_client_hello_is_closed_after_the_header_timeout(self):
        s = self.raw()
        t0, cpu0 = time.monotonic(), self.gw.cpu_seconds()
        s.sendall(client_hello()[:1])
        self.assert_closed_by_timeout(s, "one byte of a ClientHello")
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT_S * 0.8, "closed too early")
        self.assert_idle_cpu(cpu0, "one byte of a ClientHello")

    def test_stall_after_a_full_client_hello_is_closed_after_the_header_timeout(self):
        # the server answers and waits for the client's Finished, which never comes
        s = self.raw()
        t0, cpu0 = time.monotonic(), self.gw.cpu_seconds()
        s.sendall(client_hello())
        self.assert_closed_by_timeout(s, "handshake stalled after the ClientHello")
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT_S * 0.8, "closed too early")
        self.assert_idle_cpu(cpu0, "a stalled handshake")

    def test_trickled_client_hello_is_closed_at_the_deadline(self):
        # a byte every 0.2 s: each one is progress, but the handshake's
        # deadline counts from the accept, not from the last byte
        s = self.raw()
        hello = client_hello()
        t0, cpu0 = time.monotonic(), self.gw.cpu_seconds()
        took = None
        for i in range(len(hello)):
            self.assertLess(time.monotonic() - t0, self.TIMEOUT_S + 5,
                            "a trickled ClientHello kept the connection open")
            try:
                s.sendall(hello[i:i + 1])
            except OSError:     # reset: closed since the last byte
                took = time.monotonic() - t0
                break
            if wait_closed(s, 0.2) is not None:
                took = time.monotonic() - t0
                break
        self.assertIsNotNone(took, "the whole ClientHello went through")
        self.assertGreater(took, self.TIMEOUT_S * 0.8, "closed too early")
        self.assert_idle_cpu(cpu0, "a trickled ClientHello")

    def test_partial_record_after_the_handshake_is_closed_after_the_header_timeout(self):
        c = BioClient(self.port, self.ctx())
        self.addCleanup(c.close)
        t0, cpu0 = time.monotonic(), self.gw.cpu_seconds()
        c.sock.sendall(c.records(build())[:3])     # part of a record header, then nothing
        self.assert_serves()
        self.assert_closed_by_timeout(c.sock, "a partial record after the handshake")
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT_S * 0.8, "closed too early")
        self.assert_idle_cpu(cpu0, "a partial record")

    def test_others_are_served_while_handshakes_stall(self):
        silent, one, full = self.raw(), self.raw(), self.raw()
        one.sendall(client_hello()[:1])
        full.sendall(client_hello())
        t0 = time.monotonic()
        for _ in range(5):
            self.assert_serves()
        for s, what in ((silent, "silent"), (one, "one byte"), (full, "full hello")):
            self.assert_closed_by_timeout(s, what)
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT_S * 0.8)
        self.assert_serves()

    def test_tls_garbage_record_is_closed(self):
        s = self.raw()
        s.sendall(b"\x16\x03\x01\x00\x05" + b"\xff" * 5)
        self.assertIsNotNone(wait_closed(s, 5), "a garbage handshake record left it open")
        self.assert_serves()


if __name__ == "__main__":
    unittest.main()
