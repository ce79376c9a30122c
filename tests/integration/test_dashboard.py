# SPDX-License-Identifier: BSD-2-Clause
"""The live dashboard (SPEC.md, Admin API, GET /; docs/admin-api.md,
"Dashboard") against a real gateway: GET /api/v1/dashboard with and without
a token, its figures after known traffic, the sign-in flow (form, POST
/login, the session cookie accepted as the header is, a cookie POST only
from our own origin, wrong tokens refused with auth_failed events), and the
page itself in headless Chromium driven over the DevTools protocol: it signs
in through the form, waits for live data, checks what is rendered, keeps a
screenshot in build/test-artifacts/, then stops the gateway and waits for
the page to say it is disconnected. With client traffic, a rollout on the
page (issue 7): its steps, state, clock and last analysis, paused, aborted,
and rolled back by the controller; the scaling badge's figures.
"""
import base64
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, loadgen, ports, proxytest, root_path, websocket  # noqa: E402
from lib.admin import start_gateway  # noqa: E402

H = "127.0.0.1"
TOKENS = ["dash-token-1a2b3c", "dash-token-4d5e6f"]
DELAY_MS = 40
SLOW, FAILED = 20, 2            # requests of the known traffic: /delay/DELAY_MS and /status/500
COOKIE_RE = re.compile(r"^sy_admin=([^;]*); HttpOnly; SameSite=Strict; Path=/$")
ARTIFACTS = root_path("build", "test-artifacts")


def shop_config(td, token_file=True):
    """Service shop: blue = pool shop-blue (testd ports 0, 1), green =
    shop-green (port 2), blue active."""
    admin_conf = {"listen": "%s:%d" % (H, ports.free_port())}
    if token_file:
        admin_conf["token_file"] = "{tmp}/admin.token"
    return proxytest.config(
        workers=2,
        pools={"shop-blue": {"instances": [{"addr": td.addr(0)}, {"addr": td.addr(1)}]},
               "shop-green": {"instances": [{"addr": td.addr(2)}]}},
        services={"shop": {"blue": "shop-blue", "green": "shop-green"}},
        routes=[{"host": "*", "path": "/", "service": "shop"}],
        admin=admin_conf)


def drive_known_traffic(gw):
    """SLOW requests of DELAY_MS and FAILED 500s, one connection each, in order."""
    for path, status, n in (("/delay/%d" % DELAY_MS, 200, SLOW), ("/status/500", 500, FAILED)):
        for _ in range(n):
            resp = proxytest.once(gw, proxytest.httpc.build("GET", path))
            assert resp.status == status, resp


def wait_for(pred, timeout=10.0, what="condition"):
    value = proxytest.wait_until(pred, timeout, interval=0.1)
    if not value:
        raise AssertionError("%s not reached within %.1f s" % (what, timeout))
    return value


def security_events(gw, event, pred=lambda e: True, min_count=1, timeout=5.0):
    def found():
        hits = [e for e in gw.log_lines("security") if e.get("event") == event and pred(e)]
        return hits if len(hits) >= min_count else None
    hits = proxytest.wait_until(found, timeout)
    if not hits:
        raise AssertionError("no %s event as expected in %s" % (event, gw.log_lines("security")))
    return hits


def form(token):
    return {"body": urllib.parse.urlencode({"token": token}),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


class DashboardApi(unittest.TestCase):
    """One gateway with a token file of two lines; the known traffic is
    driven once, before the tests."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "b1"), (0, "b2"), (0, "g1")], threads=2).start()
        try:
            cls.gw = start_gateway(shop_config(cls.td), TOKENS)
        except Exception:
            cls.td.stop()
            raise
        cls.api = admin.Admin(cls.gw, token=TOKENS[0])
        drive_known_traffic(cls.gw)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.td.stop()

    def dashboard(self, **kw):
        r = self.api.get("/api/v1/dashboard", **kw)
        self.assertEqual(r.status, 200, r)
        return r.json

    def cookie_for(self, token):
        """Signs in with token; returns the Cookie header value."""
        r = self.api.post("/login", token=None, **form(token))
        self.assertEqual(r.status, 303, r)
        m = COOKIE_RE.match(r.headers.get("set-cookie", ""))
        self.assertTrue(m, r.header_list)
        return "sy_admin=" + m.group(1)

    # ---- the JSON ----

    def test_json_needs_a_token(self):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "sy_admin=wrong"},
                        {"Cookie": "other=%s" % TOKENS[0]}):
            with self.subTest(headers=headers):
                r = self.api.get("/api/v1/dashboard", token=None, headers=headers)
                self.assertEqual(r.status, 401, r)
                self.assertIn("unauthorized", r.json["error"])
                self.assertNotIn("shop", r.text)
        security_events(self.gw, "auth_failed", lambda e: e["path"] == "/api/v1/dashboard",
                        min_count=4)
        self.assertEqual(self.dashboard(token=TOKENS[1])["services"][0]["name"], "shop")

    def test_json_figures_follow_the_known_traffic(self):
        def settled():
            doc = self.dashboard()
            blue = doc["services"][0]["slots"]["blue"]
            return doc if blue["requests"] >= SLOW + FAILED else None
        doc = wait_for(settled, what="the known traffic in the window")
        status = self.api.status()
        self.assertEqual(doc["version"], status["version"])
        self.assertIsInstance(doc["uptime_s"], int)
        self.assertGreaterEqual(doc["uptime_s"], 0)
        self.assertEqual((doc["window_s"], doc["auth"]), (60, "token"))
        self.assertRegex(doc["generated_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

        [svc] = doc["services"]
        self.assertEqual({k: svc[k] for k in ("name", "active", "canary_weight", "canary_slot",
                                              "rollout", "scaling_signal", "ready")},
                         {"name": "shop", "active": "blue", "canary_weight": 0,
                          "canary_slot": "green", "rollout": "idle", "scaling_signal": 0,
                          "ready": True})
        blue, green = svc["slots"]["blue"], svc["slots"]["green"]
        self.assertEqual((blue["pool"], green["pool"]), ("shop-blue", "shop-green"))
        self.assertEqual((blue["requests"], blue["errors"]), (SLOW + FAILED, FAILED))
        self.assertAlmostEqual(blue["error_rate"], FAILED / (SLOW + FAILED), places=5)
        self.assertGreater(blue["covered_s"], 0)
        self.assertLessEqual(blue["covered_s"], 90)
        self.assertAlmostEqual(blue["requests_per_s"], blue["requests"] / blue["covered_s"],
                               delta=blue["requests_per_s"] * 1e-4)
        # most requests took DELAY_MS: the window's quantiles are within 5 %,
        # and a request on a busy machine only ever takes longer
        self.assertGreaterEqual(blue["p50_ms"], DELAY_MS * 0.95)
        self.assertLess(blue["p50_ms"], DELAY_MS * 5)
        self.assertLessEqual(blue["p50_ms"], blue["p95_ms"])
        self.assertLessEqual(blue["p95_ms"], blue["p99_ms"])
        self.assertEqual((green["requests"], green["errors"], green["requests_per_s"]), (0, 0, 0))
        self.assertEqual((green["p50_ms"], green["p95_ms"], green["p99_ms"]), (None, None, None))

        pools = {p["name"]: p for p in doc["pools"]}
        self.assertEqual(set(pools), {"shop-blue", "shop-green"})
        insts = pools["shop-blue"]["instances"]
        self.assertEqual([i["addr"] for i in insts], [self.td.addr(0), self.td.addr(1)])
        for inst in insts + pools["shop-green"]["instances"]:
            self.assertEqual((inst["state"], inst["health"], inst["drained"], inst["in_flight"]),
                             ("up", "up", False, 0), inst)
        self.assertEqual(sum(i["requests"] for i in insts), SLOW + FAILED)
        self.assertEqual(sum(i["errors"] for i in insts), FAILED)
        for inst in insts:
            self.assertGreater(inst["requests"], 0, "round robin sends to both: %r" % insts)
            self.assertIsNotNone(inst["p95_ms"])
        self.assertEqual((pools["shop-blue"]["healthy"], pools["shop-green"]["healthy"]), (2, 1))

    # ---- the page and the sign-in ----

    def test_page_without_a_token_is_the_sign_in_form(self):
        r = self.api.get("/", token=None)
        self.assertEqual(r.status, 401, r)
        self.assertTrue(r.headers["content-type"].startswith("text/html"), r.headers)
        self.assertRegex(r.text, r'<form[^>]*method="post"[^>]*action="/login"')
        self.assertIn('name="token"', r.text)
        self.assertIn("default-src 'none'", r.headers["content-security-policy"])
        # no data: neither the service nor a pool nor an address
        for secret in ("shop", self.td.addr(0)):
            self.assertNotIn(secret, r.text)
        self.assertNotIn("set-cookie", r.headers)
        # a bare visit is no security event, a wrong login is: once the
        # later event is in the log (written in order), the earlier would be
        self.api.post("/login", token=None, **form("marker-after-bare-visit"))
        events = security_events(self.gw, "auth_failed", lambda e: e["path"] == "/login")
        self.assertTrue(events)
        self.assertFalse([e for e in self.gw.log_lines("security")
                          if e.get("event") == "auth_failed" and e["path"] == "/"
                          and e["reason"] == "no token"])

    def test_login_with_a_wrong_token_is_refused(self):
        before = len(self.gw.log_lines("security"))
        for token, reason in (("not-the-token", "wrong token"), (TOKENS[0] + "x", "wrong token"),
                              ("", "no token")):
            with self.subTest(token=token):
                r = self.api.post("/login", token=None, **form(token))
                self.assertEqual(r.status, 401, r)
                self.assertNotIn("set-cookie", r.headers)
                self.assertIn('action="/login"', r.text)
                self.assertIn('class="notice"', r.text)
                if token:
                    self.assertNotIn(token, r.text)
                security_events(self.gw, "auth_failed",
                                lambda e: e["path"] == "/login" and e["reason"] == reason)
        refused = [e for e in self.gw.log_lines("security")[before:]
                   if e.get("event") == "auth_failed" and e["path"] == "/login"]
        self.assertEqual(len(refused), 3, refused)
        for e in refused:
            self.assertEqual(e["client_ip"], H)
            self.assertNotIn("not-the-token", json.dumps(e))
        # no sign-in since the first refusal (one of another test may come later)
        self.assertFalse([e for e in self.gw.log_lines("security")[before:]
                          if e.get("action") == "login" and e["ts"] >= refused[0]["ts"]])

    def test_login_sets_the_cookie_which_works_as_the_header(self):
        cookie = self.cookie_for(TOKENS[1])
        self.assertEqual(cookie, "sy_admin=" + TOKENS[1])
        security_events(self.gw, "admin_action", lambda e: e["action"] == "login"
                        and e["token"] == 1)
        r = self.api.get("/", token=None, headers={"Cookie": "a=b; " + cookie + "; c=d"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/html"), r.headers)
        self.assertIn('id="services"', r.text)
        self.assertIn('<script src="/dashboard.js"', r.text)
        self.assertIn("script-src 'self'", r.headers["content-security-policy"])
        self.assertEqual(r.headers["x-frame-options"], "DENY")
        for path in ("/api/v1/dashboard", "/api/v1/status", "/api/v1/pools"):
            r = self.api.get(path, token=None, headers={"Cookie": cookie})
            self.assertEqual(r.status, 200, (path, r))
        # the header, when there is one, is what counts
        r = self.api.get("/api/v1/status", token="wrong", headers={"Cookie": cookie})
        self.assertEqual(r.status, 401, r)

    def test_cookie_changes_only_from_our_own_origin(self):
        cookie = self.cookie_for(TOKENS[0])
        addr = self.td.addr(0)
        drain = "/api/v1/pools/shop-blue/instances/%s/drain" % addr
        self.addCleanup(self.api.drain, "shop-blue", addr, True)
        host = self.gw.config["admin"]["listen"]
        for origin in (None, "http://evil.example", "http://127.0.0.1:1", "null"):
            with self.subTest(origin=origin):
                headers = {"Cookie": cookie}
                if origin:
                    headers["Origin"] = origin
                r = self.api.post(drain, token=None, headers=headers)
                self.assertEqual(r.status, 401, r)
                self.assertIn("cookie sent from another origin", r.json["error"])
        self.assertFalse(self.api.pools()["shop-blue"][addr]["drained"])
        security_events(self.gw, "auth_failed",
                        lambda e: e["reason"] == "cookie sent from another origin", min_count=4)
        r = self.api.post(drain, token=None, headers={"Cookie": cookie,
                                                      "Origin": "http://" + host})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.api.pools()["shop-blue"][addr]["drained"])

    def test_browser_like_flow_with_a_cookie_jar(self):
        """urllib follows the 303 with the cookie, as a browser does."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        data = urllib.parse.urlencode({"token": TOKENS[0]}).encode()
        with opener.open(self.gw.admin_url("/login"), data=data, timeout=5) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(urllib.parse.urlsplit(resp.geturl()).path, "/")
            page = resp.read().decode()
        self.assertIn('id="services"', page)
        [c] = list(jar)
        self.assertEqual((c.name, c.value, c.path, c.secure), ("sy_admin", TOKENS[0], "/", False))
        self.assertTrue(c.has_nonstandard_attr("HttpOnly"))
        with opener.open(self.gw.admin_url("/api/v1/dashboard"), timeout=5) as resp:
            self.assertEqual(json.loads(resp.read())["services"][0]["name"], "shop")
        # signed out, the redirect lands on the sign-in form (401)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            opener.open(self.gw.admin_url("/logout"), data=b"", timeout=5)
        self.assertEqual((cm.exception.code, urllib.parse.urlsplit(cm.exception.url).path),
                         (401, "/"))
        self.assertIn('action="/login"', cm.exception.read().decode())
        self.assertEqual(list(jar), [])
        with self.assertRaises(urllib.error.HTTPError) as cm:
            opener.open(self.gw.admin_url("/api/v1/dashboard"), timeout=5)
        self.assertEqual(cm.exception.code, 401)

    def test_logout_clears_the_cookie(self):
        r = self.api.post("/logout", token=None)
        self.assertEqual((r.status, r.headers.get("location")), (303, "/"), r)
        self.assertEqual(r.headers["set-cookie"],
                         "sy_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")

    def test_rotated_token_in_a_cookie_is_refused_with_an_event(self):
        r = self.api.get("/", token=None, headers={"Cookie": "sy_admin=rotated-away"})
        self.assertEqual(r.status, 401, r)
        self.assertIn('action="/login"', r.text)
        self.assertIn('class="notice"', r.text)
        security_events(self.gw, "auth_failed", lambda e: e["path"] == "/"
                        and e["reason"] == "wrong token")

    def test_page_files_need_no_token_and_hold_no_data(self):
        for path, ctype in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
            with self.subTest(path=path):
                r = self.api.get(path, token=None)
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.headers["content-type"].startswith(ctype), r.headers)
                self.assertTrue(r.text.startswith("/") and "SPDX-License-Identifier" in r.text)
                self.assertNotIn("shop", r.text)
        r = self.api.request("HEAD", "/", token=None)
        self.assertEqual((r.status, r.body), (401, b""))
        r = self.api.get("/login", token=None)
        self.assertEqual((r.status, r.headers.get("allow")), (405, "POST"), r)


class DashboardOpen(unittest.TestCase):
    """Without a token_file the page is served directly (loopback only)."""

    def test_page_served_directly(self):
        with backends.Testd([(0, "b1"), (0, "b2"), (0, "g1")]) as td:
            gw = start_gateway(shop_config(td, token_file=False))
            try:
                api = admin.Admin(gw)
                r = api.get("/")
                self.assertEqual(r.status, 200, r)
                self.assertIn('id="services"', r.text)
                self.assertEqual(api.get("/api/v1/dashboard").json["auth"], "open")
                r = api.post("/login", **form("anything"))
                self.assertEqual((r.status, r.headers.get("location")), (303, "/"), r)
                self.assertNotIn("set-cookie", r.headers)
            finally:
                gw.stop()


# ---- headless Chromium over the DevTools protocol ----------------------------------

def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol
    (a JSON-RPC over a WebSocket: lib/websocket.py is the client)."""

    def __init__(self, binary, width=1280, height=860):
        self.dir = tempfile.mkdtemp(prefix="sy-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--hide-scrollbars", "--remote-debugging-port=0",
             "--user-data-dir=" + self.dir, "--window-size=%d,%d" % (width, height),
             "about:blank"],
            stdout=self.log, stderr=self.log)
        self.next_id = 0
        self.ws = None
        try:
            port = self._devtools_port()
            conn = http.client.HTTPConnection(H, port, timeout=10)
            conn.request("GET", "/json/list")
            pages = [t for t in json.loads(conn.getresponse().read()) if t["type"] == "page"]
            conn.close()
            path = urllib.parse.urlsplit(pages[0]["webSocketDebuggerUrl"]).path
            self.ws = websocket.Client(H, port, path, timeout=20)
            self.call("Page.enable")
        except Exception:
            self.close()
            raise

    def _devtools_port(self, timeout=30.0):
        path = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited with %s: %s" % (self.proc.returncode,
                                                                     self.log_text()))
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        raise RuntimeError("chromium wrote no DevToolsActivePort: %s" % self.log_text())

    def log_text(self):
        with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(websocket.TEXT, json.dumps({"id": self.next_id, "method": method,
                                                 "params": params}).encode())
        while True:         # events come in between; skip them
            opcode, payload = self.ws.recv()
            if opcode != websocket.TEXT:
                continue
            msg = json.loads(payload)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def wait(self, expression, timeout=15.0, what=None):
        """Polls expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("%s: not true within %.0f s" % (what or expression, timeout))
            time.sleep(0.2)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        if self.ws:
            self.ws.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# What the page shows, read from its DOM (textContent and attributes only).
READ_PAGE = r"""(() => {
  const card = document.querySelector('article.card[data-service="shop"]');
  if (!card) return null;
  const slot = (name) => {
    const s = card.querySelector('.slot[data-slot="' + name + '"]');
    const text = (cls) => s.querySelector(cls).textContent;
    return {active: s.dataset.active, name: text('.slot-name'), tag: text('.slot-tag'),
            pool: text('.slot-pool'), rps: text('.fig-rps'), err: text('.fig-err'),
            p50: text('.fig-p50'), p95: text('.fig-p95'), p99: text('.fig-p99'),
            dots: [...s.querySelectorAll('.dots li')].map((d) => d.dataset.state)};
  };
  const line = (metric, name) => card.querySelector(
    '.chart[data-metric="' + metric + '"] .line[data-slot="' + name + '"]').getAttribute('d');
  return {service: card.querySelector('.svc-name').textContent,
          blue: slot('blue'), green: slot('green'),
          split: card.querySelector('.split-active').textContent,
          rpsLine: line('rps', 'blue'), p95Line: line('p95', 'blue'),
          conn: document.getElementById('conn-text').textContent,
          connState: document.getElementById('conn').dataset.state,
          stale: document.getElementById('services').classList.contains('stale'),
          version: document.getElementById('version').textContent,
          cookie: document.cookie};
})()"""


@unittest.skipUnless(chromium_binary(), "chromium is not installed (Debian: apt-get install -y "
                     "chromium): the page is not checked in a browser")
class DashboardInBrowser(unittest.TestCase):
    """The page in headless Chromium: sign in through the form, live data,
    a screenshot, then the gateway goes away."""

    def setUp(self):
        self.td = backends.Testd([(0, "b1"), (0, "b2"), (0, "g1")], threads=2).start()
        self.addCleanup(self.td.stop)
        self.gw = start_gateway(shop_config(self.td), TOKENS)
        self.addCleanup(self.gw.stop)
        self.api = admin.Admin(self.gw, token=TOKENS[0])
        self.browser = Browser(chromium_binary())
        self.addCleanup(self.browser.close)

    def test_sign_in_live_data_screenshot_and_disconnect(self):
        b = self.browser
        drive_known_traffic(self.gw)
        wait_for(lambda: self.api.get("/api/v1/dashboard").json["services"][0]["slots"]["blue"]
                 ["requests"] >= SLOW + FAILED, what="the known traffic in the window")

        # the sign-in form, with no data on it
        b.navigate(self.gw.admin_url("/"))
        b.wait("!!document.querySelector('form[action=\"/login\"] input[name=token]')",
               what="the sign-in form")
        self.assertNotIn("shop", b.evaluate("document.body.textContent"))
        b.evaluate("document.getElementById('token').value = %s;"
                   "document.querySelector('form').submit()" % json.dumps(TOKENS[1]))

        # the dashboard, signed in by the cookie, with the known traffic
        page = b.wait("(() => { const p = %s; return p && /ms$/.test(p.blue.p95) ? p : null; })()"
                      % READ_PAGE, what="the shop card with a p95 in ms")
        self.assertEqual(b.evaluate("location.pathname"), "/")
        self.assertEqual(page["cookie"], "", "the cookie is HttpOnly: no script sees it")
        self.assertEqual(page["service"], "shop")
        self.assertEqual(page["version"], self.api.status()["version"])
        blue, green = page["blue"], page["green"]
        self.assertEqual((blue["name"], blue["active"], blue["tag"], blue["pool"]),
                         ("blue", "true", "ACTIVE", "shop-blue"))
        self.assertEqual((green["name"], green["active"], green["tag"], green["pool"]),
                         ("green", "false", "STANDBY", "shop-green"))
        self.assertEqual(page["split"], "blue (active) 100%")
        for q in ("p50", "p95", "p99"):
            m = re.fullmatch(r"(\d+(?:\.\d+)?) ms", blue[q])
            self.assertTrue(m, "%s reads %r" % (q, blue[q]))
            self.assertGreaterEqual(float(m.group(1)), DELAY_MS * 0.95, q)
        self.assertEqual(blue["err"], "%.1f %%" % (100.0 * FAILED / (SLOW + FAILED)))
        self.assertRegex(blue["rps"], r"^\d+(\.\d+)?$")
        self.assertEqual((green["rps"], green["err"], green["p95"]), ("0", "–", "–"))
        self.assertEqual((blue["dots"], green["dots"]), (["up", "up"], ["up"]))
        self.assertEqual(page["connState"], "live")
        self.assertTrue(page["conn"].startswith("live · updated "), page["conn"])
        self.assertTrue(page["p95Line"].startswith("M"), page)
        security_events(self.gw, "admin_action", lambda e: e["action"] == "login"
                        and e["token"] == 1)

        # polls go on: the charts grow a point every 2 s
        b.wait("/L/.test(document.querySelector('.chart[data-metric=\"rps\"] "
               ".line[data-slot=\"blue\"]').getAttribute('d'))", timeout=10,
               what="a second poll drawn on the requests/s chart")
        path = b.screenshot(os.path.join(ARTIFACTS, "dashboard.png"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("\n  dashboard screenshot: %s" % path, file=sys.stderr)

        # the gateway goes away: the page says since when, keeps its data, retries
        self.gw.stop()
        page = b.wait("(() => { const p = %s; return p && p.connState === 'down' ? p : null; })()"
                      % READ_PAGE, timeout=15, what="the page showing the gateway disconnected")
        self.assertRegex(page["conn"], r"^disconnected since \d\d:\d\d:\d\d · retrying every 2 s$")
        self.assertTrue(page["stale"])
        self.assertEqual((page["service"], page["blue"]["pool"]), ("shop", "shop-blue"))
        self.assertRegex(page["blue"]["p95"], r" ms$")
        path = b.screenshot(os.path.join(ARTIFACTS, "dashboard-disconnected.png"))
        print("  disconnected screenshot: %s" % path, file=sys.stderr)


# The rollout section of the shop card and the badges, read from the DOM.
READ_ROLLOUT = r"""(() => {
  const card = document.querySelector('article.card[data-service="shop"]');
  if (!card) return null;
  const ro = card.querySelector('.rollout');
  const text = (cls) => ro.querySelector(cls).textContent;
  const side = (name) => {
    const row = ro.querySelector('.side[data-side="' + name + '"]');
    const cell = (cls) => row.querySelector(cls);
    return {name: cell('.side-name').textContent, requests: cell('.side-requests').textContent,
            errors: cell('.side-errors').textContent,
            errorsTone: cell('.side-errors').dataset.tone || '',
            p95: cell('.side-p95').textContent};
  };
  const scaling = card.querySelector('.badge-scaling');
  return {hidden: ro.hidden, none: card.querySelector('.rollout-none').textContent,
          noneHidden: card.querySelector('.rollout-none').hidden,
          state: text('.rollout-state'), dataState: ro.dataset.state || '',
          tone: ro.querySelector('.rollout-state').dataset.tone || '',
          route: text('.rollout-route'), started: text('.rollout-started'),
          steps: [...ro.querySelectorAll('.steps .step')].map((li) => li.dataset.status),
          weights: [...ro.querySelectorAll('.steps .step-weight')].map((w) => w.textContent),
          stepTexts: [...ro.querySelectorAll('.steps .step')].map((li) => li.textContent),
          label: text('.step-label'), time: text('.step-time'),
          bar: ro.querySelector('.step-bar').getAttribute('aria-valuetext'),
          verdict: text('.verdict'), reason: text('.analysis-reason'), when: text('.analysis-when'),
          ratio: text('.analysis-ratio'), canary: side('canary'), baseline: side('baseline'),
          badge: card.querySelector('.badge-rollout').textContent,
          badgeTone: card.querySelector('.badge-rollout').dataset.tone || '',
          scalingTitle: scaling.getAttribute('title'), scalingText: scaling.textContent,
          split: card.querySelector('.split-canary').textContent,
          connState: document.getElementById('conn').dataset.state};
})()"""

STEPS = [10, 25, 50, 100]


def rollout_config(td, interval_ms):
    """shop_config with a rollout of STEPS, interval_ms each, judged on 20
    requests, and the scaling signal's limits. The p95 limits are wide: a
    busy machine's scheduler must not roll back a healthy green here."""
    cfg = shop_config(td)
    cfg["services"]["shop"]["rollout"] = {
        "steps": STEPS, "step_interval_ms": interval_ms, "min_requests": 20,
        "rollback": {"max_error_rate": 0.1, "max_p95_ms": 5000, "max_p95_ratio": 50}}
    cfg["services"]["shop"]["scaling"] = {"max_p95_ms": 2000, "max_queue": 100,
                                          "max_error_rate": 0.05}
    return cfg


@unittest.skipUnless(chromium_binary(), "chromium is not installed (Debian: apt-get install -y "
                     "chromium): the page is not checked in a browser")
class RolloutBrowserCase(unittest.TestCase):
    """The shop with a rollout, signed in in headless Chromium, client
    traffic through the gateway; green_options: testd's faults for green."""

    green_options = {}

    def setUp(self):
        self.td = backends.Testd([(0, "b1"), (0, "b2"), (0, "g1", self.green_options)],
                                 threads=2).start()
        self.addCleanup(self.td.stop)

    def start(self, interval_ms):
        self.gw = start_gateway(rollout_config(self.td, interval_ms), TOKENS)
        self.addCleanup(self.gw.stop)
        self.api = admin.Admin(self.gw, token=TOKENS[0])
        self.browser = Browser(chromium_binary(), height=1000)
        self.addCleanup(self.browser.close)
        b = self.browser
        b.navigate(self.gw.admin_url("/"))
        b.wait("!!document.querySelector('form[action=\"/login\"] input[name=token]')",
               what="the sign-in form")
        b.evaluate("document.getElementById('token').value = %s;"
                   "document.querySelector('form').submit()" % json.dumps(TOKENS[0]))
        return self.read(lambda p: p["connState"] == "live", "the shop card, live")

    def traffic(self):
        load = loadgen.Load(H, self.gw.host_port()[1], threads=2, expect=None).start()
        self.addCleanup(load.stop)
        return load

    def rollout(self, action=None):
        path = "/api/v1/services/shop/rollout"
        r = self.api.get(path) if action is None else self.api.post(path, {"action": action})
        self.assertEqual(r.status, 200, r)
        return r.json

    def read(self, pred, what, timeout=15.0):
        """The page's rollout view once pred(view) holds."""
        expr = "(() => { const p = %s; return p && p.connState ? p : null; })()" % READ_ROLLOUT
        deadline = time.monotonic() + timeout
        while True:
            page = self.browser.evaluate(expr)
            if page and pred(page):
                return page
            if time.monotonic() > deadline:
                raise AssertionError("%s: not on the page within %.0f s; it shows %r"
                                     % (what, timeout, page))
            time.sleep(0.2)

    def wait_api(self, pred, what, timeout=20.0):
        return wait_for(lambda: (lambda st: st if pred(st) else None)(self.rollout()),
                        timeout, what)


class DashboardRolloutInBrowser(RolloutBrowserCase):
    """A healthy green: the rollout steps on, paused, then aborted by hand."""

    def test_rollout_steps_analysis_pause_and_abort(self):
        page = self.start(interval_ms=2500)
        # idle: one line, no section
        self.assertTrue(page["hidden"], page)
        self.assertFalse(page["noneHidden"], page)
        self.assertEqual(page["none"], "No rollout · steps of 10, 25, 50, 100 %, 2.5 s each")

        self.traffic()
        self.assertEqual(self.rollout("start")["state"], "running")
        page = self.read(lambda p: p["state"] == "running", "the running rollout")
        self.assertFalse(page["hidden"])
        self.assertTrue(page["noneHidden"])
        self.assertEqual(page["badge"], "rollout: running")
        self.assertEqual(page["route"], "blue → green")
        self.assertRegex(page["started"], r"^started \d\d:\d\d:\d\d$")
        self.assertEqual(page["weights"], ["10%", "25%", "50%", "100%"])
        self.assertIn("current", page["steps"])
        self.assertRegex(page["label"], r"^step [1-4] of 4 · canary (10|25|50|100)%$")
        self.assertRegex(page["bar"], r"^\d+(\.\d)? s of 2\.5 s in this step$")

        # past the first step, paused: the page shows where it stands
        self.wait_api(lambda st: st["step"] >= 1, "the rollout's second step")
        self.assertEqual(self.rollout("pause")["state"], "paused")
        st = self.rollout()
        step = st["step"]
        self.assertEqual((st["state"], st["weight"]), ("paused", STEPS[step]), st)
        markers = ["done"] * step + ["current"] + ["todo"] * (len(STEPS) - step - 1)
        # the controller judges the paused step too, a second after it began
        this_step = " · step %d (%d%%) · " % (step + 1, STEPS[step])
        page = self.read(lambda p: p["state"] == "paused" and p["verdict"] == "pass"
                         and this_step in p["when"] and p["steps"] == markers,
                         "the paused rollout with a pass on its step")
        self.assertEqual(page["label"], "step %d of 4 · canary %d%%" % (step + 1, STEPS[step]))
        self.assertEqual(page["stepTexts"][step], "%d%% current" % STEPS[step])
        self.assertEqual(page["stepTexts"][0], "10% done")
        self.assertEqual((page["badge"], page["dataState"]), ("rollout: paused", "paused"))
        self.assertEqual(page["split"], "canary green %d%%" % STEPS[step])
        self.assertEqual(page["reason"], "within limits")
        self.assertRegex(page["when"], r"^at \d\d:\d\d:\d\d · step \d \(\d+%\) · over \d+")
        self.assertEqual((page["canary"]["name"], page["baseline"]["name"]),
                         ("canary green", "baseline blue"))
        for side in ("canary", "baseline"):
            self.assertRegex(page[side]["requests"], r"^\d+(\.\d)?k?$", page[side])
            self.assertNotIn(page[side]["requests"], ("0", "–"), page[side])
            self.assertEqual(page[side]["errors"], "0 %", page[side])
            self.assertRegex(page[side]["p95"], r"^\d+(\.\d+)? ms$", page[side])
        self.assertRegex(page["ratio"], r"^p95 ratio, canary to baseline: \d+\.\d+×$")
        # the scaling badge's tooltip: the figures against their limits, and why
        scaling = self.api.get("/api/v1/dashboard").json["services"][0]["scaling"]
        self.assertTrue(scaling["reason"], scaling)
        page = self.read(lambda p: scaling["reason"] in p["scalingTitle"],
                         "the scaling signal's reason in the badge's title")
        title = page["scalingTitle"]
        self.assertTrue(title.startswith("scaling signal: +1 scale up, 0 hold, -1 scale down\n"),
                        title)
        for part in ("p95 ", "(limit 2000 ms)", "queue 0 (limit 100)", "(limit 5.0 %)",
                     " requests", scaling["reason"]):
            self.assertIn(part, title)
        self.assertIn(scaling["reason"], page["scalingText"])

        path = self.browser.screenshot(os.path.join(ARTIFACTS, "dashboard-rollout.png"))
        print("\n  rollout screenshot: %s" % path, file=sys.stderr)

        # aborted by hand: weight 0, the step where it stopped is marked
        self.assertEqual(self.rollout("abort")["state"], "aborted")
        stopped = ["done"] * step + ["stopped"] + ["todo"] * (len(STEPS) - step - 1)
        page = self.read(lambda p: p["state"] == "aborted", "the aborted rollout")
        self.assertEqual(page["steps"], stopped)
        self.assertEqual((page["badge"], page["badgeTone"], page["tone"]),
                         ("rollout: aborted", "warn", "warn"))
        self.assertEqual(page["label"], "aborted at step %d of 4 (%d%%)" % (step + 1, STEPS[step]))
        self.assertEqual(page["stepTexts"][step], "%d%% stopped here" % STEPS[step])
        self.assertEqual(page["time"], "weight back to 0")
        self.assertEqual(page["split"], "canary 0%")
        self.assertIn(page["verdict"], ("pass", "hold"))
        path = self.browser.screenshot(os.path.join(ARTIFACTS, "dashboard-rollout-aborted.png"))
        print("  aborted screenshot: %s" % path, file=sys.stderr)


class DashboardRollbackInBrowser(RolloutBrowserCase):
    """A green that fails 20 % of its requests: the controller rolls it
    back, and the page shows the failing analysis."""

    green_options = {"fail": 20}

    def test_rolled_back_rollout_shows_the_failing_analysis(self):
        self.start(interval_ms=60000)
        self.traffic()
        self.rollout("start")
        st = self.wait_api(lambda st: st["state"] == "rolled_back", "the rollback")
        a = st["last_analysis"]
        self.assertEqual(a["verdict"], "fail", a)
        page = self.read(lambda p: p["state"] == "rolled back", "the rolled back rollout")
        self.assertEqual((page["badge"], page["badgeTone"], page["tone"]),
                         ("rollout: rolled back", "bad", "bad"))
        self.assertEqual(page["steps"], ["stopped", "todo", "todo", "todo"])
        self.assertEqual(page["label"], "rolled back at step 1 of 4 (10%)")
        self.assertEqual((page["verdict"], page["reason"]), ("fail", a["reason"]))
        self.assertIn("error rate", page["reason"])
        canary = page["canary"]
        self.assertEqual(canary["errorsTone"], "bad", canary)
        self.assertRegex(canary["errors"], r"^(1\d|2\d)(\.\d)? %$", canary)
        self.assertEqual(page["baseline"]["errors"], "0 %")
        path = self.browser.screenshot(os.path.join(ARTIFACTS, "dashboard-rollback.png"))
        print("\n  rollback screenshot: %s" % path, file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
