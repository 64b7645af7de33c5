"""Procedures and adverse events of a patient (clinicians and admins)."""

from fastapi import APIRouter, Response

from api.db import DatabaseDep
from api.deps import (
    CLINICAL,
    AdverseEventDep,
    AuditDep,
    IfMatchDep,
    PageDep,
    PatientDep,
    PatientRefDep,
    PrincipalDep,
    ProcedureDep,
)
from api.errors import problem_responses
from api.services import adverse_events, procedures
from api.services.concurrency import etag
from models.page import Page
from models.procedure import (
    AdverseEventCreate,
    AdverseEventPublic,
    AdverseEventUpdate,
    ProcedureCreate,
    ProcedurePublic,
    ProcedureUpdate,
)

router = APIRouter(prefix="/patients/{patient_id}", tags=["procedures"])

READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 412, 422, 428)


@router.post(
    "/procedures",
    name="procedure.create",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_procedure(
    body: ProcedureCreate,
    patient: PatientRefDep,
    response: Response,
    database: DatabaseDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> ProcedurePublic:
    """Record a procedure; a contraindicated patient needs override_reason (audited)."""
    procedure = await database.write(
        procedures.record, patient=patient, data=body, by=principal, audit=audit
    )
    response.headers["ETag"] = etag(procedure.version)
    response.headers["Location"] = f"/v1/patients/{patient.id}/procedures/{procedure.id}"
    return procedure


@router.get("/procedures", name="procedure.list", dependencies=[CLINICAL], responses=READ_ERRORS)
async def list_procedures(
    patient: PatientDep, database: DatabaseDep, audit: AuditDep, page: PageDep
) -> Page[ProcedurePublic]:
    """The patient's procedures, oldest first (repeat injections included)."""
    return await database.run(
        procedures.list_for, patient=patient, audit=audit, limit=page.limit, cursor=page.cursor
    )


@router.get(
    "/procedures/{procedure_id}",
    name="procedure.read",
    dependencies=[CLINICAL],
    responses=READ_ERRORS,
)
async def read_procedure(
    procedure: ProcedureDep, response: Response, database: DatabaseDep, audit: AuditDep
) -> ProcedurePublic:
    """One procedure, with an ETag for later corrections."""
    response.headers["ETag"] = etag(procedure.version)
    return await database.run(procedures.read, procedure=procedure, audit=audit)


@router.patch(
    "/procedures/{procedure_id}",
    name="procedure.update",
    dependencies=[CLINICAL],
    responses=WRITE_ERRORS,
)
async def update_procedure(
    body: ProcedureUpdate,
    patient: PatientDep,
    procedure: ProcedureDep,
    if_match: IfMatchDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> ProcedurePublic:
    """Correct a procedure; send If-Match with the ETag you read."""
    updated = await database.run(
        procedures.update,
        patient=patient,
        procedure=procedure,
        data=body,
        if_match=if_match,
        audit=audit,
    )
    response.headers["ETag"] = etag(updated.version)
    return updated


@router.post(
    "/adverse-events",
    name="adverse_event.create",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 422),
)
async def create_adverse_event(
    body: AdverseEventCreate,
    patient: PatientDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> AdverseEventPublic:
    """Record an adverse event tied to one of the patient's procedures."""
    event = await database.run(adverse_events.record, patient=patient, data=body, audit=audit)
    response.headers["ETag"] = etag(event.version)
    response.headers["Location"] = f"/v1/patients/{patient.id}/adverse-events/{event.id}"
    return event


@router.get(
    "/adverse-events", name="adverse_event.list", dependencies=[CLINICAL], responses=READ_ERRORS
)
async def list_adverse_events(
    patient: PatientDep, database: DatabaseDep, audit: AuditDep, page: PageDep
) -> Page[AdverseEventPublic]:
    """The patient's adverse events, by onset date."""
    return await database.run(
        adverse_events.list_for, patient=patient, audit=audit, limit=page.limit, cursor=page.cursor
    )


@router.get(
    "/adverse-events/{adverse_event_id}",
    name="adverse_event.read",
    dependencies=[CLINICAL],
    responses=READ_ERRORS,
)
async def read_adverse_event(
    event: AdverseEventDep, response: Response, database: DatabaseDep, audit: AuditDep
) -> AdverseEventPublic:
    """One adverse event, with an ETag for later updates."""
    response.headers["ETag"] = etag(event.version)
    return await database.run(adverse_events.read, event=event, audit=audit)


@router.patch(
    "/adverse-events/{adverse_event_id}",
    name="adverse_event.update",
    dependencies=[CLINICAL],
    responses=WRITE_ERRORS,
)
async def update_adverse_event(
    body: AdverseEventUpdate,
    patient: PatientDep,
    event: AdverseEventDep,
    if_match: IfMatchDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> AdverseEventPublic:
    """Update an adverse event (for example when it resolves); send If-Match."""
    updated = await database.run(
        adverse_events.update,
        patient=patient,
        event=event,
        data=body,
        if_match=if_match,
        audit=audit,
    )
    response.headers["ETag"] = etag(updated.version)
    return updated
