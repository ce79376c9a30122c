# SPDX-License-Identifier: BSD-2-Clause
"""Upgrading the running gateway without dropping a connection (issue 10):
SIGUSR2 or `switchyard -s upgrade` starts the binary at the path the gateway
was started from, hands it the listening sockets (workers' and admin's), and
stops the old process gracefully once the new one serves. Under steady
keep-alive and new-connection load no request fails; the pid file names the
new process; the old one exits 0 after finishing its requests and tunnels; a
failed upgrade (a binary that exits, an invalid configuration, a process that
never serves) leaves the old gateway serving with one line in its log; a
second SIGUSR2 while one runs is refused; systemd is told MAINPID= then
READY=1.

This process becomes a child subreaper, so that a new gateway orphaned by
its old process's exit is reparented here and its exit status can be read.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, httpc, loadgen, ports, root_path, websocket  # noqa: E402
from test_lifecycle import InFlight  # noqa: E402
from test_systemd import Manager  # noqa: E402

BIN = root_path("build", "switchyard")
WAIT_S = 15.0
PR_SET_CHILD_SUBREAPER = 36


def setUpModule():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise unittest.SkipTest("prctl(PR_SET_CHILD_SUBREAPER): %s"
                                % os.strerror(ctypes.get_errno()))


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pid, timeout=WAIT_S):
    """Waits until pid ended; its exit code when it was (or became) our child, else None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            if not alive(pid):
                return None
        if time.monotonic() > deadline:
            raise AssertionError("process %d still runs %.0f s later" % (pid, timeout))
        time.sleep(0.02)


def replace_file(path, content, mode=0o755):
    """Puts content at path as a new file (a new inode), as a package manager does."""
    tmp = path + ".new"
    if isinstance(content, str) and os.path.exists(content):
        shutil.copyfile(content, tmp)
    else:
        with open(tmp, "w") as f:
            f.write(content)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


class UpgradeCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if gateway._wrapper():
            raise unittest.SkipTest("an upgrade runs the binary itself, outside "
                                    "SY_GATEWAY_WRAPPER")
        cls.td = backends.Testd([(0, "blue"), (0, "green")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def start(self, binary=None, env=None, config=None, **extra):
        """A started gateway with pid file gw.pid and admin up; every process it
        upgrades to is stopped when the test ends."""
        extra.setdefault("shutdown_timeout_ms", 10000)
        cfg = config or loadgen.minimal_config(
            ports.free_port(), {"pb": [self.td.addr(0)], "pg": [self.td.addr(1)]}, **extra)
        gw = gateway.Gateway(cfg, binary=binary, env=env, args=["-p", "gw.pid"])
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        self.addCleanup(self.stop_later_pids, gw)
        gw.wait_admin()
        return gw

    def stop_later_pids(self, gw):
        pid = self.file_pid(gw)
        if pid and pid != gw.pid and alive(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_gone(pid, 20)
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 5)

    def file_pid(self, gw):
        try:
            with open(gw.pid_file()) as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def upgrade_cli(self, gw):
        """`switchyard -s upgrade -p gw.pid`, as an operator runs it."""
        out = subprocess.run([BIN, "-s", "upgrade", "-p", "gw.pid"], cwd=gw.tmp,
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)

    def wait_new_pid(self, gw, old):
        """The pid the pid file names once it names another process than old."""
        deadline = time.monotonic() + WAIT_S
        while True:
            pid = self.file_pid(gw)
            if pid and pid != old:
                return pid
            self.assertLess(time.monotonic(), deadline, "the pid file still names %d:\n%s"
                            % (old, self.error_log(gw)))
            time.sleep(0.02)

    def error_log(self, gw):
        try:
            with open(gw.log_path("error")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, gw, needle, count=1, timeout=WAIT_S):
        """The error log once needle appears count times in it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.error_log(gw)
            if text.count(needle) >= count:
                return text
            self.assertLess(time.monotonic(), deadline, "%r not %d times in the error log:\n%s"
                            % (needle, count, text))
            time.sleep(0.05)

    def status_pid(self, gw):
        r = admin.Admin(gw).get("/api/v1/status")
        self.assertEqual(r.status, 200, r)
        return r.json["pid"]

    def assert_serves(self, gw, body=b"blue\n"):
        status, _, got = httpc.get(gw.url("/"))
        self.assertEqual((status, got), (200, body))

    def own_binary(self):
        """A copy of build/switchyard in a directory of its own; returns its path."""
        d = tempfile.mkdtemp(prefix="sy-upgrade-bin-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "switchyard")
        replace_file(path, BIN)
        return path


class TestUpgrade(UpgradeCase):
    def test_under_load_nothing_fails(self):
        gw = self.start(state_file="{tmp}/state.json")
        r = admin.Admin(gw).post("/api/v1/services/svc/switch", {"to": "green"})
        self.assertEqual(r.status, 200, r)
        old = gw.pid
        keep = loadgen.Load(*gw.host_port(), threads=3).start()
        fresh = loadgen.Load(*gw.host_port(), threads=2, headers={"Connection": "close"}).start()
        try:
            self.assertTrue(keep.wait_count(60) and fresh.wait_count(30), "no load")
            slow = InFlight(*gw.host_port(), "/delay/1500")
            time.sleep(0.2)     # let it reach testd on the old process
            self.upgrade_cli(gw)
            new = self.wait_new_pid(gw, old)
            self.assertTrue(alive(new))
            n_keep, n_fresh = keep.count(), fresh.count()
            self.assertTrue(keep.wait_count(n_keep + 100) and fresh.wait_count(n_fresh + 50),
                            "the load stalled after the upgrade")
            self.assertEqual(gw.wait_exit(WAIT_S), 0, "the old process did not exit 0")
            n_keep, n_fresh = keep.count(), fresh.count()
            self.assertTrue(keep.wait_count(n_keep + 50) and fresh.wait_count(n_fresh + 20),
                            "nothing served once the old process exited")
        finally:
            keep.stop()
            fresh.stop()
        for load in (keep, fresh):
            self.assertFalse(load.result.failures, load.result.describe())
            self.assertEqual(set(load.result.bodies()), {b"green\n"})
        self.assertTrue(slow.join(5), "the request in flight never ended")
        self.assertNotIsInstance(slow.result, Exception, slow.result)
        status, _, body, _ = slow.result
        self.assertEqual((status, body), (200, b"green\n"))
        self.assertEqual(self.file_pid(gw), new)
        self.assertEqual(self.status_pid(gw), new, "admin.listen is not the new process's")
        log = self.error_log(gw)
        self.assertIn("upgrade: took over 3 listening socket(s) from pid %d" % old, log)
        self.assertIn("service svc: restored active green", log)
        self.assertNotIn("upgrade failed", log)
        self.assertEqual(os.stat("/proc/%d/exe" % new).st_ino, os.stat(BIN).st_ino)

    def test_tunnel_on_the_old_process_keeps_working(self):
        app = websocket.EchoApp()
        self.addCleanup(app.close)
        port = ports.free_port()
        gw = self.start(config=loadgen.minimal_config(port, {"ws": [app.addr]},
                                                      shutdown_timeout_ms=20000))
        old = gw.pid
        ws = websocket.Client(*gw.host_port(), path="/chat")
        self.assertTrue(ws.accepted, ws.headers)
        gw.signal(signal.SIGUSR2)
        new = self.wait_new_pid(gw, old)
        self.wait_log(gw, "new process %d serves" % new)
        for i in range(3):
            ws.send(websocket.TEXT, b"after the upgrade %d" % i)
            self.assertEqual(ws.recv(), (websocket.TEXT, b"after the upgrade %d" % i))
        self.assertTrue(gw.running(), "the old process left with a tunnel open")
        self.assertEqual(self.status_pid(gw), new)
        # The new process does not start another upgrade while the old one still runs.
        os.kill(new, signal.SIGUSR2)
        self.wait_log(gw, "upgrade refused: this process took over from pid %d" % old)
        ws.close()
        ws.sock.close()
        self.assertEqual(gw.wait_exit(WAIT_S), 0)
        # Once it is gone, the new process may be upgraded in its turn.
        os.kill(new, signal.SIGUSR2)
        third = self.wait_new_pid(gw, new)
        self.assertEqual(wait_gone(new), 0)
        self.assertEqual(self.status_pid(gw), third)
        self.assertEqual(self.file_pid(gw), third)

    def test_runs_the_binary_now_at_the_path(self):
        path = self.own_binary()
        gw = self.start(binary=path)
        old = gw.pid
        replace_file(path, BIN)          # a new file at the path: another inode
        self.assertNotEqual(os.stat("/proc/%d/exe" % old).st_ino, os.stat(path).st_ino)
        gw.signal(signal.SIGUSR2)
        new = self.wait_new_pid(gw, old)
        self.assertEqual(os.stat("/proc/%d/exe" % new).st_ino, os.stat(path).st_ino)
        self.assertEqual(os.readlink("/proc/%d/exe" % new), path)
        with open("/proc/%d/cmdline" % new, "rb") as f:
            argv = f.read().split(b"\0")[:-1]
        self.assertEqual(argv, [path.encode(), b"-c", gw.config_path.encode(), b"-p", b"gw.pid"])
        self.assertEqual(gw.wait_exit(WAIT_S), 0)
        self.assert_serves(gw)
        self.assertEqual(self.status_pid(gw), new)

    def test_systemd_follows_the_new_process(self):
        m = Manager()
        self.addCleanup(m.close)
        gw = self.start(env={"NOTIFY_SOCKET": m.name})
        state, pid = m.recv()
        self.assertEqual((state.get("READY"), pid), ("1", gw.pid))
        gw.signal(signal.SIGUSR2)
        state, pid = m.recv()
        new = self.wait_new_pid(gw, gw.pid)
        self.assertEqual(pid, gw.pid, "MAINPID= must come from the main pid, the old one")
        self.assertEqual((state.get("MAINPID"), state.get("READY")), (str(new), "1"), state)
        self.assertEqual(gw.wait_exit(WAIT_S), 0)
        self.assertTrue(m.nothing(0.5), "the old process said more (STOPPING=1?) after it "
                        "handed over, or the new one sent READY=1 itself")
        os.kill(new, signal.SIGHUP)
        state, pid = m.recv()
        self.assertEqual((state.get("RELOADING"), pid), ("1", new))
        state, pid = m.recv()
        self.assertEqual((state.get("READY"), pid), ("1", new))
        os.kill(new, signal.SIGTERM)
        state, pid = m.recv()
        self.assertEqual((state.get("STOPPING"), pid), ("1", new))
        self.assertEqual(wait_gone(new), 0)


class TestFailedUpgrade(UpgradeCase):
    def assert_still_serving(self, gw, old, load):
        n = load.count()
        self.assertTrue(load.wait_count(n + 50), "the old gateway stopped serving")
        self.assertTrue(gw.running())
        self.assertEqual(self.file_pid(gw), old)
        self.assertEqual(self.status_pid(gw), old, "the admin listener does not answer again")

    def fail_with_binary(self, content, env=None, failure="ended before it served"):
        path = self.own_binary()
        gw = self.start(binary=path, env=env)
        old = gw.pid
        replace_file(path, content)
        load = loadgen.Load(*gw.host_port(), threads=3).start()
        try:
            self.assertTrue(load.wait_count(30))
            gw.signal(signal.SIGUSR2)
            log = self.wait_log(gw, "upgrade failed")
            self.assert_still_serving(gw, old, load)
        finally:
            load.stop()
        self.assertFalse(load.result.failures, load.result.describe())
        lines = [line for line in log.splitlines() if "upgrade failed" in line]
        self.assertEqual(len(lines), 1, log)
        self.assertIn(failure, lines[0])
        self.assertIn("keeps serving", lines[0])
        # The same gateway upgrades fine once the path holds a gateway again.
        replace_file(path, BIN)
        gw.signal(signal.SIGUSR2)
        new = self.wait_new_pid(gw, old)
        self.assertEqual(gw.wait_exit(WAIT_S), 0)
        self.assertEqual(self.status_pid(gw), new)
        return lines[0]

    def test_binary_that_exits_1(self):
        line = self.fail_with_binary("#!/bin/sh\nexit 1\n")
        self.assertIn("exit status 1", line)

    def test_binary_that_never_serves_is_killed(self):
        line = self.fail_with_binary("#!/bin/sh\nexec sleep 60\n",
                                     env={"SWITCHYARD_UPGRADE_TIMEOUT_MS": "1000"},
                                     failure="was not serving after 1000 ms: killed")
        self.assertIn("killed by signal 9", line)

    def test_missing_binary(self):
        path = self.own_binary()
        gw = self.start(binary=path)
        os.unlink(path)
        gw.signal(signal.SIGUSR2)
        log = self.wait_log(gw, "upgrade failed")
        self.assertIn("upgrade failed: cannot execute %s" % path, log)
        self.assert_serves(gw)
        self.assertEqual(self.file_pid(gw), gw.pid)

    def test_invalid_configuration(self):
        gw = self.start()
        old = gw.pid
        gw.write_config(dict(gw.config, no_such_key=1))
        load = loadgen.Load(*gw.host_port(), threads=3).start()
        try:
            self.assertTrue(load.wait_count(30))
            self.upgrade_cli(gw)
            log = self.wait_log(gw, "upgrade failed")
            self.assert_still_serving(gw, old, load)
        finally:
            load.stop()
        self.assertFalse(load.result.failures, load.result.describe())
        self.assertIn("exit status 1", log)
        self.assertEqual(log.count("upgrade failed"), 1, log)
        self.assertIn("no_such_key", gw.stderr_text())

    def test_second_sigusr2_is_refused(self):
        # A new process that takes a second to start keeps the first upgrade under way.
        path = self.own_binary()
        gw = self.start(binary=path)
        old = gw.pid
        replace_file(path, "#!/bin/sh\nsleep 1\nexec %s \"$@\"\n" % BIN)
        gw.signal(signal.SIGUSR2)
        self.wait_log(gw, "upgrade: started")
        gw.signal(signal.SIGUSR2)
        log = self.wait_log(gw, "upgrade refused: an upgrade is already under way")
        self.assertEqual(log.count("upgrade: started"), 1, log)
        new = self.wait_new_pid(gw, old)
        self.assertEqual(gw.wait_exit(WAIT_S), 0)
        self.assertEqual(self.status_pid(gw), new)
        self.assert_serves(gw)


if __name__ == "__main__":
    unittest.main()
