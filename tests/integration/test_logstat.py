# SPDX-License-Identifier: BSD-2-Clause
"""switchyard-logstat (issue 11) over logs the real gateway wrote: clients
posing as different addresses (X-Forwarded-For from a trusted 127.0.0.1)
send known numbers of 200, 404, 429 and 500 requests, first to the blue
slot, then, after a switch through the admin API, to green; one client
scans for distinct missing paths. logstat's --json figures must equal
those counts: overview, per slot, per client, per path, 429s from both
logs, the switch among the admin actions, the scanner among the suspects.
Then the same logs split into a rotated .gz and a live file; filters;
-f following a file that is rotated while it reads; a file of garbage;
the text output's width; the exit codes.
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402

LOGSTAT = root_path("build", "switchyard-logstat")
TOKEN = "logstat-token"

# Per slot and client: (200s, app 404s, 500s, requests to the limited route).
# The limited route lets one request through a minute (it answers 200), the
# rest get 429.
PLAN = {
    "blue": {"10.1.0.1": (30, 4, 2, 6), "10.1.0.2": (12, 0, 5, 1), "10.1.0.3": (7, 2, 0, 0)},
    "green": {"10.1.0.1": (9, 1, 1, 3), "10.1.0.2": (20, 3, 0, 0), "10.1.0.4": (5, 0, 6, 12)},
}
SCANNER = "198.51.100.66"
SCANNED = 25            # distinct paths without a route: the gateway's own 404


def expected():
    """The counts the plan must produce, per client, slot, and overall."""
    per_client, per_slot = {}, {}
    limited_seen = set()
    for slot, clients in PLAN.items():
        for ip, (ok, nf, err, lim) in clients.items():
            c = per_client.setdefault(ip, {"requests": 0, "200": 0, "404": 0, "429": 0, "500": 0})
            s = per_slot.setdefault(slot, {"requests": 0, "errors": 0})
            passed = 1 if lim and ip not in limited_seen else 0
            if lim:
                limited_seen.add(ip)
            c["requests"] += ok + nf + err + lim
            c["200"] += ok + passed
            c["404"] += nf
            c["500"] += err
            c["429"] += lim - passed
            s["requests"] += ok + nf + err + passed    # a 429 never reached a slot
            s["errors"] += err
    per_client[SCANNER] = {"requests": SCANNED, "200": 0, "404": SCANNED, "429": 0, "500": 0}
    return per_client, per_slot


def run_logstat(*args, stdin=None, timeout=60):
    return subprocess.run([LOGSTAT] + list(args), input=stdin, capture_output=True,
                          timeout=timeout)


def report(*args):
    r = run_logstat("--json", *args)
    if r.returncode != 0:
        raise AssertionError("logstat exit %d: %s" % (r.returncode, r.stderr.decode()))
    return json.loads(r.stdout)


def by_key(rows, key="key"):
    return {row[key]: row for row in rows}


@unittest.skipUnless(os.access(LOGSTAT, os.X_OK), "build/switchyard-logstat is not built")
class LogstatOverGatewayLogs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")], threads=2).start()
        cls.addClassCleanup(cls.td.stop)
        cfg = proxytest.config(
            pools={"blue": {"instances": [{"addr": cls.td.addr(0)}]},
                   "green": {"instances": [{"addr": cls.td.addr(1)}]}},
            services={"app": {"blue": "blue", "green": "green"}},
            routes=[{"host": "*", "path": "/echo", "service": "app"},
                    {"host": "*", "path": "/status/", "service": "app"},
                    {"host": "*", "path": "/limited", "service": "app",
                     "rate_limit": "slow"}],
            rate_limits={"slow": {"key": "client_ip", "rate": 1, "per_ms": 60000, "burst": 0}},
            trusted_proxies=["127.0.0.1/32"],
            admin={"listen": "127.0.0.1:%d" % ports.free_port(),
                   "token_file": "{tmp}/admin.token"})
        gw = cls.gw = gateway.Gateway(cfg)
        cls.addClassCleanup(gw.__exit__, None, None, None)
        admin.write_tokens(os.path.join(gw.tmp, "admin.token"), [TOKEN])
        gw.start()
        gw.wait_admin()
        api = admin.Admin(gw, token=TOKEN)

        cls.started = time.time()
        total = 0
        with proxytest.client(gw) as c:
            for slot, clients in PLAN.items():
                if slot == "green":
                    r = api.post("/api/v1/services/app/switch", {"to": "green"})
                    assert r.status == 200, r.body
                for ip, (ok, nf, err, lim) in clients.items():
                    for path, n in (("/echo", ok), ("/status/404", nf), ("/status/500", err),
                                    ("/limited", lim)):
                        for _ in range(n):
                            c.request(build("GET", path, headers=[("X-Forwarded-For", ip),
                                                                  ("User-Agent", "plan/1.0")]))
                            total += 1
            for i in range(SCANNED):
                c.request(build("GET", "/wp-admin/probe-%d.php" % i,
                                headers=[("X-Forwarded-For", SCANNER),
                                         ("User-Agent", "<script>scan</script>")]))
                total += 1
        cls.total = total
        lines = gw.log_lines("access", total, timeout=10)
        assert len(lines) == total, "access log has %d of %d lines" % (len(lines), total)
        cls.n429 = sum(1 for l in lines if l["status"] == 429)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:      # the security log's flood summaries
            sec = gw.log_lines("security")
            if sum(1 + e.get("suppressed", 0) for e in sec
                   if e["event"] == "rate_limited") >= cls.n429:
                break
            time.sleep(0.1)
        cls.access = gw.log_path("access")
        cls.security = gw.log_path("security")
        cls.doc = report(cls.access, cls.security, "--suspect-404", "20")
        if os.environ.get("LOGSTAT_KEEP"):
            shutil.copy(cls.access, os.environ["LOGSTAT_KEEP"])

    def test_overview_counts(self):
        per_client, _ = expected()
        ov = self.doc["overview"]
        self.assertEqual(ov["requests"], self.total)
        self.assertEqual(self.doc["lines"]["access"], self.total)
        self.assertEqual(self.doc["lines"]["bad"], 0)
        self.assertEqual(self.doc["lines"]["fallback"], 0, "the fast scanner read every line")
        want = {"2xx": sum(c["200"] for c in per_client.values()),
                "4xx": sum(c["404"] + c["429"] for c in per_client.values()),
                "5xx": sum(c["500"] for c in per_client.values())}
        for cls_, n in want.items():
            self.assertEqual(ov["status"][cls_], n, cls_)
        self.assertAlmostEqual(ov["error_rate"], want["5xx"] / self.total, places=5)
        self.assertEqual(ov["duration_ms"]["count"], self.total)
        self.assertGreater(ov["duration_ms"]["p99"], 0)
        self.assertLessEqual(ov["duration_ms"]["p50"], ov["duration_ms"]["p95"])
        self.assertEqual(sum(b["count"] for b in ov["duration_buckets"]), self.total)
        self.assertFalse(self.doc["approximate"])

    def test_per_slot(self):
        _, per_slot = expected()
        rows = {(s["service"], s["slot"]): s for s in self.doc["services"]}
        for slot, want in per_slot.items():
            row = rows[("app", slot)]
            self.assertEqual(row["requests"], want["requests"], slot)
            self.assertEqual(row["errors"], want["errors"], slot)
        # the 429s were answered before the split: their service, no slot
        self.assertEqual(rows[("app", "")]["requests"], self.n429)
        self.assertEqual(rows[("app", "")]["errors"], 0)
        # the scanner's requests matched no route: no service, no slot
        self.assertEqual(rows[("", "")]["requests"], SCANNED)

    def test_per_client(self):
        per_client, _ = expected()
        clients = by_key(self.doc["top"]["clients"]["by_requests"])
        for ip, want in per_client.items():
            self.assertEqual(clients[ip]["requests"], want["requests"], ip)
            self.assertEqual(clients[ip]["errors"], want["500"], ip)
        ranked = [r["key"] for r in self.doc["top"]["clients"]["by_requests"]]
        self.assertEqual(ranked[0], "10.1.0.1")
        by_errors = [r["key"] for r in self.doc["top"]["clients"]["by_errors"]]
        self.assertEqual(by_errors[0], "10.1.0.4")
        self.assertNotIn(SCANNER, by_errors, "no 5xx: not ranked by errors")

    def test_per_path(self):
        per_client, _ = expected()
        paths = by_key(self.doc["top"]["paths"]["by_requests"])
        self.assertEqual(paths["/status/404"]["requests"],
                         sum(c["404"] for ip, c in per_client.items() if ip != SCANNER))
        self.assertEqual(paths["/status/500"]["errors"], sum(c["500"] for c in per_client.values()))
        self.assertEqual(self.doc["top"]["paths"]["by_errors"][0]["key"], "/status/500")

    def test_rate_limiting_from_both_logs(self):
        per_client, _ = expected()
        rl = self.doc["rate_limiting"]
        n429 = sum(c["429"] for c in per_client.values())
        self.assertEqual(self.n429, n429)
        self.assertEqual(rl["responses"]["total"], n429)
        got = {r["key"]: r["count"] for r in rl["responses"]["by_client"]}
        self.assertEqual(got, {ip: c["429"] for ip, c in per_client.items() if c["429"]})
        self.assertEqual(rl["responses"]["by_route"], [{"key": "*/limited", "count": n429}])
        # the security log, flood summaries included, tells the same story
        self.assertEqual(rl["events"]["total"], n429)
        got = {r["key"]: r["count"] for r in rl["events"]["by_client"]}
        self.assertEqual(got, {ip: c["429"] for ip, c in per_client.items() if c["429"]})
        self.assertEqual(rl["events"]["by_limit"], [{"key": "slow", "count": n429}])

    def test_admin_and_changes(self):
        actions = self.doc["admin"]["admin_actions"]
        switches = [e for e in actions["events"] if e.get("action") == "switch"]
        self.assertEqual(len(switches), 1, actions)
        self.assertEqual(self.doc["admin"]["auth_failures"]["total"], 0)
        self.assertIn("rollouts", self.doc["changes"])

    def test_scanner_is_a_suspect(self):
        suspects = by_key(self.doc["suspects"]["clients"], "client_ip")
        self.assertIn(SCANNER, suspects)
        s = suspects[SCANNER]
        self.assertIn("distinct_404_paths", s["flags"])
        self.assertGreaterEqual(s["distinct_404_paths"], SCANNED - 2)   # an estimate
        self.assertLessEqual(s["distinct_404_paths"], SCANNED + 2)
        self.assertEqual(s["not_found"], SCANNED)
        # 10.1.0.4 was limited 11 times: under the default threshold of 50
        self.assertNotIn("10.1.0.4", suspects)
        low = report(self.access, self.security, "--suspect-429", "5", "--report", "suspects")
        flagged = by_key(low["suspects"]["clients"], "client_ip")
        self.assertEqual(flagged["10.1.0.4"]["flags"], ["rate_limited"])
        self.assertEqual(flagged["10.1.0.4"]["rate_limited"], 11)
        self.assertEqual(low["suspects"]["thresholds"]["rate_limited"], 5)
        self.assertEqual([k for k in low if k in ("overview", "top", "timeline")], [])

    def test_rotated_gz_plus_live_file_same_figures(self):
        with open(self.access, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        half = len(lines) // 2
        with gzip.open(os.path.join(tmp, "access.log.1.gz"), "wb") as f:
            f.writelines(lines[:half])
        with open(os.path.join(tmp, "access.log"), "wb") as f:
            f.writelines(lines[half:])
        split = report(os.path.join(tmp, "access.log.1.gz"), os.path.join(tmp, "access.log"))
        whole = report(self.access)
        for key in ("overview", "services", "top", "rate_limiting"):
            self.assertEqual(split[key], whole[key], key)
        self.assertEqual([i["lines"] for i in split["inputs"]], [half, len(lines) - half])
        # standard input, compressed
        with open(os.path.join(tmp, "access.log.1.gz"), "rb") as f:
            piped = json.loads(run_logstat("--json", stdin=f.read()).stdout)
        self.assertEqual(piped["lines"]["access"], half)

    def test_filters(self):
        per_client, per_slot = expected()
        doc = report(self.access, "--client", "10.1.0.2")
        self.assertEqual(doc["overview"]["requests"], per_client["10.1.0.2"]["requests"])
        self.assertEqual(doc["lines"]["filtered"], self.total - per_client["10.1.0.2"]["requests"])
        doc = report(self.access, "--status", "5xx")
        self.assertEqual(doc["overview"]["requests"], sum(c["500"] for c in per_client.values()))
        doc = report(self.access, "--status", "404,429", "--path-prefix", "/status/")
        self.assertEqual(doc["overview"]["requests"],
                         sum(c["404"] for ip, c in per_client.items() if ip != SCANNER))
        doc = report(self.access, "--service", "app")
        self.assertEqual(doc["overview"]["requests"], self.total - SCANNED)
        # time: everything is within the last hour, nothing is older
        self.assertEqual(report(self.access, "--since", "1h")["overview"]["requests"], self.total)
        self.assertEqual(report(self.access, "--until", "1h")["overview"]["requests"], 0)
        self.assertEqual(report(self.access, "--since", "2000-01-01",
                                "--until", "2100-01-01T00:00:00Z")["overview"]["requests"],
                         self.total)

    def test_text_report_fits_100_columns(self):
        r = run_logstat(self.access, self.security)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        for heading in ("== Overview", "== Services and slots", "== Timeline",
                        "== Top paths by requests", "== Top clients by requests",
                        "429 responses", "== Suspects", "== Admin actions: 1"):
            self.assertIn(heading, text)
        self.assertIn(SCANNER, text)
        for line in text.splitlines():
            self.assertLessEqual(len(line), 100, line)

    def test_timeline_sums_to_requests(self):
        doc = report(self.access, "--interval", "1s")
        points = doc["timeline"]["points"]
        self.assertEqual(doc["timeline"]["interval_s"], 1)
        self.assertEqual(sum(p["requests"] for p in points), self.total)
        self.assertEqual(sum(p["rate_limited"] for p in points), self.n429)


@unittest.skipUnless(os.access(LOGSTAT, os.X_OK), "build/switchyard-logstat is not built")
class LogstatInputs(unittest.TestCase):
    LINE = ('{"ts":"2026-11-23T10:%02d:%02d.000Z","request_id":"r","client_ip":"10.0.0.%d",'
            '"country":"","method":"GET","host":"h","path":"/p","status":200,"bytes_in":1,'
            '"bytes_out":2,"duration_ms":1.500,"upstream_ms":1.000,"upstream":"10.9.0.1:80",'
            '"service":"s","slot":"blue","pool":"p","route":"*/","user_agent":"ua","tls":false,'
            '"proto":"http/1.1"}\n')

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def lines(self, start, n):
        return "".join(self.LINE % ((i // 60) % 60, i % 60, i % 200) for i in range(start, start + n))

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_follow_across_rotation(self):
        live = self.path("access.log")
        with open(live, "w") as f:
            f.write(self.lines(0, 100))
        p = subprocess.Popen([LOGSTAT, "-f", "--json", live], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        time.sleep(0.5)
        with open(live, "a") as f:
            f.write(self.lines(100, 50))
            f.write(self.lines(150, 1)[:40])        # a line half written when rotated
        time.sleep(0.5)
        with open(live, "a") as f:
            f.write(self.lines(150, 1)[40:])
        os.rename(live, self.path("access.log.1"))  # logrotate's rename
        time.sleep(0.5)
        with open(live, "w") as f:
            f.write(self.lines(151, 30))
        time.sleep(0.5)
        with open(live, "a") as f:
            f.write(self.lines(181, 19))
        time.sleep(0.6)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["lines"]["access"], 200)
        self.assertEqual(doc["lines"]["bad"], 0)
        self.assertEqual(doc["overview"]["requests"], 200)

    def test_garbage_is_counted_not_fatal(self):
        path = self.path("mixed.log")
        with open(path, "wb") as f:
            f.write(self.lines(0, 10).encode())
            f.write(b"this is not json\n")                      # line 11
            f.write(b'{"ts":"2026-11-23T10:00:00Z","status":"x"}\n')
            f.write(b"\xff\xfe\x00binary\x00\n")
            f.write(b'{"ts":"2026-11-23T10:00:00Z","status":200\n')  # truncated
            f.write(b"x" * 70000 + b"\n")                       # over 64 KiB
            f.write(b'{"ts":"2026-11-23T10:00:00Z","status":200,"path":"/\\u00e9"}\n')
            f.write(self.lines(10, 5).encode())
            f.write(b'{"ts":"2026-11-23T10:00:00Z","status":200,"unknown":{"deep":[1]}}')
        r = run_logstat("--json", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["lines"]["bad"], 5)
        self.assertEqual(doc["lines"]["access"], 17)
        self.assertEqual(doc["lines"]["fallback"], 6)   # all but the long line: jansson decides
        self.assertEqual(doc["lines"]["first_bad"],
                         {"file": path, "line": 11, "reason": "not JSON"})
        self.assertEqual(doc["inputs"][0]["bad"], 5)
        self.assertIn("/\u00e9", [r["key"] for r in doc["top"]["paths"]["by_requests"]])

    def test_corrupt_gz_reported_other_files_read(self):
        good = self.path("good.log")
        with open(good, "w") as f:
            f.write(self.lines(0, 20))
        data = gzip.compress(self.lines(0, 2000).encode())
        bad = self.path("bad.log.gz")
        with open(bad, "wb") as f:
            f.write(data[:len(data) // 2] + b"\x00" * 64 + data[len(data) // 2 + 64:])
        r = run_logstat("--json", bad, good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"bad.log.gz", r.stderr)
        doc = json.loads(r.stdout)
        self.assertIn("corrupt", doc["inputs"][0]["error"])
        self.assertEqual(doc["inputs"][1], {"name": good, "lines": 20, "bad": 0})

    def test_empty_input_empty_report(self):
        empty = self.path("empty.log")
        open(empty, "w").close()
        r = run_logstat("--json", empty)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["overview"]["requests"], 0)
        self.assertEqual(doc["timeline"]["points"], [])
        self.assertIsNone(doc["period"]["first"])
        r = run_logstat(empty)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"no samples", r.stdout)
        r = run_logstat("--json", stdin=b"")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_exit_codes(self):
        r = run_logstat(self.path("missing.log"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"missing.log", r.stderr)
        self.assertIn(b"no readable input", r.stderr)
        for args in (["--bogus"], ["--status", "abc"], ["--since", "yesterday"],
                     ["--report", "overview,nope"], ["--top", "0"], ["--interval", "500ms"],
                     ["-f"], ["-f", "-"], ["--top"]):
            r = run_logstat(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(b"switchyard-logstat:", r.stderr)
        r = run_logstat("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage:", r.stdout)
        r = run_logstat("-V")
        self.assertEqual(r.returncode, 0)

    def test_bounded_table_says_approximate(self):
        path = self.path("many.log")
        with open(path, "w") as f:
            f.write(self.lines(0, 3000))
        doc = report(path, "--table-size", "50")
        self.assertTrue(doc["approximate"])
        self.assertTrue(doc["top"]["clients"]["approximate"])
        self.assertFalse(doc["top"]["paths"]["approximate"])
        exact = report(path)
        self.assertFalse(exact["approximate"])
        self.assertEqual(doc["overview"], exact["overview"])


if __name__ == "__main__":
    unittest.main()
