# SPDX-License-Identifier: BSD-2-Clause
"""Configuration layers against the real binary (SPEC.md "Configuration"):
the -e ENV / SWITCHYARD_ENV overlay beside the file, SWITCHYARD__A__B
variables (JSON or plain string values), RFC 7396 merging where null
deletes a key, and "workers": "auto". Each layer is checked by which
backend answers, or by what `-t` says.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, httpc, loadgen, ports, root_path  # noqa: E402

BIN = root_path("build", "switchyard")
# Variables a developer's shell may carry would change what these tests see.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHYARD__") and k != "SWITCHYARD_ENV"}


class LayerCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green"), (0, "red")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.td.stop()

    def setUp(self):
        self.saved_env = dict(os.environ)
        os.environ.clear()
        os.environ.update(CLEAN_ENV)
        self.port = ports.free_port()

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved_env)

    def base(self, **extra):
        """Pools pb (blue) and pg (green); service svc blue=pb, green=pg."""
        return loadgen.minimal_config(self.port, {"pb": [self.td.addr(0)],
                                                  "pg": [self.td.addr(1)]}, **extra)

    def answers(self, config, env=None, args=(), overlays=None):
        """Starts the gateway on config (+ overlay files {name: dict} beside
        it, + env), returns the body of GET / (stripped), stops it."""
        gw = gateway.Gateway(config, env=env, args=args)
        for name, doc in (overlays or {}).items():
            with open(os.path.join(gw.tmp, name), "w") as f:
                json.dump(gateway.resolve(doc, gw.tmp), f)
        with gw:
            status, _, body = httpc.get(gw.url("/"))
            self.assertEqual(status, 200, body)
            return body.decode().strip()

    def check(self, config, env=None, args=(), overlays=None):
        """switchyard -t on config (+ overlays, env): (exit code, output)."""
        tmp = tempfile.mkdtemp(prefix="sy-layers-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "switchyard.json")
        for name, doc in [("switchyard.json", config)] + list((overlays or {}).items()):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(gateway.resolve(doc, tmp), f)
        proc = subprocess.run([BIN, "-t", "-c", path] + list(args), cwd=tmp,
                              capture_output=True, text=True,
                              env=dict(os.environ, **(env or {})), timeout=20)
        return proc.returncode, proc.stdout + proc.stderr


class TestEnvOverlay(LayerCase):
    PROD = {"pools": {"pb": {"instances": [{"addr": "127.0.0.1:%d"}]}}}

    def prod(self):
        doc = json.loads(json.dumps(self.PROD))
        doc["pools"]["pb"]["instances"][0]["addr"] %= self.td.port(2)
        return doc

    def test_without_overlay(self):
        self.assertEqual(self.answers(self.base(), overlays={"switchyard.prod.json": self.prod()}),
                         "blue")

    def test_dash_e_overlay_changes_the_pool(self):
        self.assertEqual(self.answers(self.base(), args=["-e", "prod"],
                                      overlays={"switchyard.prod.json": self.prod()}), "red")

    def test_switchyard_env_variable(self):
        self.assertEqual(self.answers(self.base(), env={"SWITCHYARD_ENV": "prod"},
                                      overlays={"switchyard.prod.json": self.prod()}), "red")

    def test_dash_e_beats_switchyard_env(self):
        other = {"services": {"svc": {"active": "green"}}}
        self.assertEqual(self.answers(self.base(), args=["-e", "prod"],
                                      env={"SWITCHYARD_ENV": "other"},
                                      overlays={"switchyard.prod.json": self.prod(),
                                                "switchyard.other.json": other}), "red")

    def test_overlay_merges_key_by_key(self):
        # The overlay names only the active slot: pools, routes, logs stay.
        overlay = {"services": {"svc": {"active": "green"}}}
        self.assertEqual(self.answers(self.base(), args=["-e", "stage"],
                                      overlays={"switchyard.stage.json": overlay}), "green")

    def test_null_deletes_a_key(self):
        cfg = self.base()
        cfg["services"]["svc"]["active"] = "green"
        overlay = {"services": {"svc": {"active": None}}}   # back to the default, blue
        self.assertEqual(self.answers(cfg, args=["-e", "prod"],
                                      overlays={"switchyard.prod.json": overlay}), "blue")

    def test_overlay_errors_name_the_path(self):
        overlay = {"pools": {"pb": {"instances": [{"addr": "127.0.0.1:99999"}]}}}
        rc, out = self.check(self.base(), args=["-e", "prod"],
                             overlays={"switchyard.prod.json": overlay})
        self.assertEqual(rc, 1, out)
        self.assertIn("pools.pb.instances[0].addr: invalid port 99999", out)

    def test_overlay_syntax_error_names_the_overlay(self):
        tmp = tempfile.mkdtemp(prefix="sy-layers-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(tmp, "gw.json"), "w") as f:
            json.dump(gateway.resolve(self.base(), tmp), f)
        with open(os.path.join(tmp, "gw.prod.json"), "w") as f:
            f.write('{"workers": }\n')
        proc = subprocess.run([BIN, "-t", "-c", os.path.join(tmp, "gw.json"), "-e", "prod"],
                              cwd=tmp, capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertRegex(proc.stderr, r"gw\.prod\.json:1:\d+: ")

    def test_duration_unit_may_change_in_an_overlay(self):
        cfg = self.base(shutdown_timeout_ms=30000)
        rc, out = self.check(cfg, args=["-e", "prod"],
                             overlays={"switchyard.prod.json": {"shutdown_timeout_s": 2}})
        self.assertEqual(rc, 0, out)
        both = self.base(shutdown_timeout_ms=30000, shutdown_timeout_s=2)
        rc, out = self.check(both)
        self.assertEqual(rc, 1, out)
        self.assertIn("shutdown_timeout", out)


class TestEnvVariables(LayerCase):
    def test_string_value_switches_the_active_slot(self):
        self.assertEqual(self.answers(self.base(),
                                      env={"SWITCHYARD__SERVICES__SVC__ACTIVE": "green"}), "green")

    def test_json_value_replaces_an_array(self):
        value = json.dumps([{"addr": self.td.addr(2)}])
        self.assertEqual(self.answers(self.base(),
                                      env={"SWITCHYARD__POOLS__PB__INSTANCES": value}), "red")

    def test_json_object_value_merges(self):
        value = json.dumps({"active": "green"})
        self.assertEqual(self.answers(self.base(), env={"SWITCHYARD__SERVICES__SVC": value}),
                         "green")

    def test_array_element_by_index(self):
        cfg = self.base()
        cfg["pools"]["pb"]["instances"] = [{"addr": self.td.addr(0)}]
        env = {"SWITCHYARD__POOLS__PB__INSTANCES__0__ADDR": self.td.addr(2)}
        self.assertEqual(self.answers(cfg, env=env), "red")

    def test_null_value_deletes_a_key(self):
        cfg = self.base()
        cfg["services"]["svc"]["active"] = "green"
        self.assertEqual(self.answers(cfg, env={"SWITCHYARD__SERVICES__SVC__ACTIVE": "null"}),
                         "blue")

    def test_variables_beat_the_overlay(self):
        overlay = {"services": {"svc": {"active": "green"}}}
        self.assertEqual(self.answers(self.base(), args=["-e", "prod"],
                                      env={"SWITCHYARD__SERVICES__SVC__ACTIVE": "blue"},
                                      overlays={"switchyard.prod.json": overlay}), "blue")

    def test_variables_are_validated_like_the_file(self):
        rc, out = self.check(self.base(), env={"SWITCHYARD__WORKERS": "many"})
        self.assertEqual(rc, 1, out)
        self.assertIn("workers: ", out)
        rc, out = self.check(self.base(), env={"SWITCHYARD__WROKERS": "2"})
        self.assertEqual(rc, 1, out)
        self.assertIn("wrokers: ", out)
        self.assertIn("unknown", out)
        rc, out = self.check(self.base(), env={"SWITCHYARD__SHUTDOWN_TIMEOUT_MS": "500"})
        self.assertEqual(rc, 0, out)

    def test_numeric_json_value(self):
        # "1" parses as JSON: workers becomes the integer 1, which is valid.
        rc, out = self.check(self.base(), env={"SWITCHYARD__WORKERS": "1"})
        self.assertEqual(rc, 0, out)
        rc, out = self.check(self.base(), env={"SWITCHYARD__WORKERS": '"1"'})
        self.assertEqual(rc, 1, out)


def thread_count(gw):
    """Threads of a started gateway, once its workers run."""
    return len(os.listdir("/proc/%d/task" % gw.pid))


class TestWorkers(LayerCase):
    def test_auto(self):
        cfg = self.base(workers="auto")
        rc, out = self.check(cfg)
        self.assertEqual(rc, 0, out)
        with gateway.Gateway(cfg) as gw:
            status, _, body = httpc.get(gw.url("/"))
            self.assertEqual((status, body), (200, b"blue\n"))
            auto = thread_count(gw)
        with gateway.Gateway(self.base(workers=1)) as gw:
            one = thread_count(gw)
        # One thread per worker: "auto" means one per online CPU.
        self.assertEqual(auto - one, os.sysconf("SC_NPROCESSORS_ONLN") - 1)

    def test_default_is_auto(self):
        cfg = self.base()
        del cfg["workers"]
        with gateway.Gateway(cfg) as gw:
            default = thread_count(gw)
        with gateway.Gateway(self.base(workers="auto")) as gw:
            self.assertEqual(thread_count(gw), default)

    def test_bad_values(self):
        for bad in (0, -1, "all", 1.5, 100000):
            with self.subTest(workers=bad):
                rc, out = self.check(self.base(workers=bad))
                self.assertEqual(rc, 1, out)
                self.assertIn("workers", out)


if __name__ == "__main__":
    unittest.main()
