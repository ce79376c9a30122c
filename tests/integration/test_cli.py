# SPDX-License-Identifier: BSD-2-Clause
"""The switchyard command line (SPEC.md "Programs"): -t, -V, -h, -s, bad
usage, and every way a start must fail at once with one clear line on
stderr (port in use, unreadable files named in the configuration).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, loadgen, ports, root_path  # noqa: E402

BIN = root_path("build", "switchyard")
H = "127.0.0.1"
# A failed start must not take longer than this (no retry loops, no waits).
FAIL_FAST_S = 3.0
# "FILE: JSON.PATH: message" (SPEC.md); PATH is keys, [i] indexes, dots.
ERROR_LINE = re.compile(r"^(?P<file>[^:]+): (?P<path>[A-Za-z0-9_.\[\]-]+): (?P<msg>.+)$")


def run(args, cwd, env=None, timeout=20):
    """switchyard args in cwd: (exit code, stdout, stderr)."""
    proc = subprocess.run([BIN] + list(args), cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


class CliCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sy-cli-")
        os.makedirs(os.path.join(self.tmp, "logs"))
        self.port = ports.free_port()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, **extra):
        cfg = loadgen.minimal_config(self.port, {"p": [self.td.addr(0)]}, **extra)
        return gateway.resolve(cfg, self.tmp)

    def write(self, cfg, name="switchyard.json"):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f, indent=2)
        return path

    def assert_nothing_started(self):
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "switchyard.pid")),
                         "a pid file was written")
        self.assertFalse(ports.port_open(H, self.port), "the listen port is bound")

    def start_fails(self, cfg, *args):
        """Runs the gateway on cfg, which must fail at once; returns stderr."""
        path = self.write(cfg)
        t0 = time.monotonic()
        proc = subprocess.Popen([BIN, "-c", path] + list(args), cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=FAIL_FAST_S + 7)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail("the gateway kept running; stderr: %s" % err)
        took = time.monotonic() - t0
        self.assertEqual(proc.returncode, 1, "stdout: %s\nstderr: %s" % (out, err))
        self.assertLess(took, FAIL_FAST_S, "a failed start took %.1f s" % took)
        self.assert_nothing_started()
        return err


class TestConfigTest(CliCase):
    """-t: test the configuration and exit."""

    def test_valid(self):
        path = self.write(self.config())
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "switchyard: configuration %s is valid" % path)
        self.assertEqual(err, "")
        self.assert_nothing_started()

    def test_default_config_file(self):
        self.write(self.config(), "conf/switchyard.json")
        rc, out, err = run(["-t"], self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "switchyard: configuration conf/switchyard.json is valid")

    def test_several_errors_reported_at_once(self):
        cfg = self.config()
        cfg["pools"]["p"]["instances"] = [{"addr": "127.0.0.1:99999"}, {"addr": "nohost"}]
        cfg["services"]["svc"]["green"] = "missing-pool"
        cfg["shutdown_timeout_ms"] = "soon"
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertNotIn("is valid", out)
        lines = err.strip().split("\n")
        paths = []
        for line in lines:
            m = ERROR_LINE.match(line)
            self.assertIsNotNone(m, "not FILE: PATH: message: %r" % line)
            self.assertEqual(m.group("file"), path)
            paths.append(m.group("path"))
        for want in ("pools.p.instances[0].addr", "pools.p.instances[1].addr",
                     "services.svc.green", "shutdown_timeout_ms"):
            self.assertIn(want, paths, err)
        self.assertIn("%s: pools.p.instances[0].addr: invalid port 99999" % path, lines)
        self.assert_nothing_started()

    def test_errors_stop_a_start_too(self):
        cfg = self.config()
        cfg["pools"]["p"]["instances"][0]["addr"] = "127.0.0.1:99999"
        err = self.start_fails(cfg)
        self.assertIn("pools.p.instances[0].addr: invalid port 99999", err)

    def test_unknown_keys(self):
        cfg = self.config()
        cfg["wrokers"] = 2
        cfg["pools"]["p"]["balanse"] = "round_robin"
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        lines = err.strip().split("\n")
        self.assertTrue(any(re.match(r"^%s: wrokers: .*unknown" % re.escape(path), l)
                            for l in lines), err)
        self.assertTrue(any(re.match(r"^%s: pools\.p\.balanse: .*unknown" % re.escape(path), l)
                            for l in lines), err)

    def test_json_syntax_error_has_line_and_column(self):
        path = self.write('{\n  "workers": 2,\n  "listen": [}\n}\n')
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        m = re.match(r"^%s:(\d+):(\d+): \S" % re.escape(path), err)
        self.assertIsNotNone(m, err)
        self.assertEqual(m.group(1), "3", err)
        self.assertEqual(err.count("\n"), 1, err)

    def test_relative_config_and_overlay(self):
        self.write(self.config(), "sub/gw.json")
        self.write({"services": {"svc": {"active": "bogus"}}}, "sub/gw.prod.json")
        rc, out, err = run(["-t", "-c", "sub/gw.json"], self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "switchyard: configuration sub/gw.json is valid")
        rc, out, err = run(["-t", "-c", "sub/gw.json", "-e", "prod"], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("services.svc.active", err)

    def test_missing_config_file(self):
        missing = os.path.join(self.tmp, "nope.json")
        rc, out, err = run(["-t", "-c", missing], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(missing, err)
        self.assertRegex(err, "No such file|cannot open|cannot read")
        err = self.start_fails(self.config(), "-c", missing)  # the later -c wins
        self.assertIn(missing, err)

    def test_token_file_unreadable(self):
        cfg = self.config()
        cfg["admin"] = {"listen": "%s:%d" % (H, ports.free_port()),
                        "token_file": os.path.join(self.tmp, "missing.token")}
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: admin.token_file: " % path, err)
        self.assertIn("missing.token", err)
        err = self.start_fails(cfg)
        self.assertIn("admin.token_file", err)

    def test_token_file_is_a_directory(self):
        cfg = self.config()
        cfg["admin"] = {"listen": "%s:%d" % (H, ports.free_port()), "token_file": self.tmp}
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: admin.token_file: " % path, err)

    def test_tls_certificate_missing(self):
        cfg = self.config()
        cfg["listen"][0]["tls"] = {"certificates": [
            {"cert": os.path.join(self.tmp, "site.pem"), "key": os.path.join(self.tmp, "site.key")}]}
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: listen[0].tls.certificates[0].cert: " % path, err)
        self.assertIn("site.pem", err)
        self.assertIn("listen[0].tls.certificates[0].key", err)
        self.start_fails(cfg)


    def test_tls_key_not_matching_the_certificate(self):
        # Files that exist but do not belong together fail -t, naming the listener.
        for name in ("a", "b"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                            "-keyout", os.path.join(self.tmp, name + ".key"),
                            "-out", os.path.join(self.tmp, name + ".pem")],
                           check=True, capture_output=True)
        cfg = self.config()
        cfg["listen"][0]["tls"] = {"certificates": [{"cert": "a.pem", "key": "b.key"}]}
        path = self.write(cfg)
        rc, out, err = run(["-t", "-c", path], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: listen[0].tls.certificates[0]" % path, err)
        self.start_fails(cfg)


class TestOptions(CliCase):
    def test_version(self):
        rc, out, err = run(["-V"], self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^switchyard \d+\.\d+\.\d+")
        self.assertIn("libevent", out)
        self.assertIn("OpenSSL", out)
        # the optional libraries as configure found them (src/sy_auto.h)
        with open(root_path("src", "sy_auto.h")) as f:
            built = dict(re.findall(r"#define SY_HAVE_(HIREDIS|MAXMINDDB|NGHTTP2)\s+(\d)", f.read()))
        yes = {k: "yes" if built[k] == "1" else "no" for k in built}
        self.assertIn("optional: hiredis %s, libmaxminddb %s, nghttp2 %s" % (
            yes["HIREDIS"], yes["MAXMINDDB"], yes["NGHTTP2"]), out)

    def test_help(self):
        rc, out, err = run(["-h"], self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertIn("usage: switchyard", out)
        for flag in ("-c FILE", "-e ENV", "-p PIDFILE", "-t", "-s reload|reopen|stop", "-V"):
            self.assertIn(flag, out)

    def test_bad_usage_exits_2(self):
        for args in (["-Q"], ["-c"], ["extra-argument"], ["-t", "-c", "x.json", "more"]):
            with self.subTest(args=args):
                rc, out, err = run(args, self.tmp)
                self.assertEqual(rc, 2, out + err)
                self.assertIn("usage", err)
                self.assertEqual(out, "")
        self.assert_nothing_started()

    def test_signal_bad_name_exits_2(self):
        rc, out, err = run(["-s", "restart"], self.tmp)
        self.assertEqual(rc, 2, out + err)
        self.assertIn("restart", err)
        self.assertIn("reload", err)

    def test_signal_missing_pid_file(self):
        pid_file = os.path.join(self.tmp, "none.pid")
        rc, out, err = run(["-s", "stop", "-p", pid_file], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(pid_file, err)
        self.assertIn("No such file", err)
        rc, out, err = run(["-s", "reload"], self.tmp)   # default switchyard.pid
        self.assertEqual(rc, 1, out + err)
        self.assertIn("switchyard.pid", err)

    def test_signal_garbage_or_stale_pid_file(self):
        pid_file = os.path.join(self.tmp, "x.pid")
        with open(pid_file, "w") as f:
            f.write("not a pid\n")
        rc, out, err = run(["-s", "reopen", "-p", pid_file], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(pid_file, err)
        dead = subprocess.Popen(["true"])
        dead.wait()
        with open(pid_file, "w") as f:
            f.write("%d\n" % dead.pid)
        rc, out, err = run(["-s", "reopen", "-p", pid_file], self.tmp)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(str(dead.pid), err)


class TestStartFailures(CliCase):
    """A start that cannot succeed exits 1 at once with one clear line."""

    def test_port_in_use(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((H, self.port))
        holder.listen(8)
        try:
            path = self.write(self.config())
            t0 = time.monotonic()
            rc, out, err = run(["-c", path], self.tmp, timeout=FAIL_FAST_S + 7)
            took = time.monotonic() - t0
        finally:
            holder.close()
        self.assertEqual(rc, 1, out + err)
        self.assertLess(took, FAIL_FAST_S)
        self.assertEqual(err.count("\n"), 1, "want exactly one line: %r" % err)
        self.assertIn("cannot listen on 127.0.0.1:%d: Address already in use" % self.port, err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "switchyard.pid")))

    def test_second_listener_in_use(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind((H, 0))
        holder.listen(8)
        busy = holder.getsockname()[1]
        try:
            cfg = self.config()
            cfg["listen"].append({"addr": "%s:%d" % (H, busy)})
            err = self.start_fails(cfg)
        finally:
            holder.close()
        self.assertEqual(err.strip(), "switchyard: cannot listen on 127.0.0.1:%d: "
                         "Address already in use" % busy)

    def test_port_in_use_by_another_gateway(self):
        # SO_REUSEPORT must not let a second gateway share the first one's port.
        with gateway.Gateway(self.config()) as first:
            path = self.write(self.config())
            rc, out, err = run(["-c", path, "-p", os.path.join(self.tmp, "second.pid")],
                               self.tmp, timeout=FAIL_FAST_S + 7)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("cannot listen on 127.0.0.1:%d: Address already in use" % self.port,
                          err)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "second.pid")))
            self.assertTrue(first.running())
            status, _, body = httpc.get(first.url("/"))
            self.assertEqual((status, body), (200, b"blue\n"))
        self.assertEqual(first.proc.returncode, 0)

    def test_access_log_unwritable(self):
        blocker = os.path.join(self.tmp, "a-file")
        open(blocker, "w").close()
        cfg = self.config()
        cfg["log"]["access"] = os.path.join(blocker, "access.log")   # ENOTDIR, even for root
        err = self.start_fails(cfg)
        self.assertIn(os.path.join(blocker, "access.log"), err)
        self.assertEqual(err.count("\n"), 1, "want one clear line: %r" % err)

    def test_error_log_unwritable(self):
        blocker = os.path.join(self.tmp, "a-file")
        open(blocker, "w").close()
        cfg = self.config()
        cfg["log"]["error"] = os.path.join(blocker, "error.log")
        err = self.start_fails(cfg)
        self.assertIn(os.path.join(blocker, "error.log"), err)

    def test_pid_file_unwritable(self):
        pid_file = os.path.join(self.tmp, "no-such-dir", "gw.pid")
        err = self.start_fails(self.config(), "-p", pid_file)
        self.assertIn(pid_file, err)


if __name__ == "__main__":
    unittest.main()
