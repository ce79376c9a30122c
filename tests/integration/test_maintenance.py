# SPDX-License-Identifier: BSD-2-Clause
"""The maintenance page (issue 13): services.NAME.maintenance, switched at
run time through the admin API and switchyard-ctl. Under continuous load
no request fails around the change: each gets the app or the page, the
page from the moment the on-call returns until the off-call is made; HEAD
gets the head only; a body_file's own page and content type; `-t` names
the JSON path of an unreadable body_file; a restart keeps the state (state
file); a reload keeps a run-time change unless the file's own "enabled"
changed; an admin_action event; status, dashboard and metrics show it;
health checks keep running.
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

from lib import admin, backends, gateway, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

TOKEN = "maint-token"
PATH = "/api/v1/services/app/maintenance"
HEALTH = {"path": "/health", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1}


def config(td, maintenance=None, state_file=False, health=None):
    svc = {"blue": "blue", "green": "green"}
    if maintenance is not None:
        svc["maintenance"] = maintenance
    pool_extra = {"health": health} if health else {}
    cfg = proxytest.config(
        workers=2,
        pools={"blue": dict({"instances": [{"addr": td.addr(0)}]}, **pool_extra),
               "green": {"instances": [{"addr": td.addr(1)}]}},
        services={"app": svc},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})
    if state_file:
        cfg["state_file"] = "{tmp}/state/switchyard-state.json"
    return cfg


def is_page(r, status=503):
    return r.status == status and r.header("Content-Type", "").startswith("text/html") and \
        b"maintenance" in r.body


class Maintenance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg, files=None):
        """A started gateway; files {name: bytes} are written into its {tmp} first."""
        gw = gateway.Gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        admin.write_tokens(os.path.join(gw.tmp, "admin.token"), [TOKEN])
        for name, data in (files or {}).items():
            with open(os.path.join(gw.tmp, name), "wb") as f:
                f.write(data)
        gw.start()
        gw.wait_admin()
        return gw, admin.Admin(gw, token=TOKEN)

    def get(self, gw, method="GET"):
        return proxytest.once(gw, build(method, "/"))

    def status_of(self, api):
        return api.get("/api/v1/status").json["services"][0]

    def events(self, gw, n):
        lines = gw.log_lines("security", n)
        return [e for e in lines if e["event"] == "admin_action" and e["action"] == "maintenance"]

    def test_on_and_off_under_load_fail_nothing(self):
        gw, api = self.gateway(config(self.td))
        stop = threading.Event()
        results, errors = [], []

        def load():
            try:
                with proxytest.client(gw) as c:
                    while not stop.is_set():
                        sent = time.monotonic()
                        r = c.request(build("GET", "/"))
                        results.append((sent, time.monotonic(), r))
            except Exception as e:      # a failed request fails the test below
                errors.append(e)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.4)
        on_sent = time.monotonic()
        on = api.post(PATH, {"enabled": True})
        on_returned = time.monotonic()
        time.sleep(0.6)
        off_sent = time.monotonic()
        off = api.post(PATH, {"enabled": False})
        off_returned = time.monotonic()
        time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual((on.status, on.json), (200, {"service": "app", "maintenance": True}))
        self.assertEqual((off.status, off.json), (200, {"service": "app", "maintenance": False}))
        self.assertEqual(errors, [])
        app = [r for _, _, r in results if r.status == 200]
        pages = [r for _, _, r in results if r.status != 200]
        self.assertTrue(all(r.body == b"blue\n" for r in app))
        self.assertTrue(all(is_page(r) for r in pages), pages[:3])
        # sent after the on-call returned and answered before the off-call was
        # made: the page (one answered later may already be the app again)
        between = [r for sent, got, r in results if on_returned < sent and got < off_sent]
        after = [r for sent, _, r in results if sent > off_returned]
        before = [r for sent, _, r in results if sent < on_sent]
        self.assertGreater(len(between), 5)
        self.assertTrue(all(is_page(r) for r in between))
        self.assertGreater(len(after), 5)
        self.assertTrue(all(r.status == 200 for r in after))
        # the app served until the call (one in flight as it lands may get the page)
        self.assertGreater(sum(r.status == 200 for r in before), 5)
        r = between[0]
        self.assertEqual(r.header("Retry-After"), "300")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertTrue(r.header("X-Request-ID"))
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        events = self.events(gw, 2)
        self.assertEqual([(e["service"], e["enabled"]) for e in events],
                         [("app", "true"), ("app", "false")])

    def test_head_custom_page_and_content_type(self):
        page = b'{"maintenance": "until noon"}\n'
        text = b"back soon\n"
        maint = {"enabled": True, "status": 502, "retry_after_s": 90,
                 "body_file": "{tmp}/maint.json"}
        cfg = config(self.td, maintenance=maint)
        gw, api = self.gateway(cfg, {"maint.json": page, "maint.txt": text})
        # the file's "enabled" is in force from the start
        self.assertTrue(self.status_of(api)["maintenance"])
        r = self.get(gw)
        self.assertEqual((r.status, r.body), (502, page))
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.header("Retry-After"), "90")
        with proxytest.client(gw) as c:
            r = c.request(build("HEAD", "/"), head_request=True)
            self.assertEqual((r.status, r.body), (502, b""))
            self.assertEqual(r.header("Content-Length"), str(len(page)))
            self.assertEqual(r.header("Connection"), "keep-alive")
            # the connection goes on after a HEAD
            r = c.request(build("GET", "/"))
            self.assertEqual((r.status, r.body), (502, page))
        # a reload to another file: its page and type; "enabled" did not change
        edited = json.loads(json.dumps(gw.config))
        edited["services"]["app"]["maintenance"]["body_file"] = os.path.join(gw.tmp, "maint.txt")
        gw.write_config(edited)
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        r = self.get(gw)
        self.assertEqual((r.status, r.body), (502, text))
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        # the built-in page, and off again
        self.assertEqual(api.post(PATH, {"enabled": False}).status, 200)
        self.assertEqual(self.get(gw).body, b"blue\n")

    def test_bad_body_file_is_refused_by_t_with_its_json_path(self):
        tmp = tempfile.mkdtemp(prefix="sy-maint-")
        self.addCleanup(shutil.rmtree, tmp)
        big, ok = os.path.join(tmp, "big.html"), os.path.join(tmp, "ok.html")
        with open(big, "wb") as f:
            f.write(b"x" * ((1 << 20) + 1))
        with open(ok, "wb") as f:
            f.write(b"<p>back soon</p>\n")

        def check(maintenance):
            cfg = config(self.td, maintenance=maintenance)
            del cfg["admin"]        # -t reads the token file: none here
            return gateway.check_config(cfg)[:2]

        for body_file, why in [("/nonexistent/maint.html", "No such file"),
                               ("/tmp", "Is a directory"),
                               (big, "1048577 bytes")]:
            with self.subTest(body_file=body_file):
                rc, out = check({"body_file": body_file})
                self.assertNotEqual(rc, 0, out)
                self.assertIn("services.app.maintenance.body_file", out)
                self.assertIn(why, out)
        rc, out = check({"enabled": True, "body_file": ok})
        self.assertEqual(rc, 0, out)

    def test_bad_input_changes_nothing(self):
        gw, api = self.gateway(config(self.td))
        for body in ({"enabled": "yes"}, {"on": True}, None, "[true]"):
            with self.subTest(body=body):
                r = api.post(PATH, body)
                self.assertEqual(r.status, 400, r)
                if isinstance(body, dict):
                    self.assertIn('"enabled"', r.json["error"])
        self.assertEqual(api.post("/api/v1/services/nope/maintenance",
                                  {"enabled": True}).status, 404)
        self.assertEqual(api.post(PATH, {"enabled": True}, token=None).status, 401)
        self.assertFalse(self.status_of(api)["maintenance"])
        self.assertEqual(self.get(gw).status, 200)

    def test_restart_keeps_maintenance(self):
        gw, api = self.gateway(config(self.td, state_file=True))
        self.assertEqual(api.post(PATH, {"enabled": True}).status, 200)
        with open(os.path.join(gw.tmp, "state", "switchyard-state.json")) as f:
            self.assertIs(json.load(f)["services"]["app"]["maintenance"], True)
        gw.stop()
        gw.start()
        gw.wait_admin()
        self.assertTrue(self.status_of(api)["maintenance"])
        self.assertTrue(is_page(self.get(gw)))
        self.assertEqual(api.post(PATH, {"enabled": False}).status, 200)
        gw.stop()
        gw.start()
        gw.wait_admin()
        self.assertFalse(self.status_of(api)["maintenance"])
        self.assertEqual(self.get(gw).body, b"blue\n")

    def test_reload_keeps_a_runtime_change_unless_the_file_changed_its_own(self):
        gw, api = self.gateway(config(self.td, maintenance={"enabled": False}))
        api.post(PATH, {"enabled": True})
        gw.write_config(json.loads(json.dumps(gw.config)))     # the same file
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        self.assertTrue(self.status_of(api)["maintenance"])
        self.assertTrue(is_page(self.get(gw)))
        # off at run time, then the operator turns it on in the file: the file wins
        api.post(PATH, {"enabled": False})
        edited = json.loads(json.dumps(gw.config))
        edited["services"]["app"]["maintenance"]["enabled"] = True
        gw.write_config(edited)
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        self.assertTrue(self.status_of(api)["maintenance"])
        # off at run time again; a reload of that same file keeps it off
        api.post(PATH, {"enabled": False})
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        self.assertFalse(self.status_of(api)["maintenance"])
        self.assertEqual(self.get(gw).body, b"blue\n")

    def test_ctl_status_dashboard_and_metrics(self):
        gw, api = self.gateway(config(self.td))
        ctl = [root_path("build", "switchyard-ctl"), "--admin", gw.admin_url("").rstrip("/"),
               "--token-file", os.path.join(gw.tmp, "admin.token")]

        def run(*args):
            return subprocess.run(ctl + list(args), capture_output=True, text=True, timeout=30)

        out = run("status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("MAINT", out.stdout)
        out = run("maintenance", "app", "on")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(is_page(self.get(gw)))
        out = run("status")
        header = [l for l in out.stdout.splitlines() if l.startswith("SERVICE")][0]
        row = [l for l in out.stdout.splitlines() if l.startswith("app ")][0]
        self.assertIn("MAINT", header.split())
        self.assertEqual(row.split()[header.split().index("MAINT")], "on")
        self.assertTrue(self.status_of(api)["maintenance"])
        dash = api.get("/api/v1/dashboard").json["services"][0]
        self.assertIs(dash["maintenance"], True)
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_service_maintenance", service="app"), 1)
        out = run("maintenance", "app", "off")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.get(gw).body, b"blue\n")
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_service_maintenance", service="app"), 0)
        self.assertIs(api.get("/api/v1/dashboard").json["services"][0]["maintenance"], False)
        self.assertEqual(run("maintenance", "nope", "on").returncode, 1)
        self.assertEqual([e["enabled"] for e in self.events(gw, 2)], ["true", "false"])

    def test_health_checks_keep_running(self):
        gw, api = self.gateway(config(self.td, health=HEALTH))

        def checks():
            m = parse_metrics(api.get("/metrics").text)
            return sample(m, "switchyard_upstream_health_checks_total", pool="blue",
                          instance=self.td.addr(0), result="success") or 0

        self.assertTrue(proxytest.wait_until(lambda: checks() > 0, timeout=5))
        self.assertEqual(api.post(PATH, {"enabled": True}).status, 200)
        before = checks()
        self.assertTrue(proxytest.wait_until(lambda: checks() >= before + 3, timeout=5),
                        "health checks stopped during maintenance")
        self.assertTrue(is_page(self.get(gw)))
        inst = api.pools()["blue"][self.td.addr(0)]
        self.assertEqual((inst["state"], inst["health"]), ("up", "up"))
        self.assertEqual(api.get("/ready").status, 200)


if __name__ == "__main__":
    unittest.main()
