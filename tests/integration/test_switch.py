# SPDX-License-Identifier: BSD-2-Clause
"""Blue-green switch and canary weight at run time (issue 7, first part):
real blue and green backends that answer their slot's name, the admin
API and switchyard-ctl. A switch under continuous load fails no request
and, once the call returns, no new request reaches the old slot; a
switch to a pool with no healthy instance is refused unless forced; the
canary split holds within 3 points; stickiness by client address, by
header and by the slot cookie the gateway sets; the force header; bad input
changes nothing; a reload keeps a run-time switch unless the file's own
active slot changed.
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, certs, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

TOKEN = "switch-token"


def config(td, active="blue", weight=0, green_addr=None, green_extra=None, **svc_extra):
    green = dict({"instances": [{"addr": green_addr or td.addr(1)}]}, **(green_extra or {}))
    svc = dict({"blue": "blue", "green": "green", "active": active,
                "canary": dict({"weight": weight}, **svc_extra.pop("canary", {}))}, **svc_extra)
    return proxytest.config(
        workers=2,
        pools={"blue": {"instances": [{"addr": td.addr(0)}]}, "green": green},
        services={"app": svc},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "127.0.0.1:%d" % ports.free_port(), "token_file": "{tmp}/admin.token"})


def start(cfg):
    return admin.start_gateway(cfg, tokens=[TOKEN])


def slot_of(gw, headers=()):
    r = proxytest.once(gw, build("GET", "/", headers=list(headers)))
    assert r.status == 200, r
    return r.body.decode().strip()


COOKIE = "sy_slot_app"
SET_COOKIE = re.compile(r"^sy_slot_app=(blue|green)\.(0|[1-9][0-9]?); Path=/; HttpOnly; "
                        r"SameSite=Lax(; Secure)?$")


def slot_cookie(resp):
    """The slot cookie a response sets, "green.37", or None; checks its form."""
    lines = [v for v in resp.header_all("Set-Cookie") if v.startswith(COOKIE + "=")]
    assert len(lines) <= 1, lines
    if not lines:
        return None
    m = SET_COOKIE.match(lines[0])
    assert m and not m.group(3), lines[0]
    return "%s.%s" % (m.group(1), m.group(2))


def split(gw, n):
    """Of n requests on one keep-alive connection, how many reached green."""
    green = 0
    with proxytest.client(gw) as c:
        for _ in range(n):
            r = c.request(build("GET", "/"))
            assert r.status == 200, r
            green += r.body == b"green\n"
    return green


class Switch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg):
        gw = start(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        return gw, admin.Admin(gw, token=TOKEN)

    def test_switch_under_load_fails_nothing_and_leaves_the_old_slot(self):
        gw, api = self.gateway(config(self.td))
        stop = threading.Event()
        results, errors = [], []

        def load():
            try:
                with proxytest.client(gw) as c:
                    while not stop.is_set():
                        sent = time.monotonic()
                        r = c.request(build("GET", "/"))
                        results.append((sent, r.status, r.body))
            except Exception as e:      # a failed request fails the test below
                errors.append(e)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        r = api.post("/api/v1/services/app/switch", {"to": "green"})
        returned = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"service": "app", "active": "green", "canary_weight": 0})
        self.assertEqual(errors, [])
        self.assertTrue(all(status == 200 for _, status, _ in results))
        before = [b for sent, _, b in results if sent < returned]
        after = [b for sent, _, b in results if sent > returned]
        self.assertIn(b"blue\n", before)
        self.assertGreater(len(after), 50)
        self.assertEqual(set(after), {b"green\n"})
        # rollback is the same call back
        self.assertEqual(api.post("/api/v1/services/app/switch", {"to": "blue"}).status, 200)
        self.assertEqual(slot_of(gw), "blue")
        events = [e for e in gw.log_lines("security", 2) if e["event"] == "admin_action"]
        self.assertEqual([(e["action"], e["from"], e["to"]) for e in events],
                         [("switch", "blue", "green"), ("switch", "green", "blue")])

    def test_switch_to_a_pool_without_a_healthy_instance_is_refused_unless_forced(self):
        dead = "127.0.0.1:%d" % ports.free_port()
        gw, api = self.gateway(config(self.td, green_addr=dead, green_extra={
            "health": {"path": "/health", "interval_ms": 200, "timeout_ms": 100}}))
        r = api.post("/api/v1/services/app/switch", {"to": "green"})
        self.assertEqual(r.status, 409, r)
        self.assertIn("green", r.json["error"])
        self.assertEqual(slot_of(gw), "blue")
        r = api.post("/api/v1/services/app/switch", {"to": "green", "force": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(api.get("/api/v1/status").json["services"][0]["active"], "green")

    def test_bad_input_changes_nothing(self):
        gw, api = self.gateway(config(self.td, weight=5))
        for path, body, status in [
                ("/api/v1/services/app/switch", {"to": "red"}, 400),
                ("/api/v1/services/app/switch", {"slot": "green"}, 400),
                ("/api/v1/services/app/switch", None, 400),
                ("/api/v1/services/app/switch", {"to": "green", "force": "yes"}, 400),
                ("/api/v1/services/nope/switch", {"to": "green"}, 404),
                ("/api/v1/services/app/canary", {"weight": 101}, 400),
                ("/api/v1/services/app/canary", {"weight": -1}, 400),
                ("/api/v1/services/app/canary", {"weight": "10"}, 400),
                ("/api/v1/services/app/canary", {"weight": 10.5}, 400),
                ("/api/v1/services/app/canary", {}, 400),
                ("/api/v1/services/nope/canary", {"weight": 10}, 404)]:
            with self.subTest(path=path, body=body):
                r = api.post(path, body)
                self.assertEqual(r.status, status, r)
                self.assertIn("error", r.json)
        svc = api.get("/api/v1/status").json["services"][0]
        self.assertEqual((svc["active"], svc["canary_weight"]), ("blue", 5))
        self.assertEqual(api.post("/api/v1/services/app/switch", {"to": "green"},
                                  token="wrong").status, 401)

    def test_canary_split_within_three_points(self):
        gw, api = self.gateway(config(self.td))
        n = 5000
        for weight in (1, 10, 50):
            with self.subTest(weight=weight):
                r = api.post("/api/v1/services/app/canary", {"weight": weight})
                self.assertEqual(r.json["canary_weight"], weight)
                share = 100.0 * split(gw, n) / n
                self.assertLess(abs(share - weight), 3.0, share)
        api.post("/api/v1/services/app/canary", {"weight": 0})
        self.assertEqual(split(gw, 200), 0)
        # the canary is the slot that is not active
        api.post("/api/v1/services/app/switch", {"to": "green"})
        api.post("/api/v1/services/app/canary", {"weight": 100})
        self.assertEqual(split(gw, 200), 0)

    def test_force_header(self):
        gw, api = self.gateway(config(self.td, weight=0, canary={"force_header": "X-Canary"}))
        self.assertEqual(slot_of(gw, [("X-Canary", "always")]), "green")
        self.assertEqual(slot_of(gw, [("x-canary", "ALWAYS")]), "green")
        self.assertEqual(slot_of(gw, [("X-Canary", "maybe")]), "blue")
        api.post("/api/v1/services/app/canary", {"weight": 100})
        self.assertEqual(slot_of(gw, [("X-Canary", "never")]), "blue")
        self.assertEqual(slot_of(gw), "green")

    def sticky_slots(self, gw, clients, header):
        """{client: the set of slots its 5 requests reached}."""
        seen = {}
        with proxytest.client(gw) as c:
            for client in clients:
                for _ in range(5):
                    r = c.request(build("GET", "/", headers=[(header, client)]))
                    self.assertEqual(r.status, 200, r)
                    seen.setdefault(client, set()).add(r.body.decode().strip())
        return seen

    def check_sticky(self, cfg, header, clients):
        gw, api = self.gateway(cfg)
        on_canary = {}
        for weight in (30, 60):
            api.post("/api/v1/services/app/canary", {"weight": weight})
            seen = self.sticky_slots(gw, clients, header)
            self.assertTrue(all(len(slots) == 1 for slots in seen.values()), seen)
            on_canary[weight] = {c for c, slots in seen.items() if slots == {"green"}}
            share = 100.0 * len(on_canary[weight]) / len(clients)
            self.assertLess(abs(share - weight), 12, share)   # 200 clients: a loose bound
        # raising the weight only moves clients toward the canary
        self.assertLess(on_canary[30], on_canary[60])

    def test_sticky_client_ip(self):
        cfg = config(self.td, canary={"sticky": "client_ip"})
        cfg["trusted_proxies"] = ["127.0.0.1/32"]
        clients = ["10.1.%d.%d" % (i // 250, i % 250 + 1) for i in range(200)]
        self.check_sticky(cfg, "X-Forwarded-For", clients)

    def test_sticky_header(self):
        cfg = config(self.td, canary={"sticky": "header:X-User"})
        self.check_sticky(cfg, "X-User", ["user-%d" % i for i in range(200)])

    def test_sticky_cookie(self):
        gw, api = self.gateway(config(self.td, canary={"sticky": "cookie"}))
        with proxytest.client(gw) as c:      # weight 0: no cookie, cookie or not
            for hdrs in ([], [("Cookie", COOKIE + "=green.3")]):
                r = c.request(build("GET", "/", headers=hdrs))
                self.assertEqual((r.status, r.body), (200, b"blue\n"))
                self.assertEqual(r.header_all("Set-Cookie"), [])
        jar, on_canary = {}, {}
        clients = range(200)
        for weight in (30, 60):
            api.post("/api/v1/services/app/canary", {"weight": weight})
            seen = {}
            with proxytest.client(gw) as c:
                for i in clients:
                    for k in range(4):
                        hdrs = []
                        if i in jar:
                            hdrs = [("Cookie", "a=1; %s=%s; b=2" % (COOKIE, jar[i]))]
                        r = c.request(build("GET", "/", headers=hdrs))
                        self.assertEqual(r.status, 200, r)
                        slot = r.body.decode().strip()
                        seen.setdefault(i, set()).add(slot)
                        value = slot_cookie(r)
                        if value is None:
                            # a client whose cookie names its slot is left alone
                            self.assertTrue(jar[i].startswith(slot + "."), (i, jar[i], slot))
                            continue
                        # set only when absent or naming another slot: once per weight
                        self.assertEqual(k, 0, (i, value))
                        self.assertTrue(value.startswith(slot + "."), (value, slot))
                        if i in jar:    # a client keeps its bucket; only its slot changes
                            self.assertEqual(value.split(".")[1], jar[i].split(".")[1])
                            self.assertNotEqual(value, jar[i])
                        jar[i] = value
            self.assertTrue(all(len(slots) == 1 for slots in seen.values()), seen)
            on_canary[weight] = {i for i, slots in seen.items() if slots == {"green"}}
            share = 100.0 * len(on_canary[weight]) / len(clients)
            self.assertLess(abs(share - weight), 12, share)
            # the bucket rule: below the weight goes to the canary
            self.assertEqual(on_canary[weight],
                             {i for i in clients if int(jar[i].split(".")[1]) < weight})
        # raising the weight only moves clients toward the canary
        self.assertLess(on_canary[30], on_canary[60])
        # back to 0: everyone on the active slot, and no cookie is set
        api.post("/api/v1/services/app/canary", {"weight": 0})
        with proxytest.client(gw) as c:
            for i in list(clients)[:50]:
                r = c.request(build("GET", "/", headers=[("Cookie", COOKIE + "=" + jar[i])]))
                self.assertEqual((r.body, r.header_all("Set-Cookie")), (b"blue\n", []))

    def test_cookie_values_forced_and_repaired(self):
        gw, api = self.gateway(config(self.td, weight=50,
                                      canary={"sticky": "cookie", "force_header": "X-Canary"}))

        def ask(*headers):
            r = proxytest.once(gw, build("GET", "/", headers=list(headers)))
            self.assertEqual(r.status, 200, r)
            return r.body.decode().strip(), slot_cookie(r)

        # a valid cookie decides by its bucket (50: below goes to the canary, green)
        self.assertEqual(ask(("Cookie", COOKIE + "=green.3")), ("green", None))
        self.assertEqual(ask(("Cookie", COOKIE + "=blue.97")), ("blue", None))
        self.assertEqual(ask(("Cookie", COOKIE + "=blue.3")), ("green", "green.3"))
        self.assertEqual(ask(("Cookie", "x=1;%s = green.49 ;y" % COOKIE)), ("green", None))
        # split over several Cookie lines; the first of the name decides
        self.assertEqual(ask(("Cookie", "a=1"), ("Cookie", COOKIE + "=blue.60; b=2"),
                             ("Cookie", COOKIE + "=green.1")), ("blue", None))
        # another service's cookie, or a longer name, is not ours
        slot, value = ask(("Cookie", "sy_slot_app2=green.3; sy_slot_other=green.3"))
        self.assertTrue(value and value.startswith(slot + "."), (slot, value))
        # malformed: as if absent, served, and replaced by a valid cookie
        for bad in ("purple.12", "green.07", "green.100", "green.", "green", '"green.3"',
                    "green.3x", "", "green.-1"):
            with self.subTest(cookie=bad):
                slot, value = ask(("Cookie", "%s=%s" % (COOKIE, bad)))
                self.assertIsNotNone(value)
                self.assertTrue(value.startswith(slot + "."), (slot, value))
        # the force header wins over the cookie and leaves it as it is
        self.assertEqual(ask(("Cookie", COOKIE + "=blue.97"), ("X-Canary", "always")),
                         ("green", None))
        self.assertEqual(ask(("Cookie", COOKIE + "=green.3"), ("X-Canary", "never")),
                         ("blue", None))
        self.assertEqual(ask(("X-Canary", "always")), ("green", None))

    def test_cookie_beside_the_apps_own_and_never_on_a_local_answer(self):
        def app(req):
            body = ("green %s\n" % req.header("Cookie", "-")).encode()
            return (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

        with backends.RawBackend(app) as rb:
            gw, api = self.gateway(config(self.td, weight=100, green_addr=rb.addr,
                                          canary={"sticky": "cookie"}))
            r = proxytest.once(gw, build("GET", "/", headers=[("Cookie", "session=abc")]))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"green session=abc\n")
            self.assertEqual(r.header_all("Set-Cookie")[0], "session=abc; Path=/")
            value = slot_cookie(r)
            self.assertTrue(value.startswith("green."), value)
            # the app sees the client's cookies as sent, the slot cookie among them
            cookie = "session=abc; %s=%s" % (COOKIE, value)
            r = proxytest.once(gw, build("GET", "/", headers=[("Cookie", cookie)]))
            self.assertEqual((r.body, slot_cookie(r)), (("green %s\n" % cookie).encode(), None))
        # green is gone now: the gateway's own 502 carries no cookie
        r = proxytest.once(gw, build("GET", "/"))
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.header_all("Set-Cookie"), [])

    def test_cookie_is_secure_over_tls(self):
        certdir = tempfile.mkdtemp(prefix="sy-switch-certs-")
        self.addCleanup(shutil.rmtree, certdir, True)
        ca = certs.CA(certdir)
        leaf = ca.issue("local", ["localhost", "IP:127.0.0.1"])
        cfg = config(self.td, weight=100, canary={"sticky": "cookie"})
        cfg["listen"][0]["tls"] = {"certificates": [{"cert": leaf.cert, "key": leaf.key}]}
        gw, api = self.gateway(cfg)
        ctx = ssl.create_default_context(cafile=ca.cert)
        host, port = gw.host_port()
        with socket.create_connection((host, port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(build("GET", "/"))
                status, headers, _ = proxytest.read_head(s)
        self.assertEqual(status, 200)
        self.assertRegex(headers["set-cookie"], r"^sy_slot_app=green\.\d+; Path=/; HttpOnly; "
                         r"SameSite=Lax; Secure$")

    def test_reload_keeps_a_runtime_switch_unless_the_file_changed_its_own(self):
        cfg = config(self.td)
        gw, api = self.gateway(cfg)
        api.post("/api/v1/services/app/switch", {"to": "green"})
        api.post("/api/v1/services/app/canary", {"weight": 20})
        gw.write_config(dict(gw.config))      # the same file
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        svc = api.get("/api/v1/status").json["services"][0]
        self.assertEqual((svc["active"], svc["canary_weight"]), ("green", 20))
        # an operator who edits the file's active slot and reloads is obeyed
        edited = dict(gw.config)
        edited["services"] = {"app": dict(edited["services"]["app"], active="green")}
        gw.write_config(edited)
        api.post("/api/v1/services/app/switch", {"to": "blue"})     # a switch zeroes the weight
        self.assertEqual(api.post("/api/v1/reload").status, 200)
        svc = api.get("/api/v1/status").json["services"][0]
        self.assertEqual((svc["active"], svc["canary_weight"]), ("green", 0))
        self.assertEqual(slot_of(gw), "green")
        api.post("/api/v1/services/app/canary", {"weight": 20})
        m = parse_metrics(api.get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_service_active_slot", service="app",
                                slot="green"), 1)
        self.assertEqual(sample(m, "switchyard_service_active_slot", service="app",
                                slot="blue"), 0)
        self.assertEqual(sample(m, "switchyard_service_canary_weight", service="app"), 20)

    def test_switchyard_ctl(self):
        gw, api = self.gateway(config(self.td))
        token_file = os.path.join(gw.tmp, "admin.token")
        ctl = [root_path("build", "switchyard-ctl"), "--admin", gw.admin_url("").rstrip("/"),
               "--token-file", token_file]
        out = subprocess.run(ctl + ["switch", "app", "green"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(slot_of(gw), "green")
        out = subprocess.run(ctl + ["canary", "app", "30"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(api.get("/api/v1/status").json["services"][0]["canary_weight"], 30)
        out = subprocess.run(ctl + ["canary", "app", "300"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 2, out.stdout + out.stderr)
        out = subprocess.run(ctl + ["switch", "nope", "blue"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
