# SPDX-License-Identifier: BSD-2-Clause
"""contrib/prometheus and contrib/grafana (issue 10): the alert rules, their
promtool unit tests, the example scrape configuration and the dashboard.

promtool (package prometheus, ./configure --install-deps) checks the rules,
runs every unit test in contrib/prometheus/tests/, checks scrape.yml and
parses every dashboard query as PromQL (as recording rules of a throwaway
rules file). Every alert has a severity, summary, description and runbook
link, and a unit test where it fires and one where it does not. Every
metric name in an alert or a dashboard query (found by a small PromQL
tokenizer, histogram _bucket/_sum/_count folded into their family) is one a
live gateway exports at /metrics or one SPEC.md's Metrics table names.
The promtool tests skip, saying so, where promtool is not installed; the
others run without it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, proxytest, root_path  # noqa: E402
from lib.promtext import HISTOGRAM_SUFFIXES, parse_metrics  # noqa: E402

PROM = root_path("contrib", "prometheus")
ALERTS = os.path.join(PROM, "alerts.yml")
SCRAPE = os.path.join(PROM, "scrape.yml")
RULE_TESTS = os.path.join(PROM, "tests")
DASHBOARD = root_path("contrib", "grafana", "switchyard.json")
SPEC = root_path("..", "shared", "SPEC.md")
SEVERITIES = ("warning", "critical")
RUNBOOK_RE = re.compile(r'runbook_url: "docs/operations\.md#alert-[a-z0-9-]+"')

# what PromQL spells like a metric name but is not one
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2"}
# Grafana's variables, replaced by something that parses as PromQL
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                "$gateway": ".+", "$service": ".*"}


def promtool():
    return shutil.which("promtool")


def run_promtool(*args):
    return subprocess.run([promtool()] + list(args), capture_output=True, text=True,
                          timeout=120)


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are
    not function names (followed by "("), keywords, label names (inside
    {} or a by/without/on/ignoring/group_x list), strings, numbers or
    durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if re.match(r"\s*\(", text[m.end():]) or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def family(name, families):
    """A histogram's _bucket, _sum or _count sample name folded into the
    family's name; any other name as it is."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            return name[:-len(suffix)]
    return name


def alert_blocks(text):
    """[(alert name, its text)] of a rules file, split at "- alert:"."""
    parts = re.split(r"^\s*- alert:\s*", text, flags=re.M)[1:]
    return [(p.split("\n", 1)[0].strip(), p) for p in parts]


def alert_exprs(text):
    """{alert name: its expr} of a rules file: the one-line form
    (expr: X) and the block form (expr: |, then lines indented deeper)."""
    exprs = {}
    for name, block in alert_blocks(text):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if not m:
                continue
            if m.group(2).strip() not in ("|", "|-", ">", ">-"):
                exprs[name] = m.group(2).strip()
                break
            indent, body = len(m.group(1)), []
            for more in lines[i + 1:]:
                if more.strip() and len(more) - len(more.lstrip()) <= indent:
                    break
                body.append(more.strip())
            exprs[name] = " ".join(body).strip()
            break
    return exprs


def dashboard_queries(dash):
    """[(where, PromQL)] of every panel target and every query variable
    (label_values(SELECTOR, label) gives SELECTOR)."""
    out = []

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))
    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            out.append(("panel %r %s" % (p.get("title"), t.get("refId")), t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q, flags=re.S)
        out.append(("variable %s" % v["name"], m.group(1) if m else q))
    return out


def spec_metric_names():
    """The names in SPEC.md's Metrics table; empty when SPEC.md is not
    next to this checkout (then only the live /metrics counts)."""
    if not os.path.exists(SPEC):
        return set()
    with open(SPEC, encoding="utf-8") as f:
        return set(re.findall(r"^\| `(switchyard_[a-z0-9_]+)` \|", f.read(), flags=re.M))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class RuleFiles(unittest.TestCase):
    """alerts.yml, its unit tests and scrape.yml."""

    def need_promtool(self):
        if not promtool():
            self.skipTest("promtool is not installed (package prometheus; "
                          "./configure --install-deps installs it)")

    def test_promtool_check_rules(self):
        self.need_promtool()
        r = run_promtool("check", "rules", ALERTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_promtool_unit_tests_pass(self):
        self.need_promtool()
        files = sorted(os.path.join(RULE_TESTS, f) for f in os.listdir(RULE_TESTS)
                       if f.endswith(".yml"))
        self.assertTrue(files, "no unit tests in %s" % RULE_TESTS)
        r = run_promtool("test", "rules", *files)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("FAILED", r.stdout + r.stderr)

    def test_promtool_sees_a_broken_expectation(self):
        """The unit tests can fail: the same test with one expected alert
        label changed fails promtool."""
        self.need_promtool()
        tmp = tempfile.mkdtemp(prefix="sy-promtool-")
        try:
            shutil.copy(ALERTS, os.path.join(tmp, "alerts.yml"))
            os.mkdir(os.path.join(tmp, "tests"))
            text = read(os.path.join(RULE_TESTS, "traffic.yml"))
            self.assertIn("service: api", text)
            broken = os.path.join(tmp, "tests", "traffic.yml")
            with open(broken, "w") as f:
                f.write(text.replace("service: api", "service: apx", 1))
            r = run_promtool("test", "rules", broken)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            # failed on the changed expectation, not on a missing file
            self.assertIn('service="apx"', r.stdout + r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_every_alert_is_labelled_linked_and_tested(self):
        text = read(ALERTS)
        blocks = alert_blocks(text)
        names = [n for n, _ in blocks]
        self.assertEqual(len(names), len(set(names)), names)
        want = {"SwitchyardHighErrorRate", "SwitchyardHighErrorRateCritical",
                "SwitchyardHighLatency", "SwitchyardHighLatencyCritical",
                "SwitchyardUpstreamDown", "SwitchyardCertificateExpiringSoon",
                "SwitchyardRolloutRolledBack", "SwitchyardScaleOut",
                "SwitchyardConfigReloadFailed", "SwitchyardLogLinesDropped"}
        self.assertLessEqual(want, set(names))
        for name, block in blocks:
            with self.subTest(alert=name):
                m = re.search(r"^\s*severity:\s*(\S+)", block, flags=re.M)
                self.assertTrue(m and m.group(1) in SEVERITIES, block)
                for key in ("summary", "description"):
                    self.assertRegex(block, r"(?m)^\s*%s:\s*\S" % key)
                self.assertRegex(block, RUNBOOK_RE)
        # each alert has a promtool case where it fires and one where it does not
        cases = {}
        for f in os.listdir(RULE_TESTS):
            if f.endswith(".yml"):
                for alert, rest in re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:(.*)",
                                              read(os.path.join(RULE_TESTS, f))):
                    cases.setdefault(alert, set()).add(rest.strip() == "[]")
        for name in names:
            self.assertEqual(cases.get(name), {True, False},
                             "%s: firing and not-firing unit tests wanted" % name)

    def test_thresholds_are_the_issues(self):
        exprs = alert_exprs(read(ALERTS))
        self.assertRegex(exprs["SwitchyardHighErrorRate"], r'status=~"5\.\."\}\[5m\].*> 0\.01$')
        self.assertRegex(exprs["SwitchyardHighErrorRateCritical"], r"> 0\.05$")
        for name, bound in (("SwitchyardHighLatency", "0.2"),
                            ("SwitchyardHighLatencyCritical", "2")):
            self.assertRegex(exprs[name], r"^histogram_quantile\(0\.95,.*"
                             r"switchyard_http_request_duration_seconds_bucket.*> %s$"
                             % re.escape(bound))
        self.assertEqual(exprs["SwitchyardCertificateExpiringSoon"],
                         "switchyard_tls_certificate_expiry_timestamp_seconds - time() "
                         "< 14 * 86400")
        self.assertEqual(exprs["SwitchyardRolloutRolledBack"],
                         'switchyard_rollout_state{state="rolled_back"} == 1')

    def test_scrape_config_checks(self):
        """scrape.yml passes `promtool check config` with its token file and
        the rules in place (copied to a temporary directory)."""
        self.need_promtool()
        text = read(SCRAPE)
        m = re.search(r"credentials_file:\s*(\S+)", text)
        self.assertTrue(m, "no bearer token file in scrape.yml")
        self.assertRegex(text, r"metrics_path:\s*/metrics")
        tmp = tempfile.mkdtemp(prefix="sy-scrape-")
        try:
            token = os.path.join(tmp, "admin.token")
            admin.write_tokens(token, ["secret-1"])
            shutil.copy(ALERTS, os.path.join(tmp, "alerts.yml"))
            conf = os.path.join(tmp, "prometheus.yml")
            with open(conf, "w") as f:
                f.write(text.replace(m.group(1), token))
            r = run_promtool("check", "config", conf)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Dashboard(unittest.TestCase):
    """contrib/grafana/switchyard.json."""

    @classmethod
    def setUpClass(cls):
        cls.dash = json.loads(read(DASHBOARD))

    def test_shape(self):
        d = self.dash
        self.assertGreaterEqual(d["schemaVersion"], 36)
        self.assertEqual([i["name"] for i in d["__inputs"]], ["DS_PROMETHEUS"])
        titles = {p["title"] for p in d["panels"]}
        for want in ("Requests/s by service and slot", "5xx ratio by service",
                     "Latency p50 by service and slot", "Latency p95 by service and slot",
                     "Latency p99 by service and slot", "Canary weight", "Active slot",
                     "Rollout state", "Upstream health", "Rate-limited and denied /s",
                     "Certificate expiry (days left)", "Scaling signal", "Log lines dropped"):
            self.assertIn(want, titles)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in d["panels"]:
            if p["type"] == "row":
                continue
            with self.subTest(panel=p["title"]):
                self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}")
                self.assertTrue(p["targets"])
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}")

    def test_queries_parse_as_promql(self):
        """Every query, Grafana's variables filled in, as a recording rule:
        `promtool check rules` parses each expression."""
        if not promtool():
            self.skipTest("promtool is not installed (package prometheus)")
        queries = dashboard_queries(self.dash)
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (_, expr) in enumerate(queries):
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            self.assertNotIn("$", expr, "a Grafana variable this test does not know")
            lines.append("      - record: dashboard:query_%d" % i)
            lines.append("        expr: %s" % json.dumps(expr))
        tmp = tempfile.mkdtemp(prefix="sy-dash-")
        try:
            path = os.path.join(tmp, "queries.yml")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            r = run_promtool("check", "rules", path)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("%d rules found" % len(queries), r.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class MetricNames(unittest.TestCase):
    """Metric names of the alerts and dashboard against a live /metrics."""

    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "a")]).start()
        try:
            with gateway.Gateway(proxytest.config([cls.td.addr(0)])) as gw:
                gw.wait_admin()
                r = admin.Admin(gw).get("/metrics")
                if r.status != 200:
                    raise AssertionError("/metrics answered %r" % r)
                cls.live = set(parse_metrics(r.text))
        finally:
            cls.td.stop()
        cls.known = cls.live | spec_metric_names()

    def check(self, where, expr):
        names = {family(n, self.known) for n in metric_names(expr)}
        self.assertTrue(names, "%s: no metric name found in %r" % (where, expr))
        unknown = names - self.known
        self.assertFalse(unknown, "%s uses %s, in neither /metrics nor SPEC.md: %r"
                         % (where, sorted(unknown), expr))
        return names

    def test_the_extractor(self):
        """The tokenizer finds names, and only names."""
        self.assertEqual(
            metric_names('histogram_quantile(0.95, sum by (service, slot, le) '
                         '(rate(switchyard_http_request_duration_seconds_bucket'
                         '{instance=~"$gateway",service="a b"}[$__rate_interval]))) > 2e-1'),
            {"switchyard_http_request_duration_seconds_bucket"})
        self.assertEqual(metric_names("switchyard_x - time() < 14 * 86400 and on (instance) up"),
                         {"switchyard_x", "up"})
        with self.assertRaises(AssertionError):
            self.check("self-test", "rate(switchyard_http_requests_totals[5m])")
        self.assertIn("switchyard_http_request_duration_seconds", self.live)
        self.assertIn("switchyard_rollout_state", self.live)

    def test_alert_metrics_exist(self):
        used = set()
        exprs = alert_exprs(read(ALERTS))
        self.assertEqual(len(exprs), len(alert_blocks(read(ALERTS))))
        for name, expr in exprs.items():
            with self.subTest(alert=name):
                used |= self.check("alert %s" % name, expr)
        self.assertLessEqual({"switchyard_http_requests_total",
                              "switchyard_http_request_duration_seconds",
                              "switchyard_upstream_up", "switchyard_config_reloads_total",
                              "switchyard_log_dropped_total"}, used)

    def test_dashboard_metrics_exist(self):
        used = set()
        for where, expr in dashboard_queries(json.loads(read(DASHBOARD))):
            with self.subTest(query=where):
                used |= self.check(where, expr)
        self.assertLessEqual({"switchyard_service_canary_weight", "switchyard_rollout_state",
                              "switchyard_rate_limited_total", "switchyard_denied_total",
                              "switchyard_tls_certificate_expiry_timestamp_seconds",
                              "switchyard_scale_recommendation"}, used)


if __name__ == "__main__":
    unittest.main()
