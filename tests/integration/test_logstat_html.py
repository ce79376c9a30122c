# SPDX-License-Identifier: BSD-2-Clause
"""switchyard-logstat --html (issue 11) on logs the real gateway wrote: build/testd behind a
gateway with a blue and a green pool, clients posing as other addresses through a trusted
proxy (X-Forwarded-For), a rate-limited route, a deny list, a scanner probing paths no route
serves, malformed requests, an admin change, a failed sign-in, an instance whose health
checks fail, and a User-Agent carrying markup. logstat writes the page and (--json) the
document behind it; the page is checked as HTML (the log's strings are text, no resource
outside it), then loaded in headless Chromium: `--dump-dom` must show every section heading
and the figures of the document, and a screenshot (1280x3000) must not be blank and must
show the charts' colour. The screenshot and the page are kept as artifacts:
build/test-artifacts/logstat-report.png and logstat-report.html. `--report` with two
sections gives a page with those two only. Skipped when build/switchyard-logstat is not
built, the browser checks when chromium is not installed.
"""
import html.parser
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from test_dashboard import chromium_binary  # noqa: E402

H = "127.0.0.1"
LOGSTAT = root_path("build", "switchyard-logstat")
ARTIFACTS = root_path("build", "test-artifacts")
GEOIP_DB = root_path("build", "test-data", "geoip", "country.mmdb")
TOKEN = "logstat-html-token"
HOSTILE_UA = '<script>alert("ua")</script><img src=x onerror=alert(1)>'
SECTIONS = {            # section id: its heading (html.c, sections[])
    "overview": "Overview", "services": "Services and slots", "timeline": "Timeline",
    "top": "Top", "rate_limiting": "Rate limiting", "denials": "Denials and bad requests",
    "admin": "Authentication and admin actions", "changes": "Rollouts and health changes",
    "suspects": "Suspects",
}
USER_AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "curl/8.5.0",
               "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1", HOSTILE_UA]
CLIENTS = ["10.1.0.%d" % i for i in range(1, 5)] + ["10.2.0.%d" % i for i in range(1, 4)]
SCANNER, FLOODER, DENIED = "10.3.0.99", "10.1.0.77", "10.66.0.5"


def config(td):
    """Service shop: blue = shop-blue (testd port 0), green = shop-green (testd port 1 and a
    closed port whose health checks fail), canary 10 % (set later through the admin API).
    Routes only under /shop/, /api/ (rate limited), /static/, /status/, /delay/: anything
    else is a 404 of the gateway's own."""
    routes = [{"host": "*", "path": p, "service": "shop"}
              for p in ("/shop/", "/static/", "/status/", "/delay/")]
    routes.append({"host": "*", "path": "/api/", "service": "shop", "rate_limit": "per-ip"})
    health = {"path": "/health", "interval_ms": 200, "timeout_ms": 100, "rise": 1, "fall": 1}
    cfg = proxytest.config(
        workers=1,
        pools={"shop-blue": {"instances": [{"addr": td.addr(0)}]},
               "shop-green": {"instances": [{"addr": td.addr(1)},
                                            {"addr": "%s:%d" % (H, ports.free_port())}],
                              "health": health}},
        services={"shop": {"blue": "shop-blue", "green": "shop-green"}},
        routes=routes,
        rate_limits={"per-ip": {"key": "client_ip", "rate": 5, "per_ms": 1000, "burst": 5}},
        trusted_proxies=["127.0.0.1/32"],
        access={"deny": ["10.66.0.0/16"]},
        admin={"listen": "%s:%d" % (H, ports.free_port()), "token_file": "{tmp}/admin.token"})
    if os.path.exists(GEOIP_DB):
        cfg["geoip"] = {"database": GEOIP_DB}
    return cfg


def as_client(ip, path, ua, extra=()):
    return build("GET", path, headers=[("X-Forwarded-For", ip), ("User-Agent", ua)] +
                 list(extra))


def drive_traffic(gw):
    """A few hundred requests of every kind logstat reports on; returns their statuses."""
    statuses = []
    api = admin.Admin(gw, token=TOKEN)
    assert api.post("/api/v1/services/shop/canary", {"weight": 10}).status == 200
    assert api.get("/api/v1/status", token="wrong-token").status == 401
    with proxytest.client(gw) as c:
        for i in range(240):
            path = ("/shop/", "/shop/item/%d" % (i % 17), "/static/app.js",
                    "/delay/%d" % (i % 4 * 10))[i % 4]
            statuses.append(c.request(as_client(CLIENTS[i % len(CLIENTS)], path,
                                                USER_AGENTS[i % len(USER_AGENTS)])).status)
        for i in range(24):
            statuses.append(c.request(as_client(CLIENTS[i % 3], "/status/500",
                                                USER_AGENTS[0])).status)
        for i in range(30):         # distinct paths no route serves: a scanner
            statuses.append(c.request(as_client(SCANNER, "/wp-admin/probe-%d.php" % i,
                                                "masscan/1.3")).status)
        for i in range(40):         # far past 5 per second with a burst of 5
            statuses.append(c.request(as_client(FLOODER, "/api/cart", USER_AGENTS[1])).status)
    for i in range(4):
        statuses.append(proxytest.once(gw, as_client(DENIED, "/shop/", USER_AGENTS[1])).status)
    for raw in (b"GET /shop/ HTTP/9.9\r\nHost: x\r\n\r\n", b"BREW /pot\r\n\r\n"):
        statuses.append(proxytest.send(gw, raw)[0])
    return statuses


def wait_for_event(gw, event, timeout=10.0):
    """Polls the security log until an event of that kind is in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == event for e in gw.log_lines("security")):
            return True
        time.sleep(0.1)
    return False


def run_logstat(*args):
    proc = subprocess.run([LOGSTAT] + list(args), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError("switchyard-logstat %s: exit %d\n%s" % (" ".join(args),
                                                                     proc.returncode,
                                                                     proc.stderr[-2000:]))
    return proc.stdout


class Page(html.parser.HTMLParser):
    """What a page holds: elements by tag, attributes of every start tag, the text of each
    section (by id) and each section's <h2>, all text nodes."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.texts = {}, [], []
        self.headings, self.section_text = {}, {}
        self._section, self._in_h2 = None, False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.append((tag, dict(attrs)))
        if tag == "section":
            self._section = dict(attrs).get("id")
            self.section_text[self._section] = ""
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        self.texts.append(data)
        if self._section is not None:
            self.section_text[self._section] += data
            if self._in_h2:
                self.headings[self._section] = self.headings.get(self._section, "") + data


def png_pixels(path):
    """(width, height, rows): the PNG's 8-bit RGB or RGBA rows, unfiltered (zlib, RFC 2083
    filters 0-4), as bytes of (R, G, B[, A]) per pixel; plus the bytes per pixel."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("%s is not a PNG" % path)
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise AssertionError("PNG of depth %d, colour type %d, interlace %d"
                                     % (depth, ctype, interlace))
        elif kind == b"IDAT":
            idat.append(body)
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    rows, prev = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind in (1, 3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def chromium(*args, timeout=90):
    """Headless Chromium with a profile of its own (other tests may run one at once)."""
    profile = tempfile.mkdtemp(prefix="sy-logstat-chromium-")
    try:
        return subprocess.run(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + profile] +
            list(args), capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@unittest.skipUnless(os.access(LOGSTAT, os.X_OK),
                     "build/switchyard-logstat is not built (make)")
class LogstatHtml(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sy-logstat-html-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        td = backends.Testd([(0, "blue"), (0, "green")]).start()
        cls.addClassCleanup(td.stop)
        gw = admin.start_gateway(config(td), [TOKEN])
        if not os.environ.get("SY_KEEP_TMP"):
            cls.addClassCleanup(shutil.rmtree, gw.tmp, True)
        try:
            cls.statuses = drive_traffic(gw)
            # The closed port's failed checks: a health change before the gateway stops.
            cls.health_logged = wait_for_event(gw, "health_change")
        finally:
            gw.stop()
        cls.access, cls.security = gw.log_path("access"), gw.log_path("security")
        cls.page_path = os.path.join(cls.tmp, "report.html")
        cls.doc = json.loads(run_logstat("--json", "--html", cls.page_path,
                                         cls.access, cls.security))
        with open(cls.page_path, encoding="utf-8") as f:
            cls.page_text = f.read()
        os.makedirs(ARTIFACTS, exist_ok=True)
        shutil.copy(cls.page_path, os.path.join(ARTIFACTS, "logstat-report.html"))

    def test_traffic_covered_every_report(self):
        """The traffic is what the page must show: 200, 500, 404, 429, 403 and 400."""
        for status in (200, 500, 404, 429, 403, 400):
            self.assertIn(status, self.statuses)
        self.assertTrue(self.health_logged, "no health_change in the security log")
        self.assertEqual(self.doc["overview"]["requests"], self.doc["lines"]["access"])
        self.assertGreater(self.doc["lines"]["security"], 0)

    def test_page_is_self_contained_and_escapes_the_logs(self):
        page = Page(self.page_text)
        self.assertTrue(self.page_text.startswith("<!DOCTYPE html>"))
        self.assertNotIn("script", page.tags)
        self.assertNotIn("img", page.tags)
        self.assertNotIn("(null)", self.page_text)
        for tag, attrs in page.attrs:
            self.assertNotIn("src", attrs, tag)
            if "href" in attrs:
                self.assertTrue(attrs["href"].startswith("#"), attrs["href"])
            for name, value in attrs.items():
                self.assertNotIn("://", value or "", (tag, name))
        self.assertNotIn("url(", self.page_text.split("</style>")[0])
        # The User-Agent with markup is in the top table as text, whole.
        self.assertIn(HOSTILE_UA, page.section_text["top"])
        self.assertEqual(set(page.headings), set(SECTIONS))
        self.assertEqual(page.tags.get("svg"), 3)

    @unittest.skipUnless(chromium_binary(), "chromium is not installed (Debian: apt-get install "
                         "-y chromium): the page is not checked in a browser")
    def test_chromium_renders_every_section(self):
        """--dump-dom: the DOM Chromium built holds each heading, the figures of the
        document, the hostile User-Agent as text and no element it would have made."""
        proc = chromium("--dump-dom", "file://" + self.page_path)
        self.assertIn("<html", proc.stdout, proc.stderr[-2000:])
        dom = Page(proc.stdout)
        self.assertEqual({k: v.strip() for k, v in dom.headings.items()}, SECTIONS)
        self.assertNotIn("script", dom.tags)
        self.assertNotIn("img", dom.tags)
        self.assertEqual(dom.tags.get("svg"), 3)
        self.assertIn(HOSTILE_UA, dom.section_text["top"])
        overview = dom.section_text["overview"]
        requests = self.doc["overview"]["requests"]
        self.assertIn(str(requests) if requests < 10000 else "{:,}".format(requests)
                      .replace(",", "\u202f"), overview)
        for suspect in self.doc["suspects"]["clients"]:
            self.assertIn(suspect["client_ip"], dom.section_text["suspects"])
        self.assertIn(SCANNER, dom.section_text["suspects"])
        self.assertIn("shop-green", dom.section_text["changes"])
        self.assertIn("canary", dom.section_text["admin"])

    @unittest.skipUnless(chromium_binary(), "chromium is not installed (Debian: apt-get install "
                         "-y chromium): the page is not checked in a browser")
    def test_chromium_screenshot_is_not_blank(self):
        """The screenshot, kept as build/test-artifacts/logstat-report.png: mostly page, with
        text and the charts' blue (#2f6fed) over thousands of pixels."""
        shot = os.path.join(ARTIFACTS, "logstat-report.png")
        if os.path.exists(shot):
            os.unlink(shot)
        proc = chromium("--screenshot=" + shot, "--window-size=1280,3000",
                        "file://" + self.page_path)
        self.assertTrue(os.path.exists(shot), proc.stderr[-2000:])
        width, height, bpp, rows = png_pixels(shot)
        self.assertEqual((width, height), (1280, 3000))
        non_white = blue = 0
        for row in rows:
            for i in range(0, len(row), bpp):
                r, g, b = row[i], row[i + 1], row[i + 2]
                if r < 235 or g < 235 or b < 235:
                    non_white += 1
                if abs(r - 0x2f) < 24 and abs(g - 0x6f) < 24 and abs(b - 0xed) < 24:
                    blue += 1
        self.assertGreater(non_white, width * height // 50, "the screenshot is (nearly) blank")
        self.assertGreater(blue, 5000, "no chart drawn")

    @unittest.skipUnless(chromium_binary(), "chromium is not installed (Debian: apt-get install "
                         "-y chromium): the page is not checked in a browser")
    def test_report_subset_has_only_its_sections(self):
        path = os.path.join(self.tmp, "subset.html")
        run_logstat("--report", "overview,timeline", "--html", path, self.access, self.security)
        dom = Page(chromium("--dump-dom", "file://" + path).stdout)
        self.assertEqual(set(dom.headings), {"overview", "timeline"})
        self.assertEqual(dom.tags.get("svg"), 3)


if __name__ == "__main__":
    unittest.main()
