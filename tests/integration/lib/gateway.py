# SPDX-License-Identifier: BSD-2-Clause
"""Runs build/switchyard in the foreground for a test.

    cfg = {"workers": 1, "listen": [{"addr": "127.0.0.1:%d" % port}],
           "log": {"access": "{tmp}/access.log"}, ...}
    with Gateway(cfg) as gw:
        status, headers, body = httpc.get(gw.url("/"))
        lines = gw.access_log_lines(min_lines=1)

The configuration is written to a temporary directory (also the process's
working directory, so relative paths land there); "{tmp}" in any string of
the configuration is replaced by that directory. SY_GATEWAY_WRAPPER (e.g.
"valgrind --error-exitcode=99 --leak-check=full") prefixes the command.
SY_KEEP_TMP=1 keeps the directory after the test.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

from . import ports, procfs, root_path

START_TIMEOUT_S = 10.0


class GatewayError(RuntimeError):
    """The gateway did not start; the message carries its stderr."""


def resolve(value, tmp):
    """value with "{tmp}" replaced by tmp in every string, recursively."""
    if isinstance(value, str):
        return value.replace("{tmp}", tmp)
    if isinstance(value, list):
        return [resolve(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, tmp) for k, v in value.items()}
    return value


def _host_port(addr):
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def _wrapper():
    return shlex.split(os.environ.get("SY_GATEWAY_WRAPPER", ""))


def check_config(config, binary=None, env=None, extra_args=()):
    """Run `switchyard -t -c FILE` on config (dict, "{tmp}" resolved);
    returns (exit code, stdout + stderr text, path of the written file)."""
    tmp = tempfile.mkdtemp(prefix="sy-check-")
    path = os.path.join(tmp, "switchyard.json")
    with open(path, "w") as f:
        json.dump(resolve(config, tmp), f, indent=2)
    cmd = _wrapper() + [binary or root_path("build", "switchyard"), "-t", "-c", path]
    proc = subprocess.run(cmd + list(extra_args), cwd=tmp, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, path


class Gateway:
    """build/switchyard -c FILE in the foreground, as a context manager.

    config: the configuration (dict). workdir: directory for the file, logs
    and the working directory (default: a new temporary one). env: extra
    environment variables. binary: default build/switchyard. args: extra
    command-line arguments. The constructor does not start it: start() or
    `with` does, and waits until every listen[] address accepts; call
    wait_admin() before using the admin API.
    """

    def __init__(self, config, workdir=None, env=None, binary=None, args=()):
        self.own_tmp = workdir is None
        self.tmp = workdir or tempfile.mkdtemp(prefix="sy-gw-")
        os.makedirs(os.path.join(self.tmp, "logs"), exist_ok=True)
        # The admin listener defaults to 127.0.0.1:9901: gateways of tests
        # that run at the same time would collide there, so a configuration
        # without "admin" gets a free port of its own (kept across rewrites).
        self.default_admin = {"listen": "127.0.0.1:%d" % ports.free_port()}
        self.config = self._with_admin(resolve(config, self.tmp))
        self.config_path = os.path.join(self.tmp, "switchyard.json")
        self.binary = binary or root_path("build", "switchyard")
        self.env = dict(os.environ, **(env or {}))
        self.args = list(args)
        self.proc = None
        self._stderr = self._stdout = None

    def write_config(self, config=None):
        """(Re)write the configuration file, e.g. before reload(); config
        replaces the current one ("{tmp}" resolved)."""
        if config is not None:
            self.config = self._with_admin(resolve(config, self.tmp))
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)

    def _with_admin(self, config):
        if isinstance(config, dict) and "admin" not in config:
            config = dict(config, admin=self.default_admin)
        return config

    def addrs(self):
        """(host, port) of every listener in listen[]."""
        return [_host_port(l["addr"]) for l in self.config.get("listen", [])]

    def wait_admin(self, timeout=10.0):
        """Wait until admin.listen accepts (start() waits for listen[] only)."""
        host, port = _host_port(self.config["admin"]["listen"])
        ports.wait_port(host, port, timeout, self.proc)

    def start(self, timeout=None):
        if not os.access(self.binary, os.X_OK):
            raise GatewayError("%s is missing: build it first (make)" % self.binary)
        self.write_config()
        self._stdout = open(os.path.join(self.tmp, "stdout.log"), "wb")
        self._stderr = open(os.path.join(self.tmp, "stderr.log"), "wb")
        cmd = _wrapper() + [self.binary, "-c", self.config_path] + self.args
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=self.env,
                                     stdout=self._stdout, stderr=self._stderr)
        if timeout is None:
            timeout = START_TIMEOUT_S * (6 if _wrapper() else 1)
        deadline = time.monotonic() + timeout
        try:
            for host, port in self.addrs():
                ports.wait_port(host, port, max(deadline - time.monotonic(), 0.1), self.proc)
            self._wait_pid_file(deadline)
        except (TimeoutError, RuntimeError) as e:
            self.stop(graceful=False)
            raise GatewayError("%s\n--- gateway stderr ---\n%s" % (e, self.stderr_text()))
        return self

    def pid_file(self):
        """The pid file: -p's argument, else switchyard.pid in the working directory."""
        if "-p" in self.args:
            return os.path.join(self.tmp, self.args[self.args.index("-p") + 1])
        return os.path.join(self.tmp, "switchyard.pid")

    def _wait_pid_file(self, deadline):
        # The gateway writes its pid file once its workers serve and its
        # signal handlers are in place, so a test may signal it from then on.
        while not os.path.exists(self.pid_file()):
            if self.proc.poll() is not None:
                raise RuntimeError("the gateway exited with status %s" % self.proc.returncode)
            if time.monotonic() > deadline:
                raise TimeoutError("no pid file %s" % self.pid_file())
            time.sleep(0.01)

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/", i=0):
        """http://HOST:PORT/path of listen[i]."""
        host, port = _host_port(self.config["listen"][i]["addr"])
        return "http://%s:%d%s" % (host, port, path)

    def admin_url(self, path="/"):
        host, port = _host_port(self.config["admin"]["listen"])
        return "http://%s:%d%s" % (host, port, path)

    def host_port(self, i=0):
        """(host, port) of listen[i], for httpc.request()."""
        return _host_port(self.config["listen"][i]["addr"])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        """Resident memory (VmRSS) in KiB."""
        return procfs.rss_kb(self.proc.pid)

    def cpu_seconds(self):
        """User + system CPU time of the process (all threads), in seconds."""
        return procfs.cpu_seconds(self.proc.pid)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP: reload the configuration file."""
        self.signal(signal.SIGHUP)

    def stop(self, graceful=True, timeout=30.0):
        """SIGTERM (graceful) or SIGINT, wait up to timeout, then SIGKILL;
        returns the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self._stdout, self._stderr):
            if f and not f.closed:
                f.close()
        return self.proc.returncode

    def wait_exit(self, timeout=10.0):
        """Wait for the process to exit by itself; returns the exit code."""
        return self.proc.wait(timeout)

    def log_path(self, kind="access"):
        """Path of log.KIND (access, security, error), default logs/KIND.log."""
        path = self.config.get("log", {}).get(kind, "logs/%s.log" % kind)
        return path if os.path.isabs(path) else os.path.join(self.tmp, path)

    def log_lines(self, kind="access", min_lines=0, timeout=5.0):
        """Parsed JSON lines of log.KIND; waits up to timeout for min_lines
        (logs are written off the event loop, a little later)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = []
            try:
                with open(self.log_path(kind), "rb") as f:
                    text = f.read().decode("utf-8")
                # a line without its newline is still being written
                lines = [json.loads(l) for l in text.split("\n")[:-1] if l.strip()]
            except FileNotFoundError:
                pass
            if len(lines) >= min_lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)

    def access_log_lines(self, min_lines=0, timeout=5.0):
        """log_lines("access", ...)."""
        return self.log_lines("access", min_lines, timeout)

    def error_log_text(self):
        """The error log's text so far ("" before it exists)."""
        try:
            with open(self.log_path("error"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def error_log_lines(self, subsystem, *words):
        """Error-log lines of subsystem ("redis", "fleet") holding every one of words."""
        return [l for l in self.error_log_text().splitlines()
                if " %s: " % subsystem in l and all(w in l for w in words)]

    def stderr_text(self):
        """Everything the process wrote to stderr so far."""
        try:
            with open(os.path.join(self.tmp, "stderr.log"), "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.own_tmp and not os.environ.get("SY_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
