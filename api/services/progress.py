"""A patient's progress on one procedure's clock: gather the data, run the milestone engine."""

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.clinical import baseline as baseline_rules
from api.clinical import milestones, schedule
from api.clinical.clock import ProcedureDate, index_procedure, today_in
from api.errors import NotFound
from api.services import protocols, symptom_logs
from api.services.audit import Audit
from models.patient import Patient
from models.procedure import Procedure
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
from models.symptom_log import Alert, AlertStatus, SymptomLog

CAVEAT = (
    "Milestones compare the patient with their own baseline. They do not show that a "
    "treatment works: in trials, patients given saline also improve."
)


def open_alert_counts(session: Session, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not patient_ids:
        return {}
    rows = session.exec(
        select(Alert.patient_id, func.count())
        .where(col(Alert.patient_id).in_(patient_ids), Alert.status == AlertStatus.open)
        .group_by(col(Alert.patient_id))
    ).all()
    return dict(rows)


def _clock(
    procedure: Procedure, procedures: Sequence[Procedure], logs: Sequence[SymptomLog], as_of: date
) -> tuple[list[milestones.ClockLog], list[baseline_rules.LogPoint]]:
    """Logs on this procedure's clock (its index-procedure logs) and all logs for the baseline."""
    dates = [ProcedureDate(p.id, p.performed_on) for p in procedures]
    window, points = [], []
    for log in logs:
        if log.local_date > as_of:
            continue
        day = (log.local_date - procedure.performed_on).days
        points.append(
            baseline_rules.LogPoint(
                day=day, pain=log.pain, leg_pain=log.leg_pain, mobility=log.mobility, odi=log.odi
            )
        )
        if index_procedure(dates, log.local_date)[0] == procedure.id:
            window.append(
                milestones.ClockLog(
                    day=day,
                    pain=log.pain,
                    leg_pain=log.leg_pain,
                    mobility=log.mobility,
                    odi=log.odi,
                    side_effects=tuple(log.side_effects),
                    red_flags=tuple(log.red_flags),
                )
            )
    return window, points


def _explicit(procedure: Procedure) -> dict[str, float | None]:
    return {
        "pain": procedure.baseline_pain,
        "leg_pain": procedure.baseline_leg_pain,
        "mobility": procedure.baseline_mobility,
        "odi": procedure.baseline_odi,
    }


def _factors(patient: Patient, procedure: Procedure, rules: dict[str, Any]) -> list[FactorOut]:
    factors = []
    age = milestones.age_on(patient.birth_date, procedure.performed_on)
    if age >= rules["factors"]["age_moderate_from_years"]:
        factors.append(
            FactorOut(
                factor="age",
                impact="moderate",
                message=f"aged {age} at the procedure: older patients may have slower recovery times",
            )
        )
    if patient.comorbidities or patient.smoker:
        health = list(patient.comorbidities) + (["smoking"] if patient.smoker else [])
        factors.append(
            FactorOut(
                factor="overall_health",
                impact="significant",
                message=f"{', '.join(health)}: other health issues can slow healing",
            )
        )
    method = procedure.treatment.value + (
        f" ({procedure.cell_source.value})" if procedure.cell_source else ""
    )
    factors.append(
        FactorOut(
            factor="treatment_protocol",
            impact="significant",
            message=f"{method}, protocol {procedure.protocol_id} v{procedure.protocol_version}: "
            "the specific methods and amounts used in therapy",
        )
    )
    return factors


def evaluate(
    session: Session,
    *,
    patient: Patient,
    procedures: Sequence[Procedure],
    logs: Sequence[SymptomLog],
    procedure: Procedure,
    as_of: date,
    open_alerts: int,
) -> Progress:
    rules = protocols.rules(session, procedure.protocol_id, procedure.protocol_version)
    window, points = _clock(procedure, procedures, logs, as_of)
    base = baseline_rules.compute(_explicit(procedure), points, rules)
    day_now = (as_of - procedure.performed_on).days
    results = milestones.evaluate(rules=rules, logs=window, baseline=base, day_now=day_now)
    current = milestones.current_milestone(results)
    newest = max((log.day for log in window), default=None)
    next_day = schedule.next_check_in(rules, day_now=day_now, newest_log_day=newest)
    return Progress(
        patient_id=patient.id,
        procedure=ProcedureRef(
            id=procedure.id, performed_on=procedure.performed_on, treatment=procedure.treatment
        ),
        as_of=as_of,
        day=day_now,
        protocol=ProtocolVersion(id=procedure.protocol_id, version=procedure.protocol_version),
        baseline=BaselineOut(**base.values, n_logs=base.n_logs, source=base.source)
        if base
        else None,
        milestones=[_milestone_out(r) for r in results],
        current_milestone=current.key if current else None,
        factors=_factors(patient, procedure, rules),
        next_check_in=NextCheckIn(
            due_on=procedure.performed_on + timedelta(days=next_day), day=next_day
        )
        if next_day is not None
        else None,
        open_alerts=open_alerts,
        caveat=CAVEAT,
    )


def _milestone_out(result: milestones.MilestoneResult) -> MilestoneOut:
    return MilestoneOut(
        key=result.key,
        label=result.label,
        start_day=result.start_day,
        end_day=result.end_day,
        state=result.state,
        status=result.status,
        expected=result.expected,
        observed=ObservedOut(**asdict(result.observed)),
        substantial=result.substantial,
        findings=[FindingOut(code=f.code, message=f.message) for f in result.findings],
    )


def for_patient(
    session: Session,
    *,
    patient: Patient,
    procedure_id: uuid.UUID | None,
    as_of: date | None,
    audit: Audit,
) -> Progress:
    procedures = symptom_logs.procedures_of(session, patient.id)
    as_of = as_of or today_in(patient.timezone)
    open_alerts = open_alert_counts(session, [patient.id]).get(patient.id, 0)
    if procedure_id is not None:
        chosen = next((p for p in procedures if p.id == procedure_id), None)
        if chosen is None:
            raise NotFound("Procedure not found for this patient")
    else:
        chosen = procedures[-1] if procedures else None
    if chosen is None:
        result = Progress(
            patient_id=patient.id,
            procedure=None,
            as_of=as_of,
            day=None,
            protocol=None,
            baseline=None,
            milestones=[],
            current_milestone=None,
            factors=[],
            next_check_in=None,
            open_alerts=open_alerts,
            caveat=CAVEAT,
        )
    else:
        logs = symptom_logs.effective_logs(session, patient.id)
        result = evaluate(
            session,
            patient=patient,
            procedures=procedures,
            logs=logs,
            procedure=chosen,
            as_of=as_of,
            open_alerts=open_alerts,
        )
    audit.record(session, resource_id=patient.id, patient_id=patient.id)
    session.commit()
    return result


def status_of(
    session: Session,
    *,
    patient: Patient,
    procedures: Sequence[Procedure],
    logs: Sequence[SymptomLog],
) -> str:
    """The patient's progress_status today: the current milestone's status of the latest procedure."""
    if not procedures:
        return "pending"
    progress = evaluate(
        session,
        patient=patient,
        procedures=procedures,
        logs=logs,
        procedure=procedures[-1],
        as_of=today_in(patient.timezone),
        open_alerts=0,
    )
    current = next((m for m in progress.milestones if m.key == progress.current_milestone), None)
    return current.status if current else "pending"
