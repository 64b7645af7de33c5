"""A patient's progress on one procedure's clock (API.md §Progress against milestones).

Today's progress is read from the stored evaluations (api/services/progress_store.py), which
every write and the clock sweep keep equal to the engine's report; a report for another date
(`as_of`), or a stored row that the clock has overtaken, is computed by the engine from the
records. Both give the same `Progress` (tests/api/test_progress_store.py checks it).

These are read-only use-cases (`Database.query`): the route writes the audit row.
"""

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlmodel import Session

from api.clinical.clock import today_in
from api.clinical.evaluation import Evaluation, ProcedureFacts
from api.errors import NotFound
from api.services import progress_store
from api.services.alerts import ALERT
from api.services.records import PatientRef
from models.progress import (
    BaselineOut,
    FactorOut,
    FindingOut,
    MilestoneOut,
    NextCheckIn,
    ObservedOut,
    ProcedureRef,
    Progress,
    ProtocolVersion,
)
from models.symptom_log import AlertStatus

CAVEAT = (
    "Milestones compare the patient with their own baseline. They do not show that a "
    "treatment works: in trials, patients given saline also improve."
)
PROCEDURE_EVALUATION = progress_store.PROCEDURE_EVALUATION
MILESTONE_EVALUATION = progress_store.MILESTONE_EVALUATION

_OPEN_ALERTS = select(func.count()).where(
    ALERT.c.patient_id == bindparam("patient_id"), ALERT.c.status == AlertStatus.open
)
_STORED = select(PROCEDURE_EVALUATION).where(
    PROCEDURE_EVALUATION.c.procedure_id == bindparam("procedure_id")
)
_STORED_MILESTONES = (
    select(MILESTONE_EVALUATION)
    .where(MILESTONE_EVALUATION.c.procedure_id == bindparam("procedure_id"))
    .order_by(MILESTONE_EVALUATION.c.position)
)


def open_alerts(connection: Connection, patient_id: uuid.UUID) -> int:
    return int(connection.execute(_OPEN_ALERTS, {"patient_id": patient_id}).scalar_one())


def for_patient(
    session: Session, *, patient: PatientRef, procedure_id: uuid.UUID | None, as_of: date | None
) -> Progress:
    """The progress report of a procedure (default: the latest) on `as_of` (default: today in
    the patient's time zone). Raises NotFound for a procedure that is not the patient's."""
    connection = session.connection()
    procedures = progress_store.procedure_facts(connection, patient.id)
    chosen = _chosen(procedures, procedure_id)
    today = today_in(patient.timezone)
    as_of = as_of or today
    alerts = open_alerts(connection, patient.id)
    if chosen is None:
        return _no_procedure(patient.id, as_of, alerts)
    if as_of == today and (stored := stored_progress(connection, chosen, today, alerts)):
        return stored.model_copy(update={"patient_id": patient.id})
    row = progress_store.patient_row(connection, patient.id)
    assert row is not None
    [result] = [
        e
        for e in progress_store.evaluate_patient(connection, row, as_of=as_of)
        if e.procedure.id == chosen.id
    ]
    return from_evaluation(patient.id, result, alerts)


def _chosen(
    procedures: Sequence[ProcedureFacts], procedure_id: uuid.UUID | None
) -> ProcedureFacts | None:
    if procedure_id is None:
        return procedures[-1] if procedures else None
    chosen = next((p for p in procedures if p.id == procedure_id), None)
    if chosen is None:
        raise NotFound("Procedure not found for this patient")
    return chosen


def _no_procedure(patient_id: uuid.UUID, as_of: date, alerts: int) -> Progress:
    return Progress(
        patient_id=patient_id,
        procedure=None,
        as_of=as_of,
        day=None,
        protocol=None,
        baseline=None,
        milestones=[],
        current_milestone=None,
        factors=[],
        next_check_in=None,
        open_alerts=alerts,
        caveat=CAVEAT,
    )


def _procedure_ref(procedure: ProcedureFacts) -> ProcedureRef:
    return ProcedureRef.model_validate(
        {
            "id": procedure.id,
            "performed_on": procedure.performed_on,
            "treatment": procedure.treatment,
        }
    )


def _next_check_in(performed_on: date, day: int | None) -> NextCheckIn | None:
    return None if day is None else NextCheckIn(due_on=performed_on + timedelta(days=day), day=day)


def from_evaluation(patient_id: uuid.UUID, result: Evaluation, alerts: int) -> Progress:
    """The API's report of an evaluation made by the engine."""
    procedure, base = result.procedure, result.baseline
    return Progress(
        patient_id=patient_id,
        procedure=_procedure_ref(procedure),
        as_of=result.as_of,
        day=result.day_now,
        protocol=ProtocolVersion(id=procedure.protocol_id, version=procedure.protocol_version),
        baseline=BaselineOut(**base.values, n_logs=base.n_logs, source=base.source)
        if base
        else None,
        milestones=[
            MilestoneOut(
                key=m.key,
                label=m.label,
                start_day=m.start_day,
                end_day=m.end_day,
                state=m.state,
                status=m.status,
                expected=m.expected,
                observed=ObservedOut(**asdict(m.observed)),
                substantial=m.substantial,
                findings=[FindingOut(code=f.code, message=f.message) for f in m.findings],
            )
            for m in result.milestones
        ],
        current_milestone=result.current_milestone,
        factors=[
            FactorOut(factor=f.factor, impact=f.impact, message=f.message) for f in result.factors
        ],
        next_check_in=_next_check_in(procedure.performed_on, result.next_check_in_day),
        open_alerts=alerts,
        caveat=CAVEAT,
    )


def stored_progress(
    connection: Connection, procedure: ProcedureFacts, today: date, alerts: int
) -> Progress | None:
    """Today's report from the stored evaluation, or None when there is none that is still
    valid today (the clock has overtaken it)."""
    row = connection.execute(_STORED, {"procedure_id": procedure.id}).first()
    if row is None or row.as_of > today or (row.next_change_on and row.next_change_on <= today):
        return None
    milestones = connection.execute(_STORED_MILESTONES, {"procedure_id": procedure.id}).all()
    return Progress(
        patient_id=row.patient_id,
        procedure=_procedure_ref(procedure),
        as_of=today,
        day=(today - procedure.performed_on).days,
        protocol=ProtocolVersion(id=row.protocol_id, version=row.protocol_version),
        baseline=_stored_baseline(row),
        milestones=[_stored_milestone(m) for m in milestones],
        current_milestone=row.current_milestone,
        factors=[FactorOut.model_validate(f) for f in row.factors],
        next_check_in=_next_check_in(procedure.performed_on, row.next_check_in_day),
        open_alerts=alerts,
        caveat=CAVEAT,
    )


def _stored_baseline(row: Any) -> BaselineOut | None:
    if row.baseline_source is None:
        return None
    return BaselineOut(
        pain=row.baseline_pain,
        leg_pain=row.baseline_leg_pain,
        mobility=row.baseline_mobility,
        odi=row.baseline_odi,
        n_logs=row.baseline_n_logs,
        source=row.baseline_source,
    )


def _stored_milestone(row: Any) -> MilestoneOut:
    return MilestoneOut(
        key=row.key,
        label=row.label,
        start_day=row.start_day,
        end_day=row.end_day,
        state=row.state,
        status=row.status,
        expected=row.expected,
        observed=ObservedOut.model_validate(row, from_attributes=True),
        substantial=row.substantial,
        findings=[FindingOut.model_validate(f) for f in row.findings],
    )
