# SPDX-License-Identifier: BSD-2-Clause
"""Global rate limits through Redis (issue 9, part 1): real gateways, a real
redis-server on a free loopback port (lib/redisd.py), testd behind, real
clients posing as addresses through a trusted proxy (X-Forwarded-For).

Two gateways share one budget per client; a limited request gets the same
429, headers and security event as a local limit; one EVALSHA per request.
Redis killed under load: on_failure allow lets everything through, deny
answers 429 naming the outage, the outage and its end are logged once each,
redis_up goes 1 -> 0 -> 1 and limits apply again without a restart. A Redis
that is not there at start (closed port, wrong password) does not stop the
gateway. A client that closes while Redis hangs costs nothing (run this
file under SY_GATEWAY_WRAPPER="valgrind ..." too: every gateway must stop
cleanly). Without "redis" nothing of this runs.
"""
import copy
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, gateway, ports, proxytest, redisd  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

SLOW = bool(gateway._wrapper())     # under valgrind everything takes longer
RECOVER_S = 15.0 if not SLOW else 60.0


def config(td, url, on_failure="allow", workers=1, prefix="t:", **limit):
    """One limited route "/" (store redis, per client_ip) and a free one "/free"."""
    limit = dict({"key": "client_ip", "rate": 50, "per_ms": 1000, "burst": 10,
                  "store": "redis"}, **limit)
    return proxytest.config(
        [td.addr(0)], workers=workers,
        routes=[{"host": "*", "path": "/", "service": "svc", "rate_limit": "per-ip"},
                {"host": "*", "path": "/free", "service": "svc"}],
        rate_limits={"per-ip": limit},
        trusted_proxies=["127.0.0.1/32"],
        redis={"url": url, "key_prefix": prefix, "on_failure": on_failure},
        admin={"listen": "127.0.0.1:%d" % ports.free_port()})


def as_client(ip, path="/"):
    return build("GET", path, headers=[("X-Forwarded-For", ip)])


def metric(gw, name):
    """The value of family name's one unlabelled sample, or None without one."""
    fams = parse_metrics(admin.Admin(gw).get("/metrics").text)
    samples = fams.get(name, {}).get("samples", [])
    return samples[0][1] if samples else None


def redis_lines(gw, *words):
    return gw.error_log_lines("redis", *words)


class Load(threading.Thread):
    """One client hammering the gateway on a keep-alive connection; each
    answer recorded as (time sent, status), a broken exchange as status 0."""

    def __init__(self, gw, ip):
        super().__init__(daemon=True)
        self.gw, self.ip = gw, ip
        self.results = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                with proxytest.client(self.gw, timeout=10) as c:
                    while not self.stopping.is_set():
                        sent = time.monotonic()
                        r = c.request(as_client(self.ip))
                        self.results.append((sent, r.status if r else 0))
                        if r is None:
                            break
                        time.sleep(0.002)
            except OSError:
                self.results.append((time.monotonic(), 0))

    def since(self, t):
        return [s for sent, s in self.results if sent >= t]

    def stop(self):
        self.stopping.set()
        self.join(30)


class FleetRateLimit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not redisd.available():
            raise unittest.SkipTest("redis-server is not installed (configure --install-deps)")
        cls.td = backends.Testd([0], threads=2).start()
        cls.addClassCleanup(cls.td.stop)

    def redis(self, **kwargs):
        r = redisd.RedisServer(**kwargs)
        self.addCleanup(r.cleanup)
        return r.start()

    def gateway(self, cfg, wait_up=True):
        gw = gateway.Gateway(cfg)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        self.addCleanup(self.assert_clean_exit, gw)
        gw.wait_admin()
        if wait_up:
            self.wait_metric(gw, "switchyard_redis_up", 1)
            self.warm(gw)
        return gw

    def warm(self, gw):
        """A few limited requests from throwaway clients on several
        connections, so that every worker's connection has loaded the script
        (under valgrind a first call can take longer than the timeout)."""
        for i in range(8):
            with proxytest.client(gw, timeout=30) as c:
                for _ in range(2):
                    c.request(as_client("192.0.2.%d" % i))

    def assert_clean_exit(self, gw):
        """A graceful stop exits 0 (under valgrind --error-exitcode=99: no
        memory error and no definite leak either)."""
        if gw.running():
            self.assertEqual(gw.stop(), 0, gw.stderr_text()[-3000:])

    def wait_metric(self, gw, name, value, timeout=RECOVER_S):
        got = proxytest.wait_until(lambda: metric(gw, name) == value, timeout, 0.05)
        self.assertTrue(got, "%s never became %s (now %s)\n%s" % (
            name, value, metric(gw, name), gw.error_log_text()[-2000:]))

    def assert_budget(self, allowed, span, rate=50, burst=10):
        # as test_ratelimit.py: burst + 1 at once, then one every 1/rate s, +-2
        low, high = (burst + 1 + rate * t for t in span)
        self.assertTrue(low - 2 <= allowed <= high + 2,
                        "allowed %d, budget %.1f-%.1f for %.3f-%.3f s" % (
                            allowed, low, high, span[0], span[1]))

    def statuses(self, gw, ip, n, path="/"):
        with proxytest.client(gw) as c:
            return [c.request(as_client(ip, path)).status for _ in range(n)]

    # ---- one budget for the fleet ----

    def test_two_gateways_share_one_budget(self):
        r = self.redis()
        gws = [self.gateway(config(self.td, r.url(), workers=w)) for w in (1, 2)]
        seen = ([], [])
        with proxytest.client(gws[0]) as a, proxytest.client(gws[1]) as b:
            for i in range(600):
                sent = time.monotonic()
                resp = (a, b)[i % 2].request(as_client("10.1.0.1"))
                got = time.monotonic()
                if i == 0:
                    first_sent, first_got = sent, got
                seen[i % 2].append(resp.status)
        span = (max(0.0, sent - first_got), got - first_sent)
        statuses = seen[0] + seen[1]
        self.assertEqual(set(statuses), {200, 429})
        # once, not twice: two local budgets would allow 2 x (11 + 50 t)
        self.assert_budget(statuses.count(200), span)
        # each gateway allowed some and refused some: neither kept a budget of its own
        for s in seen:
            self.assertTrue(s.count(200) > 0 and s.count(429) > 0, s)

    def test_headers_security_log_and_one_command_per_request(self):
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), burst=2, rate=1, per_ms=10000))
        before = r.calls("evalsha")
        with proxytest.client(gw) as c:
            seen = [c.request(as_client("10.2.0.9")) for _ in range(4)]
            free = [c.request(as_client("10.2.0.9", "/free")).status for _ in range(5)]
        self.assertEqual([x.status for x in seen], [200, 200, 200, 429])
        self.assertEqual(free, [200] * 5)
        # one EVALSHA per limited request, none for a route without a limit
        self.assertEqual(r.calls("evalsha") - before, 4)
        self.assertEqual([x.header("RateLimit-Limit") for x in seen], ["3"] * 4)
        self.assertEqual([x.header("RateLimit-Remaining") for x in seen], ["2", "1", "0", "0"])
        self.assertTrue(9 <= int(seen[3].header("Retry-After")) <= 10)
        body = json.loads(seen[3].body)
        self.assertIn("per-ip", body["reason"])
        events = [e for e in gw.log_lines("security", 1) if e["event"] == "rate_limited"]
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["limit"], events[0]["key"], events[0]["client_ip"]),
                         ("per-ip", "10.2.0.9", "10.2.0.9"))
        # the key lives in Redis under PREFIX rl: LIMIT : KEY and expires by itself
        ttl = r.command("PTTL", "t:rl:per-ip:10.2.0.9")
        self.assertTrue(0 < ttl <= 30000, ttl)

    def test_script_flushed_is_loaded_again(self):
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), "deny", burst=0, rate=1, per_ms=60000))
        self.assertEqual(self.statuses(gw, "10.3.0.1", 2), [200, 429])
        loads = r.calls("script|load") or r.calls("script")
        r.command("SCRIPT", "FLUSH")
        # NOSCRIPT: loaded again and retried, not decided by on_failure (deny,
        # which would answer 429 first). Under valgrind a first retry may
        # outlast the timeout: then the next client shows it.
        fresh = iter(range(2, 250))
        self.assertTrue(proxytest.wait_until(
            lambda: self.statuses(gw, "10.3.0.%d" % next(fresh), 2) == [200, 429],
            RECOVER_S if SLOW else 0.001))
        self.assertGreater(r.calls("script|load") or r.calls("script"), loads)
        self.assertEqual(redis_lines(gw, "unreachable"), [])

    # ---- Redis goes away and comes back ----

    def kill_under_load(self, on_failure):
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), on_failure, workers=2, burst=0, rate=5))
        load = Load(gw, "10.4.0.1")
        load.start()
        self.addCleanup(load.stop)
        proxytest.wait_until(lambda: 429 in load.since(0), 10)
        self.assertIn(429, load.since(0), "the limit applies before the outage")
        r.kill()
        killed = time.monotonic()
        self.wait_metric(gw, "switchyard_redis_up", 0)
        proxytest.wait_until(lambda: len(load.since(killed + 0.3)) >= 30, 20)
        during = load.since(killed + 0.3)
        r.start()
        self.wait_metric(gw, "switchyard_redis_up", 1)
        # limits apply again within seconds, and the gateway never restarted
        up = time.monotonic()
        proxytest.wait_until(lambda: len(load.since(up)) >= 50, 20)
        load.stop()
        after = load.since(up)
        span = load.results[-1][0] - up
        self.assertIn(429, after)
        self.assertLessEqual(after.count(200), 1 + 5 * span + 2, (span, after))
        # no exchange broke, no answer but the two the limit gives
        self.assertNotIn(0, [s for _, s in load.results], "an exchange broke")
        self.assertEqual({s for _, s in load.results} - {200, 429}, set())
        # one line for the outage, one for its end, naming the mode in force
        self.assertTrue(proxytest.wait_until(lambda: redis_lines(gw, "reachable again"), 5),
                        gw.error_log_text())
        down = redis_lines(gw, "lost") + redis_lines(gw, "unreachable")
        self.assertEqual(len(down), 1, gw.error_log_text())
        self.assertIn("on_failure %s" % on_failure, down[0])
        self.assertEqual(len(redis_lines(gw, "reachable again")), 1, gw.error_log_text())
        self.assertGreater(metric(gw, "switchyard_redis_errors_total"), 0)
        return gw, during

    def test_redis_killed_under_load_allow(self):
        gw, during = self.kill_under_load("allow")
        # fail open: nothing is refused while Redis is gone
        self.assertEqual(set(during), {200}, during)

    def test_redis_killed_under_load_deny(self):
        gw, during = self.kill_under_load("deny")
        # fail closed: everything is refused while Redis is gone
        self.assertEqual(set(during), {429}, during)

    def test_deny_names_the_outage(self):
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), "deny"))
        r.kill()
        self.wait_metric(gw, "switchyard_redis_up", 0)
        with proxytest.client(gw) as c:
            resp = c.request(as_client("10.5.0.1"))
            free = c.request(as_client("10.5.0.1", "/free"))
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.header("Retry-After"), "1")
        self.assertIn("Redis", json.loads(resp.body)["reason"])
        self.assertIn("unreachable", json.loads(resp.body)["reason"])
        self.assertEqual(free.status, 200, "a route without a limit does not need Redis")

    def test_redis_hangs_and_clients_leave(self):
        # SIGSTOP: connections stay open and nothing answers. Requests wait
        # SY_REDIS_TIMEOUT_MS, then on_failure decides; clients that close
        # meanwhile leave nothing behind (valgrind: no leak, no bad access).
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), "allow", workers=2))
        r.pause()
        self.leave_while_waiting(gw, 40)
        # a request that stays gets its answer once the timeout decided (allow)
        t0 = time.monotonic()
        self.assertEqual(self.statuses(gw, "10.6.1.1", 2), [200, 200])
        self.assertLess(time.monotonic() - t0, 5.0)
        # stuck for SY_REDIS_STALL_MS: the connections are dropped (one line), then
        # requests are decided at once
        self.wait_metric(gw, "switchyard_redis_up", 0)
        r.resume()
        self.wait_metric(gw, "switchyard_redis_up", 1)
        self.warm(gw)
        self.assertIn(429, self.statuses(gw, "10.6.2.1", 30))
        self.assertTrue(gw.running())

    def leave_while_waiting(self, gw, n):
        socks = []
        for i in range(n):
            s = proxytest.connect(gw)
            s.sendall(as_client("10.6.0.%d" % (i % 4)))
            socks.append(s)
        time.sleep(0.02)
        for s in socks:
            s.close()

    def test_stop_while_requests_wait_on_redis(self):
        # A fast stop with requests waiting on a Redis that hangs: each
        # request is abandoned (its call cancelled), then the connection
        # freed; under valgrind, no leak and no access to a freed request.
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), "deny", workers=2))
        r.pause()
        socks = [proxytest.connect(gw) for _ in range(20)]
        for s in socks:
            s.sendall(as_client("10.6.3.1"))
        time.sleep(0.03)
        rc = gw.stop(graceful=False)
        for s in socks:
            s.close()
        self.assertEqual(rc, 0, gw.stderr_text()[-3000:])

    def test_reload_without_redis_answers_the_requests_waiting_on_it(self):
        # Redis hangs while requests wait on it, and a reload removes "redis":
        # each worker closes its connection, and every request that waited on
        # it is decided by on_failure (deny: 429) there and then, not left
        # waiting for an answer that cannot come. The clients then leave and
        # the gateway stops gracefully (under valgrind or ASan: no access to
        # a freed call when a request is abandoned).
        r = self.redis()
        cfg = config(self.td, r.url(), "deny", workers=2)
        gw = self.gateway(cfg)
        cfg2 = copy.deepcopy(cfg)
        del cfg2["redis"]
        cfg2["rate_limits"]["per-ip"]["store"] = "local"
        gw.write_config(cfg2)
        socks, stop = [], threading.Event()

        def arrive():
            # a new client every 5 ms: some always wait on Redis (100 ms each)
            # when a worker takes the new configuration
            for i in range(2000):
                if stop.is_set():
                    return
                s = proxytest.connect(gw)
                s.sendall(as_client("198.51.%d.%d" % (i // 250, i % 250)))
                socks.append((s, time.monotonic()))
                time.sleep(0.005)
        sender = threading.Thread(target=arrive, daemon=True)
        try:
            r.pause()
            sender.start()
            time.sleep(0.03)
            gw.reload()
            # in force once a fresh client gets the local limit's answer (deny would be 429)
            fresh = iter(range(1, 250))

            def local():
                try:
                    return proxytest.once(gw, as_client("203.0.113.%d" % next(fresh)),
                                          timeout=1).status == 200
                except OSError:
                    return False
            self.assertTrue(proxytest.wait_until(local, 10 + (30 if SLOW else 0)))
            time.sleep(0.5)
        finally:
            stop.set()
            sender.join(10)
        unanswered, statuses = [], []
        for s, sent in socks:
            s.settimeout(max(0.1, sent + (10.0 if SLOW else 3.0) - time.monotonic()))
            try:
                head = s.recv(100)
                statuses.append(int(head.split()[1]) if head else 0)
            except socket.timeout:
                unanswered.append(sent)
            s.close()
        self.assertEqual(unanswered, [], "%d of %d requests never answered\n%s" % (
            len(unanswered), len(socks), gw.error_log_text()[-2000:]))
        self.assertEqual(set(statuses) - {200, 429}, set(), statuses)
        r.resume()
        self.assertEqual(gw.stop(), 0, gw.stderr_text()[-3000:])

    def test_script_load_refused_is_an_outage(self):
        # A user that may not SCRIPT LOAD: no rate-limit decision can come
        # from Redis. That is an outage: one line naming it, redis_up 0,
        # on_failure decides at once (deny: 429), and it ends (one line) when
        # the ACL lets the gateway load its scripts.
        r = self.redis()
        r.command("ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all", "-script|load")
        cfg = config(self.td, "redis://gw:pw@127.0.0.1:%d/0" % r.port, "deny", workers=2,
                     burst=0, rate=1, per_ms=60000)
        gw = self.gateway(cfg, wait_up=False)
        self.wait_metric(gw, "switchyard_redis_up", 0)
        t0 = time.monotonic()
        with proxytest.client(gw, timeout=10) as c:
            seen = [c.request(as_client("192.0.2.%d" % (i % 250))) for i in range(200)]
        self.assertEqual({x.status for x in seen}, {429})
        self.assertIn("unreachable", json.loads(seen[-1].body)["reason"])
        self.assertLess(time.monotonic() - t0, 30 if SLOW else 5, "decided at once")
        lines = [l for l in gw.error_log_text().splitlines() if "SCRIPT LOAD" in l]
        self.assertEqual(len(lines), 1, gw.error_log_text()[-3000:])
        self.assertIn("NOPERM", lines[0])
        self.assertIn("on_failure deny", lines[0])
        self.assertEqual(metric(gw, "switchyard_redis_up"), 0)
        r.command("ACL", "SETUSER", "gw", "+script|load")
        self.wait_metric(gw, "switchyard_redis_up", 1)
        self.warm(gw)
        self.assertEqual(self.statuses(gw, "10.11.0.1", 2), [200, 429])
        self.assertEqual(len(redis_lines(gw, "reachable again")), 1, gw.error_log_text())
        self.assertEqual(len([l for l in gw.error_log_text().splitlines() if "SCRIPT LOAD" in l]), 1)

    def test_error_replies_are_logged_once_per_kind_and_interval(self):
        # Redis out of memory answers every decision with an OOM error: each
        # request is decided by on_failure, the error counter counts them all,
        # redis_up stays 1 (Redis answers), and the log gets one line per
        # kind of error per 10 s, the next one saying how many it left out.
        r = self.redis()
        gw = self.gateway(config(self.td, r.url(), "allow"))
        errors = metric(gw, "switchyard_redis_errors_total")
        r.command("CONFIG", "SET", "maxmemory", "1")
        self.addCleanup(lambda: r.running() and r.command("CONFIG", "SET", "maxmemory", "0"))
        with proxytest.client(gw, timeout=10) as c:
            seen = [c.request(as_client("192.0.2.%d" % (i % 250))).status for i in range(200)]
        self.assertEqual(set(seen), {200})
        self.assertGreaterEqual(metric(gw, "switchyard_redis_errors_total") - errors, 200)
        self.assertEqual(metric(gw, "switchyard_redis_up"), 1)
        self.assertTrue(proxytest.wait_until(lambda: redis_lines(gw, "OOM"), 5), gw.error_log_text())
        first = redis_lines(gw, "OOM")
        self.assertEqual(len(first), 1, gw.error_log_text()[-3000:])
        self.assertIn("error", first[0])
        # ten seconds on, the next one is written, with the count of those left out
        time.sleep(10.2)
        self.statuses(gw, "192.0.2.251", 1)
        self.assertTrue(proxytest.wait_until(lambda: len(redis_lines(gw, "OOM")) == 2, 5),
                        gw.error_log_text()[-3000:])
        self.assertRegex(redis_lines(gw, "OOM")[1], r"\(and \d+ more")

    # ---- a Redis that is not there, or not ours, at start ----

    def test_closed_port_at_start_then_redis_comes(self):
        port = ports.free_port()
        gw = self.gateway(config(self.td, "redis://127.0.0.1:%d/0" % port, "allow",
                                 burst=0, rate=1, per_ms=60000), wait_up=False)
        self.assertEqual(metric(gw, "switchyard_redis_up"), 0)
        # it serves, per on_failure allow
        self.assertEqual(self.statuses(gw, "10.7.0.1", 3), [200, 200, 200])
        proxytest.wait_until(lambda: redis_lines(gw, "unreachable"), 5)
        errors = metric(gw, "switchyard_redis_errors_total")
        # it keeps retrying (and says so once)
        self.assertTrue(proxytest.wait_until(
            lambda: metric(gw, "switchyard_redis_errors_total") > errors + 1, 10))
        lines = redis_lines(gw, "unreachable")
        self.assertEqual(len(lines), 1, gw.error_log_text())
        self.assertIn("127.0.0.1:%d" % port, lines[0])
        self.assertIn("Connection refused", lines[0])
        r = redisd.RedisServer(port=port)
        self.addCleanup(r.cleanup)
        r.start()
        self.wait_metric(gw, "switchyard_redis_up", 1)
        self.warm(gw)
        self.assertEqual(self.statuses(gw, "10.7.0.2", 2), [200, 429])
        self.assertEqual(len(redis_lines(gw, "reachable again")), 1)

    def test_wrong_password_then_reload_with_the_right_one(self):
        r = self.redis(password="right-one")
        cfg = config(self.td, r.url(password="wrong-one"), "deny", burst=0, rate=1,
                     per_ms=60000)
        gw = self.gateway(cfg, wait_up=False)
        self.assertTrue(proxytest.wait_until(lambda: redis_lines(gw, "unreachable"), 5),
                        gw.error_log_text())
        line = redis_lines(gw, "unreachable")[0]
        self.assertIn("WRONGPASS", line)
        self.assertNotIn("wrong-one", gw.error_log_text())
        resp = proxytest.once(gw, as_client("10.8.0.1"))
        self.assertEqual(resp.status, 429)
        self.assertIn("Redis", json.loads(resp.body)["reason"])
        # the right password by reload: reconnects, no restart
        cfg["redis"]["url"] = r.url()
        gw.write_config(cfg)
        gw.reload()
        self.wait_metric(gw, "switchyard_redis_up", 1)
        self.warm(gw)
        self.assertEqual(self.statuses(gw, "10.8.0.2", 2), [200, 429])
        self.assertEqual(len(redis_lines(gw, "unreachable")), 1)

    def test_reload_keeps_or_replaces_the_connections(self):
        r = self.redis()
        cfg = config(self.td, r.url(db=0), workers=2)
        gw = self.gateway(cfg)

        def clients():
            text = r.command("CLIENT", "LIST").decode()
            return sorted(l.split()[0] for l in text.splitlines() if "cmd=client" not in l)

        def reloads():
            fams = parse_metrics(admin.Admin(gw).get("/metrics").text)
            return sample(fams, "switchyard_config_reloads_total", result="success")
        before = clients()
        # one per worker, and the main thread's two of the fleet (commands, subscriber)
        self.assertEqual(len(before), 4, before)
        cfg["rate_limits"]["per-ip"]["rate"] = 40      # a change elsewhere
        gw.write_config(cfg)
        gw.reload()
        self.assertTrue(proxytest.wait_until(lambda: reloads() == 1, 10))
        time.sleep(0.3)                                 # the workers adopt it
        self.assertEqual(clients(), before, "an unchanged url keeps its connections")
        cfg["redis"]["url"] = r.url(db=3)
        gw.write_config(cfg)
        gw.reload()
        self.assertTrue(proxytest.wait_until(
            lambda: len(clients()) == 4 and not set(clients()) & set(before), 10), clients())
        # the budgets now live in db 3
        conn = r.connect()
        self.addCleanup(conn.close)
        conn.command("SELECT", "3")

        def stored():
            self.statuses(gw, "10.9.0.1", 1)
            return conn.command("EXISTS", "t:rl:per-ip:10.9.0.1") == 1
        self.assertTrue(proxytest.wait_until(stored, RECOVER_S, 0.1))
        self.assertEqual(redis_lines(gw, "unreachable") + redis_lines(gw, "lost"), [])

    # ---- configuration ----

    def test_check_names_the_json_path(self):
        for url, words in [("rediss://:secret@h:6380", ["redis.url", "rediss://", "TLS"]),
                           ("redis://:secret@h", ["redis.url", "invalid redis url"]),
                           ("unix:relative.sock", ["redis.url", "invalid redis url"])]:
            with self.subTest(url=url):
                cfg = config(self.td, url)
                rc, out, _ = gateway.check_config(cfg)
                self.assertNotEqual(rc, 0, out)
                for w in words:
                    self.assertIn(w, out)
                self.assertNotIn("secret", out)
        rc, out, _ = gateway.check_config(config(self.td, "redis://127.0.0.1:1/0"))
        self.assertEqual(rc, 0, out)     # syntax only: nothing is connected by -t

    def test_without_redis_nothing_changes(self):
        cfg = config(self.td, "unused", rate=1, per_ms=60000)
        del cfg["redis"]
        cfg["rate_limits"]["per-ip"]["store"] = "local"
        gw = self.gateway(cfg, wait_up=False)
        self.assertEqual(self.statuses(gw, "10.10.0.1", 12).count(429), 1)
        fams = parse_metrics(admin.Admin(gw).get("/metrics").text)
        # the families are there, without samples: no Redis, nothing to be down
        for name in ("switchyard_redis_up", "switchyard_redis_errors_total"):
            self.assertIn(name, fams)
            self.assertEqual(fams[name]["samples"], [])
        self.assertEqual(redis_lines(gw), [])


if __name__ == "__main__":
    unittest.main()
