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


@dataclass(frozen=True)
class MissedCheckIns:
    """Scheduled check-ins that passed, with their grace, without a log (CLINICAL.md)."""

    first_day: int  # the first scheduled day with no log
    through_day: int  # the last scheduled day whose grace has run out
    phase: str  # the phase of `through_day`
    grace_days: int


def _graced(rules: dict[str, Any]) -> list[tuple[int, str, int]]:
    """Each scheduled day with its phase and that phase's grace days."""
    return [
        (day, phase.name, phase.grace_days)
        for phase in phases(rules)
        for day in range(phase.from_day, phase.to_day + 1, phase.every_days)
    ]


def missed_check_ins(
    rules: dict[str, Any], *, day_now: int, covered_through: int | None
) -> tuple[MissedCheckIns | None, int | None]:
    """The scheduled check-ins after `covered_through` (the newest log's day, or the last day an
    earlier alert already covered) whose grace ran out before `day_now`, and the day on which
    the next one would run out (None when the schedule has ended).

    A check-in scheduled on day d with grace g is missed from day d + g + 1 on: no log arrived
    for the whole interval up to it plus the grace (2 days daily, 4 weekly, 10 monthly)."""
    pending = [s for s in _graced(rules) if covered_through is None or s[0] > covered_through]
    overdue = [s for s in pending if s[0] + s[2] < day_now]
    later = [s[0] + s[2] + 1 for s in pending if s[0] + s[2] >= day_now]
    if not overdue:
        return None, later[0] if later else None
    first, last = overdue[0], overdue[-1]
    missed = MissedCheckIns(
        first_day=first[0], through_day=last[0], phase=last[1], grace_days=last[2]
    )
    return missed, later[0] if later else None
