"""Clinic alerts: raised in the same transaction as the log that causes them, one open alert per
patient and kind (a repeat bumps the open one), listed, acknowledged and resolved."""

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.errors import Conflict
from api.services import baseline as baseline_rules
from api.services import protocols
from api.services.access import Principal
from api.services.audit import Audit
from api.services.clock import ProcedureDate, index_procedure
from api.services.pagination import keyset_page
from models.base import utc_now
from models.page import Page
from models.patient import Patient
from models.procedure import Procedure
from models.symptom_log import Alert, AlertKind, AlertPublic, AlertStatus, SymptomLog


def raise_alert(
    session: Session,
    *,
    patient: Patient,
    kind: AlertKind,
    log_id: uuid.UUID | None,
    details: dict[str, Any],
) -> Alert:
    """Open an alert, or bump the open one of this kind (the caller holds the patient's lock)."""
    now = utc_now()
    alert = session.exec(
        select(Alert).where(
            Alert.patient_id == patient.id, Alert.kind == kind, Alert.status == AlertStatus.open
        )
    ).first()
    if alert is None:
        alert = Alert(
            patient_id=patient.id,
            clinic_id=patient.clinic_id,
            kind=kind,
            status=AlertStatus.open,
            raised_at=now,
            last_raised_at=now,
            log_id=log_id,
            details=details,
        )
    else:
        alert.occurrences += 1
        alert.last_raised_at = now
        alert.log_id = log_id
        alert.details = _merge(alert.details, details)
        alert.version += 1
    session.add(alert)
    return alert


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = sorted(set(merged[key]) | set(value))
        else:
            merged[key] = value
    return merged


def check_new_logs(
    session: Session,
    *,
    patient: Patient,
    new_logs: Sequence[SymptomLog],
    procedures: Sequence[Procedure],
) -> list[Alert]:
    """Raise what the new logs call for (after they were flushed)."""
    raised = []
    flagged = [log for log in new_logs if log.red_flags]
    if flagged:
        flags = sorted({flag for log in flagged for flag in log.red_flags})
        raised.append(
            raise_alert(
                session,
                patient=patient,
                kind=AlertKind.red_flag,
                log_id=flagged[-1].id,
                details={"red_flags": flags},
            )
        )
    if worsening := _worsening(session, new_logs, procedures):
        raised.append(
            raise_alert(
                session, patient=patient, kind=AlertKind.worsening, log_id=worsening, details={}
            )
        )
    return raised


# One alias for the whole process: a new alias per query is costly and defeats SQLAlchemy's
# statement cache.
_CORRECTION = aliased(SymptomLog)


def _effective_on(
    patient_id: uuid.UUID, start: date, end: date | None
) -> SelectOfScalar[SymptomLog]:
    """Logs that no correction supersedes, with a local date in [start, end)."""
    query = select(SymptomLog).where(
        SymptomLog.patient_id == patient_id,
        col(SymptomLog.local_date) >= start,
        ~exists().where(col(_CORRECTION.corrects_id) == SymptomLog.id),
    )
    return query if end is None else query.where(col(SymptomLog.local_date) < end)


def _baseline(
    session: Session, procedure: Procedure, rules: dict[str, Any]
) -> baseline_rules.Baseline | None:
    """The procedure's explicit baseline, else the median of the bounded pre-procedure window."""
    explicit = _explicit(procedure)
    if any(value is not None for value in explicit.values()):
        return baseline_rules.compute(explicit, [], rules)
    low, high = rules["baseline"]["window_days"]
    first = procedure.performed_on + timedelta(days=low)
    window = session.exec(
        _effective_on(
            procedure.patient_id, first, procedure.performed_on + timedelta(days=high + 1)
        )
    ).all()
    points = [
        baseline_rules.LogPoint(
            day=(log.local_date - procedure.performed_on).days,
            pain=log.pain,
            leg_pain=log.leg_pain,
            mobility=log.mobility,
            odi=log.odi,
        )
        for log in window
    ]
    return baseline_rules.compute(None, points, rules)


def _neighbour_is_high(
    session: Session, clock: SelectOfScalar[SymptomLog], log: SymptomLog, threshold: float
) -> bool:
    """Whether the log just before or just after this one on the clock is high too."""
    at, key = col(SymptomLog.recorded_at), col(SymptomLog.id)
    before = clock.where(or_(at < log.recorded_at, and_(at == log.recorded_at, key < log.id)))
    after = clock.where(or_(at > log.recorded_at, and_(at == log.recorded_at, key > log.id)))
    return any(
        (neighbour := session.exec(query.limit(1)).first()) is not None
        and neighbour.pain >= threshold
        for query in (before.order_by(at.desc(), key.desc()), after.order_by(at, key))
    )


def _worsening(
    session: Session, new_logs: Sequence[SymptomLog], procedures: Sequence[Procedure]
) -> uuid.UUID | None:
    """Two consecutive logs after day 14, both with pain >= baseline + 2 (CLINICAL.md), one of
    them new. Bounded queries: the baseline window and each high new log's two neighbours."""
    dates = [ProcedureDate(p.id, p.performed_on) for p in procedures]
    for procedure in procedures:
        rules = protocols.rules(session, procedure.protocol_id, procedure.protocol_version)
        rule = rules["worsening"]
        late = [
            log
            for log in new_logs
            if index_procedure(dates, log.local_date)[0] == procedure.id
            and (log.local_date - procedure.performed_on).days > rule["after_day"]
        ]
        base = _baseline(session, procedure, rules) if late else None
        if base is None or base["pain"] is None:
            continue
        threshold = base["pain"] + rule["rise_points"]
        later = [p.performed_on for p in procedures if p.performed_on > procedure.performed_on]
        clock = _effective_on(
            procedure.patient_id,
            procedure.performed_on + timedelta(days=rule["after_day"] + 1),
            min(later) if later else None,
        )
        for log in sorted(late, key=lambda item: (item.recorded_at, str(item.id))):
            if log.pain >= threshold and _neighbour_is_high(session, clock, log, threshold):
                return log.id
    return None


def _explicit(procedure: Procedure) -> dict[str, float | None]:
    return {
        "pain": procedure.baseline_pain,
        "leg_pain": procedure.baseline_leg_pain,
        "mobility": procedure.baseline_mobility,
        "odi": procedure.baseline_odi,
    }


def to_public(alert: Alert) -> AlertPublic:
    return AlertPublic.model_validate(alert, from_attributes=True)


def list_alerts(
    session: Session,
    *,
    principal: Principal,
    audit: Audit,
    limit: int,
    cursor: str | None,
    status: AlertStatus | None,
    kind: AlertKind | None,
    patient_id: uuid.UUID | None,
) -> Page[AlertPublic]:
    query = select(Alert)
    if not principal.is_admin:
        query = query.where(Alert.clinic_id == principal.clinic_id)
    for column, value in (
        (Alert.status, status),
        (Alert.kind, kind),
        (Alert.patient_id, patient_id),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, next_cursor = keyset_page(
        session,
        query,
        sort=Alert.raised_at,
        key=Alert.id,
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    audit.record(session, patient_id=patient_id)
    session.commit()
    return Page[AlertPublic](items=[to_public(a) for a in rows], next_cursor=next_cursor)


def acknowledge(
    session: Session, *, alert: Alert, by: Principal, note: str | None, audit: Audit
) -> AlertPublic:
    locked = session.get_one(Alert, alert.id, with_for_update=True, populate_existing=True)
    if locked.status == AlertStatus.resolved:
        raise Conflict("The alert is already resolved")
    if locked.status == AlertStatus.open:
        locked.status, locked.acknowledged_at, locked.acknowledged_by_id = (
            AlertStatus.acknowledged,
            utc_now(),
            by.user_id,
        )
        locked.version += 1
    if note:
        locked.resolution_note = note
    audit.record(session, resource_id=locked.id, patient_id=locked.patient_id)
    session.commit()
    return to_public(locked)


def resolve(
    session: Session, *, alert: Alert, by: Principal, note: str | None, audit: Audit
) -> AlertPublic:
    locked = session.get_one(Alert, alert.id, with_for_update=True, populate_existing=True)
    if locked.status != AlertStatus.resolved:
        now = utc_now()
        locked.acknowledged_at = locked.acknowledged_at or now
        locked.acknowledged_by_id = locked.acknowledged_by_id or by.user_id
        locked.status, locked.resolved_at, locked.resolved_by_id = (
            AlertStatus.resolved,
            now,
            by.user_id,
        )
        locked.resolution_note = note or locked.resolution_note
        locked.version += 1
    audit.record(session, resource_id=locked.id, patient_id=locked.patient_id)
    session.commit()
    return to_public(locked)
