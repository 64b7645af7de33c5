"""Where the service's CPU goes during a measured run: py-spy samples it (`--profile`).

py-spy runs pinned beside wrk, samples without pausing the server, and writes collapsed stacks
(one line per distinct stack with its sample count, the input of flamegraph tools). The summary
printed afterwards lists the functions with the most samples on the stack (inclusive) and at its
top (self), as a share of all samples.
"""

import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from loadgen import pinned

RATE_HZ = 250
TOP = 60


def py_spy() -> str:
    found = shutil.which("py-spy") or str(
        Path(__file__).resolve().parent.parent / ".venv/bin/py-spy"
    )
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (it is in the dev dependencies: make test)")
    return found


@contextlib.contextmanager
def recording(pid: int, out: Path, seconds: int, cpu: int | None) -> Iterator[None]:
    """Sample `pid` for `seconds` while the block runs; the stacks land in `out`."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking", "--gil"]
    argv += ["--format", "raw", "--duration", str(seconds), "--output", str(out)]
    process = subprocess.Popen(
        pinned(argv, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield
    finally:
        _, stderr = process.communicate(timeout=seconds + 30)
        if process.returncode != 0:
            raise RuntimeError(f"py-spy failed: {stderr.strip()[-500:]}")


def _frames(stack: str) -> list[str]:
    """`f (file.py:12);g (other.py:40)` -> ['file.py:f', 'other.py:g'] (line numbers dropped)."""
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        frames.append(f"{file}:{name}")
    return frames


def summary(out: Path, top: int = TOP) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), _frames(stack)
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; inclusive (on the stack) / self (at its top), % of samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"  -- {title}")
        lines += [f"  {100 * n / total:5.1f}  {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)
