# SPDX-License-Identifier: BSD-2-Clause
"""Raw-socket HTTP/1.1 client for tests that need byte-exact requests.

request() sends bytes as given (smuggling, malformed heads) and frames the
response itself (Content-Length, chunked, close-delimited, bodiless statuses).
Client keeps one socket for several requests (keep-alive, pipelining).
get() is a plain http.client GET for the simple cases.
"""
import http.client
import select
import socket


class ProtocolError(Exception):
    """The peer sent something that is not an HTTP/1.x response."""


class Response:
    """One response: status (int), reason, version ("HTTP/1.1"), headers
    [(name, value)] as sent (str, latin-1), body (bytes, de-chunked),
    interim [(status, headers)] for 1xx answers before it, and
    close_delimited (True when the body ended with the connection)."""

    def __init__(self, status, reason, version, headers, body, interim=(), close_delimited=False):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body
        self.interim = list(interim)
        self.close_delimited = close_delimited

    def header(self, name, default=None):
        """First value of header name (case-insensitive), or default."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return default

    def header_all(self, name):
        """Every value of header name, in order."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def __repr__(self):
        return "<Response %s %s, %d body bytes>" % (self.status, self.reason, len(self.body))


def build(method="GET", path="/", headers=None, body=None, host="localhost", version="HTTP/1.1"):
    """Request bytes: request line, Host (unless headers has one or host is
    None), headers [(name, value)] or dict in order, Content-Length when body
    is given and headers set neither Content-Length nor Transfer-Encoding."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {n.lower() for n, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (n, v) for n, v in hdrs)
    return head.encode("latin-1") + b"\r\n" + (body or b"")


def chunked(body, size=8192):
    """body (bytes) in chunked transfer coding, chunks of at most size bytes."""
    out = []
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class _Reader:
    """Buffered reads from a socket; eof is set when the peer closed."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
        self.buf += data
        return bool(data)

    def until(self, delim, limit=1 << 20):
        while delim not in self.buf:
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (delim, limit))
            if not self._fill():
                return None
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("connection closed %d bytes short" % (n - len(self.buf)))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError("bad status line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("bad header line %r" % line)
        headers.append((name, value.strip(" \t")))
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _read_chunked(reader):
    out = []
    while True:
        line = reader.until(b"\r\n", limit=4096)
        if line is None:
            raise ProtocolError("connection closed inside a chunked body")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        out.append(reader.exact(size))
        if reader.exact(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
    while True:
        line = reader.until(b"\r\n", limit=65536)
        if line is None or line == b"\r\n":
            return b"".join(out)


def _read_response(reader, head_request=False):
    """One response (after any 1xx) from reader, or None if closed before a byte."""
    interim = []
    while True:
        head = reader.until(b"\r\n\r\n")
        if head is None:
            if reader.buf:
                raise ProtocolError("incomplete response head %r" % reader.buf[:200])
            return None
        version, status, reason, headers = _parse_head(head)
        if 100 <= status < 200 and status != 101:
            interim.append((status, headers))
            continue
        break
    resp = Response(status, reason, version, headers, b"", interim)
    te = (resp.header("Transfer-Encoding") or "").lower()
    cl = resp.header("Content-Length")
    if head_request or status in (101, 204, 304):
        pass
    elif "chunked" in te:
        resp.body = _read_chunked(reader)
    elif cl is not None:
        resp.body = reader.exact(int(cl))
    else:
        resp.body = reader.rest()
        resp.close_delimited = True
    return resp


def _peer_closed(sock, reader, wait):
    """True when the peer closes (EOF or reset) within wait seconds."""
    if reader.eof:
        return True
    if not select.select([sock], [], [], wait)[0]:
        return False
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except ConnectionResetError:
        return True
    # extra bytes mean "not closed (yet)"; they stay in the socket
    return not data


class Client:
    """One connection for several requests: keep-alive and pipelining.

        with Client(host, port) as c:
            r1 = c.request(build("GET", "/"))
            c.send(build("GET", "/a") + build("GET", "/b"))   # pipelined
            ra, rb = c.read_response(), c.read_response()
    """

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = _Reader(self.sock)

    def send(self, raw):
        """Send raw (bytes or str) as is."""
        self.sock.sendall(raw.encode("latin-1") if isinstance(raw, str) else raw)

    def read_response(self, head_request=False):
        """The next Response, or None when the peer closed before a byte."""
        return _read_response(self.reader, head_request)

    def request(self, raw, head_request=None):
        """send(raw) then read_response(); HEAD is detected from raw."""
        if head_request is None:
            head_request = (raw if isinstance(raw, bytes) else raw.encode()).startswith(b"HEAD ")
        self.send(raw)
        return self.read_response(head_request)

    def closed(self, wait=0.2):
        """True when the peer closed the connection (within wait seconds)."""
        return _peer_closed(self.sock, self.reader, wait)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(host, port, raw, timeout=5.0, close_wait=0.2):
    """Send raw bytes on a new connection and read one response.

    Returns (status, headers, body, closed): status is None (headers [], body
    b"") when the peer closed or reset without a response; closed tells
    whether the peer closed the connection after the response, waiting up to
    close_wait seconds for it (up to timeout when the response said
    Connection: close). Raises ProtocolError for a malformed response.
    """
    with Client(host, port, timeout) as c:
        try:
            resp = c.request(raw)
        except ConnectionResetError:
            return None, [], b"", True
        if resp is None:
            return None, [], b"", True
        conn = (resp.header("Connection") or "").lower()
        wait = timeout if "close" in conn else close_wait
        return resp.status, resp.headers, resp.body, resp.close_delimited or c.closed(wait)


def get(url, headers=None, timeout=5.0, method="GET", body=None):
    """(status, headers [(name, value)], body) of a request through
    http.client, without raising for 4xx/5xx. url: http://host:port/path."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()
