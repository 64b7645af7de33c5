"""A patient's own baseline for a procedure (CLINICAL.md §Baseline). Pure functions."""

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

METRICS = ("pain", "leg_pain", "mobility", "odi")


@dataclass(frozen=True)
class LogPoint:
    """One effective log on a procedure's clock."""

    day: int
    pain: float
    leg_pain: float | None = None
    mobility: float | None = None
    odi: float | None = None
    walking_minutes: float | None = None


@dataclass(frozen=True)
class Baseline:
    values: dict[str, float | None]
    n_logs: int
    source: str  # "procedure" | "logs"

    def __getitem__(self, metric: str) -> float | None:
        return self.values.get(metric)


def compute(
    explicit: dict[str, float | None] | None, logs: Sequence[LogPoint], rules: dict[str, Any]
) -> Baseline | None:
    """The procedure's explicit baseline, else the median of logs in the pre-procedure window."""
    if explicit and any(v is not None for v in explicit.values()):
        return Baseline(values={m: explicit.get(m) for m in METRICS}, n_logs=0, source="procedure")
    low, high = rules["baseline"]["window_days"]
    window = [log for log in logs if low <= log.day <= high]
    if not window:
        return None
    values = {}
    for metric in METRICS:
        observed = [getattr(log, metric) for log in window if getattr(log, metric) is not None]
        values[metric] = float(median(observed)) if observed else None
    return Baseline(values=values, n_logs=len(window), source="logs")
