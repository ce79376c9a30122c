# SPDX-License-Identifier: BSD-2-Clause
"""Access control and GeoIP (issue 8): the real gateway, clients posing as
other addresses through a trusted proxy (X-Forwarded-For from 127.0.0.1),
GeoIP databases written by tests/data/geoip/make-test-mmdb.pl (10.1/16 DE,
10.2/16 FR, 10.3/16 US as registered country only, 2001:db8:1::/48 JP;
country-v2 maps 10.1/16 to IT). Longest prefix wins across allow and deny,
allow wins a tie; a refusal is a 403 with a JSON body, a "denied" event and
switchyard_denied_total; X-Forwarded-For from an untrusted peer is ignored;
the country is in the access log, usable in deny_countries, reloaded when
the file changes; a missing or corrupt database stops the start and -t,
and a reload keeps the old one.
"""
import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, ports, proxytest, root_path  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

GEOIP_DIR = root_path("build", "test-data", "geoip")
HAVE_GEOIP = os.path.exists(os.path.join(GEOIP_DIR, "country.mmdb"))


def config(td, access=None, geoip=None, trusted=("127.0.0.1/32",)):
    cfg = proxytest.config([td.addr(0)], trusted_proxies=list(trusted),
                           admin={"listen": "127.0.0.1:%d" % ports.free_port()})
    if access is not None:
        cfg["access"] = access
    if geoip is not None:
        cfg["geoip"] = {"database": geoip}
    return cfg


def error_log(gw):
    with open(gw.log_path("error")) as f:
        return f.read()


def status_as(gw, ip, c=None):
    raw = build("GET", "/", headers=[("X-Forwarded-For", ip)])
    if c:
        return c.request(raw)
    return proxytest.once(gw, raw)


class Access(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg):
        gw = gateway.Gateway(cfg)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def statuses(self, gw, ips):
        with proxytest.client(gw) as c:
            return {ip: status_as(gw, ip, c).status for ip in ips}

    def test_deny_list_v4_and_v6_with_a_json_403_and_a_security_event(self):
        gw = self.gateway(config(self.td, {"deny": ["10.9.0.0/16", "2001:db8:bad::/48"]}))
        got = self.statuses(gw, ["10.9.1.1", "10.8.1.1", "2001:db8:bad::7", "2001:db8:900::1"])
        self.assertEqual(got, {"10.9.1.1": 403, "10.8.1.1": 200, "2001:db8:bad::7": 403,
                               "2001:db8:900::1": 200})
        r = status_as(gw, "10.9.3.4")
        body = json.loads(r.body)
        self.assertEqual((body["status"], body["request_id"]), (403, r.header("X-Request-ID")))
        self.assertIn("access.deny", body["reason"])
        events = [e for e in gw.log_lines("security", 2) if e["event"] == "denied"]
        self.assertEqual(events[0]["client_ip"], "10.9.1.1")
        self.assertEqual(events[0]["rule"], "deny_list")
        self.assertEqual(events[0]["route"], "*/")
        m = parse_metrics(admin.Admin(gw, token=None).get("/metrics").text)
        self.assertEqual(sample(m, "switchyard_denied_total", reason="deny_list"), 3)

    def test_longest_prefix_wins_and_allow_wins_a_tie(self):
        gw = self.gateway(config(self.td, {
            "allow": ["10.0.0.0/8", "10.1.2.0/24", "192.0.2.0/24"],
            "deny": ["10.1.0.0/16", "192.0.2.0/24"]}))
        got = self.statuses(gw, ["10.2.0.1", "10.1.0.1", "10.1.2.3", "192.0.2.1", "172.16.0.1"])
        self.assertEqual(got, {
            "10.2.0.1": 200,        # allow /8
            "10.1.0.1": 403,        # deny /16 beats allow /8
            "10.1.2.3": 200,        # allow /24 beats deny /16
            "192.0.2.1": 200,       # the same prefix in both lists: allow
            "172.16.0.1": 403,      # an allow list lets in only what it names
        })
        reasons = {e["client_ip"]: e["rule"] for e in gw.log_lines("security", 2)
                   if e["event"] == "denied"}
        self.assertEqual(reasons, {"10.1.0.1": "deny_list", "172.16.0.1": "not_in_allow_list"})

    def test_forwarded_for_only_from_a_trusted_peer(self):
        # the peer 127.0.0.1 is not trusted: its X-Forwarded-For does not make it 10.9.x
        gw = self.gateway(config(self.td, {"deny": ["10.9.0.0/16"]}, trusted=("10.200.0.1/32",)))
        self.assertEqual(status_as(gw, "10.9.1.1").status, 200)
        gw.stop()
        # ... and a denied peer cannot hide behind a spoofed one
        gw = self.gateway(config(self.td, {"deny": ["127.0.0.0/8"]}, trusted=("10.200.0.1/32",)))
        self.assertEqual(status_as(gw, "10.2.2.2").status, 403)
        gw.stop()
        # the rightmost untrusted address is the client: a trusted chain is walked back
        gw = self.gateway(config(self.td, {"deny": ["10.9.0.0/16"]},
                                 trusted=("127.0.0.1/32", "10.50.0.0/16")))
        self.assertEqual(status_as(gw, "10.9.1.1, 10.50.0.7").status, 403)
        self.assertEqual(status_as(gw, "10.9.1.1, 10.8.0.1").status, 200)

    def test_a_flood_of_denied_requests_is_collapsed(self):
        gw = self.gateway(config(self.td, {"deny": ["10.9.0.0/16"]}))
        n = 3000
        with proxytest.client(gw) as c:
            for _ in range(n):
                self.assertEqual(status_as(gw, "10.9.9.9", c).status, 403)

        def total():
            events = [e for e in gw.log_lines("security") if e["event"] == "denied"]
            return len(events), sum(1 + e.get("suppressed", 0) for e in events)
        self.assertTrue(proxytest.wait_until(lambda: total()[1] == n, timeout=5), total())
        self.assertLess(total()[0], 30)


@unittest.skipUnless(HAVE_GEOIP, "GeoIP test databases not built (libmaxmind-db-writer-perl)")
class GeoIP(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([0]).start()
        cls.addClassCleanup(cls.td.stop)

    def gateway(self, cfg):
        gw = gateway.Gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def db_copy(self, gw, name="country.mmdb"):
        path = os.path.join(gw.tmp, "geo.mmdb")
        tmp = path + ".new"
        shutil.copy(os.path.join(GEOIP_DIR, name), tmp)
        os.rename(tmp, path)        # as geoipupdate does: a new file, never rewritten
        return path

    def test_country_in_logs_and_deny_countries(self):
        gw = self.gateway(config(self.td, {"deny_countries": ["de"]}, geoip="{tmp}/geo.mmdb"))
        self.db_copy(gw)
        gw.start()
        got = {ip: status_as(gw, ip).status
               for ip in ("10.1.0.1", "10.2.0.1", "10.3.0.1", "2001:db8:1::5", "10.7.0.1")}
        self.assertEqual(got, {"10.1.0.1": 403, "10.2.0.1": 200, "10.3.0.1": 200,
                               "2001:db8:1::5": 200, "10.7.0.1": 200})
        lines = gw.access_log_lines(5)
        self.assertEqual({l["client_ip"]: l["country"] for l in lines},
                         {"10.1.0.1": "DE", "10.2.0.1": "FR", "10.3.0.1": "US",
                          "2001:db8:1::5": "JP", "10.7.0.1": ""})
        denied = [e for e in gw.log_lines("security", 1) if e["event"] == "denied"]
        self.assertEqual((denied[0]["country"], denied[0]["rule"]), ("DE", "country"))

    def test_country_rate_limit_key(self):
        cfg = config(self.td, geoip="{tmp}/geo.mmdb")
        cfg["rate_limits"] = {"per-country": {"key": "country", "rate": 1, "per_ms": 60000,
                                              "burst": 1}}
        cfg["routes"][0]["rate_limit"] = "per-country"
        gw = self.gateway(cfg)
        self.db_copy(gw)
        gw.start()
        with proxytest.client(gw) as c:
            de = [status_as(gw, "10.1.0.%d" % i, c).status for i in range(1, 4)]
            fr = [status_as(gw, "10.2.0.%d" % i, c).status for i in range(1, 4)]
        self.assertEqual((de, fr), ([200, 200, 429], [200, 200, 429]))

    def test_reload_picks_up_a_changed_database_and_keeps_it_on_a_bad_one(self):
        gw = self.gateway(config(self.td, {"deny_countries": ["DE"]}, geoip="{tmp}/geo.mmdb"))
        path = self.db_copy(gw)
        gw.start()
        self.assertEqual(status_as(gw, "10.1.0.1").status, 403)       # DE
        self.db_copy(gw, "country-v2.mmdb")                            # 10.1/16 is IT now
        gw.reload()
        self.assertTrue(proxytest.wait_until(lambda: status_as(gw, "10.1.0.1").status == 200,
                                             timeout=5))
        # a corrupt file at a reload: the database opened before keeps serving
        self.db_copy(gw, "truncated.mmdb")
        gw.reload()
        self.assertTrue(proxytest.wait_until(lambda: "keeps serving" in error_log(gw),
                                             timeout=5))
        self.assertEqual(status_as(gw, "10.1.0.1").status, 200)
        status_as(gw, "10.2.0.1")
        self.assertTrue(proxytest.wait_until(
            lambda: any(l["client_ip"] == "10.1.0.1" and l["country"] == "IT"
                        for l in gw.access_log_lines()), timeout=5))
        self.assertTrue(os.path.exists(path))

    def test_missing_or_corrupt_database_stops_the_start_and_t(self):
        for name in (None, "truncated.mmdb"):
            with self.subTest(database=name):
                gw = self.gateway(config(self.td, geoip="{tmp}/geo.mmdb"))
                if name:
                    self.db_copy(gw, name)
                rc, out, _ = gateway.check_config(dict(gw.config, geoip={
                    "database": os.path.join(gw.tmp, "geo.mmdb")}))
                self.assertNotEqual(rc, 0)
                self.assertIn("geoip.database", out)
                self.assertIn("geo.mmdb", out)
                with self.assertRaises(gateway.GatewayError) as ctx:
                    gw.start(timeout=10)
                self.assertIn("geo.mmdb", str(ctx.exception) + gw.stderr_text())

    def test_country_rules_without_a_database_are_refused(self):
        cfg = config(self.td, {"deny_countries": ["DE"]})
        rc, out, _ = gateway.check_config(cfg)
        self.assertNotEqual(rc, 0)
        self.assertIn("geoip.database", out)


if __name__ == "__main__":
    unittest.main()
