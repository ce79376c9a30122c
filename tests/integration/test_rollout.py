# SPDX-License-Identifier: BSD-2-Clause
"""The rollout controller and the state file (issue 7): real blue and
green testd instances answering their slot's name, a green that fails 20 %
of its requests or answers 3x slower, continuous client traffic, the
admin API. A rollout promotes a healthy green by itself, rolls a broken
one back within one step interval (fast fail), waits for traffic rather
than pass a step without samples; pause, resume, abort and promote by
hand; invalid actions change nothing; the split and the rollout survive a
restart through the state file, and a corrupt state file is set aside.
"""
import glob
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, loadgen, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

TOKEN = "rollout-token"


def config(blue_addr, green_addr, steps=(20, 50, 100), interval_ms=1500, min_requests=30,
           state_file=True, **rollback):
    rollout = {"steps": list(steps), "step_interval_ms": interval_ms,
               "min_requests": min_requests,
               "rollback": dict({"max_error_rate": 0.1, "max_p95_ms": 5000,
                                 "max_p95_ratio": 2.5}, **rollback)}
    cfg = proxytest.config(
        workers=2,
        pools={"blue": {"instances": [{"addr": blue_addr}]},
               "green": {"instances": [{"addr": green_addr}]}},
        services={"app": {"blue": "blue", "green": "green", "active": "blue",
                          "rollout": rollout}},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})
    if state_file:
        cfg["state_file"] = "{tmp}/state/switchyard-state.json"
    return cfg


def traffic(gw, threads=4):
    """Client threads sending GET / until the `with` block ends (lib.loadgen)."""
    return loadgen.Load(*gw.host_port(), threads=threads)


def error_log(gw):
    try:
        with open(gw.log_path("error")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def rollout_events(gw, n=1, timeout=5.0):
    """The security log's rollout events, once there are at least n."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in gw.log_lines("security") if e["event"] == "rollout"]
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


class RolloutCase(unittest.TestCase):
    green_options = {}

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green", cls.green_options)],
                                threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg):
        gw = admin.start_gateway(cfg, tokens=[TOKEN])
        self.addCleanup(gw.__exit__, None, None, None)
        return gw, admin.Admin(gw, token=TOKEN)

    def config(self, **kw):
        return config(self.td.addr(0), self.td.addr(1), **kw)

    def rollout(self, api, action=None, **body):
        if action is None:
            return api.get("/api/v1/services/app/rollout")
        return api.post("/api/v1/services/app/rollout", dict(body, action=action))

    def wait_state(self, api, states, timeout):
        deadline = time.monotonic() + timeout
        while True:
            r = self.rollout(api)
            if r.json["state"] in states or time.monotonic() > deadline:
                return r.json
            time.sleep(0.05)


class HealthyGreen(RolloutCase):
    def test_promotes_step_by_step(self):
        gw, api = self.gateway(self.config())
        with traffic(gw):
            r = self.rollout(api, "start")
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json["state"], r.json["step"], r.json["weight"]),
                             ("running", 0, 20))
            self.assertEqual((r.json["active"], r.json["canary"]), ("blue", "green"))
            seen_weights = set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                st = self.rollout(api).json
                seen_weights.add(st["weight"])
                if st["state"] != "running":
                    break
                time.sleep(0.1)
        self.assertEqual(st["state"], "promoted", st)
        self.assertEqual((st["active"], st["weight"]), ("green", 0))
        self.assertTrue({20, 50, 100} <= seen_weights, seen_weights)
        self.assertEqual(st["last_analysis"]["verdict"], "pass")
        events = rollout_events(gw, 4)
        self.assertEqual([e["action"] for e in events],
                         ["start", "advance", "advance", "promote"])
        promote = events[-1]
        self.assertEqual((promote["by"], promote["state"], promote["to"]),
                         ("controller", "promoted", "green"))
        self.assertGreaterEqual(promote["canary_requests"], 30)
        self.assertEqual(promote["canary_error_rate"], 0)
        # new traffic goes to green only, and a restart would not flip it back
        r = proxytest.once(gw, build("GET", "/"))
        self.assertEqual(r.body, b"green\n")
        with open(os.path.join(gw.tmp, "state", "switchyard-state.json")) as f:
            saved = json.load(f)["services"]["app"]
        self.assertEqual((saved["active"], saved["canary_weight"], saved["rollout"]["state"]),
                         ("green", 0, "promoted"))

    def test_waits_for_traffic_rather_than_pass_without_samples(self):
        gw, api = self.gateway(self.config(interval_ms=500, min_requests=40))
        self.assertEqual(self.rollout(api, "start").status, 200)
        st = self.wait_state(api, {"waiting_for_traffic"}, 5)
        self.assertEqual((st["state"], st["step"], st["weight"]),
                         ("waiting_for_traffic", 0, 20), st)
        self.assertEqual(st["last_analysis"]["verdict"], "hold")
        time.sleep(1.0)
        self.assertEqual(self.rollout(api).json["step"], 0)     # held, not passed
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_rollout_state", service="app",
                                state="waiting_for_traffic"), 1)
        self.assertEqual(sample(m, "switchyard_rollout_state", service="app", state="running"), 0)
        with traffic(gw):
            st = self.wait_state(api, {"promoted", "rolled_back"}, 20)
        self.assertEqual(st["state"], "promoted", st)
        self.assertIn("wait", [e["action"] for e in rollout_events(gw, 2)])

    def test_pause_resume_abort_promote_and_invalid_actions(self):
        gw, api = self.gateway(self.config(interval_ms=800, min_requests=1))
        for action, status in [("resume", 409), ("pause", 409), ("abort", 409),
                               ("promote", 409), ("jump", 400)]:
            with self.subTest(action=action):
                r = self.rollout(api, action)
                self.assertEqual(r.status, status, r)
                self.assertIn("error", r.json)
        self.assertEqual(api.post("/api/v1/services/app/rollout", None).status, 400)
        self.assertEqual(api.post("/api/v1/services/nope/rollout", {"action": "start"}).status,
                         404)
        self.assertEqual(api.get("/api/v1/services/nope/rollout").status, 404)
        self.assertEqual(self.rollout(api).json["state"], "idle")

        with traffic(gw, threads=2):
            self.assertEqual(self.rollout(api, "start").status, 200)
            self.assertEqual(self.rollout(api, "start").status, 409)
            # the rollout owns the split: no switch or weight by hand meanwhile
            r = api.post("/api/v1/services/app/switch", {"to": "green"})
            self.assertEqual(r.status, 409, r)
            self.assertEqual(api.post("/api/v1/services/app/canary", {"weight": 5}).status, 409)
            r = self.rollout(api, "pause")
            self.assertEqual((r.status, r.json["state"]), (200, "paused"))
            self.assertEqual(self.rollout(api, "pause").status, 409)
            time.sleep(2.0)                     # two intervals: a paused rollout stays
            st = self.rollout(api).json
            self.assertEqual((st["state"], st["step"], st["weight"]), ("paused", 0, 20))
            self.assertEqual(self.rollout(api, "resume").json["state"], "running")
            r = self.rollout(api, "abort")
            self.assertEqual((r.json["state"], r.json["weight"], r.json["active"]),
                             ("aborted", 0, "blue"))
            self.assertEqual(self.rollout(api, "resume").status, 409)
            # started again, then promoted by hand
            self.assertEqual(self.rollout(api, "start").status, 200)
            r = self.rollout(api, "promote")
            self.assertEqual((r.json["state"], r.json["active"], r.json["weight"]),
                             ("promoted", "green", 0))
        actions = [(e["action"], e["by"]) for e in rollout_events(gw, 6)]
        self.assertEqual(actions[:4], [("start", "operator"), ("pause", "operator"),
                                       ("resume", "operator"), ("abort", "operator")])
        self.assertEqual(actions[-1], ("promote", "operator"))
        refused = [e for e in gw.log_lines("security") if e["event"] == "admin_action"
                   and e["action"] == "rollout" and e["rollout"] == "resume"]
        self.assertEqual([(e["from"], e["to"], bool(e["reason"])) for e in refused],
                         [("idle", "idle", True), ("paused", "running", False),
                          ("aborted", "aborted", True)])

    def test_switchyard_ctl_drives_the_rollout(self):
        gw, api = self.gateway(self.config(interval_ms=60000))
        ctl = [root_path("build", "switchyard-ctl"), "--admin", gw.admin_url("").rstrip("/"),
               "--token-file", os.path.join(gw.tmp, "admin.token")]

        def run(*args):
            return subprocess.run(ctl + list(args), capture_output=True, text=True, timeout=30)
        out = run("rollout", "app", "start")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("running", out.stdout)
        out = run("rollout", "app", "status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("state: running", out.stdout)
        self.assertIn("weight: 20", out.stdout)
        out = run("rollout", "app", "resume")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        out = run("rollout", "app", "abort")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.rollout(api).json["state"], "aborted")


class FailingGreen(RolloutCase):
    green_options = {"fail": 20}

    def test_rolls_back_by_itself_within_one_step_interval(self):
        interval = 10.0
        gw, api = self.gateway(self.config(interval_ms=int(interval * 1000), min_requests=50))
        with traffic(gw):
            time.sleep(0.3)
            started = time.monotonic()
            self.assertEqual(self.rollout(api, "start").status, 200)
            st = self.wait_state(api, {"rolled_back", "promoted"}, 2 * interval)
            took = time.monotonic() - started
        self.assertEqual(st["state"], "rolled_back", st)
        self.assertLess(took, interval, "fast fail took %.1f s" % took)
        self.assertEqual((st["active"], st["weight"]), ("blue", 0))
        a = st["last_analysis"]
        self.assertEqual(a["verdict"], "fail")
        self.assertIn("error rate", a["reason"])
        self.assertGreater(a["canary"]["error_rate"], 0.1)
        self.assertEqual(a["baseline"]["error_rate"], 0)
        event = rollout_events(gw, 2)[-1]
        self.assertEqual((event["action"], event["by"], event["state"]),
                         ("rollback", "controller", "rolled_back"))
        self.assertGreater(event["canary_error_rate"], 0.1)
        self.assertGreaterEqual(event["canary_requests"], 50)
        self.assertIn("max_error_rate", event["reason"])
        r = proxytest.once(gw, build("GET", "/"))
        self.assertEqual(r.body, b"blue\n")


class SlowGreen(RolloutCase):
    green_options = {"delay": 36}

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue", {"delay": 12}), (0, "green", cls.green_options)],
                                threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def test_rolls_back_a_green_three_times_slower(self):
        interval = 10.0
        gw, api = self.gateway(self.config(interval_ms=int(interval * 1000), min_requests=40,
                                           steps=(50, 100)))
        with traffic(gw, threads=8):
            time.sleep(0.3)
            started = time.monotonic()
            self.assertEqual(self.rollout(api, "start").status, 200)
            st = self.wait_state(api, {"rolled_back", "promoted"}, 2 * interval)
            took = time.monotonic() - started
        self.assertEqual(st["state"], "rolled_back", st)
        self.assertLess(took, interval, "fast fail took %.1f s" % took)
        a = st["last_analysis"]
        self.assertIn("max_p95_ratio", a["reason"])
        self.assertGreater(a["p95_ratio"], 2.5)
        self.assertGreater(a["canary"]["p95_ms"], 30)
        self.assertLess(a["baseline"]["p95_ms"], 25)


class StateFile(RolloutCase):
    def restart(self, gw):
        gw.stop()
        gw.start()
        gw.wait_admin()

    def test_restart_keeps_the_switch_the_weight_and_the_rollout(self):
        gw, api = self.gateway(self.config(interval_ms=60000))
        self.assertEqual(api.post("/api/v1/services/app/switch", {"to": "green"}).status, 200)
        self.assertEqual(api.post("/api/v1/services/app/canary", {"weight": 10}).status, 200)
        self.restart(gw)
        svc = api.get("/api/v1/status").json["services"][0]
        self.assertEqual((svc["active"], svc["canary_weight"]), ("green", 10))
        self.assertEqual(proxytest.once(gw, build("GET", "/", headers=[])).status, 200)
        # a rollout (from green toward blue) goes on at its step after a restart
        api.post("/api/v1/services/app/canary", {"weight": 0})
        self.assertEqual(self.rollout(api, "start").status, 200)
        self.restart(gw)
        st = self.rollout(api).json
        self.assertEqual((st["state"], st["step"], st["weight"], st["active"], st["canary"]),
                         ("running", 0, 20, "green", "blue"))
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_rollout_state", service="app", state="running"),
                         1)
        self.assertEqual(sample(m, "switchyard_service_canary_weight", service="app"), 20)

    def test_a_corrupt_state_file_is_set_aside(self):
        cfg = self.config()
        gw = gateway.Gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        admin.write_tokens(os.path.join(gw.tmp, "admin.token"), [TOKEN])
        state = os.path.join(gw.tmp, "state", "switchyard-state.json")
        os.makedirs(os.path.dirname(state))
        for text in ['{"version": 1, "services": {"app": {"active": "gre',
                     '{"version": 1, "services": {"app": {"active": "purple", '
                     '"canary_weight": 10}}}']:
            with self.subTest(text=text):
                with open(state, "w") as f:
                    f.write(text)
                gw.start()
                gw.wait_admin()
                api = admin.Admin(gw, token=TOKEN)
                svc = api.get("/api/v1/status").json["services"][0]
                self.assertEqual((svc["active"], svc["canary_weight"]), ("blue", 0))
                aside = glob.glob(state + ".corrupt-*")
                self.assertEqual(len(aside), 1, aside)
                with open(aside[0]) as f:
                    self.assertEqual(f.read(), text)
                self.assertTrue(proxytest.wait_until(lambda: "kept aside" in error_log(gw)))
                self.assertFalse(os.path.exists(state))     # until the next change
                api.post("/api/v1/services/app/canary", {"weight": 3})
                with open(state) as f:
                    self.assertEqual(json.load(f)["services"]["app"]["canary_weight"], 3)
                gw.stop()
                os.unlink(aside[0])

    def test_an_unwritable_state_file_keeps_traffic_flowing(self):
        cfg = self.config()
        cfg["state_file"] = "{tmp}/blocker/state.json"
        gw = gateway.Gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        admin.write_tokens(os.path.join(gw.tmp, "admin.token"), [TOKEN])
        blocker = os.path.join(gw.tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("a file where the state directory should be\n")
        gw.start()
        gw.wait_admin()
        api = admin.Admin(gw, token=TOKEN)
        r = api.post("/api/v1/services/app/switch", {"to": "green"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(proxytest.once(gw, build("GET", "/")).body, b"green\n")
        self.assertTrue(proxytest.wait_until(lambda: "state file" in error_log(gw)))
        # once the directory can be made, the retry writes the file
        os.unlink(blocker)
        path = os.path.join(blocker, "state.json")
        self.assertTrue(proxytest.wait_until(lambda: os.path.exists(path), timeout=5))
        with open(path) as f:
            self.assertEqual(json.load(f)["services"]["app"]["active"], "green")


class Scaling(RolloutCase):
    def test_scaling_signal_and_its_figures(self):
        cfg = self.config()
        cfg["services"]["app"]["scaling"] = {"max_p95_ms": 2000, "max_queue": 100,
                                             "max_error_rate": 0.05}
        gw, api = self.gateway(cfg)
        # idle: every figure under a quarter of its limit: scale down
        self.assertTrue(proxytest.wait_until(lambda: api.get("/api/v1/status").json[
            "services"][0]["scaling"]["recommendation"] == -1, timeout=5))
        s = api.get("/api/v1/status").json["services"][0]["scaling"]
        self.assertEqual(s["limits"], {"max_p95_ms": 2000, "max_queue": 100,
                                       "max_error_rate": 0.05})
        for key in ("p95_ms", "queue", "error_rate", "requests", "reason"):
            self.assertIn(key, s)
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_scale_recommendation", service="app"), -1)

    def test_errors_raise_the_signal(self):
        cfg = self.config(min_requests=20)
        cfg["services"]["app"]["scaling"] = {"max_p95_ms": 2000, "max_queue": 100,
                                             "max_error_rate": 0.05}
        cfg["pools"]["blue"]["instances"] = [{"addr": "127.0.0.1:%d" % ports.free_port()}]
        gw, api = self.gateway(cfg)
        with proxytest.client(gw) as c:
            for _ in range(40):
                self.assertEqual(c.request(build("GET", "/")).status, 502)
        self.assertTrue(proxytest.wait_until(lambda: api.get("/api/v1/status").json[
            "services"][0]["scaling"]["recommendation"] == 1, timeout=5))
        s = api.get("/api/v1/status").json["services"][0]["scaling"]
        self.assertIn("error rate", s["reason"])
        self.assertEqual(s["error_rate"], 1.0)


if __name__ == "__main__":
    unittest.main()
