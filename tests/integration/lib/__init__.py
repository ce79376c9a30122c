# SPDX-License-Identifier: BSD-2-Clause
"""Helpers for Switchyard's integration tests (python3 standard library only).

Modules:
    ports     free_port(), wait_port()
    backends  Testd (build/testd app instances), RawBackend (records raw bytes),
              pattern_bytes() (the body testd's /bytes sends)
    gateway   Gateway (build/switchyard in the foreground), check_config()
    httpc     raw-socket HTTP/1.1: request(), build(), Client, Response, get()
    redisd    RedisServer (a real redis-server on a free port), its RESP client

Tests import them as ``from lib import backends, gateway, httpc, ports`` with
tests/integration on sys.path (``python3 -m unittest discover -s tests/integration``
does that). Paths such as build/testd are relative to the repository root, ROOT.
"""
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def root_path(*parts):
    """Absolute path of parts joined under the repository root."""
    return os.path.join(ROOT, *parts)
