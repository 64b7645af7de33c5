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


def processes() -> dict[int, tuple[str, float]]:
    """Every process's name and user + system CPU seconds so far (to name the other load)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) * TICK_S)
    return table


def busiest(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    *,
    exclude: set[int],
    seconds: float,
    count: int = 3,
) -> list[tuple[str, float]]:
    """The `count` processes (not in `exclude`) that used the most CPU between two snapshots:
    (name, percent of a core)."""
    used = []
    for pid, (name, total) in after.items():
        if pid in exclude:
            continue
        spent = total - before.get(pid, (name, 0.0))[1]
        if spent > 0:
            used.append((f"{name}[{pid}]", 100 * spent / seconds if seconds else 0.0))
    return sorted(used, key=lambda item: -item[1])[:count]
