# SPDX-License-Identifier: BSD-2-Clause
"""What /proc says of a process: resident memory, CPU time, open files."""
import os


def rss_kb(pid):
    """Resident memory (VmRSS) in KiB; 0 once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_seconds(pid):
    """User + system CPU time of the process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is stat field 3 (state); utime and stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    """Open file descriptors."""
    return len(os.listdir("/proc/%d/fd" % pid))
