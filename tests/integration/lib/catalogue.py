# SPDX-License-Identifier: BSD-2-Clause
"""Reader for tests/integration/data/malformed_requests.txt, the catalogue of
malformed request heads and the status the gateway must answer each with.

    for case in catalogue.load():
        case.name, case.status, case.raw     # "bare-lf-header", 400, b"GET / ..."

The file is written by `build/tests/test_parser --write-catalogue .` (see its
header comment for the format); tests/unit/test_parser.c reads it the same way.
"""
import re

from . import root_path

PATH = root_path("tests", "integration", "data", "malformed_requests.txt")

_CASE_LINE = re.compile(r"^### (\S+) \| (\d{3})$")
_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


class Case:
    """One catalogue entry: name, status (int), raw (the request bytes)."""

    def __init__(self, name, status, raw):
        self.name, self.status, self.raw = name, status, raw

    def __repr__(self):
        return "<Case %s %d, %d bytes>" % (self.name, self.status, len(self.raw))


def unescape(text):
    """The bytes a block's text stands for: its line breaks dropped, the
    escapes \\r \\n \\t \\0 \\\\ \\xHH decoded, every other character as itself."""
    out = bytearray()
    i, text = 0, text.replace("\n", "")
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("latin-1")
            i += 1
            continue
        esc = text[i + 1:i + 2]
        if esc in _SIMPLE:
            out += _SIMPLE[esc]
            i += 2
        elif esc == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise ValueError("bad escape %r at offset %d" % (text[i:i + 4], i))
    return bytes(out)


def parse(text):
    """The list of Case in a catalogue's text, in file order."""
    cases, name, status, lines = [], None, None, []

    def finish():
        if name is not None:
            cases.append(Case(name, status, unescape("\n".join(lines))))

    for line in text.split("\n"):
        m = _CASE_LINE.match(line)
        if m:
            finish()
            name, status, lines = m.group(1), int(m.group(2)), []
        elif name is None:
            if line and not line.startswith("#"):
                raise ValueError("text before the first case: %r" % line[:60])
        elif line:
            lines.append(line)
    finish()
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("duplicate case names")
    return cases


def load(path=PATH):
    """Every Case of the catalogue file (default: the repository's)."""
    with open(path, encoding="latin-1") as f:
        return parse(f.read())

