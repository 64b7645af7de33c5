"""The clock behind `next_change_on` (api/clinical/evaluation.py): an evaluation made on `as_of`
stays right, except for the day count, on every date before its `next_change_on`, and on that
date something changes. The stored evaluations and the clock sweep rest on this. Pure property
tests over the default protocol's rules, no database."""

import dataclasses
import uuid
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.clinical import evaluation
from api.clinical.clock import clock_range
from api.clinical.evaluation import EffectiveLog, Evaluation, PatientFacts, ProcedureFacts
from tests.default_rules import default_rules

RULES = default_rules()
START = date(2025, 1, 6)  # the first procedure is on or after this date
SIDE_EFFECTS = ["injection_site_pain", "swelling", "redness", "fatigue", "headache"]
RED_FLAGS = ["fever", "new_weakness"]
# Days on a procedure's clock where the rules change their mind: baseline and window edges,
# the pain flare and soreness days, the ends of the schedule's phases.
EDGES = [-61, -60, -1, 0, 1, 6, 7, 8, 14, 15, 16, 17, 29, 30, 90, 91, 95, 96, 179, 180, 365, 366]
EDGES += [120, 130, 131, 360, 370, 371, 450, 460, 461, 720, 730, 731]
CHECKED_PER_GAP = 24  # dates checked between as_of and next_change_on (all, when fewer)
CLOCK = settings(max_examples=300, deadline=None, derandomize=True, database=None)


# --- strategies ----------------------------------------------------------------------------------


# Strategies are built once: building them inside a draw costs more than the test itself.
DAYS_NEAR_A_CLOCK = st.integers(-70, 800) | st.sampled_from(EDGES)
EXPLICIT_BASELINE = st.none() | st.fixed_dictionaries(
    {"pain": st.integers(0, 10).map(float)},
    optional={"mobility": st.integers(0, 10).map(float)},
)
# A few fixed days make repeat procedures on one date, and one inside another's windows.
PROCEDURE_DAY = st.integers(0, 420) | st.sampled_from([0, 10, 49, 200])
PROCEDURES = st.lists(
    st.tuples(PROCEDURE_DAY, EXPLICIT_BASELINE, st.uuids(version=4)), min_size=1, max_size=3
)
# Each log: which procedure's clock it is placed on, its day there, and what it reports.
LOGS = st.lists(
    st.tuples(
        st.integers(0, 2),
        DAYS_NEAR_A_CLOCK,
        st.integers(0, 10),
        st.none() | st.integers(0, 10),
        st.none() | st.integers(0, 50),
        st.lists(st.sampled_from(SIDE_EFFECTS), max_size=2),
        st.lists(st.sampled_from(RED_FLAGS), max_size=1),
    ),
    max_size=24,
)
SCHEDULED = st.none() | st.sampled_from([0, 5, 14, 21, 49, 91, 120, 360, 450, 720])


def _procedures(
    drawn: list[tuple[int, dict[str, float] | None, uuid.UUID]],
) -> list[ProcedureFacts]:
    """One to three procedures, some on the same date, some with an explicit baseline."""
    return [
        ProcedureFacts(
            id=procedure_id,
            performed_on=START + timedelta(days=offset),
            treatment="stem_cell",
            cell_source="umbilical_cord",
            protocol_id="default",
            protocol_version=1,
            explicit_baseline=explicit or {},
        )
        for offset, explicit, procedure_id in drawn
    ]


def _logs(drawn: list[tuple[Any, ...]], anchors: list[date]) -> list[EffectiveLog]:
    """Effective logs placed on the procedures' clocks, often on the days the rules turn on."""
    return [
        EffectiveLog(
            local_date=anchors[which % len(anchors)] + timedelta(days=day),
            pain=float(pain),
            mobility=None if mobility is None else float(mobility),
            odi=None if odi is None else 2.0 * odi,
            side_effects=tuple(side_effects),
            red_flags=tuple(red_flags),
        )
        for which, day, pain, mobility, odi, side_effects, red_flags in drawn
    ]


@dataclasses.dataclass(frozen=True)
class Case:
    patient: PatientFacts
    procedure: ProcedureFacts
    procedures: list[ProcedureFacts]
    logs: list[EffectiveLog]
    as_of: date
    missed_covered_through: int | None

    def on(self, day: date) -> Evaluation:
        return evaluation.evaluate(
            rules=RULES,
            patient=self.patient,
            procedure=self.procedure,
            procedures=self.procedures,
            logs=self.logs,
            as_of=day,
            missed_covered_through=self.missed_covered_through,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    every = _procedures(draw(PROCEDURES))
    procedure = every[draw(st.integers(0, len(every) - 1))]
    return Case(
        patient=PatientFacts(
            birth_date=draw(st.dates(date(1935, 1, 1), date(1990, 12, 31))),
            comorbidities=tuple(draw(st.lists(st.sampled_from(["diabetes", "obesity"])))),
            smoker=draw(st.booleans()),
        ),
        procedure=procedure,
        procedures=every,
        logs=_logs(draw(LOGS), [p.performed_on for p in every]),
        as_of=procedure.performed_on + timedelta(days=draw(DAYS_NEAR_A_CLOCK)),
        missed_covered_through=draw(SCHEDULED),
    )


# --- helpers -------------------------------------------------------------------------------------


def _without_date(result: Evaluation) -> Evaluation:
    """The evaluation less what the calendar alone moves every day: the date and the day count."""
    return dataclasses.replace(result, as_of=date.min, day_now=0)


REPORTED = ("baseline", "current_milestone", "progress_status", "next_check_in_day", "missed")
EVERY_FIELD = (*REPORTED, "factors", "age_at_procedure", "next_change_on")


def differences(before: Evaluation, after: Evaluation, *, names: tuple[str, ...]) -> list[str]:
    """What differs between two evaluations: the fields `names`, then milestone by milestone."""
    found = []
    for name in names:
        if getattr(before, name) != getattr(after, name):
            found.append(f"{name}: {getattr(before, name)!r} -> {getattr(after, name)!r}")
    for one, other in zip(before.milestones, after.milestones, strict=True):
        for name in ("state", "status", "observed", "substantial", "findings"):
            if getattr(one, name) != getattr(other, name):
                found.append(
                    f"{one.key}.{name}: {getattr(one, name)!r} -> {getattr(other, name)!r}"
                )
    return found


def _dates_before(as_of: date, change_on: date) -> list[date]:
    """Dates strictly between `as_of` and `change_on`: all of them, or an even spread that keeps
    the first and the last."""
    gap = (change_on - as_of).days
    if gap - 1 <= CHECKED_PER_GAP:
        return [as_of + timedelta(days=n) for n in range(1, gap)]
    step = gap / CHECKED_PER_GAP
    days = {round(step * i) for i in range(1, CHECKED_PER_GAP)} | {1, gap - 1}
    return [as_of + timedelta(days=n) for n in sorted(days) if 0 < n < gap]


def _comes_into_view(case: Case, on: date) -> list[EffectiveLog]:
    """Logs dated `on` that this procedure reads: on its clock or in its baseline window."""
    start, end = clock_range([p.clock_date for p in case.procedures], case.procedure.id)
    low, high = RULES["baseline"]["window_days"]
    day = (on - case.procedure.performed_on).days
    on_clock = (start is None or on >= start) and (end is None or on < end)
    if not on_clock and not low <= day <= high:
        return []
    return [log for log in case.logs if log.local_date == on]


# --- the properties ------------------------------------------------------------------------------


@CLOCK
@given(case=cases())
def test_an_evaluation_holds_on_every_date_before_its_next_change(case: Case) -> None:
    first = case.on(case.as_of)
    change_on = first.next_change_on
    if change_on is None:
        later = [case.as_of + timedelta(days=n) for n in (1, 2, 30, 365, 1000)]
    else:
        assert change_on > case.as_of
        later = _dates_before(case.as_of, change_on)
    for day in later:
        result = case.on(day)
        assert result.as_of == day
        assert result.day_now == (day - case.procedure.performed_on).days
        assert _without_date(result) == _without_date(first), (
            f"evaluated on {case.as_of} (day {first.day_now}), next_change_on {change_on}; "
            f"on {day} (day {result.day_now}): "
            + "; ".join(differences(first, result, names=EVERY_FIELD))
        )


@CLOCK
@given(case=cases())
def test_something_changes_on_the_next_change_date(case: Case) -> None:
    first = case.on(case.as_of)
    change_on = first.next_change_on
    if change_on is None:
        return
    result = case.on(change_on)
    # next_change_on itself always moves on: what must change is what the evaluation reports.
    changed = differences(first, result, names=REPORTED)
    # A log dated that day comes into view: it may change nothing visible (a day between two
    # windows), and re-evaluating for it is still right.
    assert changed or _comes_into_view(case, change_on), (
        f"evaluated on {case.as_of} (day {first.day_now}): next_change_on {change_on} "
        f"(day {result.day_now}) changes nothing and no log comes into view that day"
    )


def test_a_log_dated_later_in_view_is_a_next_change() -> None:
    """A log written today in a time zone ahead of the patient's is dated tomorrow: the
    evaluation of today must name tomorrow, when the log comes into view."""
    procedure = ProcedureFacts(
        id=uuid.uuid4(),
        performed_on=START,
        treatment="prp",
        cell_source=None,
        protocol_id="default",
        protocol_version=1,
        explicit_baseline={"pain": 7.0},
    )
    as_of = START + timedelta(days=40)
    tomorrow = as_of + timedelta(days=1)
    case = Case(
        patient=PatientFacts(date(1960, 1, 1), (), False),
        procedure=procedure,
        procedures=[procedure],
        logs=[EffectiveLog(as_of, 6.0), EffectiveLog(tomorrow, 2.0)],
        as_of=as_of,
        missed_covered_through=None,
    )
    first = case.on(as_of)
    assert first.next_change_on == tomorrow
    assert case.on(tomorrow).milestones[1].observed.n_logs == 2
