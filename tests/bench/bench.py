# SPDX-License-Identifier: BSD-2-Clause
"""Side-by-side benchmark: Switchyard, nginx and HAProxy in front of one
build/testd, same pinning (proxy on PROXY_CPU, testd and wrk on LOAD_CPU),
one worker each, access logs on. Run through tests/bench/run.sh (make bench),
which installs the tools; the method is in docs/benchmarks.md.

Scenarios: "plain" is HTTP keep-alive plus the idle-connection test; "tls"
is the same keep-alive load over https, each proxy terminating TLS with the
same EC P-256 certificate (made with the openssl CLI in the run's temporary
directory), run after the plain proxies have stopped; "canary" is Switchyard
alone, its service at canary weight 0 against CANARY_WEIGHT, both slots'
pools on the same testd, to price the split (issue 7: within 3 %);
"ratelimit" is Switchyard alone without a rate limit against one on every
request that never triggers (issue 8: within 3 %); "ratelimit_redis" (issue
9) is the same never-triggering limit with store "redis" against store
"local", with a redis-server the bench starts on LOAD_CPU: it reports Redis
commands per request (INFO commandstats around each run; target <= 1) and
the p50 latency Redis adds, under load and on one connection; "compress" (issue 13) is
Switchyard's compress route against nginx's gzip at the same level, types and
minimum length on COMPRESS_PATH with Accept-Encoding: gzip, then Switchyard on
"/" with the policy configured but not matching (a body under the minimum)
against no policy (target: within 3 %).
"h2" (issue 12) is HTTP/2 over TLS: h2load (H2_CLIENTS connections, H2_STREAMS
streams each, H2_REQUESTS requests, on LOAD_CPU) against Switchyard and nginx
(`listen ... ssl http2`) on the same certificate and backend; target: Switchyard
at or above nginx in requests/s and at or below it in CPU time per request.

Environment: RUNS (5), DURATION (10 s), CONNS (50), IDLE_CONNS (10000),
PROXY_CPU (0), LOAD_CPU (1), SWITCHYARD (build/switchyard),
NGINX_LOG_BUFFER (64k; "off" writes every line at once), BENCH_OUT
(build/bench/results.json), PROXIES (switchyard,nginx,haproxy),
SCENARIOS (plain,tls,h2,canary,ratelimit,ratelimit_redis,compress), CANARY_WEIGHT (10),
CANARY_STICKY (none; or cookie, client_ip, header:NAME), COMPRESS_PATH
(/bytes/8192?type=json), H2_CLIENTS (50), H2_STREAMS (10), H2_REQUESTS (200000).
"""
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))


def env_int(name, default):
    return int(os.environ.get(name, default))


RUNS = env_int("RUNS", 5)
DURATION = env_int("DURATION", 10)
CONNS = env_int("CONNS", 50)
IDLE_CONNS = env_int("IDLE_CONNS", 10000)
PROXY_CPU = env_int("PROXY_CPU", 0)
LOAD_CPU = env_int("LOAD_CPU", 1)
SWITCHYARD = os.environ.get("SWITCHYARD", os.path.join(ROOT, "build", "switchyard"))
TESTD = os.environ.get("TESTD", os.path.join(ROOT, "build", "testd"))
NGINX_LOG_BUFFER = os.environ.get("NGINX_LOG_BUFFER", "64k")
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "build", "bench", "results.json"))
PROXIES = os.environ.get("PROXIES", "switchyard,nginx,haproxy").split(",")
SCENARIOS = os.environ.get("SCENARIOS",
                           "plain,tls,h2,canary,ratelimit,ratelimit_redis,compress").split(",")
CANARY_WEIGHT = env_int("CANARY_WEIGHT", 10)
H2_CLIENTS = env_int("H2_CLIENTS", 50)
H2_STREAMS = env_int("H2_STREAMS", 10)
H2_REQUESTS = env_int("H2_REQUESTS", 200000)
CANARY_STICKY = os.environ.get("CANARY_STICKY", "none")
COMPRESS_PATH = os.environ.get("COMPRESS_PATH", "/bytes/8192?type=json")
# what Switchyard compresses (compress.c), for nginx's gzip_types (text/html is always on)
GZIP_TYPES = ("text/plain text/css text/xml text/javascript application/json "
              "application/javascript application/xml image/svg+xml")
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEEPALIVE_S = 120           # idle keep-alive timeout of all three: outlasts the idle test


def nofile():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def max_conns():
    """Connection cap of all three proxies: the idle test's connections plus
    room, within the open-file limit. HAProxy refuses a maxconn that it
    cannot back with two descriptors per connection."""
    return min(IDLE_CONNS + 1000, (nofile() - 50) // 2)


def idle_conns():
    """IDLE_CONNS, or fewer when the open-file limit cannot hold them."""
    return max(0, min(IDLE_CONNS, max_conns() - 100))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def client_tls():
    """A client context that takes any certificate: wrk does not verify either."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_ok(port, tls=False):
    """One GET / through the proxy (over TLS if tls); True on a 200."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        if tls:
            try:
                s = client_tls().wrap_socket(s, server_hostname="localhost")
            except OSError:
                s.close()
                raise
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def proc_tree(pid):
    """pid and all its descendants (nginx: master and workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids):
    """utime + stime of pids (all threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_times():
    """{cpu index: (busy, total)} jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]
                out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def busy_pct(before, after, cpu):
    b0, t0 = before.get(cpu, (0, 0))
    b1, t1 = after.get(cpu, (0, 0))
    return 100.0 * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


class Proxy:
    """One proxy under test: writes its configuration, starts pinned, stops.

    tls: None (plain HTTP) or a Cert, which the proxy's listener then
    terminates TLS with. label names its files: the name, plus "-tls".
    """

    name = "?"
    path = "/"                  # what wrk asks for
    headers = ()                # and the headers it sends

    def __init__(self, tmp, backend_port, tls=None):
        self.tmp = tmp
        self.backend_port = backend_port
        self.tls = tls
        self.label = self.name + ("-tls" if tls else "")
        self.scheme = "https" if tls else "http"
        self.port = free_port()
        self.proc = None
        self.error = None
        self.log = open(os.path.join(tmp, "%s.out" % self.label), "wb")

    def command(self):
        raise NotImplementedError

    def start(self):
        cmd = ["taskset", "-c", str(PROXY_CPU)] + self.command()
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_port(self.port, self.proc) or not http_ok(self.port, self.tls is not None):
            self.error = "did not start or answer 200: " + self.output()[-2000:]
            self.stop()
            return False
        return True

    def pids(self):
        return proc_tree(self.proc.pid)

    def output(self):
        with open(os.path.join(self.tmp, "%s.out" % self.label), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def version(self):
        return ""

    def counters(self):
        """What measure() reads before a run, for counted(); None: nothing."""
        return None

    def counted(self, before, res):
        """Figures of a run of its own, from counters() before it and wrk's res."""
        return {}


class Switchyard(Proxy):
    name = "switchyard"

    def canary(self):
        """The service's "canary" object; None: the configuration's default (weight 0)."""
        return None

    def command(self):
        token = os.path.join(self.tmp, "admin.token")
        with open(token, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        pool = {"instances": [{"addr": "127.0.0.1:%d" % self.backend_port}], "keepalive": 64}
        listen = {"addr": "127.0.0.1:%d" % self.port}
        if self.tls:
            listen["tls"] = {"certificates": [{"cert": self.tls.cert, "key": self.tls.key}]}
        self.admin_port = free_port()
        service = {"blue": "bench-blue", "green": "bench-green", "active": "blue"}
        if self.canary() is not None:
            service["canary"] = self.canary()
        cfg = {
            "workers": 1,
            "listen": [listen],
            "limits": {"max_connections": max_conns(), "keepalive_timeout_ms": KEEPALIVE_S * 1000},
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port, "token_file": token},
            "pools": {"bench-blue": pool, "bench-green": pool},
            "services": {"bench": service},
            "routes": [{"host": "*", "path": "/", "service": "bench"}],
            "log": {"access": os.path.join(self.tmp, "%s-access.log" % self.label),
                    "security": os.path.join(self.tmp, "%s-security.log" % self.label),
                    "error": os.path.join(self.tmp, "%s-error.log" % self.label), "level": "warn"},
            "state_file": os.path.join(self.tmp, "%s-state.json" % self.label),
        }
        self.extra(cfg)
        path = os.path.join(self.tmp, "%s.json" % self.label)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return [SWITCHYARD, "-c", path]

    def extra(self, cfg):
        """A scenario's own configuration keys."""

    def version(self):
        return run_out([SWITCHYARD, "-V"]).splitlines()[0] if os.access(SWITCHYARD, os.X_OK) else ""


class SwitchyardCanary(Switchyard):
    """The canary scenario's Switchyard: the service at canary weight
    weight with CANARY_STICKY; both slots' pools are the same testd."""

    def __init__(self, tmp, backend_port, weight):
        self.name = "switchyard-w%d" % weight
        self.weight = weight
        super().__init__(tmp, backend_port)

    def canary(self):
        return {"weight": self.weight, "sticky": CANARY_STICKY}

    def slot_requests(self):
        """{slot: requests} from its /metrics (switchyard_http_requests_total)."""
        url = "http://127.0.0.1:%d/metrics" % self.admin_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for m in re.finditer(r'^switchyard_http_requests_total\{([^}]*)\} (\S+)$', text, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("service") == "bench":
                out[labels["slot"]] = out.get(labels["slot"], 0) + float(m.group(2))
        return out


# TLS as an operator would set it: 1.2 and 1.3, a session cache and tickets
NGINX_TLS = """
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;"""

NGINX_CONF = """\
{user}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {tmp}/{label}.pid;
error_log {tmp}/{label}-error.log warn;
events {{
    worker_connections {maxconn};
}}
http {{
    log_format sy escape=json '{{"ts":"$time_iso8601","request_id":"$request_id",'
        '"client_ip":"$remote_addr","method":"$request_method","host":"$host",'
        '"path":"$uri","status":$status,"bytes_in":$request_length,'
        '"bytes_out":$bytes_sent,"duration_ms":$request_time,'
        '"upstream_ms":"$upstream_response_time","upstream":"$upstream_addr",'
        '"user_agent":"$http_user_agent","proto":"$server_protocol"}}';
    access_log {tmp}/{label}-access.log sy{log_buffer};
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    keepalive_timeout {keepalive}s;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout {keepalive}s;
    }}
    server {{
        listen 127.0.0.1:{port}{listen_ssl} backlog=4096;{server_tls}{gzip}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Request-ID $request_id;
        }}
    }}
}}
"""


class Nginx(Proxy):
    name = "nginx"

    def command(self):
        buf = "" if NGINX_LOG_BUFFER == "off" else " buffer=%s flush=1s" % NGINX_LOG_BUFFER
        tls = NGINX_TLS.format(cert=self.tls.cert, key=self.tls.key) if self.tls else ""
        conf = NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", tmp=self.tmp,
                                 label=self.label, log_buffer=buf, backend=self.backend_port,
                                 port=self.port, listen_ssl=" ssl" if self.tls else "",
                                 server_tls=tls, keepalive=KEEPALIVE_S, nofile=nofile(),
                                 maxconn=max_conns(), gzip=self.gzip())
        path = os.path.join(self.tmp, "%s.conf" % self.label)
        with open(path, "w") as f:
            f.write(conf)
        return ["nginx", "-p", self.tmp, "-c", path, "-e",
                os.path.join(self.tmp, "%s-error.log" % self.label)]

    def gzip(self):
        """The server's gzip directives (the compress scenario)."""
        return ""

    def version(self):
        return run_out(["nginx", "-v"]).strip()


HAPROXY_CFG = """\
global
    nbthread 1
    maxconn {maxconn}
    ulimit-n {nofile}
    log stdout format raw local0

defaults
    mode http
    log global
    log-format '{{"ts":"%tr","request_id":"%ID","client_ip":"%ci","method":"%HM","host":"%[capture.req.hdr(0)]","path":"%HPO","status":%ST,"bytes_in":%U,"bytes_out":%B,"duration_ms":%Ta,"upstream_ms":%Tr,"upstream":"%si:%sp","user_agent":"%[capture.req.hdr(1)]","proto":"%HV"}}'
    option http-keep-alive
    option dontlognull
    http-reuse always
    maxconn {maxconn}
    timeout connect 5s
    timeout client {keepalive}s
    timeout server 60s
    timeout http-keep-alive {keepalive}s
    timeout http-request 10s

frontend fe
    bind 127.0.0.1:{port}{bind_tls}
    http-request capture req.hdr(host) len 64
    http-request capture req.hdr(user-agent) len 128
    unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Request-ID
    option forwardfor
    http-request set-header X-Forwarded-Proto {scheme}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-response set-header X-Request-ID %[unique-id]
    default_backend be

backend be
    server app 127.0.0.1:{backend}
"""


class Haproxy(Proxy):
    name = "haproxy"

    def command(self):
        path = os.path.join(self.tmp, "%s.cfg" % self.label)
        # HAProxy reads the certificate and its key from one PEM file
        bind_tls = " ssl crt %s ssl-min-ver TLSv1.2" % self.tls.combined if self.tls else ""
        with open(path, "w") as f:
            f.write(HAPROXY_CFG.format(port=self.port, backend=self.backend_port,
                                       keepalive=KEEPALIVE_S, nofile=nofile(),
                                       maxconn=max_conns(), bind_tls=bind_tls,
                                       scheme=self.scheme))
        # "log stdout": every line is one write() to stdout, which the shell
        # wrapper sends to a file (HAProxy has no buffered file log)
        log = os.path.join(self.tmp, "%s-access.log" % self.label)
        return ["sh", "-c", 'exec haproxy -db -f "$0" > "$1"', path, log]

    def version(self):
        return run_out(["haproxy", "-v"]).splitlines()[0]


def run_out(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return p.stdout + p.stderr
    except OSError as e:
        return str(e)


def parse_latency(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_wrk(out):
    """{rps, p99_ms, p50_ms, requests, errors} from wrk --latency output."""
    res = {"rps": 0.0, "p99_ms": None, "p50_ms": None, "requests": 0, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("99", "p99_ms"), ("50", "p50_ms")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            res[key] = parse_latency(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    return res


def wrk(port, seconds, scheme="http", path="/", headers=(), conns=None):
    cmd = ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", "-c%d" % (conns or CONNS),
           "-d%ds" % seconds, "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("%s://127.0.0.1:%d%s" % (scheme, port, path))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout


def measure(proxy):
    """One wrk run against proxy with CPU accounting around it."""
    pids = proxy.pids()
    counters = proxy.counters()
    cpu0, sys0, t0 = cpu_seconds(pids), cpu_times(), time.monotonic()
    out = wrk(proxy.port, DURATION, proxy.scheme, proxy.path, proxy.headers)
    cpu1, sys1, t1 = cpu_seconds(pids), cpu_times(), time.monotonic()
    res = parse_wrk(out)
    res.update(proxy.counted(counters, res))
    res["cpu_s"] = cpu1 - cpu0
    res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / res["requests"] if res["requests"] else None
    res["proxy_cpu_busy_pct"] = busy_pct(sys0, sys1, PROXY_CPU)
    res["load_cpu_busy_pct"] = busy_pct(sys0, sys1, LOAD_CPU)
    # busy time on the proxy's CPU that was not the proxy's: other processes
    res["other_on_proxy_cpu_pct"] = max(0.0, res["proxy_cpu_busy_pct"]
                                        - 100.0 * res["cpu_s"] / (t1 - t0))
    if not res["requests"]:
        res["wrk_output"] = out[-2000:]
    return res


def idle_test(proxy):
    """RSS growth of proxy's processes per idle keep-alive client connection."""
    pids = proxy.pids()
    before = rss_kb(pids)
    cmd = ["taskset", "-c", str(LOAD_CPU), sys.executable, os.path.join(HERE, "idle_conns.py"),
           "127.0.0.1", str(proxy.port), str(idle_conns())]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    m = re.match(r"ready (\d+) (\d+)", line)
    res = {"conns": 0, "failed": None, "rss_before_kb": before}
    if m:
        time.sleep(1.0)
        after = rss_kb(proxy.pids())
        res.update(conns=int(m.group(1)), failed=int(m.group(2)), rss_after_kb=after)
        if res["conns"]:
            res["bytes_per_conn"] = round((after - before) * 1024 / res["conns"])
    else:
        res["error"] = (line + p.stderr.read())[-1000:]
    p.stdin.close()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    time.sleep(1.0)
    return res


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return format(v, spec) if v is not None else "n/a"


def summarize(runs):
    med = {}
    for name, rs in runs.items():
        med[name] = {k: median([r.get(k) for r in rs]) for k in
                     ("rps", "p99_ms", "p50_ms", "cpu_us_per_req", "proxy_cpu_busy_pct",
                      "load_cpu_busy_pct", "other_on_proxy_cpu_pct")}
        med[name]["errors"] = sum(r.get("errors", 0) for r in rs)
    return med


def ratio(a, b):
    return a / b if a is not None and b else None


def ratios(med, idle, base):
    sy = med.get("switchyard")
    ref = med.get(base)
    if not sy or not ref:
        return None
    return {"rps": ratio(sy["rps"], ref["rps"]),
            "cpu_us_per_req": ratio(sy["cpu_us_per_req"], ref["cpu_us_per_req"]),
            "p99_ms": ratio(sy["p99_ms"], ref["p99_ms"]),
            "idle_bytes_per_conn": ratio(idle.get("switchyard", {}).get("bytes_per_conn"),
                                         idle.get(base, {}).get("bytes_per_conn"))}


def print_table(med, missing):
    """One line of medians per proxy, then why any is missing."""
    print("%-11s %10s %9s %9s %12s %7s %10s %10s" % ("proxy", "req/s", "p50 ms", "p99 ms",
                                                   "CPU us/req", "errors", "proxy CPU", "load CPU"))
    for name, m in med.items():
        print("%-11s %10s %9s %9s %12s %7d %9s%% %9s%%" % (
            name, fmt(m["rps"], ".0f"), fmt(m["p50_ms"], ".3f"), fmt(m["p99_ms"], ".3f"),
            fmt(m["cpu_us_per_req"], ".2f"), m["errors"], fmt(m["proxy_cpu_busy_pct"], ".0f"),
            fmt(m["load_cpu_busy_pct"], ".0f")))
    for name, why in missing.items():
        print("%-11s %s" % (name, why))


def print_notes(med):
    """Warnings that make a run's figures suspect."""
    for name, m in med.items():
        if m["other_on_proxy_cpu_pct"] is not None and m["other_on_proxy_cpu_pct"] > 10:
            print("warning: other processes took %.0f%% of CPU %d during %s's runs: the machine "
                  "is not quiet, these figures are not reliable" % (
                      m["other_on_proxy_cpu_pct"], PROXY_CPU, name))
        if m["load_cpu_busy_pct"] is not None and m["load_cpu_busy_pct"] > 95:
            print("note: CPU %d (testd + wrk) was saturated during %s's runs: its req/s is "
                  "bounded by the load side; compare CPU us/req" % (LOAD_CPU, name))


def print_tls_report(med, rat, missing, negotiated):
    print()
    print("TLS keep-alive: median of %d alternating runs, %d s each, wrk -t1 -c%d over https; "
          "proxy on CPU %d, testd and wrk on CPU %d" % (RUNS, DURATION, CONNS, PROXY_CPU,
                                                       LOAD_CPU))
    print("negotiated: %s" % ", ".join("%s %s" % kv for kv in negotiated.items()))
    print_table(med, missing)
    for base, r in rat.items():
        if r is not None:
            print("switchyard/%-8s TLS req/s %sx  CPU/req %sx  p99 %sx" % (
                base, fmt(r["rps"], ".2f"), fmt(r["cpu_us_per_req"], ".2f"),
                fmt(r["p99_ms"], ".2f")))
    print_notes(med)


def print_report(med, rat, idle, missing):
    print()
    print("Median of %d alternating runs, %d s each, wrk -t1 -c%d; proxy on CPU %d, "
          "testd and wrk on CPU %d" % (RUNS, DURATION, CONNS, PROXY_CPU, LOAD_CPU))
    print_table(med, missing)
    for base, r in rat.items():
        if r is None:
            continue
        print("switchyard/%-8s req/s %sx (target >= 1.2)  CPU/req %sx (target <= 0.8)  "
              "p99 %sx (target <= 1.0)  idle memory %sx (target <= 1.0)" % (
                  base, fmt(r["rps"], ".2f"), fmt(r["cpu_us_per_req"], ".2f"),
                  fmt(r["p99_ms"], ".2f"), fmt(r["idle_bytes_per_conn"], ".2f")))
    print_notes(med)
    if idle:
        print()
        print("Idle keep-alive connections (%d): RSS growth per connection" % idle_conns())
        if idle_conns() < IDLE_CONNS:
            print("(%d asked for: the open-file limit %d holds %d, HAProxy counting two "
                  "descriptors per connection)" % (IDLE_CONNS, nofile(), idle_conns()))
        for name, r in idle.items():
            if "bytes_per_conn" in r:
                print("%-11s %7d bytes/conn  (RSS %d -> %d KiB, %d open, %d failed)" % (
                    name, r["bytes_per_conn"], r["rss_before_kb"], r["rss_after_kb"], r["conns"],
                    r["failed"]))
            else:
                print("%-11s failed: %s" % (name, r.get("error", "no connections")))


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def start_proxies(tmp, backend_port, missing, tls=None):
    classes = {"switchyard": Switchyard, "nginx": Nginx, "haproxy": Haproxy}
    proxies = []
    for name in PROXIES:
        if name == "switchyard" and not os.access(SWITCHYARD, os.X_OK):
            missing[name] = "missing: %s is not built (run make); not measured" % SWITCHYARD
            continue
        p = classes[name](tmp, backend_port, tls)
        if p.start():
            proxies.append(p)
        else:
            missing[name] = "failed: " + p.error
    return proxies


class Cert:
    """The certificate every proxy terminates TLS with: cert and key (PEM
    paths), combined (both in one file, as HAProxy reads them)."""

    def __init__(self, tmp):
        self.cert = os.path.join(tmp, "bench-tls.pem")
        self.key = os.path.join(tmp, "bench-tls.key")
        self.combined = os.path.join(tmp, "bench-tls-combined.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-subj", "/CN=localhost", "-days", "30", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        with open(self.combined, "wb") as out:
            for path in (self.cert, self.key):
                with open(path, "rb") as f:
                    out.write(f.read())


def negotiated(port):
    """Protocol and cipher that a client with OpenSSL's defaults (as wrk
    is) gets from the proxy on port, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_tls().wrap_socket(raw, server_hostname="localhost") as s:
                return "%s %s" % (s.version(), s.cipher()[0])
    except OSError as e:
        return "handshake failed: %s" % e


def run_rounds(proxies, runs, missing):
    """Warm-up, then RUNS alternating rounds of measure(); returns the
    proxies still alive. runs and missing are keyed by proxy name."""
    for p in proxies:
        print("bench: %s on 127.0.0.1:%d, warming up" % (p.label, p.port), flush=True)
        wrk(p.port, 2, p.scheme, p.path, p.headers)
        runs[p.name] = []
    alive = list(proxies)
    for i in range(RUNS):
        # rotate the order each round so no proxy always runs first
        k = i % len(alive) if alive else 0
        for p in alive[k:] + alive[:k]:
            r = measure(p)
            runs[p.name].append(r)
            print("bench: round %d/%d %-10s %8.0f req/s  p99 %s ms  %s us/req  %d errors" % (
                i + 1, RUNS, p.label, r["rps"], fmt(r["p99_ms"], ".3f"),
                fmt(r["cpu_us_per_req"], ".2f"), r["errors"]), flush=True)
            if p.proc.poll() is not None:
                missing[p.name] = "died during round %d (exit status %d): %s" % (
                    i + 1, p.proc.returncode, p.output()[-1000:])
                print("bench: %s %s" % (p.label, missing[p.name]), flush=True)
                alive.remove(p)
    return alive


def run_tls(tmp, backend_port, proxies):
    """The TLS scenario; its proxies are appended to proxies (stopped by
    the caller). Returns its part of the results."""
    missing, runs, seen = {}, {}, {}
    try:
        cert = Cert(tmp)
    except (OSError, subprocess.SubprocessError) as e:
        print("bench: TLS scenario skipped: no certificate (openssl: %s)" % e, flush=True)
        return {"missing": {"all": "no certificate: %s" % e}}
    started = start_proxies(tmp, backend_port, missing, tls=cert)
    proxies += started
    for p in started:
        seen[p.name] = negotiated(p.port)
    run_rounds(started, runs, missing)
    for p in started:
        p.stop()
    med = summarize(runs)
    rat = {base: ratios(med, {}, base) for base in ("nginx", "haproxy")}
    return {"missing": missing, "runs": runs, "median": med, "ratios": rat,
            "negotiated": seen}


class SwitchyardLimited(Switchyard):
    """The ratelimit scenario's Switchyard: every request passes a local
    rate limit that never triggers (a budget far above what wrk sends),
    or none."""

    def __init__(self, tmp, backend_port, limited):
        self.name = "switchyard-limit" if limited else "switchyard-nolimit"
        self.limited = limited
        super().__init__(tmp, backend_port)

    def extra(self, cfg):
        if self.limited:
            cfg["rate_limits"] = {"all": {"key": "client_ip", "rate": 1000000, "per_ms": 1000,
                                          "burst": 1000000}}
            cfg["routes"][0]["rate_limit"] = "all"


def start_variants(variants, proxies, missing):
    """Starts each variant proxy; appends the started ones to proxies (stopped by the caller)."""
    started = []
    for p in variants:
        if not os.access(SWITCHYARD, os.X_OK):
            missing[p.name] = "missing: %s is not built" % SWITCHYARD
            continue
        if p.start():
            started.append(p)
        else:
            missing[p.name] = "failed: " + p.error
    proxies += started
    return started


def run_ratelimit(tmp, backend_port, proxies):
    """The ratelimit scenario: Switchyard without a limit against a limit on
    every request that never triggers, alternating. Returns its results."""
    missing, runs = {}, {}
    started = start_variants([SwitchyardLimited(tmp, backend_port, False),
                              SwitchyardLimited(tmp, backend_port, True)], proxies, missing)
    run_rounds(started, runs, missing)
    for p in started:
        p.stop()
    med = summarize(runs)
    base, lim = med.get("switchyard-nolimit"), med.get("switchyard-limit")
    rat = None
    if base and lim:
        rat = {k: ratio(lim[k], base[k]) for k in ("rps", "cpu_us_per_req", "p99_ms")}
    return {"missing": missing, "runs": runs, "median": med, "ratios": rat}


def print_ratelimit_report(res):
    print()
    print("Rate limit: Switchyard alone, every request through a local limit that never "
          "triggers, against none; median of %d alternating runs, %d s each, wrk -t1 -c%d" % (
              RUNS, DURATION, CONNS))
    print_table(res["median"], res["missing"])
    r = res["ratios"]
    if r is not None:
        print("limit / none: req/s %sx (target >= 0.97)  CPU/req %sx (target <= 1.03)  "
              "p99 %sx" % (fmt(r["rps"], ".3f"), fmt(r["cpu_us_per_req"], ".3f"),
                           fmt(r["p99_ms"], ".3f")))
    print_notes(res["median"])


class SwitchyardStore(Switchyard):
    """The ratelimit_redis scenario's Switchyard: every request through a
    limit that never triggers, kept in this process (store "local") or in
    Redis (store "redis": one EVALSHA per request on the worker's
    connection). The Redis variant counts the commands Redis ran during
    each of its runs (INFO commandstats, its own INFO calls left out)."""

    def __init__(self, tmp, backend_port, redis=None):
        self.name = "switchyard-redis" if redis else "switchyard-local"
        self.redis = redis
        super().__init__(tmp, backend_port)

    def extra(self, cfg):
        cfg["rate_limits"] = {"all": {"key": "client_ip", "rate": 1000000, "per_ms": 1000,
                                      "burst": 1000000,
                                      "store": "redis" if self.redis else "local"}}
        cfg["routes"][0]["rate_limit"] = "all"
        if self.redis:
            cfg["redis"] = {"url": self.redis.url(), "on_failure": "allow"}

    def redis_cpu_s(self):
        """CPU seconds of Redis's main thread (the one that runs commands)."""
        cpu = self.redis.info("cpu")
        return sum(float(cpu.get(k, cpu.get(k.replace("_main_thread", ""), 0)))
                   for k in ("used_cpu_user_main_thread", "used_cpu_sys_main_thread"))

    def counters(self):
        if not self.redis:
            return None
        return self.redis.commandstats(), self.redis_cpu_s()

    def counted(self, before, res):
        if not self.redis:
            return {}
        stats, cpu = before
        after = self.redis.commandstats()
        delta = {k: v - stats.get(k, 0) for k, v in after.items() if k != "info"}
        # commandstats counts the script's own GET, SET and TIME too: what the
        # gateway sent (round trips) is the rest
        inner = sum(delta.get(k, 0) for k in ("get", "set", "time"))
        sent, n = sum(delta.values()) - inner, res["requests"]
        return {"redis_commands": sent, "redis_evalsha": delta.get("evalsha", 0),
                "redis_script_calls": inner,
                "redis_cmds_per_req": sent / n if n else None,
                "redis_ran_per_req": (sent + inner) / n if n else None,
                "redis_cpu_us_per_cmd": (self.redis_cpu_s() - cpu) * 1e6 / sent if sent else None}


def one_connection_p50(proxy, seconds):
    """p50 latency (ms) of proxy on a single keep-alive connection: the cost
    one request pays, without queueing behind the others."""
    return parse_wrk(wrk(proxy.port, seconds, proxy.scheme, proxy.path, proxy.headers,
                         conns=1))["p50_ms"]


def run_ratelimit_redis(tmp, backend_port, proxies):
    """The ratelimit_redis scenario: a never-triggering limit stored locally
    against the same limit stored in Redis, alternating. Returns its results."""
    missing, runs = {}, {}
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from lib import redisd      # the tests' redis-server helper
    if not redisd.available():
        return {"missing": {"all": "redis-server is not installed"}, "runs": {}, "median": {}}
    redis = redisd.RedisServer(wrapper=["taskset", "-c", str(LOAD_CPU)])
    try:
        redis.start()
        started = start_variants([SwitchyardStore(tmp, backend_port),
                                  SwitchyardStore(tmp, backend_port, redis)], proxies, missing)
        run_rounds(started, runs, missing)
        one = {p.name: one_connection_p50(p, max(3, DURATION // 2)) for p in started
               if p.proc.poll() is None}
        for p in started:
            p.stop()
    finally:
        redis.cleanup()
    med = summarize(runs)
    local, remote = med.get("switchyard-local"), med.get("switchyard-redis")
    per_req = median([r.get("redis_cmds_per_req") for r in runs.get("switchyard-redis", [])])
    cpu_per_cmd = median([r.get("redis_cpu_us_per_cmd") for r in runs.get("switchyard-redis", [])])
    ran = median([r.get("redis_ran_per_req") for r in runs.get("switchyard-redis", [])])
    res = {"missing": missing, "runs": runs, "median": med, "redis_cmds_per_req": per_req,
           "redis_cpu_us_per_cmd": cpu_per_cmd, "redis_ran_per_req": ran,
           "one_connection_p50_ms": one, "ratios": None, "added_p50_ms": None,
           "added_p50_one_connection_ms": None}
    if local and remote:
        res["ratios"] = {k: ratio(remote[k], local[k]) for k in ("rps", "cpu_us_per_req",
                                                                  "p99_ms")}
        if remote["p50_ms"] is not None and local["p50_ms"] is not None:
            res["added_p50_ms"] = remote["p50_ms"] - local["p50_ms"]
        if one.get("switchyard-redis") is not None and one.get("switchyard-local") is not None:
            res["added_p50_one_connection_ms"] = one["switchyard-redis"] - one["switchyard-local"]
    return res


def print_ratelimit_redis_report(res):
    print()
    print("Rate limit in Redis: Switchyard alone, every request through a limit that never "
          "triggers, store redis against store local; median of %d alternating runs, %d s "
          "each, wrk -t1 -c%d; redis-server on CPU %d with testd and wrk" % (
              RUNS, DURATION, CONNS, LOAD_CPU))
    print_table(res["median"], res["missing"])
    r = res["ratios"]
    if r is not None:
        print("redis / local: req/s %sx  CPU/req %sx  p99 %sx" % (
            fmt(r["rps"], ".3f"), fmt(r["cpu_us_per_req"], ".3f"), fmt(r["p99_ms"], ".3f")))
    print("Redis commands sent per request: %s (target <= 1); with the script's own GET, SET "
          "and TIME, %s; Redis CPU per command sent %s us (its main thread)" % (
              fmt(res.get("redis_cmds_per_req"), ".4f"), fmt(res.get("redis_ran_per_req"), ".4f"),
              fmt(res.get("redis_cpu_us_per_cmd"), ".2f")))
    print("p50 added by Redis: %s ms under load (-c%d), %s ms on one connection (%s)" % (
        fmt(res.get("added_p50_ms"), ".3f"), CONNS,
        fmt(res.get("added_p50_one_connection_ms"), ".3f"),
        ", ".join("%s %s ms" % (k, fmt(v, ".3f"))
                  for k, v in res.get("one_connection_p50_ms", {}).items())))
    print_notes(res["median"])


class SwitchyardCompress(Switchyard):
    """The compress scenario's Switchyard: its route with "compress" (or
    not), asked for path with Accept-Encoding: gzip."""

    headers = ("Accept-Encoding: gzip",)

    def __init__(self, tmp, backend_port, name, compress, path):
        self.name = name
        self.compress = compress
        self.path = path
        super().__init__(tmp, backend_port)

    def extra(self, cfg):
        if self.compress:
            cfg["routes"][0]["compress"] = True


class NginxGzip(Nginx):
    """nginx with gzip as Switchyard's compress policy: level 1, its types,
    256 bytes minimum, proxied responses too, Vary added."""

    name = "nginx-gzip"
    path = COMPRESS_PATH
    headers = ("Accept-Encoding: gzip",)

    def gzip(self):
        return ("\n        gzip on;\n        gzip_comp_level 1;\n        gzip_min_length 256;"
                "\n        gzip_proxied any;\n        gzip_vary on;\n        gzip_types %s;"
                % GZIP_TYPES)


def run_compress(tmp, backend_port, proxies):
    """The compress scenario: Switchyard's gzip against nginx's on
    COMPRESS_PATH, then Switchyard's policy configured but not matching
    against none on "/". Returns its results."""
    missing, runs = {}, {}
    gz = [SwitchyardCompress(tmp, backend_port, "switchyard-gzip", True, COMPRESS_PATH)]
    started = start_variants(gz, proxies, missing)
    nginx = NginxGzip(tmp, backend_port)
    if "nginx" in PROXIES:
        if nginx.start():
            started.append(nginx)
            proxies.append(nginx)
        else:
            missing[nginx.name] = "failed: " + nginx.error
    for p in started:
        if not compressed(p):
            missing[p.name] = "did not answer %s with gzip" % COMPRESS_PATH
    run_rounds(started, runs, missing)
    for p in started:
        p.stop()
    idle = [SwitchyardCompress(tmp, backend_port, "switchyard-nopolicy", False, "/"),
            SwitchyardCompress(tmp, backend_port, "switchyard-policy", True, "/")]
    started = start_variants(idle, proxies, missing)
    run_rounds(started, runs, missing)
    for p in started:
        p.stop()
    med = summarize(runs)
    pairs = {"gzip": ("switchyard-gzip", "nginx-gzip"),
             "policy": ("switchyard-policy", "switchyard-nopolicy")}
    rat = {}
    for key, (a, b) in pairs.items():
        if med.get(a) and med.get(b):
            rat[key] = {k: ratio(med[a][k], med[b][k]) for k in ("rps", "cpu_us_per_req",
                                                                 "p99_ms")}
    return {"path": COMPRESS_PATH, "missing": missing, "runs": runs, "median": med,
            "ratios": rat}


def compressed(proxy):
    """Whether proxy answers its path with Content-Encoding: gzip (so the run measures gzip)."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (proxy.port, proxy.path),
                                 headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.headers.get("Content-Encoding") == "gzip"
    except OSError:
        return False


def print_compress_report(res):
    print()
    print("Compress: %s with Accept-Encoding: gzip, gzip level 1 on both; median of %d "
          "alternating runs, %d s each, wrk -t1 -c%d" % (res["path"], RUNS, DURATION, CONNS))
    print_table(res["median"], res["missing"])
    r = res["ratios"]
    if "gzip" in r:
        print("switchyard/nginx gzip: req/s %sx (target >= 1.0)  CPU/req %sx  p99 %sx" % (
            fmt(r["gzip"]["rps"], ".3f"), fmt(r["gzip"]["cpu_us_per_req"], ".3f"),
            fmt(r["gzip"]["p99_ms"], ".3f")))
    if "policy" in r:
        print("policy not matching / none on \"/\": req/s %sx (target >= 0.97)  CPU/req %sx  "
              "p99 %sx" % (fmt(r["policy"]["rps"], ".3f"),
                           fmt(r["policy"]["cpu_us_per_req"], ".3f"),
                           fmt(r["policy"]["p99_ms"], ".3f")))
    print_notes(res["median"])


def run_canary(tmp, backend_port, proxies):
    """The canary scenario: Switchyard at weight 0 against CANARY_WEIGHT,
    alternating like the proxies; its proxies are appended to proxies
    (stopped by the caller). Returns its part of the results."""
    missing, runs, shares = {}, {}, {}
    started = start_variants([SwitchyardCanary(tmp, backend_port, w) for w in (0, CANARY_WEIGHT)],
                             proxies, missing)
    alive = run_rounds(started, runs, missing)
    for p in alive:
        try:
            counts = p.slot_requests()
        except OSError as e:
            counts = {"error": str(e)}
        total = sum(v for k, v in counts.items() if k != "error")
        shares[p.name] = {"requests": counts,
                          "green_pct": 100.0 * counts.get("green", 0) / total if total else None}
    for p in started:
        p.stop()
    med = summarize(runs)
    base, canary = med.get("switchyard-w0"), med.get("switchyard-w%d" % CANARY_WEIGHT)
    rat = None
    if base and canary:
        rat = {k: ratio(canary[k], base[k]) for k in ("rps", "cpu_us_per_req", "p99_ms")}
    return {"weight": CANARY_WEIGHT, "sticky": CANARY_STICKY, "missing": missing, "runs": runs,
            "median": med, "ratios": rat, "shares": shares}


def print_canary_report(res):
    print()
    print("Canary split: Switchyard alone, service at weight 0 against %d (sticky %s), both "
          "slots on one testd; median of %d alternating runs, %d s each, wrk -t1 -c%d" % (
              res["weight"], res["sticky"], RUNS, DURATION, CONNS))
    print_table(res["median"], res["missing"])
    for name, sh in res["shares"].items():
        print("%-14s green slot took %s %% of the requests" % (name, fmt(sh["green_pct"], ".1f")))
    r = res["ratios"]
    if r is not None:
        print("weight %d / weight 0: req/s %sx (target >= 0.97)  CPU/req %sx (target <= 1.03)  "
              "p99 %sx" % (res["weight"], fmt(r["rps"], ".3f"), fmt(r["cpu_us_per_req"], ".3f"),
                           fmt(r["p99_ms"], ".3f")))
    print_notes(res["median"])


def raise_nofile():
    """Open-file limit for IDLE_CONNS sockets on each side, inherited by
    every process started here; root may raise the hard limit too."""
    want = IDLE_CONNS + 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < want:
        print("bench: open-file limit %d is low for %d idle connections; using %d"
              % (soft, IDLE_CONNS, idle_conns()))


# ---- the h2 scenario: HTTP/2 over TLS with h2load -------------------------------

# Upstream keep-alive connections kept by both in the h2 scenario: every stream in
# flight holds one, and 64 would make both open (and close) connections all along.
H2_KEEPALIVE = max(64, H2_CLIENTS * H2_STREAMS)


class NginxH2(Nginx):
    """nginx with `listen ... ssl http2` (the h2 scenario)."""

    def __init__(self, tmp, backend_port, tls):
        super().__init__(tmp, backend_port, tls)
        self.label = self.name + "-h2"

    def command(self):
        cmd = super().command()
        path = os.path.join(self.tmp, "%s.conf" % self.label)
        with open(path) as f:
            conf = f.read()
        with open(path, "w") as f:
            f.write(conf.replace(" ssl backlog=", " ssl http2 backlog=")
                    .replace("keepalive 64;", "keepalive %d;" % H2_KEEPALIVE))
        return cmd


class SwitchyardH2(Switchyard):
    """Switchyard on TLS: listen[].http2 is on by default."""

    def __init__(self, tmp, backend_port, tls):
        super().__init__(tmp, backend_port, tls)
        self.label = self.name + "-h2"

    def extra(self, cfg):
        for pool in cfg["pools"].values():
            pool["keepalive"] = H2_KEEPALIVE


def parse_h2load(out):
    """{rps, requests, errors, mean_ms} from h2load's report."""
    res = {"rps": 0.0, "requests": 0, "errors": 0, "mean_ms": None}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if m:
        res["requests"] = int(m.group(1))
        res["errors"] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"status codes: (\d+) 2xx", out)
    if m:
        res["errors"] += res["requests"] - int(m.group(1))
    m = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    if m:
        res["mean_ms"] = parse_latency(m.group(1))
    return res


def h2load(port, n):
    cmd = ["taskset", "-c", str(LOAD_CPU), "h2load", "-n", str(n), "-c", str(H2_CLIENTS),
           "-m", str(H2_STREAMS), "https://127.0.0.1:%d/" % port]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout


def measure_h2(proxy):
    """One h2load run against proxy with CPU accounting around it."""
    pids = proxy.pids()
    cpu0, sys0 = cpu_seconds(pids), cpu_times()
    out = h2load(proxy.port, H2_REQUESTS)
    cpu1, sys1 = cpu_seconds(pids), cpu_times()
    res = parse_h2load(out)
    res["cpu_s"] = cpu1 - cpu0
    res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / res["requests"] if res["requests"] else None
    res["proxy_cpu_busy_pct"] = busy_pct(sys0, sys1, PROXY_CPU)
    res["load_cpu_busy_pct"] = busy_pct(sys0, sys1, LOAD_CPU)
    if not res["requests"]:
        res["h2load_output"] = out[-2000:]
    return res


def run_h2(tmp, backend_port, proxies):
    """The h2 scenario; its proxies are appended to proxies (stopped by the
    caller). Returns its part of the results."""
    missing, runs = {}, {}
    if shutil.which("h2load") is None:
        print("bench: h2 scenario skipped: no h2load (Debian nghttp2-client)", flush=True)
        return {"missing": {"all": "no h2load (Debian package nghttp2-client)"}}
    try:
        cert = Cert(tmp)
    except (OSError, subprocess.SubprocessError) as e:
        return {"missing": {"all": "no certificate: %s" % e}}
    classes = {"switchyard": SwitchyardH2, "nginx": NginxH2}
    started = []
    for name in PROXIES:
        if name not in classes or (name == "switchyard" and not os.access(SWITCHYARD, os.X_OK)):
            continue
        p = classes[name](tmp, backend_port, cert)
        if p.start():
            started.append(p)
        else:
            missing[name] = "failed: " + p.error
    proxies += started
    for p in started:
        print("bench: %s on 127.0.0.1:%d, warming up" % (p.label, p.port), flush=True)
        h2load(p.port, H2_REQUESTS // 10)
        runs[p.name] = []
    for i in range(RUNS):
        k = i % len(started) if started else 0
        for p in started[k:] + started[:k]:
            r = measure_h2(p)
            runs[p.name].append(r)
            print("bench: round %d/%d %-10s %8.0f req/s  mean %s ms  %s us/req  %d errors" % (
                i + 1, RUNS, p.label, r["rps"], fmt(r["mean_ms"], ".3f"),
                fmt(r["cpu_us_per_req"], ".2f"), r["errors"]), flush=True)
    for p in started:
        p.stop()
    med = {}
    for name, rs in runs.items():
        med[name] = {k: median([r.get(k) for r in rs]) for k in
                     ("rps", "mean_ms", "cpu_us_per_req", "proxy_cpu_busy_pct",
                      "load_cpu_busy_pct")}
        med[name]["errors"] = sum(r.get("errors", 0) for r in rs)
    sy, ng = med.get("switchyard"), med.get("nginx")
    rat = None
    if sy and ng:
        rat = {"rps": ratio(sy["rps"], ng["rps"]),
               "cpu_us_per_req": ratio(sy["cpu_us_per_req"], ng["cpu_us_per_req"])}
    return {"missing": missing, "runs": runs, "median": med, "ratio_nginx": rat}


def print_h2_report(res):
    print()
    if "median" not in res:
        print("HTTP/2: not measured: %s" % res["missing"].get("all"))
        return
    print("HTTP/2 over TLS: median of %d alternating runs, h2load -n %d -c %d -m %d; proxy on "
          "CPU %d, testd and h2load on CPU %d" % (RUNS, H2_REQUESTS, H2_CLIENTS, H2_STREAMS,
                                                 PROXY_CPU, LOAD_CPU))
    print("%-11s %10s %9s %12s %7s %10s %10s" % ("proxy", "req/s", "mean ms", "CPU us/req",
                                              "errors", "proxy CPU", "load CPU"))
    for name, m in res["median"].items():
        print("%-11s %10s %9s %12s %7d %9s%% %9s%%" % (
            name, fmt(m["rps"], ".0f"), fmt(m["mean_ms"], ".3f"), fmt(m["cpu_us_per_req"], ".2f"),
            m["errors"], fmt(m["proxy_cpu_busy_pct"], ".0f"), fmt(m["load_cpu_busy_pct"], ".0f")))
    for name, why in res["missing"].items():
        print("%-11s %s" % (name, why))
    r = res.get("ratio_nginx")
    if r:
        print("switchyard/nginx    h2 req/s %sx (target >= 1.0)  CPU/req %sx (target <= 1.0)" % (
            fmt(r["rps"], ".2f"), fmt(r["cpu_us_per_req"], ".2f")))


def main():
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="sy-bench-")
    missing, runs, idle, tls, canary, limited, compress = {}, {}, {}, None, None, None, None
    limited_redis = h2 = None
    backend_port = free_port()
    testd = subprocess.Popen(["taskset", "-c", str(LOAD_CPU), TESTD, "--quiet", "--listen",
                              "127.0.0.1:%d=bench" % backend_port])
    proxies = []
    try:
        if not wait_port(backend_port, testd):
            sys.exit("bench: build/testd did not start")
        if "plain" in SCENARIOS:
            proxies = start_proxies(tmp, backend_port, missing)
            alive = run_rounds(proxies, runs, missing)
            if IDLE_CONNS > 0:
                for p in alive:
                    print("bench: %d idle connections to %s" % (idle_conns(), p.name), flush=True)
                    idle[p.name] = idle_test(p)
            for p in proxies:
                p.stop()    # the TLS scenario runs alone
        if "tls" in SCENARIOS:
            tls = run_tls(tmp, backend_port, proxies)
        if "h2" in SCENARIOS:
            h2 = run_h2(tmp, backend_port, proxies)
        if "canary" in SCENARIOS:
            canary = run_canary(tmp, backend_port, proxies)
        if "ratelimit" in SCENARIOS:
            limited = run_ratelimit(tmp, backend_port, proxies)
        if "ratelimit_redis" in SCENARIOS:
            limited_redis = run_ratelimit_redis(tmp, backend_port, proxies)
        if "compress" in SCENARIOS:
            compress = run_compress(tmp, backend_port, proxies)
    finally:
        for p in proxies:
            p.stop()
        testd.terminate()
        testd.wait()
    log_bytes = access_log_sizes(tmp)
    med = summarize(runs)
    rat = {base: ratios(med, idle, base) for base in ("nginx", "haproxy")}
    if "plain" in SCENARIOS:
        print_report(med, rat, idle, missing)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "params": {"runs": RUNS, "duration_s": DURATION, "conns": CONNS,
                         "idle_conns": idle_conns(), "nofile": nofile(), "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU,
                         "nginx_log_buffer": NGINX_LOG_BUFFER,
                         "scenarios": SCENARIOS},
              "versions": {p.name: p.version() for p in proxies},
              "missing": missing, "runs": runs, "median": med, "ratios": rat, "idle": idle,
              "access_log_bytes": log_bytes, "workdir": tmp}
    if tls is not None:
        tls["access_log_bytes"] = access_log_sizes(tmp, "-tls")
        result["tls"] = tls
    if h2 is not None:
        result["h2"] = h2
    if canary is not None:
        canary["access_log_bytes"] = access_log_sizes(tmp, names=(
            "switchyard-w0", "switchyard-w%d" % CANARY_WEIGHT))
        result["canary"] = canary
    if limited is not None:
        result["ratelimit"] = limited
    if limited_redis is not None:
        result["ratelimit_redis"] = limited_redis
    if compress is not None:
        result["compress"] = compress
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
    if "plain" in SCENARIOS:
        print("access logs written (bytes): %s" % ", ".join("%s %d" % kv
                                                            for kv in log_bytes.items()))
    if tls is not None and "median" in tls:
        print_tls_report(tls["median"], tls["ratios"], tls["missing"], tls["negotiated"])
        print("TLS access logs written (bytes): %s" % ", ".join(
            "%s %d" % kv for kv in tls["access_log_bytes"].items()))
    elif tls is not None:
        print("\nTLS keep-alive: not measured: %s" % tls["missing"]["all"])
    if h2 is not None:
        print_h2_report(h2)
    if canary is not None:
        print_canary_report(canary)
    if limited is not None:
        print_ratelimit_report(limited)
    if limited_redis is not None:
        print_ratelimit_redis_report(limited_redis)
    if compress is not None:
        print_compress_report(compress)
    print("\nbench: results in %s (configurations and logs in %s)" % (OUT, tmp))


def access_log_sizes(tmp, suffix="", names=("switchyard", "nginx", "haproxy")):
    """Bytes each proxy logged (proof that logging was on); the logs are
    deleted unless BENCH_KEEP_LOGS is set: they reach hundreds of MB.
    suffix: "-tls" for the TLS scenario's logs; names: the proxies' names."""
    sizes = {}
    for name in names:
        path = os.path.join(tmp, "%s%s-access.log" % (name, suffix))
        if os.path.exists(path):
            sizes[name] = os.path.getsize(path)
            if os.environ.get("BENCH_KEEP_LOGS") is None:
                os.unlink(path)
    return sizes


if __name__ == "__main__":
    main()
