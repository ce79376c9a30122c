# SPDX-License-Identifier: BSD-2-Clause
"""Log rotation under load (issue 10): a real gateway serving client threads
while its logs are rotated several times with the shipped
contrib/logrotate/switchyard (run by the real logrotate -f, its paths pointed
at the test's directory; without logrotate, the same steps by hand: rename,
then `switchyard -s reopen`). Every X-Request-ID the clients received must be
in exactly one access-log line across the rotated files (plain and gzipped)
and the live one: nothing lost, nothing written twice.

A log that cannot be written (logs/access.log pointed at /dev/full, which
fails every write with ENOSPC as a full disk does; mounting a tiny tmpfs would
need privileges a test should not assume) must not stop the proxying, and
switchyard_log_dropped_total{log="access"} counts the lines lost.
"""
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

SWITCHYARD = root_path("build", "switchyard")
SHIPPED = root_path("contrib", "logrotate", "switchyard")
ROTATIONS = 4
CLIENT_THREADS = 3


class Clients:
    """Threads sending GET / on keep-alive connections until stopped; keeps
    the X-Request-ID of every 200 they received."""

    def __init__(self, gw, threads=CLIENT_THREADS):
        self.gw = gw
        self.ids = []
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        c = None
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = proxytest.client(self.gw)
                resp = c.request(build("GET", "/"))
                if resp is None:
                    raise ConnectionError("closed without a response")
                rid = resp.header("X-Request-ID")
                with self.lock:
                    if resp.status == 200 and rid:
                        self.ids.append(rid)
                    else:
                        self.errors.append("status %s, X-Request-ID %r" % (resp.status, rid))
                if (resp.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
            except OSError as e:
                with self.lock:
                    self.errors.append(repr(e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def count(self):
        with self.lock:
            return len(self.ids)

    def wait_more(self, n, timeout=10.0):
        """Wait until n more requests than now were answered."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                raise AssertionError("the clients got %d answers, waited for %d; errors %r"
                                     % (self.count(), target, self.errors[:5]))
            time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(15)


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().split("\n")


def request_ids(paths):
    """request_id of every access-log line in paths, in file order."""
    ids = []
    for path in paths:
        for line in read_lines(path):
            m = re.search(r'"request_id":"([^"]*)"', line)
            if m:
                ids.append(m.group(1))
    return ids


def file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def dropped(gw, log="access"):
    status, _, body = httpc.get(gw.admin_url("/metrics"))
    assert status == 200, status
    try:
        return sample(parse_metrics(body.decode()), "switchyard_log_dropped_total", log=log)
    except (AssertionError, KeyError):
        return 0.0


def reopen(gw):
    proc = subprocess.run([SWITCHYARD, "-s", "reopen", "-p", gw.pid_file()],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr


class LogrotateUnderLoad(unittest.TestCase):
    """The shipped logrotate configuration, run several times while clients send."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def logrotate_config(self, gw):
        """The shipped file with its log directory, pid file and binary pointed at
        this gateway's; nothing else changed."""
        with open(SHIPPED) as f:
            text = f.read()
        self.assertIn("/var/log/switchyard/*.log", text)
        self.assertIn("switchyard -s reopen -p /run/switchyard/switchyard.pid", text)
        text = text.replace("/var/log/switchyard/*.log", os.path.join(gw.tmp, "logs", "*.log"))
        text = text.replace("switchyard -s reopen -p /run/switchyard/switchyard.pid",
                            "%s -s reopen -p %s" % (SWITCHYARD, gw.pid_file()))
        conf_dir = tempfile.mkdtemp(prefix="sy-logrotate-")
        self.addCleanup(shutil.rmtree, conf_dir, True)
        path = os.path.join(conf_dir, "switchyard")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)   # logrotate refuses a group- or world-writable file
        return path, os.path.join(conf_dir, "state")

    def rotate(self, gw, conf, state):
        if conf:
            proc = subprocess.run(["logrotate", "-f", "-s", state, conf],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            return
        # By hand, as logrotate does it with delaycompress: shift, rename, reopen.
        log = gw.log_path("access")
        n = 1
        while os.path.exists("%s.%d" % (log, n)):
            n += 1
        for i in range(n, 1, -1):
            os.rename("%s.%d" % (log, i - 1), "%s.%d" % (log, i))
        os.rename(log, log + ".1")
        reopen(gw)

    def test_no_line_lost_or_duplicated(self):
        have_logrotate = shutil.which("logrotate") is not None
        cfg = proxytest.config([self.td.addr(0)], workers=2)
        with gateway.Gateway(cfg) as gw:
            conf, state = self.logrotate_config(gw) if have_logrotate else (None, None)
            live = gw.log_path("access")
            with Clients(gw) as clients:
                clients.wait_more(50)
                for _ in range(ROTATIONS):
                    self.rotate(gw, conf, state)
                    # The reopen took: the live file fills again (notifempty would
                    # otherwise skip the next rotation).
                    deadline = time.monotonic() + 10
                    while file_size(live) == 0:
                        self.assertLess(time.monotonic(), deadline,
                                        "nothing written to the new access.log after rotation")
                        time.sleep(0.01)
                    clients.wait_more(50)
            self.assertEqual(clients.errors, [])
            self.assertEqual(gw.stop(), 0, gw.stderr_text())

            rotated = sorted(glob.glob(live + ".*"))
            self.assertGreaterEqual(len(rotated), ROTATIONS, rotated)
            if have_logrotate:
                # compress + delaycompress: the newest rotated file stays plain
                self.assertTrue(os.path.exists(live + ".1"), rotated)
                self.assertTrue(any(p.endswith(".gz") for p in rotated), rotated)
            files = rotated + [live]
            for p in files:
                self.assertTrue(request_ids([p]), "%s holds no access line" % p)
            logged = request_ids(files)
            counts = {}
            for rid in logged:
                counts[rid] = counts.get(rid, 0) + 1
            twice = [rid for rid, n in counts.items() if n > 1]
            self.assertEqual(twice, [], "request ids logged more than once")
            missing = [rid for rid in clients.ids if rid not in counts]
            self.assertEqual(missing, [], "%d of %d answered requests not in the access logs"
                             % (len(missing), len(clients.ids)))
            self.assertEqual(len(set(clients.ids)), len(clients.ids), "duplicate X-Request-ID")
            self.assertGreaterEqual(len(clients.ids), 50 * (ROTATIONS + 1))


class LogCannotBeWritten(unittest.TestCase):
    """A full log device: proxying goes on, the lost lines are counted."""

    def test_full_log_keeps_proxying_and_counts_drops(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full to stand for a full disk")
        with backends.Testd([0]) as td:
            cfg = proxytest.config([td.addr(0)], workers=1,
                                   admin={"listen": "127.0.0.1:%d" % ports.free_port()})
            with gateway.Gateway(cfg) as gw:
                gw.wait_admin()
                live = gw.log_path("access")
                self.assertEqual(httpc.get(gw.url("/"))[0], 200)
                gw.access_log_lines(min_lines=1)
                before = dropped(gw)

                # The disk "fills": the reopened log is a device where every write
                # fails with ENOSPC.
                os.rename(live, live + ".1")
                os.symlink("/dev/full", live)
                reopen(gw)
                deadline = time.monotonic() + 10
                n = 0
                while dropped(gw) < before + 20:
                    self.assertLess(time.monotonic(), deadline,
                                    "switchyard_log_dropped_total did not count the lost lines")
                    status = httpc.get(gw.url("/"))[0]
                    self.assertEqual(status, 200)
                    n += 1
                self.assertGreaterEqual(n, 20)
                self.assertTrue(gw.running())

                # Space again: the next reopen writes lines once more.
                os.unlink(live)
                reopen(gw)
                deadline = time.monotonic() + 10
                while not gw.access_log_lines():
                    self.assertLess(time.monotonic(), deadline, "logging did not resume")
                    self.assertEqual(httpc.get(gw.url("/"))[0], 200)
                    time.sleep(0.02)
                self.assertEqual(gw.stop(), 0, gw.stderr_text())


if __name__ == "__main__":
    unittest.main()
