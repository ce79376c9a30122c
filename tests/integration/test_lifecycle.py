# SPDX-License-Identifier: BSD-2-Clause
"""Process lifecycle (SPEC.md "Programs", signals): graceful stop on SIGTERM
finishes requests in flight and refuses new connections, shutdown_timeout_ms
caps it, SIGINT or a second SIGTERM stops at once, `-s stop` through the pid
file, the pid file's life, and log reopening (SIGUSR1, `-s reopen`) without
losing a line.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, loadgen, ports, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402

BIN = root_path("build", "switchyard")
H = "127.0.0.1"
# "At once" on a loaded 2-core machine: well under any timeout in play.
PROMPT_S = 1.5


class InFlight:
    """One request on its own connection in a thread; result is
    (status, headers, body, closed) as httpc.request returns it, or the
    exception it raised."""

    def __init__(self, host, port, path, timeout=20.0):
        self.result = None
        self.done_at = None
        self.thread = threading.Thread(target=self._run, args=(host, port, path, timeout),
                                       daemon=True)
        self.thread.start()

    def _run(self, host, port, path, timeout):
        try:
            self.result = httpc.request(host, port, build("GET", path), timeout=timeout,
                                        close_wait=2.0)
        except Exception as e:    # noqa: BLE001 - the test reports it
            self.result = e
        self.done_at = time.monotonic()

    def join(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()


class LifecycleCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def start(self, args=(), **extra):
        extra.setdefault("limits", {"keepalive_timeout_ms": 30000})
        cfg = loadgen.minimal_config(ports.free_port(), {"p": [self.td.addr(0)]}, **extra)
        gw = gateway.Gateway(cfg, args=args)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def backend_requests(self):
        """Requests testd served, not counting the /stats calls."""
        return self.td.stats(self.td.port(0))["requests"] - self._stats_calls()

    def _stats_calls(self):
        self.stats_calls = getattr(self, "stats_calls", 0) + 1
        return self.stats_calls

    def slow_request(self, gw, path):
        """Starts GET path through gw and waits until testd has it."""
        before = self.backend_requests()
        req = InFlight(*gw.host_port(), path)
        deadline = time.monotonic() + 5
        while self.backend_requests() < before + 1:
            self.assertLess(time.monotonic(), deadline, "the request never reached testd")
            time.sleep(0.02)
        return req

    def wait_exit(self, gw, timeout):
        """Exit code, asserting the gateway exited within timeout seconds."""
        try:
            return gw.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.fail("the gateway still runs %.1f s later" % timeout)

    def assert_refusing(self, gw, within=PROMPT_S):
        host, port = gw.host_port()
        deadline = time.monotonic() + within
        while ports.port_open(host, port):
            self.assertLess(time.monotonic(), deadline,
                            "still accepting connections %.1f s into the stop" % within)
            time.sleep(0.02)


class TestGracefulStop(LifecycleCase):
    def test_request_in_flight_completes(self):
        gw = self.start(shutdown_timeout_ms=10000)
        req = self.slow_request(gw, "/delay/1500")
        t_term = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assert_refusing(gw)
        self.assertTrue(gw.running(), "exited with a request in flight")
        self.assertTrue(req.join(10), "the request in flight never ended")
        self.assertNotIsInstance(req.result, Exception, req.result)
        status, _, body, closed = req.result
        self.assertEqual((status, body), (200, b"blue\n"))
        self.assertTrue(closed, "connection left open after the last response of a stop")
        self.assertEqual(self.wait_exit(gw, PROMPT_S + 1), 0)
        self.assertGreater(req.done_at - t_term, 0.8, "the request did not wait for testd")

    def test_reload_while_stopping(self):
        gw = self.start(shutdown_timeout_ms=10000)
        req = self.slow_request(gw, "/delay/1500")
        gw.signal(signal.SIGTERM)
        self.assert_refusing(gw)
        gw.signal(signal.SIGHUP)     # must not reopen listeners nor cut the stop short
        gw.signal(signal.SIGUSR1)
        time.sleep(0.3)
        self.assertFalse(ports.port_open(*gw.host_port()), "accepting again after a reload")
        self.assertTrue(gw.running(), "exited with a request in flight")
        self.assertTrue(req.join(10))
        self.assertEqual(req.result[0], 200, req.result)
        self.assertEqual(self.wait_exit(gw, PROMPT_S + 1), 0)

    def test_reloaded_shutdown_timeout_applies(self):
        gw = self.start(shutdown_timeout_ms=30000)
        cfg = dict(gw.config, shutdown_timeout_ms=500)
        gw.write_config(cfg)
        gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            with open(gw.log_path("error")) as f:
                if "reloaded" in f.read():
                    break
            self.assertLess(time.monotonic(), deadline, "no reload in the error log")
            time.sleep(0.02)
        self.slow_request(gw, "/delay/10000")
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        self.assertLess(time.monotonic() - t0, 2.0, "the old shutdown_timeout_ms was used")

    def test_idle_keepalive_connections_are_closed(self):
        gw = self.start(shutdown_timeout_ms=20000)
        clients = [httpc.Client(*gw.host_port()) for _ in range(3)]
        try:
            for c in clients:
                r = c.request(build("GET", "/"))
                self.assertEqual((r.status, r.body), (200, b"blue\n"))
                self.assertFalse(c.closed(0.05))
            t0 = time.monotonic()
            gw.signal(signal.SIGTERM)
            for c in clients:
                self.assertTrue(c.closed(PROMPT_S), "idle keep-alive connection not closed")
            # neither keepalive_timeout_ms nor shutdown_timeout_ms was waited for
            self.assertEqual(self.wait_exit(gw, PROMPT_S), 0)
            self.assertLess(time.monotonic() - t0, PROMPT_S + 0.5)
        finally:
            for c in clients:
                c.close()

    def test_stop_without_traffic_is_prompt(self):
        gw = self.start()
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, PROMPT_S), 0)
        self.assertLess(time.monotonic() - t0, PROMPT_S)

    def test_shutdown_timeout_caps_the_wait(self):
        gw = self.start(shutdown_timeout_ms=500)
        req = self.slow_request(gw, "/delay/10000")
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, 3.0), 0)
        took = time.monotonic() - t0
        self.assertGreater(took, 0.4, "did not wait for the request at all")
        self.assertLess(took, 2.0)
        # the client is not left hanging on a connection nobody serves
        self.assertTrue(req.join(2.0), "client still waiting after the gateway exited")

    def test_stop_under_load_fails_no_accepted_request(self):
        gw = self.start(shutdown_timeout_ms=10000)
        load = loadgen.Load(*gw.host_port(), threads=4, path="/delay/30").start()
        try:
            self.assertTrue(load.wait_count(40), "the load did not get going")
            t_term = time.monotonic()
            gw.signal(signal.SIGTERM)
            self.assertEqual(self.wait_exit(gw, 5), 0)
        finally:
            result = load.stop()
        before = [o for o in result.outcomes if o.end < t_term]
        self.assertFalse([o for o in before if o.error or o.status != 200], result.describe())
        for o in result.failures:
            # Allowed: a refused new connection, or a request sent on an idle
            # keep-alive connection the gateway was closing (no byte of a
            # response: the request was never read, so never accepted).
            # Never a 5xx, a reset after response bytes, or a cut body.
            refused = o.error and o.error.startswith("connect:")
            unread = o.reused and o.status is None and (
                o.error == "closed before a response byte" or "ConnectionReset" in o.error)
            self.assertTrue(refused or unread, "failed request: %r\n%s"
                            % (o, result.describe()))
        self.assertGreater(len(result.outcomes) - len(result.failures), 40)

    def test_access_log_complete_after_stop(self):
        gw = self.start()
        n = 40
        with httpc.Client(*gw.host_port()) as c:
            for _ in range(n):
                self.assertEqual(c.request(build("GET", "/")).status, 200)
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        self.assertEqual(len(gw.access_log_lines(timeout=0)), n)


class TestStopNow(LifecycleCase):
    def test_sigint(self):
        gw = self.start(shutdown_timeout_ms=30000)
        req = self.slow_request(gw, "/delay/5000")
        t0 = time.monotonic()
        gw.signal(signal.SIGINT)
        self.assertEqual(self.wait_exit(gw, PROMPT_S + 1), 0)
        self.assertLess(time.monotonic() - t0, PROMPT_S)
        self.assertTrue(req.join(2.0))
        self.assertFalse(os.path.exists(os.path.join(gw.tmp, "switchyard.pid")))

    def test_second_sigterm(self):
        gw = self.start(shutdown_timeout_ms=30000)
        req = self.slow_request(gw, "/delay/5000")
        gw.signal(signal.SIGTERM)
        self.assert_refusing(gw)
        time.sleep(0.2)
        self.assertTrue(gw.running(), "the first SIGTERM did not wait for the request")
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, PROMPT_S + 1), 0)
        self.assertLess(time.monotonic() - t0, PROMPT_S)
        self.assertTrue(req.join(2.0))


class TestPidFile(LifecycleCase):
    def read_pid(self, path):
        """The pid in path, waiting for the file: the listeners accept
        before it is written (as nginx's do)."""
        deadline = time.monotonic() + 5
        while not os.path.exists(path):
            self.assertLess(time.monotonic(), deadline, "no pid file %s" % path)
            time.sleep(0.02)
        with open(path) as f:
            return int(f.read().strip())

    def test_default_pid_file_and_s_stop(self):
        gw = self.start()
        pid_file = os.path.join(gw.tmp, "switchyard.pid")
        self.assertEqual(self.read_pid(pid_file), gw.pid)
        proc = subprocess.run([BIN, "-s", "stop"], cwd=gw.tmp, capture_output=True, text=True,
                              timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        self.assertFalse(os.path.exists(pid_file), "pid file left behind")

    def wait_pid_file_tightly(self, pid_file, proc):
        """Returns the moment pid_file has content: a tight loop, checking
        the process and the clock only now and then."""
        deadline = time.monotonic() + 5
        spins = 0
        while True:
            try:
                if os.path.getsize(pid_file) > 0:
                    return
            except FileNotFoundError:
                pass
            spins += 1
            if spins % 2000 == 0:
                self.assertIsNone(proc.poll(), "the gateway did not start")
                self.assertLess(time.monotonic(), deadline, "no pid file")

    def test_signal_as_soon_as_the_pid_file_exists(self):
        # A script that waits for the pid file and then runs `-s reload` must
        # not kill the gateway: the pid file may appear only once the signal
        # handlers are in place. The window is short, so try several times.
        cfg = loadgen.minimal_config(ports.free_port(), {"p": [self.td.addr(0)]})
        for attempt in range(20):
            tmp = tempfile.mkdtemp(prefix="sy-pidrace-")
            self.addCleanup(shutil.rmtree, tmp, True)
            os.makedirs(os.path.join(tmp, "logs"))
            path = os.path.join(tmp, "switchyard.json")
            with open(path, "w") as f:
                json.dump(gateway.resolve(cfg, tmp), f)
            proc = subprocess.Popen([BIN, "-c", path], cwd=tmp, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                pid_file = os.path.join(tmp, "switchyard.pid")
                self.wait_pid_file_tightly(pid_file, proc)
                os.kill(proc.pid, signal.SIGHUP)    # read_pid() would lose the race
                self.assertEqual(self.read_pid(pid_file), proc.pid)
                time.sleep(0.1)
                self.assertIsNone(proc.poll(), "attempt %d: SIGHUP right after the pid file "
                                  "appeared ended the gateway (exit %s)"
                                  % (attempt, proc.returncode))
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                proc.wait(10)

    def test_p_pid_file_and_s_stop(self):
        pid_dir = os.path.join(tempfile.mkdtemp(prefix="sy-pid-"))
        self.addCleanup(shutil.rmtree, pid_dir, True)
        pid_file = os.path.join(pid_dir, "gw.pid")
        gw = self.start(args=["-p", pid_file])
        self.assertEqual(self.read_pid(pid_file), gw.pid)
        self.assertFalse(os.path.exists(os.path.join(gw.tmp, "switchyard.pid")))
        proc = subprocess.run([BIN, "-s", "stop", "-p", pid_file], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        self.assertFalse(os.path.exists(pid_file), "pid file left behind")
        # the gateway is gone: a second stop says so and fails
        proc = subprocess.run([BIN, "-s", "stop", "-p", pid_file], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(pid_file, proc.stderr)


class TestReopen(LifecycleCase):
    def rotate_and_count(self, reopen):
        gw = self.start()
        access = gw.log_path("access")
        first, second = 25, 15
        with httpc.Client(*gw.host_port()) as c:
            for _ in range(first):
                self.assertEqual(c.request(build("GET", "/")).status, 200)
            self.assertEqual(len(gw.access_log_lines(min_lines=first)), first)
            os.rename(access, access + ".1")
            reopen(gw)
            deadline = time.monotonic() + 5
            while not os.path.exists(access):
                self.assertLess(time.monotonic(), deadline, "access.log not reopened")
                time.sleep(0.02)
            # the same keep-alive connection: reopening does not touch clients
            for _ in range(second):
                self.assertEqual(c.request(build("GET", "/")).status, 200)
        new = gw.access_log_lines(min_lines=second)
        with open(access + ".1") as f:
            old = [line for line in f.read().split("\n") if line]
        self.assertEqual((len(old), len(new)), (first, second))
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        self.assertEqual(len(gw.access_log_lines(timeout=0)), second)
        return gw

    def test_sigusr1(self):
        self.rotate_and_count(lambda gw: gw.signal(signal.SIGUSR1))

    def test_s_reopen(self):
        def reopen(gw):
            proc = subprocess.run([BIN, "-s", "reopen"], cwd=gw.tmp, capture_output=True,
                                  text=True, timeout=10)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        self.rotate_and_count(reopen)

    def test_error_log_reopened_too(self):
        gw = self.start()
        error = gw.log_path("error")
        deadline = time.monotonic() + 5
        while not os.path.exists(error) or os.path.getsize(error) == 0:
            self.assertLess(time.monotonic(), deadline, "nothing in the error log")
            time.sleep(0.02)
        os.rename(error, error + ".1")
        gw.signal(signal.SIGUSR1)
        while not os.path.exists(error):
            self.assertLess(time.monotonic(), deadline + 5, "error.log not reopened")
            time.sleep(0.02)
        gw.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(gw, 5), 0)
        with open(error) as f:
            self.assertIn("stopped", f.read())


if __name__ == "__main__":
    unittest.main()
