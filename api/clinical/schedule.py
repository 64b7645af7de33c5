"""The check-in schedule of a protocol (CLINICAL.md §Check-in schedule). Pure functions."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Phase:
    name: str
    from_day: int
    to_day: int
    every_days: int
    grace_days: int


@dataclass(frozen=True)
class ScheduledDay:
    day: int
    phase: str


def phases(rules: dict[str, Any]) -> list[Phase]:
    return [
        Phase(p["phase"], p["from_day"], p["to_day"], p["every_days"], p["grace_days"])
        for p in rules["check_in_schedule"]
    ]


def scheduled_days(rules: dict[str, Any]) -> list[ScheduledDay]:
    return [
        ScheduledDay(day, phase.name)
        for phase in phases(rules)
        for day in range(phase.from_day, phase.to_day + 1, phase.every_days)
    ]


def next_check_in(rules: dict[str, Any], *, day_now: int, newest_log_day: int | None) -> int | None:
    """The first scheduled day on or after today and after the newest log's day (None past the end)."""
    for scheduled in scheduled_days(rules):
        if scheduled.day >= day_now and (newest_log_day is None or scheduled.day > newest_log_day):
            return scheduled.day
    return None
