# SPDX-License-Identifier: BSD-2-Clause
"""A strict reader of the Prometheus text format 0.0.4, for what GET /metrics
writes (SPEC.md "Metrics"); histograms included.

    m = promtext.parse_metrics(text)      # raises ValueError on bad text
    m["switchyard_upstream_up"]["type"]   # "gauge"; also "help", "samples"
    promtext.sample(m, "switchyard_upstream_up", pool="p", instance=addr)

A histogram's NAME_bucket, NAME_sum and NAME_count samples belong to the
family NAME and keep their sample name in a "__name__" label. Stricter than
the format where the gateway has no reason to differ: no blank lines, no
comments but HELP and TYPE, no timestamps, no NaN values, no empty text.
"""
import math
import re

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % METRIC_NAME)
# a label value escapes only backslash, double quote and newline
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def parse_labels(text, line):
    """{name: value} of the text between a sample's braces (line: for errors)."""
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m:
            raise ValueError("malformed labels at %d: %r" % (pos, line))
        if m.group(1) in labels:
            raise ValueError("label %s twice: %r" % (m.group(1), line))
        labels[m.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                                    m.group(2))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError("expected ',' at %d: %r" % (pos, line))
            pos += 1
    return labels


def family_of(families, name):
    """The family a sample name belongs to: its own, or for a histogram's
    _bucket, _sum and _count the histogram's. None when there is none; a
    histogram has no sample under its bare name."""
    fam = families.get(name)
    if fam and fam["type"] != "histogram":
        return fam
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[:-len(suffix)]
        if name.endswith(suffix) and families.get(base, {}).get("type") == "histogram":
            return families[base]
    return None


def parse_metrics(text):
    """{family: {"type", "help", "samples": [(labels, value)]}}. Raises
    ValueError for what the 0.0.4 text format does not allow: a sample
    before its family's TYPE, HELP or TYPE repeated or after samples, an
    unknown type, malformed labels or escapes, a series twice."""
    families, seen = {}, set()
    if not text.endswith("\n"):
        raise ValueError("the exposition is empty or does not end with a newline")
    for line in text.split("\n")[:-1]:
        if line.startswith(("# HELP ", "# TYPE ")):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.fullmatch(METRIC_NAME, parts[2]):
                raise ValueError("bad comment line %r" % line)
            fam = families.setdefault(parts[2], {"type": None, "help": None, "samples": []})
            key = parts[1].lower()
            if fam[key] is not None or fam["samples"]:
                raise ValueError("%s after samples or repeated: %r" % (key, line))
            if key == "type" and parts[3] not in TYPES:
                raise ValueError("unknown type %r" % line)
            fam[key] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError("malformed sample %r" % line)
        name = m.group(1)
        fam = family_of(families, name)
        if fam is None or fam["type"] is None:
            raise ValueError("sample with no TYPE before it: %r" % line)
        labels = parse_labels(m.group(2) or "", line)
        series = (name, tuple(sorted(labels.items())))
        if series in seen:
            raise ValueError("series twice: %r" % line)
        seen.add(series)
        value = float(m.group(3))
        if math.isnan(value):
            raise ValueError("NaN sample %r" % line)
        if fam["type"] == "histogram":
            labels["__name__"] = name
        fam["samples"].append((labels, value))
    return families


def sample(families, name, **labels):
    """The value of the one sample of family name with exactly labels;
    AssertionError when there is none."""
    for got, value in families[name]["samples"]:
        if got == labels:
            return value
    raise AssertionError("no %s%r in the exposition" % (name, labels))
