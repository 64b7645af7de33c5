"""Patients: registration, lookup, search and updates."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.clinical import candidacy
from api.errors import Conflict, FieldError, RuleViolation
from api.services import progress, progress_store, symptom_logs
from api.services.access import Principal
from api.services.audit import Audit
from api.services.concurrency import IfMatch
from api.services.pagination import Cursor, decode_cursor, encode_cursor
from models.base import utc_now
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
from models.procedure import Procedure

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


def read(session: Session, *, patient: Patient, audit: Audit) -> PatientPublic:
    [public] = with_progress(session, [patient])
    audit.record(session, resource_id=patient.id, patient_id=patient.id)
    session.commit()
    return public


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matching(principal: Principal, q: str | None) -> SelectOfScalar[Patient]:
    query = select(Patient)
    if not principal.is_admin:
        query = query.where(Patient.clinic_id == principal.clinic_id)
    if q:
        pattern = f"%{_escape_like(q.lower())}%"
        columns = (Patient.given_name, Patient.family_name, Patient.mrn)
        query = query.where(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    return query


def _after(query: SelectOfScalar[Patient], cursor: Cursor | None) -> SelectOfScalar[Patient]:
    if cursor is None:
        return query
    at, last = cursor.as_instant(), cursor.key_uuid()
    return query.where(
        or_(
            col(Patient.created_at) > at,
            and_(col(Patient.created_at) == at, col(Patient.id) > last),
        )
    )


def with_progress(session: Session, rows: Sequence[Patient]) -> list[PatientPublic]:
    """Public patients with their current progress_status and open alert count (3 queries)."""
    ids = [p.id for p in rows]
    alerts = progress.open_alert_counts(session, ids)
    procedures: dict[uuid.UUID, list[Procedure]] = defaultdict(list)
    for procedure in session.exec(
        select(Procedure)
        .where(col(Procedure.patient_id).in_(ids))
        .order_by(col(Procedure.performed_on), col(Procedure.id))
    ):
        procedures[procedure.patient_id].append(procedure)
    logs = symptom_logs.effective_logs_of(session, [p.id for p in rows if procedures[p.id]])
    return [
        to_public(p).model_copy(
            update={
                # model_copy does not validate: convert, or the response is serialised from a str.
                "progress_status": ProgressStatus(
                    progress.status_of(
                        session, patient=p, procedures=procedures[p.id], logs=logs.get(p.id, [])
                    )
                ),
                "open_alerts": alerts.get(p.id, 0),
            }
        )
        for p in rows
    ]


def search(
    session: Session,
    *,
    principal: Principal,
    audit: Audit,
    limit: int,
    cursor: str | None,
    q: str | None,
    progress_status: ProgressStatus | None = None,
) -> Page[PatientPublic]:
    """A page of patients in registration order; a progress_status filter scans until it is full."""
    query = _matching(principal, q).order_by(col(Patient.created_at), col(Patient.id))
    after = decode_cursor(cursor)
    found: list[PatientPublic] = []
    batch = limit + 1 if progress_status is None else 200
    while len(found) <= limit:
        rows = list(session.exec(_after(query, after).limit(batch)))
        found += [
            p
            for p in with_progress(session, rows)
            if progress_status is None or p.progress_status == progress_status
        ]
        if len(rows) < batch:
            break
        after = Cursor.at_instant(rows[-1].created_at, str(rows[-1].id))
    audit.record(session)
    session.commit()
    more, items = len(found) > limit, found[:limit]
    next_cursor = (
        encode_cursor(Cursor.at_instant(items[-1].created_at, str(items[-1].id))) if more else None
    )
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
