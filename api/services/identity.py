"""Clinics and staff accounts."""

import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api import security
from api.errors import Conflict, FieldError, NotFound, RuleViolation
from api.services import protocols
from api.services.access import Principal
from api.services.audit import Audit
from models.identity import (
    Clinic,
    ClinicCreate,
    ClinicPublic,
    ClinicUpdate,
    Role,
    UserAccount,
    UserCreate,
    UserPublic,
)


def create_clinic(session: Session, *, data: ClinicCreate, audit: Audit) -> ClinicPublic:
    clinic = Clinic.model_validate(data)
    session.add(clinic)
    audit.record(session, status_code=201, resource_id=clinic.id)
    session.commit()
    return ClinicPublic.model_validate(clinic, from_attributes=True)


def list_clinics(session: Session, *, principal: Principal, audit: Audit) -> list[ClinicPublic]:
    query = select(Clinic).order_by(col(Clinic.name), col(Clinic.id))
    if not principal.is_admin:
        query = query.where(Clinic.id == principal.clinic_id)
    clinics = [ClinicPublic.model_validate(c, from_attributes=True) for c in session.exec(query)]
    audit.record(session)
    session.commit()
    return clinics


def update_clinic(
    session: Session, *, clinic_id: uuid.UUID, data: ClinicUpdate, audit: Audit
) -> ClinicPublic:
    """Set the protocol the clinic's new procedures pin when they name none (null: `default`).
    Procedures already recorded keep theirs."""
    audit.target(resource_id=clinic_id)
    clinic = session.get(Clinic, clinic_id, with_for_update=True)
    if clinic is None:
        raise NotFound("Clinic not found")
    protocol_id = data.default_protocol_id
    if protocol_id is not None and protocols.latest_version(session, protocol_id) is None:
        raise RuleViolation(
            "No such protocol",
            errors=[FieldError("/default_protocol_id", f"no protocol '{protocol_id}'")],
        )
    clinic.default_protocol_id = protocol_id
    session.add(clinic)
    audit.record(session)
    session.commit()
    return ClinicPublic.model_validate(clinic, from_attributes=True)


def _check_user_clinic(session: Session, data: UserCreate) -> None:
    if data.role == Role.patient:
        raise RuleViolation(
            "Patients join through an enrolment code, not an account",
            errors=[FieldError("/role", "must be admin, clinician or researcher")],
        )
    if data.role == Role.admin and data.clinic_id is not None:
        raise RuleViolation(
            "Admins work across all clinics",
            errors=[FieldError("/clinic_id", "must be absent for an admin")],
        )
    if data.role != Role.admin and data.clinic_id is None:
        raise RuleViolation(
            f"A {data.role.value} belongs to a clinic",
            errors=[FieldError("/clinic_id", f"is required for role {data.role.value}")],
        )
    if data.clinic_id is not None and session.get(Clinic, data.clinic_id) is None:
        raise RuleViolation(
            "No such clinic", errors=[FieldError("/clinic_id", "must name an existing clinic")]
        )


def create_user(session: Session, *, data: UserCreate, audit: Audit) -> UserPublic:
    _check_user_clinic(session, data)
    user = UserAccount(
        email=data.email.lower(),
        password_hash=security.hash_password(data.password),
        role=data.role,
        clinic_id=data.clinic_id,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("An account with this email already exists") from None
    audit.record(session, status_code=201, resource_id=user.id)
    session.commit()
    return UserPublic.model_validate(user, from_attributes=True)


def read_me(session: Session, *, principal: Principal, audit: Audit) -> UserPublic:
    user = session.get_one(UserAccount, principal.user_id)
    audit.record(session, resource_id=user.id, patient_id=user.patient_id)
    session.commit()
    return UserPublic.model_validate(user, from_attributes=True)
