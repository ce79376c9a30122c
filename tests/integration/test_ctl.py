# SPDX-License-Identifier: BSD-2-Clause
"""switchyard-ctl (SPEC.md "switchyard-ctl"): exit codes 0/1/2/3, usage
errors caught before any byte is sent, the token file, the exact request
each command sends (method, path, JSON body, Authorization) as seen by a
small recording HTTP server, the human tables and --json, and, against a
real gateway with an admin listener and a token file: status, pools,
drain/undrain, reload (taken and refused) and a wrong token.
"""
import http.server
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, ports, proxytest, root_path  # noqa: E402

CTL = root_path("build", "switchyard-ctl")
H = "127.0.0.1"
TIMEOUT_S = 5.0         # the tool's own deadline for one exchange
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ctl_env(extra=None, drop=("SWITCHYARD_ADMIN", "SWITCHYARD_TOKEN_FILE", "NO_COLOR")):
    """The environment for a run: none of the tool's variables leak in
    from the caller's shell unless extra sets them."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


class CtlCase(unittest.TestCase):
    """Runs build/switchyard-ctl in an empty working directory (so that the
    default token file conf/admin.token is absent unless a test writes it)."""

    def setUp(self):
        if not os.access(CTL, os.X_OK):
            self.fail("%s is missing: build it first (make)" % CTL)
        self.cwd = tempfile.mkdtemp(prefix="sy-ctl-")
        self.addCleanup(shutil.rmtree, self.cwd, True)

    def ctl(self, *args, env=None, timeout=30):
        """(exit code, stdout, stderr) of switchyard-ctl args."""
        proc = subprocess.run([CTL] + list(args), cwd=self.cwd, env=ctl_env(env),
                              capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr

    def write(self, name, text):
        path = os.path.join(self.cwd, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_usage(self, args, hint, env=None):
        """args must be a usage error: exit 2, the hint and a usage line on
        stderr, nothing on stdout."""
        code, out, err = self.ctl(*args, env=env)
        self.assertEqual(code, 2, "%r: %s%s" % (args, out, err))
        self.assertIn(hint, err, args)
        self.assertIn("usage: switchyard-ctl", err, args)
        self.assertEqual(out, "", args)
        self.assertLessEqual(len(err.split("\n")[0]), 200, "the hint is not one line")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request and answers with the server's next answer."""

    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(length) if length else b""
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "header_names": [k.lower() for k in self.headers.keys()],
                                 "body": body})
            status, payload, ctype, chunked = srv.answer
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        elif isinstance(payload, str):
            payload = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(payload), 7):
                piece = payload[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = handle_one

    def log_message(self, *args):
        pass


class FakeAdmin:
    """A python http.server that only records what switchyard-ctl sends:
    it stands for no gateway behaviour beyond the answer it is told to give."""

    def __init__(self):
        self.srv = http.server.ThreadingHTTPServer((H, 0), Recorder)
        self.srv.daemon_threads = True
        self.srv.lock = threading.Lock()
        self.srv.requests = []
        self.answer(200, {"ok": True})
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://%s:%d" % (H, self.srv.server_address[1])

    def answer(self, status, payload, ctype="application/json", chunked=False):
        with self.srv.lock:
            self.srv.answer = (status, payload, ctype, chunked)

    @property
    def requests(self):
        with self.srv.lock:
            return list(self.srv.requests)

    def reset(self):
        with self.srv.lock:
            self.srv.requests = []

    def take(self):
        """The one request received since the last take()."""
        with self.srv.lock:
            reqs, self.srv.requests = self.srv.requests, []
        if len(reqs) != 1:
            raise AssertionError("expected one request, got %r" % reqs)
        return reqs[0]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class TestUsage(CtlCase):
    """Exit 2 cases: each is caught before any byte reaches the admin URL."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeAdmin()

    @classmethod
    def tearDownClass(cls):
        cls.fake.close()

    def setUp(self):
        super().setUp()
        self.env = {"SWITCHYARD_ADMIN": self.fake.url}

    def tearDown(self):
        self.assertEqual(self.fake.requests, [], "a usage error sent a request")

    def test_help(self):
        for flag in ("-h", "--help", "pools --help"):
            code, out, err = self.ctl(*flag.split())
            self.assertEqual((code, err), (0, ""), flag)
            self.assertIn("usage: switchyard-ctl [--admin URL] [--token-file F] [--json]", out)
            for cmd in ("status", "pools", "switch SERVICE blue|green [--force]",
                        "canary SERVICE WEIGHT",
                        "rollout SERVICE start|pause|resume|abort|promote|status",
                        "drain POOL ADDR", "undrain POOL ADDR", "maintenance SERVICE on|off",
                        "reload"):
                self.assertIn(cmd, out)

    def test_version(self):
        code, out, err = self.ctl("--version")
        self.assertEqual((code, err), (0, ""))
        self.assertRegex(out, r"^switchyard-ctl \d+\.\d+\.\d+\S*\n$")

    def test_no_command(self):
        self.assert_usage([], "which command?")
        self.assert_usage(["--json"], "which command?")

    def test_unknown_command_and_option(self):
        self.assert_usage(["frobnicate"], 'unknown command "frobnicate"')
        self.assert_usage(["--colour", "status"], "unknown option --colour")
        self.assert_usage(["status", "-x"], "unknown option -x")
        self.assert_usage(["pools", "--admin"], "--admin needs a value")
        self.assert_usage(["pools", "--token-file="], "--token-file needs a value")

    def test_argument_counts(self):
        for args in (["switch", "app"], ["canary", "app"], ["rollout", "app"], ["drain", "p"],
                     ["undrain"], ["maintenance", "app"]):
            self.assert_usage(args, "missing arguments")
        for args in (["status", "x"], ["pools", "x"], ["reload", "now"],
                     ["switch", "app", "blue", "x"], ["drain", "p", "a:1", "x"]):
            self.assert_usage(args, "too many arguments")
        self.assert_usage(["drain", "", "127.0.0.1:1"], "argument 1 is empty")

    def test_bad_values(self):
        for weight in ("abc", "101", "-1", "1.5", "5%", "+5", " 5", "1e1", "99999999999999999999"):
            self.assert_usage(["canary", "app", weight], "WEIGHT is an integer from 0 to 100")
        self.assert_usage(["switch", "app", "purple"], 'the slot is blue or green, not "purple"')
        self.assert_usage(["switch", "app", "Blue"], "the slot is blue or green")
        self.assert_usage(["rollout", "app", "launch"], 'unknown rollout action "launch"')
        self.assert_usage(["maintenance", "app", "yes"], 'say on or off, not "yes"')
        self.assert_usage(["canary", "app", "50", "--force"], "--force belongs to switch only")

    def test_admin_url(self):
        self.assert_usage(["--admin", "https://127.0.0.1:9901", "status"], "https is not supported")
        for url in ("127.0.0.1:9901", "ftp://127.0.0.1:21", "http://", "http://h:99999",
                    "http://h:0", "http://h:1/?q=1", "http://user@h:1"):
            code, out, err = self.ctl("--admin", url, "status")
            self.assertEqual(code, 2, "%s: %s" % (url, err))
            self.assertIn(url, err)
        # the environment variable is checked the same way
        self.assert_usage(["status"], "https is not supported",
                          env={"SWITCHYARD_ADMIN": "https://127.0.0.1:1"})

    def test_token_file_named_but_missing(self):
        missing = os.path.join(self.cwd, "no-such.token")
        self.assert_usage(["--token-file", missing, "status"], missing)
        self.assert_usage(["status"], missing,
                          env=dict(self.env, SWITCHYARD_TOKEN_FILE=missing))

    def test_token_file_without_token(self):
        path = self.write("empty.token", "\n   \n# only a comment\n\t\n")
        self.assert_usage(["--token-file", path, "pools"], "holds no token")
        self.assert_usage(["--token-file", self.cwd, "pools"], "not a regular file")
        # the default file too, once it exists: it is then meant to be used
        self.write("conf/admin.token", "\n")
        self.assert_usage(["pools"], "holds no token", env=self.env)

    def test_token_with_control_character(self):
        path = self.write("bad.token", "abc\x01def\n")
        self.assert_usage(["--token-file", path, "pools"], "control character")


class TestUnreachable(CtlCase):
    """Exit 3, with a message naming the URL."""

    def assert_unreachable(self, url, why, *args, max_s=TIMEOUT_S + 5):
        t0 = time.monotonic()
        code, out, err = self.ctl("--admin", url, *(args or ("status",)))
        took = time.monotonic() - t0
        self.assertEqual(code, 3, err)
        self.assertEqual(out, "")
        self.assertIn("cannot reach the gateway at %s" % url, err)
        self.assertIn(why, err)
        self.assertLess(took, max_s)
        return took

    def test_connection_refused(self):
        port = ports.free_port()
        self.assert_unreachable("http://127.0.0.1:%d" % port, "Connection refused", max_s=3)
        self.assert_unreachable("http://127.0.0.1:%d" % port, "Connection refused", "drain",
                                "p", "127.0.0.1:1", max_s=3)

    def test_no_answer_times_out(self):
        # A listener that never accepts: the kernel completes the connect
        # (backlog), the request is sent, and nothing ever answers.
        with socket.socket() as s:
            s.bind((H, 0))
            s.listen(8)
            took = self.assert_unreachable("http://%s:%d" % (H, s.getsockname()[1]),
                                           "no answer within 5 s", "reload")
        self.assertGreater(took, TIMEOUT_S - 1.0)

    def test_unknown_host(self):
        # .invalid never resolves (RFC 6761)
        self.assert_unreachable("http://switchyard-admin.invalid:9901", "switchyard-admin.invalid",
                                max_s=30)

    def serve_raw(self, reply):
        """A listener that answers each connection with reply and closes."""
        srv = socket.socket()
        srv.bind((H, 0))
        srv.listen(8)
        self.addCleanup(srv.close)

        def run():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(2)
                    try:
                        conn.recv(65536)
                        conn.sendall(reply)
                    except OSError:
                        pass
        threading.Thread(target=run, daemon=True).start()
        return "http://%s:%d" % (H, srv.getsockname()[1])

    def test_not_http(self):
        url = self.serve_raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        self.assert_unreachable(url, "the answer is not HTTP", max_s=3)

    def test_closed_without_answer(self):
        url = self.serve_raw(b"")
        self.assert_unreachable(url, "closed before the whole answer", max_s=3)

    def test_cut_answer(self):
        url = self.serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":")
        self.assert_unreachable(url, "closed before the whole answer", max_s=3)


class TestRequests(CtlCase):
    """The exact request each command sends, recorded by FakeAdmin."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeAdmin()

    @classmethod
    def tearDownClass(cls):
        cls.fake.close()

    def setUp(self):
        super().setUp()
        self.fake.answer(200, {"ok": True})
        self.fake.reset()
        self.token = self.write("admin.token", "\n  \n# rotated 2024-05\n  tok-1  \r\ntok-2\n")
        self.env = {"SWITCHYARD_ADMIN": self.fake.url}

    def run_ok(self, *args, env=None):
        code, out, err = self.ctl("--token-file", self.token, *args,
                                  env=dict(self.env, **(env or {})))
        self.assertEqual(code, 0, err)
        return out

    def assert_request(self, method, path, body=None):
        req = self.fake.take()
        self.assertEqual((req["method"], req["path"]), (method, path))
        self.assertEqual(req["headers"].get("authorization"), "Bearer tok-1")
        if body is None:
            self.assertEqual(req["body"], b"")
            self.assertNotIn("content-type", req["headers"])
        else:
            self.assertEqual(req["headers"].get("content-type"), "application/json")
            self.assertEqual(json.loads(req["body"]), body)
            # exact JSON types: a weight is a number, force and enabled booleans
            self.assertEqual(json.dumps(json.loads(req["body"]), sort_keys=True),
                             json.dumps(body, sort_keys=True))
        if method == "POST":
            self.assertEqual(req["headers"].get("content-length"), str(len(req["body"])))
        self.assertEqual(req["headers"].get("host"), self.fake.url.split("://")[1])
        self.assertEqual(req["header_names"].count("authorization"), 1)
        return req

    def test_status_and_pools(self):
        self.run_ok("status")
        self.assert_request("GET", "/api/v1/status")
        self.run_ok("pools")
        self.assert_request("GET", "/api/v1/pools")

    def test_switch(self):
        self.run_ok("switch", "app", "green")
        self.assert_request("POST", "/api/v1/services/app/switch", {"to": "green", "force": False})
        self.run_ok("switch", "app", "blue", "--force")
        self.assert_request("POST", "/api/v1/services/app/switch", {"to": "blue", "force": True})
        self.run_ok("--force", "switch", "app", "green")
        self.assert_request("POST", "/api/v1/services/app/switch", {"to": "green", "force": True})

    def test_canary(self):
        for weight in (0, 7, 100):
            out = self.run_ok("canary", "app", str(weight))
            self.assert_request("POST", "/api/v1/services/app/canary", {"weight": weight})
            self.assertEqual(out, "service app: canary weight %d%%\n" % weight)
        self.run_ok("canary", "app", "007")
        self.assert_request("POST", "/api/v1/services/app/canary", {"weight": 7})

    def test_rollout(self):
        for action in ("start", "pause", "resume", "abort", "promote"):
            self.run_ok("rollout", "app", action)
            self.assert_request("POST", "/api/v1/services/app/rollout", {"action": action})
        self.fake.answer(200, {"state": "running", "step": 1, "weight": 25,
                               "last_analysis": {"result": "pass"}})
        out = self.run_ok("rollout", "app", "status")
        self.assert_request("GET", "/api/v1/services/app/rollout")
        self.assertIn("state: running\n", out)
        self.assertIn("weight: 25\n", out)
        self.assertIn('last_analysis: {"result":"pass"}\n', out)

    def test_maintenance(self):
        self.run_ok("maintenance", "app", "on")
        self.assert_request("POST", "/api/v1/services/app/maintenance", {"enabled": True})
        self.run_ok("maintenance", "app", "off")
        self.assert_request("POST", "/api/v1/services/app/maintenance", {"enabled": False})

    def test_drain_undrain_encode_the_address(self):
        self.fake.answer(200, {"pool": "app-blue", "instance": "[::1]:9001", "drained": True})
        out = self.run_ok("drain", "app-blue", "[::1]:9001")
        self.assert_request("POST", "/api/v1/pools/app-blue/instances/%5B::1%5D:9001/drain")
        self.assertEqual(out.count("\n"), 1)
        self.assertIn("app-blue", out)
        self.assertIn("[::1]:9001 drained", out)
        self.fake.answer(200, {"pool": "app-blue", "instance": "127.0.0.1:9001", "drained": False})
        out = self.run_ok("undrain", "app-blue", "127.0.0.1:9001")
        self.assert_request("POST", "/api/v1/pools/app-blue/instances/127.0.0.1:9001/undrain")
        self.assertIn("127.0.0.1:9001 undrained", out)
        # a name with a space, a slash and a percent stays one path segment
        self.run_ok("drain", "a b/c%", "h:1")
        self.assert_request("POST", "/api/v1/pools/a%20b%2Fc%25/instances/h:1/drain")
        self.run_ok("switch", "é?#", "blue")
        self.assert_request("POST", "/api/v1/services/%C3%A9%3F%23/switch",
                            {"to": "blue", "force": False})

    def test_reload(self):
        self.fake.answer(200, {"result": "reloaded", "config_file": "/etc/sw.json"})
        out = self.run_ok("reload")
        self.assert_request("POST", "/api/v1/reload")
        self.assertEqual(out, "reloaded /etc/sw.json\n")

    def test_token_sources(self):
        # the default conf/admin.token, relative to the working directory
        self.write("conf/admin.token", "default-tok\n")
        self.assertEqual(self.ctl("status", env=self.env)[0], 0)
        self.assertEqual(self.fake.take()["headers"].get("authorization"), "Bearer default-tok")
        # SWITCHYARD_TOKEN_FILE wins over the default, --token-file over both
        env = dict(self.env, SWITCHYARD_TOKEN_FILE=self.token)
        self.assertEqual(self.ctl("status", env=env)[0], 0)
        self.assertEqual(self.fake.take()["headers"].get("authorization"), "Bearer tok-1")
        other = self.write("other.token", "other-tok")
        self.assertEqual(self.ctl("--token-file=" + other, "status", env=env)[0], 0)
        self.assertEqual(self.fake.take()["headers"].get("authorization"), "Bearer other-tok")

    def test_no_default_token_file_sends_no_token(self):
        code, _, err = self.ctl("pools", env=self.env)
        self.assertEqual(code, 0, err)
        self.assertNotIn("authorization", self.fake.take()["headers"])

    def test_admin_url_sources(self):
        other = FakeAdmin()
        self.addCleanup(other.close)
        # --admin wins over SWITCHYARD_ADMIN
        self.run_ok("--admin", other.url, "status")
        self.assertEqual(other.take()["path"], "/api/v1/status")
        self.assertEqual(self.fake.requests, [])
        # a path prefix (an admin behind a reverse proxy) is kept
        self.run_ok("--admin=%s/gw/" % other.url, "pools")
        self.assertEqual(other.take()["path"], "/gw/api/v1/pools")

    def test_refusals_exit_1_with_the_gateway_error(self):
        cases = [
            (404, {"error": "not found"}, ["switch", "app", "green"], "not found"),
            (404, {"error": "not found"}, ["canary", "app", "10"], "not found"),
            (404, {"error": "not found"}, ["rollout", "app", "status"], "not found"),
            (404, {"error": "not found"}, ["maintenance", "app", "on"], "not found"),
            (409, {"error": "reload refused: sw.json: pools: bad"}, ["reload"],
             "reload refused: sw.json: pools: bad"),
            (401, {"error": "missing or wrong token"}, ["pools"], "missing or wrong token"),
            (409, {"error": "pool app-green has no healthy instance"}, ["switch", "app", "green"],
             "pool app-green has no healthy instance"),
            (500, "<html>Internal Server Error</html>\nmore", ["status"],
             "<html>Internal Server Error</html>"),
            (503, "", ["status"], "refused (503)"),
        ]
        for status, payload, args, text in cases:
            with self.subTest(args=args, status=status):
                self.fake.answer(status, payload,
                                 "application/json" if isinstance(payload, dict) else "text/html")
                code, out, err = self.ctl("--token-file", self.token, *args, env=self.env)
                self.assertEqual(code, 1, err)
                self.assertEqual(out, "")
                self.assertIn("(%d)" % status, err)
                self.assertIn(text, err)
                self.assertNotIn("more", err)
                self.fake.take()

    def test_ok_without_json_is_refused(self):
        self.fake.answer(200, "hello", "text/plain")
        code, out, err = self.ctl("status", env=self.env)
        self.assertEqual(code, 1, err)
        self.assertIn("without a JSON object: hello", err)

    def test_json_output(self):
        doc = {"pools": [{"name": "p", "instances": [{"addr": "h:1", "state": "up"}]}],
               "z": [1, 2], "a": None}
        self.fake.answer(200, doc)
        out = self.run_ok("--json", "pools")
        self.assertEqual(json.loads(out), doc)
        self.assertIn('\n  "pools": [\n', out, "not pretty-printed")
        self.assertLess(out.index('"pools"'), out.index('"a"'), "keys reordered")
        self.fake.answer(200, {"pool": "p", "instance": "h:1", "drained": True})
        out = self.run_ok("drain", "p", "h:1", "--json")
        self.assertEqual(json.loads(out), {"pool": "p", "instance": "h:1", "drained": True})
        # a refusal: the error JSON on stdout for scripts, the text on stderr
        self.fake.answer(409, {"error": "reload refused: x"})
        code, out, err = self.ctl("--json", "reload", env=self.env)
        self.assertEqual(code, 1)
        self.assertEqual(json.loads(out), {"error": "reload refused: x"})
        self.assertIn("reload refused: x", err)

    def test_chunked_and_large_answers(self):
        doc = {"pools": [{"name": "p%d" % i, "balance": "round_robin", "health_checks": False,
                          "instances": [{"addr": "10.0.%d.%d:80" % (i, j), "state": "up",
                                         "health": "up", "in_flight": j,
                                         "last_check": {"at": None, "status": None,
                                                        "error": None}}
                                        for j in range(100)]} for i in range(50)]}
        self.fake.answer(200, doc, chunked=True)
        self.assertEqual(json.loads(self.run_ok("--json", "pools")), doc)
        self.fake.take()
        self.fake.answer(200, doc)
        out = self.run_ok("pools")
        self.assertEqual(len(out.splitlines()), 1 + 50 * 100)
        self.fake.take()


def table(out):
    """Rows of a human table, and the header's column starts (columns are
    two spaces apart or more; "LAST CHECK" is one column)."""
    lines = [l for l in out.split("\n") if l]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", lines[0])]
    return lines, starts


def cells(line, starts):
    """The cells of line cut at the header's column starts."""
    bounds = starts + [len(line)]
    return [line[bounds[i]:bounds[i + 1]].strip() for i in range(len(starts))]


def rfc3339(seconds_ago):
    t = time.time() - seconds_ago
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def pools_doc():
    """A GET /api/v1/pools answer with checks 2 s, 75 s and 1 s ago."""
    return {"pools": [
        {"name": "app-blue", "balance": "round_robin", "health_checks": True, "instances": [
            {"addr": "127.0.0.1:9001", "weight": 1, "state": "up", "health": "up", "drained": False,
             "ejected_until": None, "in_flight": 3,
             "last_check": {"at": rfc3339(2), "status": 200, "error": None}},
            {"addr": "127.0.0.1:9002", "weight": 1, "state": "drained", "health": "up",
             "drained": True, "ejected_until": None, "in_flight": 12,
             "last_check": {"at": rfc3339(75), "status": 200, "error": None}},
            {"addr": "[::1]:9003", "weight": 1, "state": "down", "health": "down", "drained": False,
             "ejected_until": None, "in_flight": 0,
             "last_check": {"at": rfc3339(1), "status": None, "error": "connection refused"}}]},
        {"name": "green", "balance": "round_robin", "health_checks": False, "instances": [
            {"addr": "127.0.0.1:9011", "weight": 1, "state": "ejected", "health": "up",
             "drained": False, "ejected_until": None, "in_flight": 0,
             "last_check": {"at": None, "status": None, "error": None}},
            {"addr": "127.0.0.1:9012", "weight": 1, "state": "ejected", "health": "up",
             "drained": False, "ejected_until": rfc3339(-30), "in_flight": 1,
             "last_check": {"at": None, "status": None, "error": None}}]}]}


STATUS = {"version": "0.1.0", "pid": 4242, "uptime_s": 3725, "workers": 2,
          "config_file": "/etc/switchyard/switchyard.json", "reloads": {"success": 3, "failure": 1},
          "services": [{"name": "app", "active": "blue",
                        "pools": {"blue": "app-blue", "green": "app-green"},
                        "canary_weight": 10, "ready": True},
                       {"name": "api", "active": "green", "pools": {"blue": "b", "green": "g"},
                        "canary_weight": 0, "ready": False}],
          "pools": [{"name": "app-blue", "instances": 3, "healthy": 2, "usable": 1},
                    {"name": "g", "instances": 1, "healthy": 0, "usable": 0}]}


class TestHumanOutput(CtlCase):
    """The tables an operator reads, from answers shaped as the contract says."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeAdmin()

    @classmethod
    def tearDownClass(cls):
        cls.fake.close()

    def setUp(self):
        super().setUp()
        self.env = {"SWITCHYARD_ADMIN": self.fake.url}

    def test_pools_table(self):
        self.fake.answer(200, pools_doc())
        code, out, err = self.ctl("pools", env=self.env)
        self.assertEqual(code, 0, err)
        self.assertNotRegex(out, ANSI, "colour on a pipe")
        lines, starts = table(out)
        self.assertEqual(cells(lines[0], starts),
                         ["POOL", "INSTANCE", "STATE", "HEALTH", "IN-FLIGHT", "LAST CHECK"])
        rows = [cells(l, starts) for l in lines[1:]]
        self.assertEqual(len(rows), 5)
        self.assertEqual(rows[0][:5], ["app-blue", "127.0.0.1:9001", "up", "up", "3"])
        self.assertRegex(rows[0][5], r"^[23]s ago \(200\)$")
        self.assertEqual(rows[1][:5], ["app-blue", "127.0.0.1:9002", "drained", "up", "12"])
        self.assertRegex(rows[1][5], r"^1m1[56]s ago \(200\)$")
        self.assertEqual(rows[2][:5], ["app-blue", "[::1]:9003", "down", "down", "0"])
        self.assertRegex(rows[2][5], r"^[12]s ago \(connection refused\)$")
        self.assertEqual(rows[3], ["green", "127.0.0.1:9011", "ejected", "up", "0", "off"])
        # an ejection shows how long it has left
        self.assertRegex(rows[4][2], r"^ejected (29|30)s$")
        self.assertEqual(rows[4][3:], ["up", "1", "off"])
        # aligned: every cell starts at its header's column
        for line in lines[1:]:
            for s in starts[1:]:
                self.assertEqual(line[s - 2:s], "  ", "misaligned: %r" % line)
                self.assertNotEqual(line[s], " ", "misaligned: %r" % line)

    def test_status_tables(self):
        self.fake.answer(200, STATUS)
        code, out, err = self.ctl("status", env=self.env)
        self.assertEqual(code, 0, err)
        self.assertIn("switchyard 0.1.0  pid 4242  up 1h02m  workers 2", out)
        self.assertIn("config /etc/switchyard/switchyard.json  reloads 3 ok, 1 failed", out)
        services, pools = out.split("\n\n")[1:3]
        lines, starts = table(services)
        self.assertEqual(cells(lines[0], starts),
                         ["SERVICE", "ACTIVE", "BLUE", "GREEN", "CANARY", "READY"])
        self.assertEqual(cells(lines[1], starts),
                         ["app", "blue", "app-blue", "app-green", "10%", "yes"])
        self.assertEqual(cells(lines[2], starts), ["api", "green", "b", "g", "0%", "no"])
        lines, starts = table(pools)
        self.assertEqual(cells(lines[0], starts), ["POOL", "INSTANCES", "HEALTHY", "USABLE"])
        self.assertEqual(cells(lines[1], starts), ["app-blue", "3", "2", "1"])
        self.assertEqual(cells(lines[2], starts), ["g", "1", "0", "0"])

    def run_on_tty(self, *args, env=None):
        """(exit code, output) of switchyard-ctl with stdout on a pseudo-terminal."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([CTL] + list(args), cwd=self.cwd, env=ctl_env(env),
                                    stdout=slave, stderr=subprocess.PIPE)
        finally:
            os.close(slave)
        chunks = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready = select.select([master], [], [], 1)[0]
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:     # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        code = proc.wait(10)
        proc.stderr.close()
        return code, b"".join(chunks).decode()

    def test_colour_only_on_a_terminal_without_no_color(self):
        self.fake.answer(200, pools_doc())
        code, out = self.run_on_tty("pools", env=self.env)
        self.assertEqual(code, 0)
        self.assertRegex(out, ANSI)
        self.assertIn("\x1b[31mdown\x1b[0m", out)
        # colours do not break the alignment: without them it is the pipe's table
        plain = ANSI.sub("", out).replace("\r\n", "\n")
        self.assertEqual(plain, self.ctl("pools", env=self.env)[1])
        code, out = self.run_on_tty("pools", env=dict(self.env, NO_COLOR="1"))
        self.assertEqual(code, 0)
        self.assertNotRegex(out, ANSI)


class RealGatewayCase(CtlCase):
    """A real gateway with an admin listener and a token file holding two
    tokens; pool app-blue has two testd instances and active health checks,
    app-green one instance and none."""

    TOKENS = "secret-one\nsecret-two\n"

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue-1"), (0, "blue-2"), (0, "green-1")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def config(self):
        pools = {
            "app-blue": {"instances": [{"addr": self.td.addr(0)}, {"addr": self.td.addr(1)}],
                         "health": {"path": "/health", "interval_ms": 500, "timeout_ms": 400,
                                    "rise": 1, "fall": 3}},
            "app-green": {"instances": [{"addr": self.td.addr(2)}]},
        }
        return proxytest.config(pools=pools, services={"app": {"blue": "app-blue",
                                                               "green": "app-green"}},
                                routes=[{"host": "*", "path": "/", "service": "app"}],
                                admin={"listen": "%s:%d" % (H, ports.free_port()),
                                       "token_file": "{tmp}/admin.token"})

    def setUp(self):
        super().setUp()
        self.gw = gateway.Gateway(self.config())
        with open(os.path.join(self.gw.tmp, "admin.token"), "w") as f:
            f.write(self.TOKENS)
        self.gw.start()
        self.addCleanup(self.gw.__exit__, None, None, None)
        self.gw.wait_admin()
        self.token = self.write("admin.token", "secret-two\n")
        self.env = {"SWITCHYARD_ADMIN": self.gw.admin_url("").rstrip("/"),
                    "SWITCHYARD_TOKEN_FILE": self.token}

    def run_ok(self, *args):
        code, out, err = self.ctl(*args, env=self.env)
        self.assertEqual(code, 0, "%s: %s%s\n--- gateway stderr ---\n%s"
                         % (args, out, err, self.gw.stderr_text()))
        return out

    def pools_json(self):
        doc = json.loads(self.run_ok("--json", "pools"))
        return {p["name"]: {i["addr"]: i for i in p["instances"]} for p in doc["pools"]}

    def wait_state(self, pool, addr, state, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.pools_json()[pool][addr]["state"]
            if got == state:
                return
            self.assertLess(time.monotonic(), deadline,
                            "%s %s is %s, not %s" % (pool, addr, got, state))
            time.sleep(0.05)

    def security_events(self, event, n):
        lines = self.gw.log_lines("security", min_lines=0)
        deadline = time.monotonic() + 5
        while sum(1 for l in lines if l.get("event") == event) < n and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            lines = self.gw.log_lines("security")
        return [l for l in lines if l.get("event") == event]


class TestRealGateway(RealGatewayCase):

    def test_status(self):
        for addr in (self.td.addr(0), self.td.addr(1)):
            self.wait_state("app-blue", addr, "up")
        # the scaling signal is first judged a second after start
        self.assertTrue(proxytest.wait_until(lambda: json.loads(self.run_ok("status", "--json"))[
            "services"][0]["scaling"]["recommendation"] == -1, timeout=5))
        out = self.run_ok("status")
        self.assertRegex(out, r"^switchyard \S+  pid %d  up \S+  workers 1\n" % self.gw.pid)
        self.assertIn("config %s  reloads 0 ok, 0 failed" % self.gw.config_path, out)
        services, pools = out.split("\n\n")[1:3]
        lines, starts = table(services)
        self.assertEqual(cells(lines[0], starts),
                         ["SERVICE", "ACTIVE", "BLUE", "GREEN", "CANARY", "ROLLOUT", "SCALE",
                          "READY"])
        self.assertEqual(cells(lines[1], starts),
                         ["app", "blue", "app-blue", "app-green", "0%", "idle", "-1", "yes"])
        lines, starts = table(pools)
        rows = {cells(l, starts)[0]: cells(l, starts) for l in lines[1:]}
        self.assertEqual(rows["app-blue"], ["app-blue", "2", "2", "2"])
        self.assertEqual(rows["app-green"], ["app-green", "1", "1", "1"])
        doc = json.loads(self.run_ok("status", "--json"))
        self.assertEqual(doc["pid"], self.gw.pid)
        self.assertEqual([s["name"] for s in doc["services"]], ["app"])

    def test_pools_table_and_json(self):
        blue1, blue2, green1 = (self.td.addr(i) for i in range(3))
        self.wait_state("app-blue", blue1, "up")
        self.wait_state("app-blue", blue2, "up")
        out = self.run_ok("pools")
        self.assertNotRegex(out, ANSI)
        lines, starts = table(out)
        self.assertEqual(cells(lines[0], starts),
                         ["POOL", "INSTANCE", "STATE", "HEALTH", "IN-FLIGHT", "LAST CHECK"])
        rows = {(r[0], r[1]): r for r in (cells(l, starts) for l in lines[1:])}
        self.assertEqual(set(rows), {("app-blue", blue1), ("app-blue", blue2),
                                     ("app-green", green1)})
        for addr in (blue1, blue2):
            self.assertEqual(rows[("app-blue", addr)][2:5], ["up", "up", "0"])
            self.assertRegex(rows[("app-blue", addr)][5], r"^\d+s ago \(200\)$")
        self.assertEqual(rows[("app-green", green1)][2:], ["up", "up", "0", "off"])
        doc = json.loads(self.run_ok("pools", "--json"))
        self.assertEqual([p["name"] for p in doc["pools"]], ["app-blue", "app-green"])
        self.assertEqual(doc["pools"][0]["instances"][0]["last_check"]["status"], 200)

    def test_drain_then_undrain(self):
        addr = self.td.addr(1)
        out = self.run_ok("drain", "app-blue", addr)
        self.assertEqual(out, "pool app-blue: instance %s drained: no new requests, "
                              "in-flight ones finish\n" % addr)
        lines, starts = table(self.run_ok("pools"))
        row = [cells(l, starts) for l in lines[1:] if cells(l, starts)[1] == addr][0]
        self.assertEqual(row[2], "drained")
        self.assertTrue(self.pools_json()["app-blue"][addr]["drained"])
        out = self.run_ok("undrain", "app-blue", addr)
        self.assertEqual(out, "pool app-blue: instance %s undrained: takes new requests\n" % addr)
        self.assertFalse(self.pools_json()["app-blue"][addr]["drained"])
        self.wait_state("app-blue", addr, "up")
        # each change is an admin_action naming the token's line index, never the token
        events = self.security_events("admin_action", 2)
        self.assertEqual([e.get("action") for e in events][-2:], ["drain", "undrain"])
        self.assertEqual(events[-1].get("token"), 1)
        self.assertNotIn("secret", json.dumps(events))

    def test_drain_unknown_instance_is_refused(self):
        code, out, err = self.ctl("drain", "app-blue", "127.0.0.1:1", env=self.env)
        self.assertEqual((code, out), (1, ""), err)
        self.assertIn("refused (404)", err)
        code, _, err = self.ctl("drain", "no-such-pool", self.td.addr(0), env=self.env)
        self.assertEqual(code, 1, err)
        self.assertIn("refused (404)", err)

    def test_reload_taken_and_refused(self):
        cfg = dict(self.gw.config)
        cfg["services"] = {"app": {"blue": "app-blue", "green": "app-green", "active": "green"}}
        self.gw.write_config(cfg)
        out = self.run_ok("reload")
        self.assertEqual(out, "reloaded %s\n" % self.gw.config_path)
        self.assertEqual(json.loads(self.run_ok("--json", "status"))["services"][0]["active"],
                         "green")
        bad = dict(cfg, no_such_key=1)
        self.gw.write_config(bad)
        code, out, err = self.ctl("reload", env=self.env)
        self.assertEqual((code, out), (1, ""), err)
        self.assertIn("refused (409): reload refused", err)
        self.assertIn("no_such_key", err)
        self.assertTrue(self.gw.running())
        doc = json.loads(self.run_ok("--json", "status"))
        self.assertEqual(doc["reloads"], {"success": 1, "failure": 1})
        self.assertEqual(doc["services"][0]["active"], "green")

    def test_wrong_or_missing_token(self):
        wrong = self.write("wrong.token", "secret-three\n")
        for args in (["--token-file", wrong, "pools"], ["--token-file", wrong, "reload"],
                     ["--token-file", wrong, "drain", "app-blue", self.td.addr(0)]):
            code, out, err = self.ctl(*args, env=self.env)
            self.assertEqual((code, out), (1, ""), err)
            self.assertIn("refused (401)", err)
        # no token at all: the default file is absent in this working directory
        code, out, err = self.ctl("status", env={"SWITCHYARD_ADMIN": self.env["SWITCHYARD_ADMIN"]})
        self.assertEqual(code, 1, err)
        self.assertIn("refused (401)", err)
        self.assertFalse(self.pools_json()["app-blue"][self.td.addr(0)]["drained"])
        self.assertGreaterEqual(len(self.security_events("auth_failed", 4)), 4)

    def test_unknown_service_is_refused(self):
        # switch, canary, rollout and maintenance on a service that does not
        # exist: refused today (endpoint not served) and after (no service)
        for args in (["switch", "no-such", "green"], ["canary", "no-such", "5"],
                     ["rollout", "no-such", "status"], ["maintenance", "no-such", "on"]):
            code, out, err = self.ctl(*args, env=self.env)
            self.assertEqual((code, out), (1, ""), err)
            self.assertIn("refused (404)", err)

    def test_admin_down_is_unreachable(self):
        url = self.env["SWITCHYARD_ADMIN"]
        self.gw.stop()
        code, out, err = self.ctl("status", env=self.env)
        self.assertEqual(code, 3, err)
        self.assertIn("cannot reach the gateway at %s" % url, err)


if __name__ == "__main__":
    unittest.main()
