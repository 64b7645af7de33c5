"""A procedure's whole evaluation on a date (CLINICAL.md), and the first date on which the clock
alone would change it. Pure functions over plain data.

`evaluate` is the one source of truth for a patient's progress: the API's progress report, the
stored evaluations (api/services/progress_store.py) and the clock sweep all come from it. An
evaluation made on `as_of` stays right, except for the day count, until `next_change_on`:
a milestone window opens or closes, a check-in falls due or is missed, or a log dated later
(in another time zone) comes into view. Nothing else that changes it happens without a write,
and every write evaluates again.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from api.clinical import baseline as baseline_rules
from api.clinical import milestones, schedule
from api.clinical.clock import ProcedureDate, clock_range


class EffectiveLog(NamedTuple):
    """One check-in that no correction supersedes, with what the rules read of it (a named
    tuple, as ClockLog)."""

    local_date: date
    pain: float
    leg_pain: float | None = None
    mobility: float | None = None
    odi: float | None = None
    side_effects: tuple[str, ...] = ()
    red_flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcedureFacts:
    """What the rules read of a procedure."""

    id: uuid.UUID
    performed_on: date
    treatment: str
    cell_source: str | None
    protocol_id: str
    protocol_version: int
    explicit_baseline: dict[str, float | None]

    @property
    def clock_date(self) -> ProcedureDate:
        return ProcedureDate(self.id, self.performed_on)


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the rules read of a patient (CLINICAL.md §Factors)."""

    birth_date: date
    comorbidities: tuple[str, ...]
    smoker: bool


@dataclass(frozen=True, slots=True)
class Factor:
    factor: str  # age | overall_health | treatment_protocol
    impact: str  # moderate | significant
    message: str


@dataclass(frozen=True)
class Evaluation:
    """One procedure evaluated on `as_of` (day `day_now` of its clock)."""

    procedure: ProcedureFacts
    as_of: date
    day_now: int
    baseline: baseline_rules.Baseline | None
    milestones: list[milestones.MilestoneResult]
    current_milestone: str | None
    progress_status: str
    factors: list[Factor]
    age_at_procedure: int
    next_check_in_day: int | None
    # Check-ins missed and not yet covered by an alert (only the latest procedure's schedule runs).
    missed: schedule.MissedCheckIns | None
    # The first date on which the clock alone changes this evaluation (None: never), counting
    # `missed` as alerted.
    next_change_on: date | None


def factors(
    patient: PatientFacts, procedure: ProcedureFacts, rules: dict[str, Any]
) -> list[Factor]:
    """The article's factors that apply (CLINICAL.md §Factors that affect recovery)."""
    found = []
    age = milestones.age_on(patient.birth_date, procedure.performed_on)
    if age >= rules["factors"]["age_moderate_from_years"]:
        found.append(
            Factor(
                "age",
                "moderate",
                f"aged {age} at the procedure: older patients may have slower recovery times",
            )
        )
    if patient.comorbidities or patient.smoker:
        health = [*patient.comorbidities, *(["smoking"] if patient.smoker else [])]
        found.append(
            Factor(
                "overall_health",
                "significant",
                f"{', '.join(health)}: other health issues can slow healing",
            )
        )
    method = procedure.treatment + (f" ({procedure.cell_source})" if procedure.cell_source else "")
    found.append(
        Factor(
            "treatment_protocol",
            "significant",
            f"{method}, protocol {procedure.protocol_id} v{procedure.protocol_version}: "
            "the specific methods and amounts used in therapy",
        )
    )
    return found


def _on_clock(
    logs: Sequence[EffectiveLog],
    clock: tuple[date | None, date | None],
    performed_on: date,
    days: tuple[int, int],
) -> tuple[list[milestones.ClockLog], int | None]:
    """The logs on this procedure's clock with a day in `days` (the milestone windows), and the
    newest day of any log on its clock (the check-in schedule's)."""
    start, end = clock
    first = performed_on + timedelta(days=days[0])
    last = performed_on + timedelta(days=days[1])
    window, newest = [], None
    for log in logs:
        if (start is not None and log.local_date < start) or (
            end is not None and log.local_date >= end
        ):
            continue
        day = (log.local_date - performed_on).days
        newest = day if newest is None or day > newest else newest
        if first <= log.local_date <= last:
            window.append(
                milestones.ClockLog(
                    day=day,
                    pain=log.pain,
                    leg_pain=log.leg_pain,
                    mobility=log.mobility,
                    odi=log.odi,
                    side_effects=log.side_effects,
                    red_flags=log.red_flags,
                )
            )
    return window, newest


def _baseline(
    procedure: ProcedureFacts, logs: Sequence[EffectiveLog], rules: dict[str, Any]
) -> baseline_rules.Baseline | None:
    if any(v is not None for v in procedure.explicit_baseline.values()):
        return baseline_rules.compute(procedure.explicit_baseline, [], rules)
    low, high = rules["baseline"]["window_days"]
    first = procedure.performed_on + timedelta(days=low)
    last = procedure.performed_on + timedelta(days=high)
    points = [
        baseline_rules.LogPoint(
            day=(log.local_date - procedure.performed_on).days,
            pain=log.pain,
            leg_pain=log.leg_pain,
            mobility=log.mobility,
            odi=log.odi,
        )
        for log in logs
        if first <= log.local_date <= last
    ]
    return baseline_rules.compute(None, points, rules)


def evaluate(
    *,
    rules: dict[str, Any],
    patient: PatientFacts,
    procedure: ProcedureFacts,
    procedures: Sequence[ProcedureFacts],
    logs: Sequence[EffectiveLog],
    as_of: date,
    missed_covered_through: int | None = None,
) -> Evaluation:
    """Evaluate `procedure` on `as_of` from the patient's effective logs (any superset of those
    on its clock and in its baseline window; logs dated after `as_of` are ignored).

    `procedures` are all the patient's procedures (they decide which logs are on whose clock);
    the check-in schedule and missed check-ins run only for the latest one.
    `missed_covered_through` is the last scheduled day an earlier missed_check_in alert covered.
    """
    seen = [log for log in logs if log.local_date <= as_of]
    dates = [p.clock_date for p in procedures]
    start, end = clock_range(dates, procedure.id)
    specs = rules["milestones"]
    window, newest = _on_clock(
        seen,
        (start, end),
        procedure.performed_on,
        (min(m["start_day"] for m in specs), max(m["end_day"] for m in specs)),
    )
    base = _baseline(procedure, seen, rules)
    day_now = (as_of - procedure.performed_on).days
    results = milestones.evaluate(rules=rules, logs=window, baseline=base, day_now=day_now)
    current = milestones.current_milestone(results)
    latest = max(dates, key=lambda p: (p.performed_on, str(p.id))).id == procedure.id
    next_day = (
        schedule.next_check_in(rules, day_now=day_now, newest_log_day=newest) if latest else None
    )
    missed, next_missed_day = (None, None)
    if latest and day_now >= 0:
        covered = max((d for d in (newest, missed_covered_through) if d is not None), default=None)
        missed, next_missed_day = schedule.missed_check_ins(
            rules, day_now=day_now, covered_through=covered
        )
    clock_days = [*_window_edges(rules, day_now), next_day + 1 if next_day is not None else None]
    clock_days.append(next_missed_day)
    return Evaluation(
        procedure=procedure,
        as_of=as_of,
        day_now=day_now,
        baseline=base,
        milestones=results,
        current_milestone=current.key if current else None,
        progress_status=milestones.progress_status(results),
        factors=factors(patient, procedure, rules),
        age_at_procedure=milestones.age_on(patient.birth_date, procedure.performed_on),
        next_check_in_day=next_day,
        missed=missed,
        next_change_on=_first_change(procedure, as_of, clock_days, logs, rules, (start, end)),
    )


def _window_edges(rules: dict[str, Any], day_now: int) -> list[int | None]:
    """The days on which a milestone window still to come opens or closes."""
    edges: list[int | None] = []
    for spec in rules["milestones"]:
        edges += [d for d in (spec["start_day"], spec["end_day"] + 1) if d > day_now]
    return edges


def _first_change(
    procedure: ProcedureFacts,
    as_of: date,
    clock_days: Sequence[int | None],
    logs: Sequence[EffectiveLog],
    rules: dict[str, Any],
    clock: tuple[date | None, date | None],
) -> date | None:
    """The earliest date after `as_of` on which the clock alone changes the evaluation: a day
    in `clock_days`, or the date of a log still in the future that it would then count."""
    dates = [procedure.performed_on + timedelta(days=d) for d in clock_days if d is not None]
    low, high = rules["baseline"]["window_days"]
    baseline_from = procedure.performed_on + timedelta(days=low)
    baseline_to = procedure.performed_on + timedelta(days=high)
    start, end = clock
    dates += [
        log.local_date
        for log in logs
        if log.local_date > as_of
        and (
            baseline_from <= log.local_date <= baseline_to
            or (
                (start is None or log.local_date >= start) and (end is None or log.local_date < end)
            )
        )
    ]
    later = [d for d in dates if d > as_of]
    return min(later) if later else None
