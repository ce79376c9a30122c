# SPDX-License-Identifier: BSD-2-Clause
"""systemd integration (issue 10): the gateway's own sd_notify. A python
AF_UNIX datagram socket stands in for the service manager as
$NOTIFY_SOCKET and receives READY=1 once the gateway serves, RELOADING=1
then READY=1 around each SIGHUP reload (refused or not), and STOPPING=1 on
SIGTERM, each from the gateway's main pid (what NotifyAccess=main checks).
A missing or broken socket never stops the gateway; a missing configuration
fails before READY=1 with the gateway's own message. The unit file
contrib/systemd/switchyard.service passes `systemd-analyze verify`, carries
its sandbox, and its Environment= lines move the example configuration's
relative log and state paths where StateDirectory/LogsDirectory put them.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, loadgen, ports, root_path  # noqa: E402

BIN = root_path("build", "switchyard")
UNIT = root_path("contrib", "systemd", "switchyard.service")
H = "127.0.0.1"
WAIT_S = 10.0


class Manager:
    """The service manager's end: a bound SOCK_DGRAM socket that receives
    states with the sender's credentials (SO_PASSCRED, as systemd does)."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.dir = None
        if abstract:
            self.name = "@sy-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + self.name[1:])
        else:
            self.dir = tempfile.mkdtemp(prefix="sy-notify-")
            self.name = os.path.join(self.dir, "notify")
            self.sock.bind(self.name)

    def recv(self, timeout=WAIT_S):
        """(state as {key: value}, sender pid); fails the test on timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no notification within %.0f s" % timeout)
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        state = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        return state, pid

    def nothing(self, timeout=0.5):
        """True when no datagram arrives within timeout."""
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(4096)
            return False
        except socket.timeout:
            return True

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class NotifyCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def setUp(self):
        self.port = ports.free_port()

    def config(self, backend=0):
        return loadgen.minimal_config(self.port, {"pb": [self.td.addr(backend)]}, workers=1)

    def manager(self, abstract=False):
        m = Manager(abstract)
        self.addCleanup(m.close)
        return m

    def start(self, env):
        gw = gateway.Gateway(self.config(), env=env)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def expect(self, m, gw, key):
        state, pid = m.recv()
        self.assertEqual(state.get(key), "1", "expected %s=1, got %r" % (key, state))
        self.assertEqual(pid, gw.pid, "sent by pid %s, not the gateway's main pid" % pid)
        return state

    def body(self, gw):
        status, _, body = httpc.get(gw.url("/"))
        self.assertEqual(status, 200)
        return body

    def test_ready_reload_stop(self):
        m = self.manager()
        gw = self.start({"NOTIFY_SOCKET": m.name})
        state = self.expect(m, gw, "READY")
        self.assertIn("STATUS", state)
        self.assertTrue(m.nothing(), "more than one READY=1 at start")

        # A good reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
        before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        gw.write_config(self.config(backend=1))
        gw.reload()
        state = self.expect(m, gw, "RELOADING")
        after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.assertTrue(before_us <= int(state["MONOTONIC_USEC"]) <= after_us, state)
        self.expect(m, gw, "READY")
        deadline = time.monotonic() + WAIT_S
        while b"green" not in self.body(gw) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(b"green", self.body(gw))

        # A refused reload: still READY=1 after it, the reason in STATUS.
        with open(gw.config_path, "w") as f:
            f.write("{not json")
        gw.reload()
        self.expect(m, gw, "RELOADING")
        state = self.expect(m, gw, "READY")
        self.assertIn(gw.config_path, state.get("STATUS", ""))
        self.assertIn(b"green", self.body(gw))

        gw.signal(signal.SIGTERM)
        self.expect(m, gw, "STOPPING")
        self.assertEqual(gw.wait_exit(WAIT_S), 0)

    def test_fast_stop_sends_stopping(self):
        m = self.manager()
        gw = self.start({"NOTIFY_SOCKET": m.name})
        self.expect(m, gw, "READY")
        gw.signal(signal.SIGINT)
        self.expect(m, gw, "STOPPING")
        self.assertEqual(gw.wait_exit(WAIT_S), 0)

    def test_abstract_socket(self):
        m = self.manager(abstract=True)
        gw = self.start({"NOTIFY_SOCKET": m.name})
        self.expect(m, gw, "READY")
        gw.reload()
        self.expect(m, gw, "RELOADING")
        self.expect(m, gw, "READY")

    def test_broken_socket_does_not_stop_the_gateway(self):
        for name in ("/nonexistent/sy-notify", "not-a-socket-address"):
            with self.subTest(name=name):
                gw = gateway.Gateway(self.config(), env={"NOTIFY_SOCKET": name})
                gw.start()
                try:
                    self.body(gw)
                    gw.reload()
                    self.body(gw)
                    self.assertTrue(gw.running())
                    deadline = time.monotonic() + WAIT_S
                    text = ""
                    while "cannot notify" not in text and time.monotonic() < deadline:
                        time.sleep(0.05)
                        with open(gw.log_path("error"), errors="replace") as f:
                            text = f.read()
                    self.assertIn("cannot notify the service manager", text)
                    self.assertEqual(gw.stop(), 0)
                finally:
                    gw.__exit__(None, None, None)

    def test_missing_configuration_fails_before_ready(self):
        m = self.manager()
        missing = os.path.join(m.dir, "switchyard.json")
        proc = subprocess.run([BIN, "-c", missing, "-p", os.path.join(m.dir, "pid")],
                              env=dict(os.environ, NOTIFY_SOCKET=m.name), capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(missing, proc.stderr)
        self.assertTrue(m.nothing(), "READY=1 from a gateway that did not start")


def unit_lines():
    """[(key, value)] of the unit file, in order (keys repeat)."""
    out = []
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                out.append((key.strip(), value.strip()))
    return out


class UnitCase(unittest.TestCase):
    def test_directives(self):
        lines = unit_lines()
        d = dict(lines)
        self.assertEqual(d["Type"], "notify")
        self.assertEqual(d["NotifyAccess"], "main")
        self.assertTrue(d["ExecStart"].startswith("/usr/bin/switchyard "), d["ExecStart"])
        self.assertIn("-c /etc/switchyard/switchyard.json", d["ExecStart"])
        self.assertRegex(d["ExecReload"], r"kill -(HUP|SIGHUP) \$MAINPID")
        self.assertEqual(d["KillSignal"], "SIGTERM")        # SPEC: the graceful stop
        self.assertGreaterEqual(int(d["LimitNOFILE"]), 65536)
        self.assertTrue(d.get("DynamicUser") == "yes" or d.get("User") == "switchyard")
        self.assertEqual(d["ProtectSystem"], "strict")
        self.assertEqual(d["NoNewPrivileges"], "yes")
        self.assertEqual(d["CapabilityBoundingSet"], "CAP_NET_BIND_SERVICE")
        self.assertEqual(d["StateDirectory"], "switchyard")
        self.assertEqual(d["LogsDirectory"], "switchyard")
        self.assertEqual(d["WorkingDirectory"], "/var/lib/switchyard")

    @unittest.skipUnless(shutil.which("systemd-analyze"),
                         "systemd-analyze is not installed (Debian: apt-get install -y systemd)")
    def test_systemd_analyze_verify(self):
        # verify checks ExecStart= inside --root, so the unit is verified as
        # installed: build/switchyard at /usr/bin/switchyard, the system's
        # own units beside it (sysinit.target...). --man=no: the man pages
        # named in Documentation= are another package's files.
        root = tempfile.mkdtemp(prefix="sy-unit-")
        self.addCleanup(shutil.rmtree, root, True)
        for d in ("usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy(BIN, os.path.join(root, "usr/bin/switchyard"))
        shutil.copy(shutil.which("kill") or "/bin/kill", os.path.join(root, "bin/kill"))
        shutil.copy(UNIT, os.path.join(root, "etc/systemd/system/switchyard.service"))
        system_units = "/usr/lib/systemd/system"
        if not os.path.isdir(system_units):
            self.skipTest("no %s to verify against" % system_units)
        shutil.copytree(system_units, os.path.join(root, "usr/lib/systemd/system"),
                        symlinks=True)
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", "--root=" + root,
                               "switchyard.service"], capture_output=True, text=True,
                              timeout=120)
        # verify exits 0 on an unknown or unparsable key and only warns:
        # any output at all is a failure.
        self.assertEqual((proc.returncode, proc.stdout + proc.stderr), (0, ""))

    def test_environment_moves_example_paths(self):
        """The example configuration, started as the unit starts it: the
        working directory is the state directory, the unit's Environment=
        lines point logs and state at LogsDirectory/StateDirectory (here
        both under a temporary root), and nothing lands in logs/ or state/."""
        root = tempfile.mkdtemp(prefix="sy-unit-")
        self.addCleanup(shutil.rmtree, root, True)
        env = {}
        for key, value in unit_lines():
            if key == "Environment":
                name, _, v = value.partition("=")
                env[name] = v.replace("/var/log/switchyard", os.path.join(root, "log")) \
                             .replace("/var/lib/switchyard", os.path.join(root, "lib"))
        self.assertIn("SWITCHYARD__LOG__ERROR", env)
        self.assertIn("SWITCHYARD__STATE_FILE", env)
        os.makedirs(os.path.join(root, "log"))
        os.makedirs(os.path.join(root, "lib"))
        with open(root_path("conf", "switchyard.json")) as f:
            cfg = json.load(f)
        port = ports.free_port()
        cfg["listen"] = [{"addr": "%s:%d" % (H, port)}]
        cfg.pop("admin", None)      # Gateway picks a free admin port
        gw = gateway.Gateway(cfg, workdir=os.path.join(root, "lib"), env=env,
                             args=["-p", "switchyard.pid"])
        with gw:
            deadline = time.monotonic() + WAIT_S
            error_log = os.path.join(root, "log", "error.log")
            while not os.path.exists(error_log) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(os.path.exists(error_log), os.listdir(root))
        for rel in ("logs/access.log", "logs/error.log", "state/switchyard-state.json"):
            self.assertFalse(os.path.exists(os.path.join(root, "lib", rel)), rel)
        self.assertTrue(os.path.exists(os.path.join(root, "log", "access.log")))


if __name__ == "__main__":
    unittest.main()
