"""CPU time from /proc: the server's, wrk's, and the whole machine's (to see other load)."""

import os
import resource
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU time a running process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def children_seconds() -> float:
    """User + system CPU time of this process's finished children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time all cores have spent busy (not idle or waiting for I/O), summed."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq + steal) * TICK_S
