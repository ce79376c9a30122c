# SPDX-License-Identifier: BSD-2-Clause
"""Configuration reload (SPEC.md "Programs", SIGHUP): a new configuration
takes new requests within a second, `-s reload` does the same, an invalid
one is refused and logged while the old one keeps serving, changes that
need a restart (workers, listen) are refused with a reason, and no request
fails or changes snapshot because of a reload, under load or in flight.
"""
import json
import os
import shutil
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
SWITCH_S = 1.0      # SPEC: a reload reaches new requests "within ~1 s"


class ReloadCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green"), (0, "red")], threads=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def config(self, backend=0, active=None, workers=2, **extra):
        """Pool pb holds testd instance `backend`; pg holds green."""
        return loadgen.minimal_config(self.port, {"pb": [self.td.addr(backend)],
                                                  "pg": [self.td.addr(1)]},
                                      active=active, workers=workers, **extra)

    def start(self, cfg, args=()):
        gw = gateway.Gateway(cfg, args=args)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def setUp(self):
        self.port = ports.free_port()

    def body(self, gw):
        """GET / on the first listener (gw.config follows write_config: not
        trusted here, a refused reload may have written another listen)."""
        status, _, body = httpc.get("http://%s:%d/" % (H, self.port))
        self.assertEqual(status, 200, body)
        return body.decode().strip()

    @staticmethod
    def count_lines(path):
        with open(path) as f:
            return f.read().count("\n")

    def backend_requests(self):
        """Requests blue and green served, not counting the /stats calls."""
        total = 0
        for i in (0, 1):
            total += self.td.stats(self.td.port(i))["requests"]
            self.stats_calls = getattr(self, "stats_calls", 0) + 1
        return total - self.stats_calls

    def wait_backend_request(self, before):
        """Waits until blue and green served one request more than before."""
        deadline = time.monotonic() + 5
        while self.backend_requests() < before + 1:
            self.assertLess(time.monotonic(), deadline, "the request never reached testd")
            time.sleep(0.02)

    def reload(self, gw, cfg):
        gw.write_config(cfg)
        gw.reload()

    def wait_answer(self, gw, want, within=SWITCH_S):
        """Seconds until GET / answers want; fails after within seconds."""
        t0 = time.monotonic()
        while True:
            got = self.body(gw)
            if got == want:
                return time.monotonic() - t0
            self.assertLess(time.monotonic() - t0, within,
                            "still %r, not %r, %.1f s after the reload" % (got, want, within))
            time.sleep(0.01)

    def error_log(self, gw, needle, timeout=5.0):
        """The error log's text once it contains needle (fails otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(gw.log_path("error")) as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if needle in text:
                return text
            self.assertLess(time.monotonic(), deadline,
                            "%r not in the error log:\n%s" % (needle, text))
            time.sleep(0.02)

    def assert_refused(self, gw, cfg, reason, still="blue"):
        """Reloads cfg, which must be refused for reason; the old one serves."""
        before = self.error_log(gw, "serving").count("reload refused")
        self.reload(gw, cfg)
        deadline = time.monotonic() + 5
        while True:
            text = self.error_log(gw, "reload refused")
            if text.count("reload refused") > before:
                break
            self.assertLess(time.monotonic(), deadline, "no new \"reload refused\" line")
            time.sleep(0.02)
        refused = [line for line in text.split("\n") if "reload refused" in line][-1]
        self.assertIn(reason, refused, "the refusal does not say why")
        self.assertTrue(gw.running())
        for _ in range(5):
            self.assertEqual(self.body(gw), still)
        return text


class TestReload(ReloadCase):
    def test_sighup_changes_the_pool(self):
        gw = self.start(self.config(backend=0))
        self.assertEqual(self.body(gw), "blue")
        self.reload(gw, self.config(backend=2))
        self.wait_answer(gw, "red")
        for _ in range(10):     # every worker took it, not only one
            self.assertEqual(self.body(gw), "red")
        self.error_log(gw, "reloaded")

    def test_sighup_switches_the_active_slot(self):
        gw = self.start(self.config())
        self.assertEqual(self.body(gw), "blue")
        self.reload(gw, self.config(active="green"))
        self.wait_answer(gw, "green")
        self.reload(gw, self.config(active="blue"))
        self.wait_answer(gw, "blue")

    def test_s_reload(self):
        pid_file = os.path.join(tempfile.mkdtemp(prefix="sy-pid-"), "gw.pid")
        self.addCleanup(shutil.rmtree, os.path.dirname(pid_file), True)
        gw = self.start(self.config(), args=["-p", pid_file])
        gw.write_config(self.config(active="green"))
        proc = subprocess.run([BIN, "-s", "reload", "-p", pid_file], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.wait_answer(gw, "green")
        with open(pid_file) as f:
            self.assertEqual(int(f.read()), gw.pid)

    def test_keepalive_connection_sees_the_new_config(self):
        gw = self.start(self.config())
        with httpc.Client(*gw.host_port()) as c:
            self.assertEqual(c.request(build()).body, b"blue\n")
            self.reload(gw, self.config(active="green"))
            self.wait_answer(gw, "green")
            # an idle connection's next request is a new request: new snapshot
            r = c.request(build())
            self.assertEqual((r.status, r.body), (200, b"green\n"))

    def test_reload_reopens_changed_log_paths(self):
        gw = self.start(self.config())
        self.body(gw)
        cfg = self.config(active="green")
        cfg["log"]["access"] = "{tmp}/logs/access2.log"
        old = gw.log_path("access")
        self.reload(gw, cfg)
        self.wait_answer(gw, "green")
        time.sleep(0.2)     # lines of requests before the switch may still come
        n = self.count_lines(old)
        self.body(gw)
        path2 = os.path.join(gw.tmp, "logs", "access2.log")
        deadline = time.monotonic() + 5
        while not (os.path.exists(path2) and os.path.getsize(path2) > 0):
            self.assertLess(time.monotonic(), deadline, "nothing logged to the new path")
            time.sleep(0.02)
        with open(path2) as f:
            lines = [json.loads(line) for line in f.read().split("\n") if line]
        self.assertTrue(lines and lines[-1]["status"] == 200)
        self.assertEqual(self.count_lines(old), n, "the old access log still grows")


class TestReloadLayers(ReloadCase):
    def test_overlay_is_read_again(self):
        gw = gateway.Gateway(self.config(), args=["-e", "prod"])
        overlay = os.path.join(gw.tmp, "switchyard.prod.json")
        with open(overlay, "w") as f:
            json.dump({"services": {"svc": {"active": "blue"}}}, f)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        self.assertEqual(self.body(gw), "blue")
        with open(overlay, "w") as f:
            json.dump({"services": {"svc": {"active": "green"}}}, f)
        gw.reload()     # the main file did not change, its overlay did
        self.wait_answer(gw, "green")

    def test_environment_layer_still_applies(self):
        gw = gateway.Gateway(self.config(), env={"SWITCHYARD__SERVICES__SVC__ACTIVE": "green"})
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        self.assertEqual(self.body(gw), "green")
        cfg = self.config()
        cfg["pools"]["pg"]["instances"] = [{"addr": self.td.addr(2)}]
        self.reload(gw, cfg)    # the file says blue; the variable still says green
        self.wait_answer(gw, "red")


class TestRefusedReload(ReloadCase):
    def test_invalid_config_keeps_the_old_one(self):
        gw = self.start(self.config())
        bad = self.config(active="green")
        bad["pools"]["pb"]["instances"][0]["addr"] = "127.0.0.1:99999"
        text = self.assert_refused(gw, bad, "invalid port 99999")
        self.assertIn("pools.pb.instances[0].addr", text)
        # a later good reload still works
        self.reload(gw, self.config(active="green"))
        self.wait_answer(gw, "green")

    def test_json_syntax_error_keeps_the_old_one(self):
        gw = self.start(self.config())
        with open(gw.config_path, "w") as f:
            f.write('{"workers": 2, "listen": [\n')
        gw.reload()
        self.error_log(gw, "reload refused")
        self.assertTrue(gw.running())
        self.assertEqual(self.body(gw), "blue")

    def test_unknown_key_keeps_the_old_one(self):
        gw = self.start(self.config())
        bad = self.config(active="green")
        bad["services"]["svc"]["actve"] = "green"
        self.assert_refused(gw, bad, "actve")

    def test_changing_workers_is_refused(self):
        gw = self.start(self.config(workers=2))
        self.assert_refused(gw, self.config(workers=1, active="green"), "workers")

    def test_changing_listen_is_refused(self):
        gw = self.start(self.config())
        cfg = self.config(active="green")
        other = ports.free_port()
        cfg["listen"] = [{"addr": "%s:%d" % (H, other)}]
        self.assert_refused(gw, cfg, "listen")
        self.assertFalse(ports.port_open(H, other))
        cfg["listen"] = [{"addr": "%s:%d" % (H, self.port)}, {"addr": "%s:%d" % (H, other)}]
        self.assert_refused(gw, cfg, "listen")

    def test_unwritable_log_path_is_refused(self):
        gw = self.start(self.config())
        blocker = os.path.join(gw.tmp, "a-file")
        open(blocker, "w").close()
        cfg = self.config(active="green")
        cfg["log"]["access"] = os.path.join(blocker, "access.log")
        self.assert_refused(gw, cfg, "a-file")
        n = self.count_lines(os.path.join(gw.tmp, "logs", "access.log"))
        self.body(gw)
        deadline = time.monotonic() + 5
        while self.count_lines(os.path.join(gw.tmp, "logs", "access.log")) == n:
            self.assertLess(time.monotonic(), deadline, "the old access log stopped")
            time.sleep(0.02)

    def test_token_file_is_read_again(self):
        token = os.path.join(tempfile.mkdtemp(prefix="sy-token-"), "admin.token")
        self.addCleanup(shutil.rmtree, os.path.dirname(token), True)
        with open(token, "w") as f:
            f.write("secret-1\n")
        admin = {"listen": "%s:%d" % (H, ports.free_port()), "token_file": token}
        gw = self.start(self.config(admin=admin))
        os.unlink(token)
        self.assert_refused(gw, self.config(admin=admin, active="green"), "admin.token_file")
        with open(token, "w") as f:
            f.write("secret-2\n")
        self.reload(gw, self.config(admin=admin, active="green"))
        self.wait_answer(gw, "green")

    def test_deleted_config_file_is_refused(self):
        gw = self.start(self.config())
        os.unlink(gw.config_path)
        gw.reload()
        self.error_log(gw, "reload refused")
        self.assertEqual(self.body(gw), "blue")

    def test_refusal_survives_many_signals(self):
        gw = self.start(self.config())
        bad = self.config()
        bad["services"]["svc"]["green"] = "no-such-pool"
        gw.write_config(bad)
        for _ in range(20):
            gw.reload()
        self.error_log(gw, "reload refused")
        self.assertTrue(gw.running())
        self.assertEqual(self.body(gw), "blue")


class TestReloadNeverFailsARequest(ReloadCase):
    def test_continuous_load_with_ten_reloads(self):
        gw = self.start(self.config())
        blue, green = self.config(), self.config(active="green")
        with loadgen.Load(*gw.host_port(), threads=4) as load:
            self.assertTrue(load.wait_count(50), "the load did not get going")
            for i in range(10):
                time.sleep(0.45)
                self.reload(gw, green if i % 2 == 0 else blue)
            time.sleep(0.5)
        result = load.result
        self.assertEqual(result.failures, [], result.describe())
        bodies = result.bodies()
        self.assertEqual(set(bodies), {b"blue\n", b"green\n"}, result.describe())
        self.assertGreater(len(result.outcomes), 200, result.describe())
        # the reloads kept the clients' connections (nothing to reconnect for)
        self.assertEqual(result.connections, 4, result.describe())
        self.assertEqual(self.body(gw), "blue")

    def test_continuous_load_with_pool_changes(self):
        # Each reload replaces the pools' instances: upstream connections of
        # the old snapshot must not be used for, or break, the new one.
        gw = self.start(self.config())
        one = self.config()
        two = self.config(backend=2)
        two["pools"]["pb"]["instances"].append({"addr": self.td.addr(1)})
        with loadgen.Load(*gw.host_port(), threads=4, path="/delay/5") as load:
            self.assertTrue(load.wait_count(40), "the load did not get going")
            for i in range(10):
                time.sleep(0.3)
                self.reload(gw, two if i % 2 == 0 else one)
            time.sleep(0.5)
        result = load.result
        self.assertEqual(result.failures, [], result.describe())
        self.assertEqual(set(result.bodies()), {b"blue\n", b"green\n", b"red\n"},
                         result.describe())

    def test_burst_of_reloads_under_load(self):
        gw = self.start(self.config())
        with loadgen.Load(*gw.host_port(), threads=4) as load:
            self.assertTrue(load.wait_count(50), "the load did not get going")
            self.reload(gw, self.config(active="green"))
            for _ in range(50):
                gw.reload()
                time.sleep(0.005)
            time.sleep(0.5)
        result = load.result
        self.assertEqual(result.failures, [], result.describe())
        self.assertTrue(gw.running())
        self.wait_answer(gw, "green")

    @unittest.skipUnless(loadgen.have_wrk(), "wrk is not installed")
    def test_wrk_load_with_reloads(self):
        gw = self.start(self.config())
        blue, green = self.config(), self.config(active="green")
        out = {}
        t = threading.Thread(target=lambda: out.update(loadgen.wrk(gw.url("/"), duration_s=4)))
        t.start()
        time.sleep(0.5)
        for i in range(8):
            self.reload(gw, green if i % 2 == 0 else blue)
            time.sleep(0.35)
        t.join(40)
        self.assertGreater(out.get("requests", 0), 500, out.get("output"))
        for key in ("non_2xx", "connect", "read", "write", "timeout"):
            self.assertEqual(out[key], 0, "%s errors:\n%s" % (key, out["output"]))

    def test_request_in_flight_finishes_on_the_old_snapshot(self):
        gw = self.start(self.config())
        result = {}

        def slow():
            result["r"] = httpc.request(*gw.host_port(), build("GET", "/delay/1000"),
                                        timeout=10)
        t = threading.Thread(target=slow)
        before = self.backend_requests()
        t0 = time.monotonic()
        t.start()
        self.wait_backend_request(before)
        self.reload(gw, self.config(active="green"))
        self.wait_answer(gw, "green")
        self.assertTrue(t.is_alive(), "the slow request ended before the reload took")
        t.join(10)
        status, _, body, _ = result["r"]
        self.assertEqual((status, body), (200, b"blue\n"))
        self.assertGreater(time.monotonic() - t0, 0.95)

    def test_many_snapshots_in_flight_then_the_newest_serves(self):
        # One worker; each slow request pins the snapshot it started on, so
        # ten of them hold ten snapshots. Every reload must take for new
        # requests, and once the slow ones end the worker must be on the
        # last configuration loaded, however many were in use meanwhile.
        gw = self.start(self.config(workers=1))
        threads, results, late = [], [], []
        cfgs = [self.config(workers=1, active="green"), self.config(workers=1)]
        for i in range(10):
            before = self.backend_requests()
            t = threading.Thread(target=lambda: results.append(httpc.request(
                *gw.host_port(), build("GET", "/delay/5000"), timeout=20)))
            t.start()
            threads.append(t)
            self.wait_backend_request(before)
            self.reload(gw, cfgs[i % 2])
            try:
                self.wait_answer(gw, "green" if i % 2 == 0 else "blue")
            except AssertionError:
                late.append(i)
        for t in threads:
            t.join(20)
        self.assertEqual([r[0] for r in results], [200] * 10)
        final = self.body(gw)
        self.assertEqual((final, late), ("blue", []),
                         "after 10 reloads with slow requests in flight: GET / answers %r "
                         "(the last reload loaded blue); reloads that did not take within "
                         "%.1f s: %s" % (final, SWITCH_S, late))


if __name__ == "__main__":
    unittest.main()
