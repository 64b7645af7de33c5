"""Adverse events after a procedure (CTCAE grade 1-5)."""

import uuid
from datetime import date

from sqlmodel import Session, select

from api.clinical.clock import today_in
from api.errors import FieldError, NotFound, RuleViolation
from api.services.audit import Audit
from api.services.concurrency import IfMatch
from api.services.pagination import keyset_page
from models.base import utc_now
from models.page import Page
from models.patient import Patient
from models.procedure import (
    AdverseEvent,
    AdverseEventCreate,
    AdverseEventPublic,
    AdverseEventUpdate,
    Procedure,
)


def to_public(event: AdverseEvent) -> AdverseEventPublic:
    return AdverseEventPublic.model_validate(event, from_attributes=True)


def _procedure_of(session: Session, patient: Patient, procedure_id: uuid.UUID) -> Procedure:
    procedure = session.get(Procedure, procedure_id)
    if procedure is None or procedure.patient_id != patient.id:
        raise NotFound("Procedure not found for this patient")
    return procedure


def _check_dates(
    *, onset_on: date, resolved_on: date | None, performed_on: date, today: date
) -> None:
    errors = []
    if onset_on < performed_on:
        errors.append(
            FieldError(
                "/onset_on",
                f"an adverse event cannot start before its procedure ({performed_on.isoformat()})",
            )
        )
    if onset_on > today:
        errors.append(FieldError("/onset_on", "cannot be in the future"))
    if resolved_on is not None and resolved_on < onset_on:
        errors.append(FieldError("/resolved_on", "cannot be before onset_on"))
    if resolved_on is not None and resolved_on > today:
        errors.append(FieldError("/resolved_on", "cannot be in the future"))
    if errors:
        raise RuleViolation(errors[0].message, errors=errors)


def record(
    session: Session, *, patient: Patient, data: AdverseEventCreate, audit: Audit
) -> AdverseEventPublic:
    procedure = _procedure_of(session, patient, data.procedure_id)
    _check_dates(
        onset_on=data.onset_on,
        resolved_on=data.resolved_on,
        performed_on=procedure.performed_on,
        today=today_in(patient.timezone),
    )
    event = AdverseEvent(patient_id=patient.id, **data.model_dump())
    session.add(event)
    audit.record(session, status_code=201, resource_id=event.id, patient_id=patient.id)
    session.commit()
    return to_public(event)


def read(session: Session, *, event: AdverseEvent, audit: Audit) -> AdverseEventPublic:
    audit.record(session, resource_id=event.id, patient_id=event.patient_id)
    session.commit()
    return to_public(event)


def list_for(
    session: Session, *, patient: Patient, audit: Audit, limit: int, cursor: str | None
) -> Page[AdverseEventPublic]:
    query = select(AdverseEvent).where(AdverseEvent.patient_id == patient.id)
    rows, next_cursor = keyset_page(
        session, query, sort=AdverseEvent.onset_on, key=AdverseEvent.id, cursor=cursor, limit=limit
    )
    audit.record(session, patient_id=patient.id)
    session.commit()
    return Page[AdverseEventPublic](items=[to_public(e) for e in rows], next_cursor=next_cursor)


def update(
    session: Session,
    *,
    patient: Patient,
    event: AdverseEvent,
    data: AdverseEventUpdate,
    if_match: IfMatch,
    audit: Audit,
) -> AdverseEventPublic:
    locked = session.get_one(AdverseEvent, event.id, with_for_update=True, populate_existing=True)
    if_match.check(locked.version)
    for name, value in data.model_dump(exclude_unset=True).items():
        setattr(locked, name, value)
    procedure = session.get_one(Procedure, locked.procedure_id)
    _check_dates(
        onset_on=locked.onset_on,
        resolved_on=locked.resolved_on,
        performed_on=procedure.performed_on,
        today=today_in(patient.timezone),
    )
    locked.version += 1
    locked.updated_at = utc_now()
    audit.record(session, resource_id=locked.id, patient_id=patient.id)
    session.commit()
    return to_public(locked)
