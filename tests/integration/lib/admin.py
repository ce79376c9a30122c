# SPDX-License-Identifier: BSD-2-Clause
"""A small client of the admin API (docs/admin-api.md) for tests.

    api = admin.Admin(gw, token="secret-1")
    r = api.get("/api/v1/status")           # r.status, r.headers, r.json
    r = api.post("/api/v1/pools/p/instances/127.0.0.1:9001/drain")
    r = api.get("/api/v1/pools", token=None)    # no Authorization header

token: sent as "Authorization: Bearer TOKEN"; a call's token= overrides
the default (None: no header). Every call opens its own connection.

    gw = admin.start_gateway(cfg, ["secret-1"])   # writes {tmp}/admin.token
"""
import http.client
import json
import os

from . import gateway

DEFAULT = object()


def write_tokens(path, lines):
    """Writes a token file: each of lines, newline-terminated."""
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def start_gateway(cfg, tokens=None):
    """A started Gateway whose admin listener answers; when tokens is not
    None, its token file {tmp}/admin.token (cfg's admin.token_file) holds
    those lines."""
    gw = gateway.Gateway(cfg)
    if tokens is not None:
        write_tokens(os.path.join(gw.tmp, "admin.token"), tokens)
    gw.start()
    gw.wait_admin()
    return gw


class Reply:
    """status (int), headers {lower-case name: value} (the last of
    repeated ones), header_list [(name, value)], body (bytes), json (the
    parsed body when it is application/json, else None), text (str)."""

    def __init__(self, status, header_list, body):
        self.status = status
        self.header_list = header_list
        self.headers = {n.lower(): v for n, v in header_list}
        self.body = body
        self.text = body.decode("utf-8", errors="replace")
        ctype = self.headers.get("content-type", "")
        self.json = json.loads(self.text) if ctype.startswith("application/json") and body \
            else None

    def __repr__(self):
        return "<Reply %d %s>" % (self.status, self.text[:200])


class Admin:
    """Client of one gateway's admin listener. gw: a gateway.Gateway
    (its admin.listen) or a base URL "http://HOST:PORT"."""

    def __init__(self, gw, token=None, timeout=5.0):
        base = gw if isinstance(gw, str) else gw.admin_url("")
        hostport = base.split("://", 1)[1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.token = token
        self.timeout = timeout

    def request(self, method, path, body=None, token=DEFAULT, headers=None):
        """One request. body: dict/list (sent as JSON), str or bytes (sent
        as is) or None (no body). headers: extra headers (dict)."""
        token = self.token if token is DEFAULT else token
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = "Bearer %s" % token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if method == "POST" and body is None:
            hdrs.setdefault("Content-Length", "0")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = b"" if method == "HEAD" else resp.read()
            return Reply(resp.status, resp.getheaders(), data)
        finally:
            conn.close()

    def get(self, path, token=DEFAULT, headers=None):
        return self.request("GET", path, token=token, headers=headers)

    def post(self, path, body=None, token=DEFAULT, headers=None):
        return self.request("POST", path, body=body, token=token, headers=headers)

    def status(self):
        """GET /api/v1/status; asserts 200, returns the JSON."""
        return self._ok(self.get("/api/v1/status"))

    def pools(self):
        """GET /api/v1/pools as {pool: {addr: instance JSON}}; asserts 200."""
        doc = self._ok(self.get("/api/v1/pools"))
        return {p["name"]: {i["addr"]: i for i in p["instances"]} for p in doc["pools"]}

    def drain(self, pool, addr, undrain=False):
        """POST .../drain (or undrain); asserts 200, returns the JSON."""
        return self._ok(self.post("/api/v1/pools/%s/instances/%s/%s"
                                  % (pool, addr, "undrain" if undrain else "drain")))

    @staticmethod
    def _ok(reply):
        if reply.status != 200:
            raise AssertionError("admin API answered %r" % reply)
        return reply.json
