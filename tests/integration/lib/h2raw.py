# SPDX-License-Identifier: BSD-2-Clause
"""A frame-level HTTP/2 client over TLS for tests (issue 12), built on
Debian's python3-h2 pieces (hpack, hyperframe) without h2's state machine,
so that a test can send exactly the frames it means, hostile ones too.

    c = h2raw.Client(port)                      # TLS, ALPN h2, preface, SETTINGS
    sid = c.request("GET", "/", authority="localhost")
    r = c.response(sid)                         # r.status, r.headers, r.body, r.reset
    sid = c.request("PUT", "/up", end_stream=False)
    c.send_body(sid, b"data", end_stream=False)
    c.send_trailers(sid, [("x-sum", "1")])      # HEADERS after DATA, END_STREAM
    c.send(h2raw.rst(sid, h2raw.CANCEL))        # any frame, as built
    code = c.goaway_code()                      # the GOAWAY's error code, None when closed

Nothing is validated on the way out: header names go as given (upper case,
pseudo-fields twice, connection-specific ones). Incoming frames are kept in
order per stream; SETTINGS are acknowledged; incoming DATA is given back to
the connection's window, and to a stream's only while that stream is read
(hold(sid) stops that: a slow reader). The modules are imported from the
running python's path or, failing that, from Debian's dist-packages: the
tests may run under another python3 than /usr/bin/python3.
"""
import socket
import ssl
import sys
import time
import zlib

try:
    import hpack
    import hyperframe.frame as hf
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")   # python3-h2, python3-hpack, ...
    try:
        import hpack
        import hyperframe.frame as hf
    except ImportError:
        hpack = hf = None

AVAILABLE = hf is not None

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9113 7: error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x7, 0x8, 0x9, 0xb


class Response:
    """status (int or None), headers [(name, value)] as str, body bytes
    (none kept after discard(sid)), received and crc32 (of every body byte),
    trailers [(name, value)] (a HEADERS frame after the final head), reset
    (the RST_STREAM code or None), ended (END_STREAM seen), interim [1xx
    statuses]."""

    def __init__(self):
        self.status, self.headers, self.body = None, [], b""
        self.reset, self.ended, self.interim = None, False, []
        self.trailers = None
        self.received, self.crc32 = 0, 0    # body bytes and their zlib.crc32, kept or not

    def header(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def __repr__(self):
        return "<Response %s reset=%s ended=%s %d bytes>" % (self.status, self.reset, self.ended,
                                                             len(self.body))


def rst(sid, code):
    f = hf.RstStreamFrame(sid)
    f.error_code = code
    return f


class Client:
    """One HTTP/2 connection. settings: our SETTINGS ({id: value})."""

    def __init__(self, port, host="127.0.0.1", server_name="localhost", timeout=10.0,
                 settings=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
        if self.sock.selected_alpn_protocol() != "h2":
            raise RuntimeError("ALPN chose %r" % self.sock.selected_alpn_protocol())
        self.timeout = timeout
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.buf = b""
        self.streams = {}           # sid -> Response
        self.held = set()           # streams whose window is not given back
        self.discarded = set()      # streams whose body is counted, not kept
        self.server_settings = {}
        self.goaway = None          # (last_stream_id, error_code)
        self.closed = False
        self.next_sid = 1
        self.conn_window = 65535    # what we may send (RFC 9113 6.9)
        self.windows = {}           # sid -> what we may send on it
        f = hf.SettingsFrame(0)
        f.settings = dict(settings or {})
        self.sock.sendall(PREFACE + f.serialize())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- out ----------------------------------------------------------------

    def send(self, *frames):
        """Frames (hyperframe objects) or raw bytes, in one write."""
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        self.sock.sendall(data)

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def headers_frame(self, sid, fields, end_stream=True, end_headers=True):
        """A HEADERS frame of fields [(name, value)] (str or bytes, sent as given)."""
        f = hf.HeadersFrame(sid)
        f.data = self.encode(fields)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def encode(self, fields):
        return self.enc.encode([(n.encode() if isinstance(n, str) else n,
                                 v.encode() if isinstance(v, str) else v) for n, v in fields])

    def header_frames(self, sid, fields, end_stream=True):
        """HEADERS, then CONTINUATION frames when the block passes 16 KiB."""
        block = self.encode(fields)
        f = hf.HeadersFrame(sid)
        f.data = block[:16384]
        if end_stream:
            f.flags.add("END_STREAM")
        frames = [f]
        for at in range(16384, len(block), 16384):
            frames.append(hf.ContinuationFrame(sid))
            frames[-1].data = block[at:at + 16384]
        frames[-1].flags.add("END_HEADERS")
        return frames

    def send_trailers(self, sid, fields):
        """A HEADERS frame of trailer fields [(name, value)] that ends stream sid."""
        self.send(*self.header_frames(sid, list(fields), end_stream=True))

    def request(self, method, path, authority="localhost", fields=(), body=None,
                end_stream=None, pseudo=None):
        """Sends a request; returns its stream id. pseudo replaces the
        pseudo-header fields; body (bytes) goes in DATA frames of 16 KiB."""
        sid = self.new_sid()
        if pseudo is None:
            pseudo = [(":method", method), (":scheme", "https"), (":path", path),
                      (":authority", authority)]
        if end_stream is None:
            end_stream = body is None
        self.streams[sid] = Response()
        self.send(*self.header_frames(sid, list(pseudo) + list(fields), end_stream=end_stream))
        if body is not None:
            self.send_body(sid, body, end_stream=True)
        return sid

    def send_body(self, sid, body, end_stream=True, timeout=None):
        """body in DATA frames of at most 16 KiB, within the server's flow
        control windows (waiting for its WINDOW_UPDATEs)."""
        self.pump(lambda: bool(self.server_settings), timeout)
        at = 0
        while True:
            window = lambda: min(self.conn_window, self._window(sid))
            if at < len(body) and not self.pump(lambda: window() > 0, timeout):
                raise TimeoutError("no window to send on stream %d" % sid)
            n = min(len(body) - at, 16384, window())
            f = hf.DataFrame(sid)
            f.data = body[at:at + n]
            at += n
            if end_stream and at >= len(body):
                f.flags.add("END_STREAM")
            self.conn_window -= n
            self.windows[sid] = self._window(sid) - n
            self.send(f)
            if at >= len(body):
                return

    def _window(self, sid):
        if sid not in self.windows:
            self.windows[sid] = self.server_settings.get(hf.SettingsFrame.INITIAL_WINDOW_SIZE,
                                                         65535)
        return self.windows[sid]

    def window_update(self, sid, n):
        f = hf.WindowUpdateFrame(sid)
        f.window_increment = n
        self.send(f)

    def hold(self, sid):
        """Stop giving stream sid's window back (a reader that stopped, or
        one that paces its own WINDOW_UPDATEs with window_update)."""
        self.held.add(sid)

    def discard(self, sid):
        """Count stream sid's body (received, crc32) without keeping it."""
        self.discarded.add(sid)

    # ---- in -----------------------------------------------------------------

    def _read_frame(self, deadline):
        while True:
            if len(self.buf) >= 9:
                f, length = hf.Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no HTTP/2 frame in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.buf += data

    def _on_frame(self, f):
        if isinstance(f, hf.SettingsFrame):
            if "ACK" not in f.flags:
                self.server_settings.update(f.settings)
                ack = hf.SettingsFrame(0)
                ack.flags.add("ACK")
                self.send(ack)
            return
        if isinstance(f, hf.GoAwayFrame):
            self.goaway = (f.last_stream_id, f.error_code)
            return
        if isinstance(f, hf.WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            else:
                self.windows[f.stream_id] = self._window(f.stream_id) + f.window_increment
            return
        if isinstance(f, hf.PingFrame):
            if "ACK" not in f.flags:
                pong = hf.PingFrame(0)
                pong.opaque_data = f.opaque_data
                pong.flags.add("ACK")
                self.send(pong)
            return
        r = self.streams.setdefault(f.stream_id, Response()) if f.stream_id else None
        if isinstance(f, (hf.HeadersFrame, hf.ContinuationFrame)):
            fields = [(n.decode(), v.decode()) for n, v in self.dec.decode(f.data, raw=True)]
            status = dict(fields).get(":status")
            if status is not None and int(status) < 200:
                r.interim.append(int(status))
            elif status is not None:
                r.status = int(status)
                r.headers = [(n, v) for n, v in fields if not n.startswith(":")]
            elif r.status is not None:
                r.trailers = fields
        elif isinstance(f, hf.DataFrame):
            if f.stream_id not in self.discarded:
                r.body += f.data
            r.received += len(f.data)
            r.crc32 = zlib.crc32(f.data, r.crc32)
            n = f.flow_controlled_length
            if n:
                self.window_update(0, n)
                if f.stream_id not in self.held and "END_STREAM" not in f.flags:
                    self.window_update(f.stream_id, n)
        elif isinstance(f, hf.RstStreamFrame):
            r.reset = f.error_code
        if r is not None and "END_STREAM" in getattr(f, "flags", ()):
            r.ended = True

    def pump(self, until, timeout=None):
        """Reads frames until until() is true; False when the connection
        closed (or the time ran out) first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not until():
            try:
                f = self._read_frame(deadline)
            except TimeoutError:
                return False
            if f is None:
                return until()
            self._on_frame(f)
        return True

    def response(self, sid, timeout=None):
        """Stream sid once it ended or was reset (or the connection closed)."""
        r = self.streams.setdefault(sid, Response())
        self.pump(lambda: r.ended or r.reset is not None or self.goaway is not None, timeout)
        if not (r.ended or r.reset is not None):
            self.pump(lambda: r.ended or r.reset is not None, 1.0)
        return r

    def goaway_code(self, timeout=None):
        """The error code of the GOAWAY that came, or None when the
        connection closed (or the time ran out) without one."""
        self.pump(lambda: self.goaway is not None or self.closed, timeout)
        return self.goaway[1] if self.goaway else None

    def wait_closed(self, timeout=None):
        """True once the server closed the connection."""
        self.pump(lambda: self.closed, timeout)
        return self.closed
