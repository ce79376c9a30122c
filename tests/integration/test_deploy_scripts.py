# SPDX-License-Identifier: BSD-2-Clause
"""contrib/deploy/blue-green.sh and canary.sh (issue 7) run as an operator
runs them: real gateway, real blue and green testd instances answering their
slot's name, build/switchyard-ctl, the scripts started with subprocess.

blue-green.sh switches and checks (and switches back the same way); it waits
for a pool that comes up late; it times out with 3 and changes nothing when
the target pool stays dead. canary.sh follows a real rollout under traffic:
0 when a healthy green is promoted, 1 (with the analysis reason) when a green
failing 30 % of its requests is rolled back; on timeout it aborts (or not,
with --no-abort-on-timeout); SIGINT and SIGTERM abort with 130 and 143.
Usage errors are 2, an unreachable gateway or an unknown service 4.

The scripts run through their #!/bin/sh line; SY_DEPLOY_SHELL="bash" (or
"busybox sh") runs them with another shell instead.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, loadgen, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402

CTL = root_path("build", "switchyard-ctl")
BLUE_GREEN = root_path("contrib", "deploy", "blue-green.sh")
CANARY = root_path("contrib", "deploy", "canary.sh")
SHELL = shlex.split(os.environ.get("SY_DEPLOY_SHELL", ""))
TOKEN = "deploy-token"
HEALTH = {"path": "/health", "interval_ms": 200, "timeout_ms": 100}

# Short steps, judged on little traffic. The p95 ratio of two sub-millisecond
# backends is noise on a busy machine: only the error rate decides here.
FAST_ROLLOUT = {"steps": [50, 100], "step_interval_s": 1, "min_requests": 20,
                "rollback": {"max_error_rate": 0.10, "max_p95_ms": 5000,
                             "max_p95_ratio": 1000}}
# A rollout that stays on its first step for the whole test.
SLOW_ROLLOUT = dict(FAST_ROLLOUT, step_interval_s=600)


def config(blue_addr, green_addr, green_health=True, rollout=None):
    green = {"instances": [{"addr": green_addr}]}
    if green_health:
        green["health"] = dict(HEALTH)
    svc = {"blue": "blue", "green": "green", "active": "blue",
           "canary": {"weight": 0, "sticky": "none"}}
    if rollout is not None:
        svc["rollout"] = rollout
    return proxytest.config(
        workers=2,
        pools={"blue": {"instances": [{"addr": blue_addr}]}, "green": green},
        services={"app": svc},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def traffic(gw):
    """Requests through the gateway until the `with` block ends (lib.loadgen)."""
    return loadgen.Load(*gw.host_port(), threads=2)


def seen(load, status, body):
    """How many answers of the finished load had this status and body."""
    return sum(1 for o in load.result.outcomes if o.status == status and o.body == body)


class DeployScripts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path in (CTL, BLUE_GREEN, CANARY):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s is missing or not executable (make)" % path)
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def setUp(self):
        # an empty working directory: switchyard-ctl's default conf/admin.token is absent
        self.cwd = tempfile.mkdtemp(prefix="sy-deploy-")
        self.addCleanup(shutil.rmtree, self.cwd, True)

    def gateway(self, cfg):
        gw = admin.start_gateway(cfg, tokens=[TOKEN])
        self.addCleanup(gw.__exit__, None, None, None)
        return gw, admin.Admin(gw, token=TOKEN)

    def env(self):
        drop = ("SWITCHYARD_ADMIN", "SWITCHYARD_TOKEN_FILE", "NO_COLOR")
        return {k: v for k, v in os.environ.items() if k not in drop}

    def argv(self, script, gw, *args, admin_url=None):
        return SHELL + [script, "app", "--admin", admin_url or gw.admin_url(""),
                "--token-file", os.path.join(gw.tmp, "admin.token"), "--ctl", CTL] + list(args)

    def run_script(self, script, gw, *args, timeout=90, admin_url=None):
        """(exit code, stdout, stderr, seconds)."""
        t0 = time.monotonic()
        proc = subprocess.run(self.argv(script, gw, *args, admin_url=admin_url), cwd=self.cwd,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0

    def service(self, api):
        return api.status()["services"][0]

    def rollout(self, api):
        r = api.get("/api/v1/services/app/rollout")
        self.assertEqual(r.status, 200, r)
        return r.json

    def slot_of(self, gw):
        r = proxytest.once(gw, build("GET", "/"))
        self.assertEqual(r.status, 200, r)
        return r.body.decode().strip()

    # --- blue-green.sh ---------------------------------------------------

    def test_blue_green_switches_checks_and_switches_back(self):
        gw, api = self.gateway(config(self.td.addr(0), self.td.addr(1)))
        rc, out, err, _ = self.run_script(BLUE_GREEN, gw, "--timeout", "20")
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("green is active", out)
        self.assertEqual(err, "")
        svc = self.service(api)
        self.assertEqual((svc["active"], svc["canary_weight"]), ("green", 0))
        self.assertEqual(self.slot_of(gw), "green")
        # the rollback is the same script again
        rc, out, err, _ = self.run_script(BLUE_GREEN, gw, "--timeout=20")
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("blue is active", out)
        self.assertEqual(self.slot_of(gw), "blue")

    def test_blue_green_waits_for_a_pool_that_comes_up(self):
        port = ports.free_port()
        gw, api = self.gateway(config(self.td.addr(0), "127.0.0.1:%d" % port))
        proc = subprocess.Popen(self.argv(BLUE_GREEN, gw, "--timeout", "30"), cwd=self.cwd,
                                env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            time.sleep(1.5)
            if proc.poll() is not None:
                self.fail("it did not wait: %r" % (proc.communicate(),))
            self.assertEqual(self.service(api)["active"], "blue")
            with backends.Testd([(port, "green")]):
                out, err = proc.communicate(timeout=30)
                self.assertEqual(proc.returncode, 0, (out, err))
                self.assertIn("waiting for a healthy instance in pool green", out)
                self.assertEqual(self.slot_of(gw), "green")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def test_blue_green_times_out_on_a_dead_pool(self):
        dead = "127.0.0.1:%d" % ports.free_port()
        gw, api = self.gateway(config(self.td.addr(0), dead))
        rc, out, err, took = self.run_script(BLUE_GREEN, gw, "--timeout", "2")
        self.assertEqual(rc, 3, (out, err))
        self.assertIn("timed out after 2s: pool green has no healthy instance", err)
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 20.0)
        svc = self.service(api)
        self.assertEqual((svc["active"], svc["canary_weight"]), ("blue", 0))
        self.assertEqual(self.slot_of(gw), "blue")

    def test_usage_and_gateway_errors(self):
        gw, api = self.gateway(config(self.td.addr(0), self.td.addr(1)))
        for script in (BLUE_GREEN, CANARY):
            with self.subTest(script=os.path.basename(script)):
                for args, rc, text in [
                        ([], 2, "SERVICE is missing"),
                        (["app", "--bogus"], 2, "unknown option --bogus"),
                        (["app", "--timeout", "soon"], 2, "whole number"),
                        (["app", "other"], 2, "one SERVICE only"),
                        (["app", "--timeout"], 2, "--timeout needs a value"),
                        (["app", "--ctl", "/nonexistent/ctl"], 2, "cannot run"),
                        (["app", "--token-file", "/nonexistent/token"], 2, "token file")]:
                    proc = subprocess.run(SHELL + [script] + args, cwd=self.cwd, env=self.env(),
                                          capture_output=True, text=True, timeout=30)
                    self.assertEqual(proc.returncode, rc, (args, proc.stderr))
                    self.assertIn(text, proc.stderr, args)
                proc = subprocess.run(SHELL + [script, "-h"], capture_output=True, text=True,
                                      timeout=30)
                self.assertEqual(proc.returncode, 0)
                self.assertIn("usage: %s SERVICE" % os.path.basename(script), proc.stdout)
                # an unknown service, an unreachable gateway, a wrong token
                argv = self.argv(script, gw)
                argv[argv.index(script) + 1] = "nope"
                proc = subprocess.run(argv, cwd=self.cwd, env=self.env(), capture_output=True,
                                      text=True, timeout=30)
                self.assertEqual(proc.returncode, 4, proc.stderr)
                self.assertIn("no service \"nope\"", proc.stderr)
                rc, out, err, _ = self.run_script(
                    script, gw, admin_url="http://127.0.0.1:%d" % ports.free_port())
                self.assertEqual(rc, 4, err)
                self.assertIn("cannot reach the gateway", err)
                with open(os.path.join(self.cwd, "wrong.token"), "w") as f:
                    f.write("wrong\n")
                argv = self.argv(script, gw)
                argv[argv.index("--token-file") + 1] = os.path.join(self.cwd, "wrong.token")
                proc = subprocess.run(argv, cwd=self.cwd, env=self.env(), capture_output=True,
                                      text=True, timeout=30)
                self.assertEqual(proc.returncode, 4, proc.stderr)
                self.assertIn("refused (401)", proc.stderr)
        self.assertEqual(self.service(api)["active"], "blue")

    def test_shellcheck_clean(self):
        shellcheck = shutil.which("shellcheck")
        if shellcheck is None:
            self.skipTest("shellcheck is not installed")
        for dialect in ("sh", "dash", "bash"):
            proc = subprocess.run([shellcheck, "-s", dialect, BLUE_GREEN, CANARY],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    # --- canary.sh -------------------------------------------------------

    def test_canary_promotes_a_healthy_green(self):
        gw, api = self.gateway(config(self.td.addr(0), self.td.addr(1), rollout=FAST_ROLLOUT))
        with traffic(gw) as load:
            rc, out, err, _ = self.run_script(CANARY, gw, "--interval", "1", "--timeout", "60")
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("promoted, green is active", out)
        self.assertIn("weight 50%", out)
        self.assertIn("last verdict pass", out)
        self.assertEqual(self.rollout(api)["state"], "promoted")
        svc = self.service(api)
        self.assertEqual((svc["active"], svc["canary_weight"]), ("green", 0))
        self.assertEqual(self.slot_of(gw), "green")
        self.assertGreater(seen(load, 200, b"green\n"), 20)

    def test_canary_rolls_back_a_failing_green(self):
        with backends.Testd([(0, "green", {"fail": 30})]) as bad:
            gw, api = self.gateway(config(self.td.addr(0), bad.addr(0), rollout=FAST_ROLLOUT))
            with traffic(gw) as load:
                rc, out, err, _ = self.run_script(CANARY, gw, "--interval", "1",
                                                  "--timeout", "60")
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("rolled back by the gateway, blue stays active", err)
            analysis = self.rollout(api)["last_analysis"]
            self.assertEqual(self.rollout(api)["state"], "rolled_back")
            self.assertEqual(analysis["verdict"], "fail")
            self.assertIn(analysis["reason"], err)      # the reason is printed
            self.assertIn("last verdict fail", out)
            svc = self.service(api)
            self.assertEqual((svc["active"], svc["canary_weight"]), ("blue", 0))
            self.assertEqual(self.slot_of(gw), "blue")
            self.assertGreater(seen(load, 500, b"green failed\n"), 0)

    def test_canary_timeout_aborts_unless_told_not_to(self):
        gw, api = self.gateway(config(self.td.addr(0), self.td.addr(1), rollout=SLOW_ROLLOUT))
        rc, out, err, took = self.run_script(CANARY, gw, "--interval", "1", "--timeout", "3")
        self.assertEqual(rc, 3, (out, err))
        self.assertIn("timed out after 3s", err)
        self.assertGreaterEqual(took, 3.0)
        self.assertLess(took, 30.0)
        self.assertEqual(self.rollout(api)["state"], "aborted")
        self.assertEqual(self.service(api)["canary_weight"], 0)
        rc, out, err, _ = self.run_script(CANARY, gw, "--interval", "1", "--timeout", "3",
                                          "--no-abort-on-timeout")
        self.assertEqual(rc, 3, (out, err))
        self.assertIn("--no-abort-on-timeout", err)
        ro = self.rollout(api)
        self.assertIn(ro["state"], ("running", "waiting_for_traffic"))
        self.assertEqual(self.service(api)["canary_weight"], 50)
        # a second run while it goes on: the gateway refuses the start
        rc, out, err, _ = self.run_script(CANARY, gw, "--interval", "1", "--timeout", "10")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("refused to start", err)
        self.assertIn(self.rollout(api)["state"], ("running", "waiting_for_traffic"))
        # blue-green.sh will not fight a rollout for the split
        rc, out, err, _ = self.run_script(BLUE_GREEN, gw, "--timeout", "5")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("a rollout owns the traffic split", err)
        r = api.post("/api/v1/services/app/rollout", {"action": "abort"})
        self.assertEqual(r.status, 200, r)

    def test_canary_signals_abort_the_rollout(self):
        """Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
        and SIGTERM to the script alone (kill PID)."""
        gw, api = self.gateway(config(self.td.addr(0), self.td.addr(1), rollout=SLOW_ROLLOUT))
        for sig, code, group in ((signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)):
            with self.subTest(signal=sig.name):
                proc = subprocess.Popen(self.argv(CANARY, gw, "--interval", "5",
                                                  "--timeout", "120"),
                                        cwd=self.cwd, env=self.env(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
                try:
                    wait_for(lambda: self.rollout(api)["state"] in
                             ("running", "waiting_for_traffic"), 20, "the rollout to start")
                    time.sleep(0.5)     # into the script's wait between two reads
                    t0 = time.monotonic()
                    if group:
                        os.killpg(proc.pid, sig)    # its own session: only the script's
                    else:
                        proc.send_signal(sig)
                    out, err = proc.communicate(timeout=20)
                    self.assertLess(time.monotonic() - t0, 4.0)   # not after the 5 s wait
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.communicate()
                self.assertEqual(proc.returncode, code, (out, err))
                self.assertIn("aborting the rollout of app", err)
                self.assertEqual(self.rollout(api)["state"], "aborted")
                svc = self.service(api)
                self.assertEqual((svc["active"], svc["canary_weight"]), ("blue", 0))


if __name__ == "__main__":
    unittest.main()
