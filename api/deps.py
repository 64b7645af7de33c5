"""Request dependencies: settings, audit context, the caller, role guards and object loaders.

Every route except the public ones (health, docs, sign-in, enrolment) declares the roles that
may call it with `dependencies=[allow(...)]`; tests/api/test_route_table.py fails for a route
that does not. Route-level dependencies run before the endpoint's own, so the role check comes
before any loader can answer 404.
"""

import uuid
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from api.config import Settings
from api.db import Database
from api.errors import Forbidden, NotFound, Unauthorized
from api.services import auth, records, sweep
from api.services.access import Principal
from api.services.audit import Audit
from api.services.concurrency import IfMatch
from api.services.records import LogRecord, PatientRef
from models.identity import Role
from models.patient import Patient
from models.procedure import AdverseEvent, Procedure
from models.symptom_log import Alert

T = TypeVar("T")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


# Dependencies that need only the request read it directly rather than through sub-dependencies:
# FastAPI walks a dependency's whole sub-tree again wherever it is used (the cache saves only the
# calls), so a flat graph is measurably cheaper on every request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_of(request: Request) -> Audit:
    """The request's audit context, named after the route (e.g. `patient.read`); made once."""
    state = request.state
    audit: Audit | None = getattr(state, "audit", None)
    if audit is None:
        route = request.scope.get("route")
        audit = Audit(
            action=getattr(route, "name", "unknown"),
            request_id=state.request_id,
            ip=client_address(request),
        )
        state.audit = audit
    return audit


async def get_audit(request: Request) -> Audit:
    return audit_of(request)


AuditDep = Annotated[Audit, Depends(get_audit)]


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    audit = audit_of(request)  # before any refusal, which the error handler audits
    if not token:
        raise Unauthorized("A bearer token is required")
    state = request.state
    database: Database = state.database
    principal = await database.lookup(auth.authenticate, settings=state.settings, token=token)
    audit.identify(principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


class RoleGuard:
    """A route's declaration of the roles that may call it."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, principal: PrincipalDep) -> Principal:
        if principal.role not in self.roles:
            raise Forbidden(f"The {principal.role.value} role may not use this operation")
        return principal


def allow(*roles: Role) -> DependsParam:
    guard: DependsParam = Depends(RoleGuard(roles))
    return guard


ANY_ROLE = allow(Role.admin, Role.clinician, Role.researcher, Role.patient)
ADMIN = allow(Role.admin)
STAFF = allow(Role.admin, Role.clinician, Role.researcher)
CLINICAL = allow(Role.admin, Role.clinician)
PATIENT = allow(Role.patient)


def _get(session: Session, model: type[T], key: uuid.UUID) -> T | None:
    return session.get(model, key)


class _PatientRecord(Protocol):
    patient_id: uuid.UUID


R = TypeVar("R", bound=_PatientRecord)


def _database(request: Request) -> Database:
    database: Database = request.state.database
    return database


async def _owned_by(
    request: Request, model: type[R], key: uuid.UUID, patient: Patient, label: str
) -> R:
    """A record of the patient in the path; 404 for anyone else's."""
    audit_of(request).target(resource_id=key)
    record = await _database(request).read(_get, model, key)
    if record is None or record.patient_id != patient.id:
        raise NotFound(f"{label} not found")
    return record


async def load_patient_ref(
    patient_id: uuid.UUID, request: Request, principal: PrincipalDep
) -> PatientRef:
    """The patient named in the path, if the caller may see them; 404 otherwise."""
    audit_of(request).target(resource_id=patient_id, patient_id=patient_id)
    patient = await _database(request).lookup(records.patient_ref, patient_id)
    if patient is None or not principal.sees_patient(patient.id, patient.clinic_id):
        raise NotFound("Patient not found")
    return patient


PatientRefDep = Annotated[PatientRef, Depends(load_patient_ref)]


async def _whole_record(request: Request, ref: PatientRef) -> Patient:
    """A patient's whole record, once a ref loader has checked access."""
    patient = await _database(request).read(_get, Patient, ref.id)
    if patient is None:  # deleted in between
        raise NotFound("Patient not found")
    return patient


async def _catch_up(
    request: Request, *, clinic_id: uuid.UUID | None = None, patient_id: uuid.UUID | None = None
) -> None:
    """Bring the stored progress in `scope` up to today before a read answers from it: the
    patients whose stored evaluation the clock has overtaken (usually none, between local
    midnight and the next periodic sweep) are swept now, in a write use-case of their own."""
    database = _database(request)
    remaining = sorted(
        await database.lookup(sweep.due_now, clinic_id=clinic_id, patient_id=patient_id)
    )
    while remaining:
        done = await database.write(sweep.sweep_chunk, patient_ids=remaining[: sweep.CHUNK])
        remaining = remaining[done.candidates :]


async def fresh_patient_progress(patient: PatientRefDep, request: Request) -> None:
    """The patient in the path's stored progress is current today."""
    await _catch_up(request, patient_id=patient.id)


async def fresh_clinic_progress(principal: PrincipalDep, request: Request) -> None:
    """The stored progress of the caller's clinic (every clinic for an admin) is current today."""
    await _catch_up(request, clinic_id=None if principal.is_admin else principal.clinic_id)


FreshPatientProgress = Depends(fresh_patient_progress)
FreshClinicProgress = Depends(fresh_clinic_progress)


async def load_patient(ref: PatientRefDep, request: Request) -> Patient:
    """The whole record of the patient in the path (access checked by `load_patient_ref`)."""
    return await _whole_record(request, ref)


PatientDep = Annotated[Patient, Depends(load_patient)]


async def load_me_ref(request: Request, principal: PrincipalDep) -> PatientRef:
    """The patient a patient token belongs to."""
    if principal.patient_id is None:
        raise Forbidden("Only a patient's app token can use /v1/me")
    audit_of(request).target(patient_id=principal.patient_id)
    if principal.patient is None:  # the token's patient is gone
        raise NotFound("Patient not found")
    return principal.patient


MeRefDep = Annotated[PatientRef, Depends(load_me_ref)]


async def fresh_own_progress(me: MeRefDep, request: Request) -> None:
    """The calling patient's stored progress is current today."""
    await _catch_up(request, patient_id=me.id)


FreshOwnProgress = Depends(fresh_own_progress)


async def load_me(ref: MeRefDep, request: Request) -> Patient:
    return await _whole_record(request, ref)


MeDep = Annotated[Patient, Depends(load_me)]


async def _owned_log(request: Request, log_id: uuid.UUID, patient: PatientRef) -> LogRecord:
    audit_of(request).target(resource_id=log_id)
    log = await _database(request).lookup(records.log_record, log_id)
    if log is None or log.patient_id != patient.id:
        raise NotFound("Symptom log not found")
    return log


async def load_symptom_log(
    log_id: uuid.UUID, patient: PatientRefDep, request: Request
) -> LogRecord:
    return await _owned_log(request, log_id, patient)


SymptomLogDep = Annotated[LogRecord, Depends(load_symptom_log)]


async def load_my_symptom_log(log_id: uuid.UUID, me: MeRefDep, request: Request) -> LogRecord:
    return await _owned_log(request, log_id, me)


MySymptomLogDep = Annotated[LogRecord, Depends(load_my_symptom_log)]


async def load_alert(alert_id: uuid.UUID, request: Request, principal: PrincipalDep) -> Alert:
    audit = audit_of(request)
    audit.target(resource_id=alert_id)
    alert = await _database(request).read(_get, Alert, alert_id)
    if alert is None or not principal.sees_patient(alert.patient_id, alert.clinic_id):
        raise NotFound("Alert not found")
    audit.target(patient_id=alert.patient_id)
    return alert


AlertDep = Annotated[Alert, Depends(load_alert)]


async def load_procedure(
    procedure_id: uuid.UUID, patient: PatientDep, request: Request
) -> Procedure:
    return await _owned_by(request, Procedure, procedure_id, patient, "Procedure")


ProcedureDep = Annotated[Procedure, Depends(load_procedure)]


async def load_adverse_event(
    adverse_event_id: uuid.UUID, patient: PatientDep, request: Request
) -> AdverseEvent:
    return await _owned_by(request, AdverseEvent, adverse_event_id, patient, "Adverse event")


AdverseEventDep = Annotated[AdverseEvent, Depends(load_adverse_event)]


async def get_if_match(
    if_match: Annotated[
        str | None,
        Header(
            max_length=200,
            description="The ETag from your last read; required to change the record",
        ),
    ] = None,
) -> IfMatch:
    return IfMatch(if_match)


IfMatchDep = Annotated[IfMatch, Depends(get_if_match)]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Page size (1 to 500)")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
