# SPDX-License-Identifier: BSD-2-Clause
"""Local TCP ports for tests: find a free one, wait until one accepts."""
import socket
import time


# Ports this process handed out lately: the kernel may give the same free
# port to two calls in a row (nothing bound it in between), and a config
# that asks for a listener and an admin port would then get one port twice.
_recent = []


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bind to port 0, then release it),
    and not one of the last 64 this process handed out.

    Another process may take it before the caller binds; tests start their
    servers right away, which keeps that window small.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _recent:
            break
    _recent.append(port)
    del _recent[:-64]
    return port


def port_open(host, port, timeout=0.2):
    """True when a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host, port, timeout=10.0, proc=None):
    """Wait until host:port accepts a connection; raise TimeoutError if not.

    proc: an optional subprocess.Popen; if it exits first, raise RuntimeError
    at once instead of waiting for the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before %s:%d accepted"
                               % (proc.returncode, host, port))
        if time.monotonic() >= deadline:
            raise TimeoutError("%s:%d did not accept within %.1f s" % (host, port, timeout))
        time.sleep(0.02)
