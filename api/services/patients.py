"""Patients: registration, lookup, search and updates."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from api.clinical import candidacy
from api.errors import Conflict, FieldError, RuleViolation
from api.services import progress_store
from api.services.access import Principal
from api.services.audit import Audit
from api.services.concurrency import IfMatch
from api.services.pagination import Cursor, decode_cursor, encode_cursor
from models.base import utc_now
from models.evaluation import PatientProgress
from models.identity import Clinic
from models.page import Page
from models.patient import (
    Candidacy,
    Patient,
    PatientCreate,
    PatientPublic,
    PatientUpdate,
    ProgressStatus,
    Screening,
)
from models.symptom_log import Alert, AlertStatus

# The patient fields the milestone engine reads (age, health factors, today's date).
EVALUATION_INPUTS = frozenset({"birth_date", "comorbidities", "smoker", "timezone"})
_TABLE_FIELDS = (
    "mrn",
    "given_name",
    "family_name",
    "birth_date",
    "sex",
    "postal_code",
    "timezone",
    "comorbidities",
    "smoker",
    "research_consent",
)


def to_public(patient: Patient) -> PatientPublic:
    return PatientPublic(
        id=patient.id,
        clinic_id=patient.clinic_id,
        version=patient.version,
        created_at=patient.created_at,
        updated_at=patient.updated_at,
        stenosis={"region": patient.stenosis_region, "cause": patient.stenosis_cause},
        screening=Screening.model_validate(patient.screening),
        **{name: getattr(patient, name) for name in _TABLE_FIELDS},
    )


def _clinic_for(session: Session, principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    if principal.is_admin:
        if requested is None:
            raise RuleViolation(
                "An admin names the patient's clinic",
                errors=[FieldError("/clinic_id", "is required when an admin registers a patient")],
            )
        if session.get(Clinic, requested) is None:
            raise RuleViolation(
                "No such clinic", errors=[FieldError("/clinic_id", "must name an existing clinic")]
            )
        return requested
    assert principal.clinic_id is not None
    if requested is not None and requested != principal.clinic_id:
        raise RuleViolation(
            "Clinicians register patients in their own clinic",
            errors=[FieldError("/clinic_id", "must be your own clinic, or left out")],
        )
    return principal.clinic_id


def _flush_or_conflict(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("A patient with this MRN already exists in the clinic") from None


def create(session: Session, *, data: PatientCreate, by: Principal, audit: Audit) -> PatientPublic:
    patient = Patient(
        clinic_id=_clinic_for(session, by, data.clinic_id),
        stenosis_region=data.stenosis.region,
        stenosis_cause=data.stenosis.cause,
        screening=data.screening.model_dump(mode="json", exclude_none=True),
        **data.model_dump(include=set(_TABLE_FIELDS)),
    )
    session.add(patient)
    _flush_or_conflict(session)
    progress_store.refresh(session.connection(), patient_id=patient.id)
    audit.record(session, status_code=201, resource_id=patient.id, patient_id=patient.id)
    session.commit()
    return to_public(patient)


def read(session: Session, *, patient: Patient) -> PatientPublic:
    """One patient with today's progress_status and open alerts (a read-only use-case: the route
    writes the audit row)."""
    [public] = with_progress(session, [patient])
    return public


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_OPEN_ALERTS = (
    select(func.count(col(Alert.id)))
    .where(Alert.patient_id == Patient.id, Alert.status == AlertStatus.open)
    .correlate(Patient)
    .scalar_subquery()
)


_Listing = Select[Patient, str, Any, datetime]


def _matching(
    principal: Principal, q: str | None, progress_status: ProgressStatus | None
) -> _Listing:
    """The caller's patients with their stored progress_status and open alert count, in
    registration order: with a status filter, one range of a patient_progress index."""
    query = select(
        Patient,
        PatientProgress.progress_status,
        _OPEN_ALERTS,
        PatientProgress.patient_created_at,
    ).join(PatientProgress, col(PatientProgress.patient_id) == Patient.id)
    if not principal.is_admin:
        query = query.where(PatientProgress.clinic_id == principal.clinic_id)
    if progress_status is not None:
        query = query.where(PatientProgress.progress_status == progress_status.value)
    if q:
        pattern = f"%{_escape_like(q.lower())}%"
        columns = (Patient.given_name, Patient.family_name, Patient.mrn)
        query = query.where(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    return query.order_by(col(PatientProgress.patient_created_at), col(PatientProgress.patient_id))


def _after(query: _Listing, cursor: Cursor | None) -> _Listing:
    if cursor is None:
        return query
    at, last = cursor.as_instant(), cursor.key_uuid()
    return query.where(
        or_(
            col(PatientProgress.patient_created_at) > at,
            and_(
                col(PatientProgress.patient_created_at) == at,
                col(PatientProgress.patient_id) > last,
            ),
        )
    )


def _public(patient: Patient, status: str, alerts: int) -> PatientPublic:
    # model_copy does not validate: convert, or the response is serialised from a str.
    return to_public(patient).model_copy(
        update={"progress_status": ProgressStatus(status), "open_alerts": alerts}
    )


def with_progress(session: Session, rows: Sequence[Patient]) -> list[PatientPublic]:
    """Public patients with their stored progress_status and open alert count (one query)."""
    ids = [p.id for p in rows]
    found = {
        patient.id: (status, alerts)
        for patient, status, alerts in session.exec(
            select(Patient, PatientProgress.progress_status, _OPEN_ALERTS)
            .join(PatientProgress, col(PatientProgress.patient_id) == Patient.id)
            .where(col(Patient.id).in_(ids))
        )
    }
    return [_public(p, *found.get(p.id, ("pending", 0))) for p in rows]


def search(
    session: Session,
    *,
    principal: Principal,
    limit: int,
    cursor: str | None,
    q: str | None,
    progress_status: ProgressStatus | None = None,
) -> Page[PatientPublic]:
    """A page of the caller's patients in registration order, optionally searched by name or
    MRN and filtered by stored progress_status (a read-only use-case)."""
    query = _after(_matching(principal, q, progress_status), decode_cursor(cursor))
    rows = session.exec(query.limit(limit + 1)).all()
    items = [_public(patient, status, alerts) for patient, status, alerts, _ in rows[:limit]]
    # The cursor holds the sort key as the index has it (patient_progress's copy).
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor(Cursor.at_instant(last[3], str(last[0].id))) if last else None
    return Page[PatientPublic](items=items, next_cursor=next_cursor)


def _apply(patient: Patient, changes: dict[str, Any], screening: dict[str, Any]) -> None:
    if "stenosis" in changes:
        stenosis = changes.pop("stenosis")
        patient.stenosis_region, patient.stenosis_cause = stenosis["region"], stenosis["cause"]
    if "screening" in changes:
        changes.pop("screening")
        merged = {**patient.screening, **screening}
        # The evaluation is merged too: sending one step keeps the steps already recorded.
        stored_evaluation = patient.screening.get("evaluation")
        if isinstance(stored_evaluation, dict) and isinstance(screening.get("evaluation"), dict):
            merged["evaluation"] = {**stored_evaluation, **screening["evaluation"]}
        patient.screening = merged
    for name, value in changes.items():
        setattr(patient, name, value)


def update(
    session: Session, *, patient: Patient, data: PatientUpdate, if_match: IfMatch, audit: Audit
) -> PatientPublic:
    locked = session.get_one(Patient, patient.id, with_for_update=True, populate_existing=True)
    if_match.check(locked.version)
    screening = data.screening.model_dump(mode="json", exclude_unset=True) if data.screening else {}
    _apply(locked, data.model_dump(exclude_unset=True), screening)
    locked.version += 1
    locked.updated_at = utc_now()
    _flush_or_conflict(session)
    if EVALUATION_INPUTS & data.model_fields_set:
        progress_store.refresh(session.connection(), patient_id=locked.id)
    audit.record(session, resource_id=locked.id, patient_id=locked.id)
    session.commit()
    return to_public(locked)


def assess_candidacy(session: Session, *, patient: Patient, audit: Audit) -> Candidacy:
    audit.record(session, resource_id=patient.id, patient_id=patient.id)
    session.commit()
    return candidacy.assess(Screening.model_validate(patient.screening), patient.stenosis_cause)
