#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""switchyard-logstat's benchmark (issue 11): generates LINES realistic
access-log lines (tests/bench/logstat_gen.py), then times the default
report (every section) on one core, pinned with taskset, RUNS times, and
reports the median lines per second and the peak RSS. For comparison it
answers one question, "429s by client", with jq | sort | uniq -c over the
first JQ_LINES lines, and checks that logstat's answer to it is the same.

    python3 tests/bench/logstat_bench.py [LINES] [RUNS]
    (environment: JQ_LINES, default 500000; KEEP=1 keeps the files)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGSTAT = os.path.join(ROOT, "build", "switchyard-logstat")


def timed(cmd, stdout=subprocess.DEVNULL):
    """(seconds, peak RSS in KB, stdout text, CPU seconds) of one run of cmd."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed: %s" % (cmd[0], err))
    return took, usage.ru_maxrss, out, usage.ru_utime + usage.ru_stime


def main():
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    jq_lines = int(os.environ.get("JQ_LINES", "500000"))
    tmp = tempfile.mkdtemp(prefix="sy-logstat-bench-")
    try:
        log = os.path.join(tmp, "access.log")
        t0 = time.monotonic()
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "logstat_gen.py"),
                        str(lines), log], check=True)
        size = os.path.getsize(log)
        print("generated %d lines, %.2f GB, in %.0f s" % (lines, size / 1e9,
                                                           time.monotonic() - t0))
        # warm the page cache once, so every run reads from memory
        subprocess.run(["cat", log], stdout=subprocess.DEVNULL, check=True)

        pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
        rates, rss = [], 0
        for i in range(runs):
            took, peak, _, cpu = timed(pin + [LOGSTAT, log])
            rates.append(lines / took)
            rss = max(rss, peak)
            print("logstat run %d: %.2f s wall, %.2f s CPU, %.0f lines/s" % (i + 1, took, cpu,
                                                                              lines / took))
        print("logstat default report: median %.2f M lines/s (%.0f MB/s), peak RSS %.1f MB"
              % (statistics.median(rates) / 1e6, statistics.median(rates) * size / lines / 1e6,
                 rss / 1024))

        if not shutil.which("jq"):
            print("jq is not installed: no comparison")
            return
        head = os.path.join(tmp, "head.log")
        with open(log, "rb") as src, open(head, "wb") as dst:
            for n, line in enumerate(src):
                if n == jq_lines:
                    break
                dst.write(line)
        shell = ("%s jq -r 'select(.status == 429) | .client_ip' %s | sort | uniq -c "
                 "| sort -rn" % (" ".join(pin), head))
        took, _, out, _ = timed(["sh", "-c", shell], stdout=subprocess.PIPE)
        jq_rate = jq_lines / took
        jq_counts = {ip: int(n) for n, ip in (l.split() for l in out.splitlines())}
        print("jq | sort | uniq -c, 429s by client: %.0f lines/s over %d lines"
              % (jq_rate, jq_lines))
        _, _, out, _ = timed([LOGSTAT, "--json", "-r", "rate_limiting", "--top", "10000", head],
                             stdout=subprocess.PIPE)
        ours = {r["key"]: r["count"]
                for r in json.loads(out)["rate_limiting"]["responses"]["by_client"]}
        print("same answer as jq: %s (%d clients)" % (ours == jq_counts, len(ours)))
        print("logstat (every report) / jq (one question): %.1fx" % (statistics.median(rates)
                                                                    / jq_rate))
    finally:
        if os.environ.get("KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
