"""Stored progress: the milestone engine's evaluations kept as rows (models/evaluation.py), and
the alerts that a change of them raises.

`refresh` evaluates a patient's procedures with the engine (api/clinical/evaluation.py) and
rewrites their rows. Every write that changes the engine's inputs calls it in its own
transaction, before it commits (a log, a batch, a correction, a procedure recorded or changed, a
patient change), and so does the clock sweep (api/services/sweep.py) for the patients whose
`next_change_on` has come. So a stored row always equals what the engine reports today.

Two alert kinds come from here, in the same transaction as the evaluation that calls for them
(CLINICAL.md §Red flags and alerts): `milestone_not_met` when short_term or long_term closes
`not_met`, and `missed_check_in` when a scheduled check-in's grace runs out with no log. Each
closing and each missed interval raises once (the rows keep what was raised); a second cause of
the same kind while one is open bumps it (`alerts.raise_alert`).

The caller holds the patient's lock: the write paths take it, the sweep takes it per patient.
"""

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    type_coerce,
    update,
)

from api.clinical import evaluation
from api.clinical.clock import clock_range, start_of_day, today_in
from api.clinical.evaluation import EffectiveLog, Evaluation, PatientFacts, ProcedureFacts
from api.services import alerts, protocols
from api.services.alerts import ALERT
from api.services.records import PATIENT, PROCEDURE, SYMPTOM_LOG, PatientRef
from models.base import utc_now
from models.evaluation import MilestoneEvaluation, PatientProgress, ProcedureEvaluation
from models.symptom_log import AlertKind

PROCEDURE_EVALUATION: Table = ProcedureEvaluation.__table__  # type: ignore[attr-defined]
MILESTONE_EVALUATION: Table = MilestoneEvaluation.__table__  # type: ignore[attr-defined]
PATIENT_PROGRESS: Table = PatientProgress.__table__  # type: ignore[attr-defined]
LOG = SYMPTOM_LOG
NOT_MET_ALERTED = ("short_term", "long_term")  # CLINICAL.md: these closing not_met raise


@dataclass(frozen=True, slots=True)
class PatientRow:
    """What the rules and the store read of a patient: no identifying field."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    timezone: str
    created_at: datetime
    facts: PatientFacts

    @property
    def ref(self) -> PatientRef:
        return PatientRef(self.id, self.clinic_id, self.timezone)


_PATIENT = select(
    PATIENT.c.id,
    PATIENT.c.clinic_id,
    PATIENT.c.timezone,
    PATIENT.c.created_at,
    PATIENT.c.birth_date,
    PATIENT.c.comorbidities,
    PATIENT.c.smoker,
).where(PATIENT.c.id == bindparam("patient_id"))
_PROCEDURES = (
    select(
        PROCEDURE.c.id,
        PROCEDURE.c.performed_on,
        PROCEDURE.c.treatment,
        PROCEDURE.c.cell_source,
        PROCEDURE.c.protocol_id,
        PROCEDURE.c.protocol_version,
        PROCEDURE.c.baseline_pain,
        PROCEDURE.c.baseline_leg_pain,
        PROCEDURE.c.baseline_mobility,
        PROCEDURE.c.baseline_odi,
    )
    .where(PROCEDURE.c.patient_id == bindparam("patient_id"))
    .order_by(PROCEDURE.c.performed_on, PROCEDURE.c.id)
)
# The patient's logs from a local date on: only the columns the rules read, as plain rows. The
# JSON lists come back as text and are decoded only when not empty (most are `[]`), and the
# superseded ones are dropped in Python: a NOT EXISTS per row cost 10 ms for 730 logs.
_LOGS_FROM = select(
    type_coerce(LOG.c.id, String),  # compared, never used: no conversion to uuid.UUID
    LOG.c.local_date,
    LOG.c.pain,
    LOG.c.leg_pain,
    LOG.c.mobility,
    LOG.c.odi,
    type_coerce(LOG.c.side_effects, String),
    type_coerce(LOG.c.red_flags, String),
).where(
    LOG.c.patient_id == bindparam("patient_id"),
    LOG.c.local_date >= bindparam("start", type_=LOG.c.local_date.type),
)
_SUPERSEDED = select(type_coerce(LOG.c.corrects_id, String)).where(
    LOG.c.patient_id == bindparam("patient_id"), LOG.c.corrects_id.is_not(None)
)


def _flags(raw: str | list[str] | None) -> tuple[str, ...]:
    """A JSON list column as a tuple (SQLite gives its text, PostgreSQL the decoded list)."""
    if not raw or raw == "[]":
        return ()
    return tuple(json.loads(raw) if isinstance(raw, str) else raw)


# What was raised before, read back from the alerts themselves (any status): the alert table is
# the record, the evaluation rows only a cache that `reevaluate` may rebuild from nothing.
_RAISED = select(ALERT.c.kind, ALERT.c.details).where(
    ALERT.c.patient_id == bindparam("patient_id"),
    ALERT.c.kind.in_([AlertKind.missed_check_in, AlertKind.milestone_not_met]),
)


@dataclass
class AlertRecord:
    """What the clock's alerts already covered for a patient."""

    closings: set[str] = field(default_factory=set)  # "<procedure id>/<milestone key>"
    # procedure id -> the date of the last scheduled check-in covered: a date, not a day on the
    # clock, so that a procedure whose date is corrected keeps what was covered in the calendar.
    missed_through: dict[str, date] = field(default_factory=dict)

    @classmethod
    def read(cls, connection: Connection, patient_id: uuid.UUID) -> "AlertRecord":
        record = cls()
        for kind, details in connection.execute(_RAISED, {"patient_id": patient_id}):
            if kind == AlertKind.milestone_not_met:
                record.closings.update(details.get("closings", []))
            elif (on := details.get("missed_through_on")) is not None:
                procedure, through = details.get("procedure_id", ""), date.fromisoformat(on)
                record.missed_through[procedure] = max(
                    through, record.missed_through.get(procedure, through)
                )
        return record

    def covered(self) -> dict[uuid.UUID, date]:
        return {uuid.UUID(p): on for p, on in self.missed_through.items() if p}


_NEXT_CHANGES = select(PROCEDURE_EVALUATION.c.next_change_on).where(
    PROCEDURE_EVALUATION.c.patient_id == bindparam("patient_id")
)


def patient_row(connection: Connection, patient_id: uuid.UUID) -> PatientRow | None:
    row = connection.execute(_PATIENT, {"patient_id": patient_id}).first()
    if row is None:
        return None
    facts = PatientFacts(row.birth_date, tuple(row.comorbidities), bool(row.smoker))
    return PatientRow(row.id, row.clinic_id, row.timezone, row.created_at, facts)


def procedure_facts(connection: Connection, patient_id: uuid.UUID) -> list[ProcedureFacts]:
    """The patient's procedures by date, as the rules read them."""
    return [
        ProcedureFacts(
            id=row.id,
            performed_on=row.performed_on,
            treatment=str(row.treatment),
            cell_source=str(row.cell_source) if row.cell_source is not None else None,
            protocol_id=row.protocol_id,
            protocol_version=row.protocol_version,
            explicit_baseline={
                "pain": row.baseline_pain,
                "leg_pain": row.baseline_leg_pain,
                "mobility": row.baseline_mobility,
                "odi": row.baseline_odi,
            },
        )
        for row in connection.execute(_PROCEDURES, {"patient_id": patient_id})
    ]


def effective_logs(
    connection: Connection, patient_id: uuid.UUID, start: date
) -> list[EffectiveLog]:
    """The patient's effective logs dated `start` or later (corrections applied)."""
    params = {"patient_id": patient_id}
    superseded = set(connection.execute(_SUPERSEDED, params).scalars())
    return [
        EffectiveLog(local_date, pain, leg_pain, mobility, odi, _flags(effects), _flags(flags))
        for log_id, local_date, pain, leg_pain, mobility, odi, effects, flags in connection.execute(
            _LOGS_FROM, params | {"start": start}
        ).all()  # one fetchall: iterating the result fetches row by row
        if log_id not in superseded
    ]


def earliest_input(procedures: Sequence[ProcedureFacts], rules_of: Any) -> date:
    """The first local date any of these procedures' evaluations reads (their baseline windows)."""
    return min(
        p.performed_on + timedelta(days=rules_of(p)["baseline"]["window_days"][0])
        for p in procedures
    )


def evaluate_patient(
    connection: Connection,
    patient: PatientRow,
    *,
    as_of: date,
    covered: Mapping[uuid.UUID, date] | None = None,
    procedures: Sequence[ProcedureFacts] | None = None,
    only: Collection[uuid.UUID] | None = None,
) -> list[Evaluation]:
    """The patient's procedures (those in `only`, else all) evaluated on `as_of` by the engine,
    straight from the records: the source of truth the stored rows are checked against.
    `covered`: per procedure, the date of the last scheduled check-in a missed_check_in alert
    covered. `procedures`: the patient's procedures, if the caller has read them."""
    if procedures is None:
        procedures = procedure_facts(connection, patient.id)
    chosen = [p for p in procedures if only is None or p.id in only]
    if not chosen:
        return []

    def rules_of(p: ProcedureFacts) -> dict[str, Any]:
        return protocols.rules(connection, p.protocol_id, p.protocol_version)

    logs = effective_logs(connection, patient.id, earliest_input(chosen, rules_of))
    covered = covered or {}
    return [
        evaluation.evaluate(
            rules=rules_of(p),
            patient=patient.facts,
            procedure=p,
            procedures=procedures,
            logs=logs,
            as_of=as_of,
            missed_covered_through=(covered[p.id] - p.performed_on).days
            if p.id in covered
            else None,
        )
        for p in chosen
    ]


def _affected(
    connection: Connection,
    procedures: Sequence[ProcedureFacts],
    log_dates: Collection[date] | None,
    procedure_id: uuid.UUID | None,
) -> set[uuid.UUID] | None:
    """The procedures whose evaluation a write can change (None: all of them). Logs on `log_dates`
    change the procedures whose clock or baseline window holds one of those dates; a new
    procedure changes its own and the clock of the one before it. The latest procedure is always
    evaluated: the patient's status and check-in schedule are its."""
    if not procedures or (log_dates is None and procedure_id is None):
        return None
    dates = [p.clock_date for p in procedures]
    affected = {procedures[-1].id}
    if procedure_id is not None:
        position = next(i for i, p in enumerate(procedures) if p.id == procedure_id)
        affected |= {p.id for p in procedures[max(0, position - 1) : position + 2]}
    for p in procedures if log_dates else ():
        low, high = protocols.rules(connection, p.protocol_id, p.protocol_version)["baseline"][
            "window_days"
        ]
        start, end = clock_range(dates, p.id)
        baseline = (p.performed_on + timedelta(days=low), p.performed_on + timedelta(days=high))
        if any(
            baseline[0] <= d <= baseline[1]
            or ((start is None or d >= start) and (end is None or d < end))
            for d in log_dates or ()
        ):
            affected.add(p.id)
    return affected


@dataclass(frozen=True)
class Refreshed:
    progress_status: str
    raised: list[str]  # the kinds of the alerts raised (or bumped), one entry each


def refresh(
    connection: Connection,
    *,
    patient_id: uuid.UUID,
    today: date | None = None,
    raise_missed: bool = False,
    log_dates: Collection[date] | None = None,
    procedure_id: uuid.UUID | None = None,
) -> Refreshed | None:
    """Evaluate the patient's procedures on `today` (default: today in the patient's time zone),
    raise the alerts the results call for, and rewrite the stored rows. None when the patient
    does not exist. Does not commit: the caller's transaction holds it with the change.

    `missed_check_in` is the clock's alert: only the sweep raises it (`raise_missed`). A write
    that finds check-ins missed leaves the patient due today instead, so the next sweep (or the
    next read, which sweeps what is due first) raises it if no log has come by then. A
    procedure recorded late, before the app has synced its backlog, so raises nothing.

    `log_dates` (the dates of the logs a write added or corrected) or `procedure_id` (a procedure
    just recorded) narrow the evaluation to the procedures the write can change; without them
    every procedure is evaluated."""
    patient = patient_row(connection, patient_id)
    if patient is None:
        return None
    as_of = today or today_in(patient.timezone)
    record = AlertRecord.read(connection, patient_id)
    procedures = procedure_facts(connection, patient_id)
    only = _affected(connection, procedures, log_dates, procedure_id)
    results = evaluate_patient(
        connection,
        patient,
        as_of=as_of,
        covered=record.covered(),
        procedures=procedures,
        only=only,
    )
    now = utc_now()
    procedure_rows, milestone_rows, raised = [], [], []
    for result in results:
        row = _procedure_row(patient, result, now)
        if result.missed is not None and raise_missed:
            _raise_missed(connection, patient, result)
            raised.append(AlertKind.missed_check_in.value)
        elif result.missed is not None:
            row["next_change_on"] = as_of  # due now: the sweep raises it
        procedure_rows.append(row)
        rows, closings = _milestone_rows(connection, patient, result, record.closings)
        milestone_rows += rows
        raised += [AlertKind.milestone_not_met.value] * closings
    _replace(connection, patient_id, only, procedure_rows, milestone_rows)
    current = results[-1] if results else None
    _write_patient_progress(connection, patient, current, as_of, now)
    return Refreshed(current.progress_status if current else "pending", raised)


def _raise_missed(connection: Connection, patient: PatientRow, result: Evaluation) -> None:
    """Raise a missed_check_in alert for the check-ins missed since the last one covered."""
    missed = result.missed
    assert missed is not None
    performed_on = result.procedure.performed_on
    alerts.raise_alert(
        connection,
        patient=patient.ref,
        kind=AlertKind.missed_check_in,
        log_id=None,
        details={
            "procedure_id": str(result.procedure.id),
            "missed_from_day": missed.first_day,
            "missed_from_on": (performed_on + timedelta(days=missed.first_day)).isoformat(),
            "missed_through_day": missed.through_day,
            "missed_through_on": (performed_on + timedelta(days=missed.through_day)).isoformat(),
            "phase": missed.phase,
            "grace_days": missed.grace_days,
            "detected_on": result.as_of.isoformat(),
        },
    )


def _milestone_rows(
    connection: Connection,
    patient: PatientRow,
    result: Evaluation,
    alerted: set[str],
) -> tuple[list[dict[str, Any]], int]:
    """The milestones' rows, and how many milestone_not_met alerts their closings raised."""
    rows, closings = [], 0
    for position, milestone in enumerate(result.milestones):
        closing = f"{result.procedure.id}/{milestone.key}"
        closed_not_met = milestone.state == "closed" and milestone.status == "not_met"
        if closed_not_met and milestone.key in NOT_MET_ALERTED and closing not in alerted:
            alerts.raise_alert(
                connection,
                patient=patient.ref,
                kind=AlertKind.milestone_not_met,
                log_id=None,
                details={
                    "procedure_id": str(result.procedure.id),
                    "milestones": [milestone.key],
                    # Each closing raises once, whatever the alert's status later: merged as a set.
                    "closings": [closing],
                    "findings": [f.code for f in milestone.findings],
                    "closed_on": (
                        result.procedure.performed_on + timedelta(days=milestone.end_day + 1)
                    ).isoformat(),
                },
            )
            alerted.add(closing)
            closings += 1
        observed = milestone.observed
        rows.append(
            {
                "procedure_id": result.procedure.id,
                "key": milestone.key,
                "patient_id": patient.id,
                "clinic_id": patient.clinic_id,
                "position": position,
                "label": milestone.label,
                "start_day": milestone.start_day,
                "end_day": milestone.end_day,
                "state": milestone.state,
                "status": milestone.status,
                "expected": milestone.expected,
                **asdict(observed),  # the engine's observed values, one column each
                "substantial": milestone.substantial,
                "findings": [{"code": f.code, "message": f.message} for f in milestone.findings],
            }
        )
    return rows, closings


def _procedure_row(patient: PatientRow, result: Evaluation, now: datetime) -> dict[str, Any]:
    base = result.baseline
    values = base.values if base else {}
    return {
        "procedure_id": result.procedure.id,
        "patient_id": patient.id,
        "clinic_id": patient.clinic_id,
        "protocol_id": result.procedure.protocol_id,
        "protocol_version": result.procedure.protocol_version,
        "as_of": result.as_of,
        "next_change_on": result.next_change_on,
        "baseline_pain": values.get("pain"),
        "baseline_leg_pain": values.get("leg_pain"),
        "baseline_mobility": values.get("mobility"),
        "baseline_odi": values.get("odi"),
        "baseline_n_logs": base.n_logs if base else None,
        "baseline_source": base.source if base else None,
        "current_milestone": result.current_milestone,
        "progress_status": result.progress_status,
        "next_check_in_day": result.next_check_in_day,
        "age_at_procedure": result.age_at_procedure,
        "factors": [
            {"factor": f.factor, "impact": f.impact, "message": f.message} for f in result.factors
        ],
        "evaluated_at": now,
    }


_DELETE_MILESTONES = delete(MILESTONE_EVALUATION).where(
    MILESTONE_EVALUATION.c.patient_id == bindparam("patient_id")
)
_DELETE_PROCEDURES = delete(PROCEDURE_EVALUATION).where(
    PROCEDURE_EVALUATION.c.patient_id == bindparam("patient_id")
)
_DELETE_MILESTONES_OF = delete(MILESTONE_EVALUATION).where(
    MILESTONE_EVALUATION.c.procedure_id.in_(bindparam("ids", expanding=True))
)
_DELETE_PROCEDURES_OF = delete(PROCEDURE_EVALUATION).where(
    PROCEDURE_EVALUATION.c.procedure_id.in_(bindparam("ids", expanding=True))
)
_INSERT_PROCEDURES = insert(PROCEDURE_EVALUATION)
_INSERT_MILESTONES = insert(MILESTONE_EVALUATION)


def _replace(
    connection: Connection,
    patient_id: uuid.UUID,
    only: Collection[uuid.UUID] | None,
    procedure_rows: list[dict[str, Any]],
    milestone_rows: list[dict[str, Any]],
) -> None:
    """Replace the stored rows of the procedures evaluated (all the patient's with `only` None)."""
    if only is None:
        connection.execute(_DELETE_MILESTONES, {"patient_id": patient_id})
        connection.execute(_DELETE_PROCEDURES, {"patient_id": patient_id})
    else:
        connection.execute(_DELETE_MILESTONES_OF, {"ids": list(only)})
        connection.execute(_DELETE_PROCEDURES_OF, {"ids": list(only)})
    if procedure_rows:
        connection.execute(_INSERT_PROCEDURES, procedure_rows)
    if milestone_rows:
        connection.execute(_INSERT_MILESTONES, milestone_rows)


_UPDATE_PROGRESS = (
    update(PATIENT_PROGRESS)
    .where(PATIENT_PROGRESS.c.patient_id == bindparam("key"))
    .values(
        procedure_id=bindparam("procedure_id"),
        current_milestone=bindparam("current_milestone"),
        progress_status=bindparam("progress_status"),
        as_of=bindparam("as_of"),
        next_change_on=bindparam("next_change_on"),
        due_at=bindparam("due_at"),
        evaluated_at=bindparam("evaluated_at"),
    )
)


def _write_patient_progress(
    connection: Connection,
    patient: PatientRow,
    current: Evaluation | None,
    as_of: date,
    now: datetime,
) -> None:
    changes = [
        d
        for d in connection.execute(_NEXT_CHANGES, {"patient_id": patient.id}).scalars()
        if d is not None
    ]
    next_change_on = min(changes) if changes else None
    values = {
        "procedure_id": current.procedure.id if current else None,
        "current_milestone": current.current_milestone if current else None,
        "progress_status": current.progress_status if current else "pending",
        "as_of": as_of,
        "next_change_on": next_change_on,
        "due_at": start_of_day(next_change_on, patient.timezone) if next_change_on else None,
        "evaluated_at": now,
    }
    if connection.execute(_UPDATE_PROGRESS, {"key": patient.id, **values}).rowcount == 0:
        connection.execute(
            insert(PATIENT_PROGRESS),
            {
                "patient_id": patient.id,
                "clinic_id": patient.clinic_id,
                "patient_created_at": patient.created_at,
                **values,
            },
        )
