# SPDX-License-Identifier: BSD-2-Clause
"""The scaling signal's queue (issue 7): switchyard_upstream_queue{service,
slot} counts requests waiting for a new upstream connection, from the
connect until it is up (for a TLS pool, until the handshake is done), and
falls back to 0 on every way the wait ends: connected, timed out, retried
on another instance, or the client gone. A leak would make the scaling
signal lie, so each test ends by waiting for 0.

An instance that never completes a connect is a listener whose accept
queue is full: the kernel drops further SYNs and the connect hangs.
"""
import concurrent.futures
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import admin, backends, ports, proxytest  # noqa: E402
from lib.httpc import build  # noqa: E402
from lib.promtext import parse_metrics, sample  # noqa: E402

H = "127.0.0.1"
CONNECT_TIMEOUT_MS = 3000


class HungListener:
    """A listener whose accept queue is full: connects to addr hang."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind((H, 0))
        self.lsock.listen(0)
        self.addr = "%s:%d" % (H, self.lsock.getsockname()[1])
        # backlog 0 still queues one connection: take that place
        self.filler = socket.create_connection(self.lsock.getsockname(), timeout=2)

    def close(self):
        self.filler.close()
        self.lsock.close()


def config(blue, green, green_extra=None, active="green"):
    return proxytest.config(
        workers=2,
        pools={"blue": {"instances": [{"addr": a} for a in blue]},
               "green": dict({"instances": [{"addr": a} for a in green],
                              "connect_timeout_ms": CONNECT_TIMEOUT_MS, "retries": 0},
                             **(green_extra or {}))},
        services={"app": {"blue": "blue", "green": "green", "active": active}},
        routes=[{"host": "*", "path": "/", "service": "app"}],
        admin={"listen": "%s:%d" % (H, ports.free_port())})


def get(gw, timeout=15.0):
    """One GET / on its own connection: the status."""
    return proxytest.once(gw, build("GET", "/"), timeout=timeout).status


class UpstreamQueue(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = backends.Testd([(0, "blue"), (0, "green")]).start()
        cls.addClassCleanup(cls.td.stop)

    def setUp(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(8)
        self.addCleanup(self.pool.shutdown, wait=True)

    def hung(self):
        h = HungListener()
        self.addCleanup(h.close)
        return h

    def gateway(self, cfg):
        gw = admin.start_gateway(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        return gw, admin.Admin(gw)

    def queue(self, api, slot):
        m = parse_metrics(api.get("/metrics").text)
        return sample(m, "switchyard_upstream_queue", service="app", slot=slot)

    def wait_queue(self, api, slot, want, timeout=5.0, at_least=False):
        def ok():
            got = self.queue(api, slot)
            return got >= want if at_least else got == want
        self.assertTrue(proxytest.wait_until(ok, timeout, 0.05), "queue{slot=%s} is %s, not %s%s"
                        % (slot, self.queue(api, slot), "at least " if at_least else "", want))

    def test_zero_after_normal_load(self):
        gw, api = self.gateway(config([self.td.addr(0)], [self.td.addr(1)], active="blue"))
        statuses = list(self.pool.map(lambda _: get(gw), range(200)))
        with proxytest.client(gw) as c:     # and over keep-alive, reusing upstream connections
            for _ in range(200):
                statuses.append(c.request(build("GET", "/")).status)
        self.assertEqual(set(statuses), {200})
        self.assertEqual(self.queue(api, "blue"), 0)
        self.assertEqual(self.queue(api, "green"), 0)

    def test_requests_waiting_for_a_connect_then_timed_out(self):
        h = self.hung()
        gw, api = self.gateway(config([self.td.addr(0)], [h.addr]))
        self.assertEqual(self.queue(api, "green"), 0)
        t0 = time.monotonic()
        waiting = [self.pool.submit(get, gw) for _ in range(3)]
        self.wait_queue(api, "green", 3, timeout=CONNECT_TIMEOUT_MS / 1000.0 - 0.5)
        self.assertEqual(self.queue(api, "blue"), 0)
        self.assertEqual([f.result() for f in waiting], [502] * 3)
        self.assertGreater(time.monotonic() - t0, CONNECT_TIMEOUT_MS / 1000.0 - 0.5)
        self.wait_queue(api, "green", 0, timeout=1.0)

    def test_clients_that_go_away_while_connecting(self):
        h = self.hung()
        gw, api = self.gateway(config([self.td.addr(0)], [h.addr]))
        socks = []
        for _ in range(3):
            s = proxytest.connect(gw)
            s.sendall(build("GET", "/"))
            socks.append(s)
        self.wait_queue(api, "green", 3, timeout=CONNECT_TIMEOUT_MS / 1000.0 - 0.5)
        for s in socks:
            s.close()
        # the wait ends by the connect timeout at the latest
        self.wait_queue(api, "green", 0, timeout=CONNECT_TIMEOUT_MS / 1000.0 + 2.0)

    def test_retried_on_another_instance(self):
        h = self.hung()
        gw, api = self.gateway(config([self.td.addr(0)], [h.addr, self.td.addr(1)],
                                      green_extra={"retries": 1, "balance": "round_robin"}))
        waiting = [self.pool.submit(get, gw) for _ in range(6)]
        self.wait_queue(api, "green", 1, timeout=CONNECT_TIMEOUT_MS / 1000.0 - 0.5, at_least=True)
        # the ones sent to the hung instance time out there and are served by the other
        self.assertEqual([f.result() for f in waiting], [200] * 6)
        self.wait_queue(api, "green", 0, timeout=1.0)

    def test_tls_pool_counts_until_the_handshake_is_done(self):
        # accepts and reads, never answers: TCP connects, the TLS handshake never ends
        with backends.RawBackend(handler=lambda req: b"") as rb:
            gw, api = self.gateway(config([self.td.addr(0)], [rb.addr],
                                          green_extra={"tls": True}))
            waiting = [self.pool.submit(get, gw) for _ in range(2)]
            rb.wait_connections(2, timeout=CONNECT_TIMEOUT_MS / 1000.0 - 0.5)
            self.wait_queue(api, "green", 2, timeout=CONNECT_TIMEOUT_MS / 1000.0 - 0.5)
            self.assertEqual([f.result() for f in waiting], [502] * 2)
            self.wait_queue(api, "green", 0, timeout=1.0)


if __name__ == "__main__":
    unittest.main()
