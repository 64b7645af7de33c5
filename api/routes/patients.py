"""Patients and their candidacy screening (clinicians and admins)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.db import DatabaseDep
from api.deps import (
    CLINICAL,
    AuditDep,
    FreshClinicProgress,
    FreshPatientProgress,
    IfMatchDep,
    PageDep,
    PatientDep,
    PatientRefDep,
    PrincipalDep,
)
from api.errors import problem_responses
from api.services import patients, progress
from api.services.concurrency import etag
from models.base import Day, ShortText
from models.page import Page
from models.patient import Candidacy, PatientCreate, PatientPublic, PatientUpdate, ProgressStatus
from models.progress import Progress

router = APIRouter(prefix="/patients", tags=["patients"])


@router.post(
    "",
    name="patient.create",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_patient(
    body: PatientCreate,
    response: Response,
    database: DatabaseDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> PatientPublic:
    """Register a patient (an admin names the clinic; a clinician's own clinic is implied)."""
    patient = await database.run(patients.create, data=body, by=principal, audit=audit)
    response.headers["ETag"] = etag(patient.version)
    response.headers["Location"] = f"/v1/patients/{patient.id}"
    return patient


@router.get(
    "",
    name="patient.list",
    dependencies=[CLINICAL, FreshClinicProgress],
    responses=problem_responses(401, 403, 422),
)
async def list_patients(
    database: DatabaseDep,
    principal: PrincipalDep,
    audit: AuditDep,
    page: PageDep,
    q: Annotated[
        # ShortText (1-100, no control characters): a NUL reaching PostgreSQL is a 500.
        ShortText | None, Query(min_length=1, max_length=100, description="Part of a name or MRN")
    ] = None,
    progress_status: Annotated[
        ProgressStatus | None, Query(description="Status of the patient's current milestone")
    ] = None,
) -> Page[PatientPublic]:
    """List the clinic's patients (all clinics for an admin), optionally searching name or MRN."""
    found = await database.query(
        patients.search,
        principal=principal,
        limit=page.limit,
        cursor=page.cursor,
        q=q,
        progress_status=progress_status,
    )
    await database.audited(audit)
    return found


@router.get(
    "/{patient_id}",
    name="patient.read",
    dependencies=[CLINICAL, FreshPatientProgress],
    responses=problem_responses(401, 403, 404, 422),
)
async def read_patient(
    patient: PatientDep, response: Response, database: DatabaseDep, audit: AuditDep
) -> PatientPublic:
    """One patient, with an ETag for later updates."""
    response.headers["ETag"] = etag(patient.version)
    found = await database.query(patients.read, patient=patient)
    await database.audited(audit, resource_id=patient.id, patient_id=patient.id)
    return found


@router.patch(
    "/{patient_id}",
    name="patient.update",
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
async def update_patient(
    body: PatientUpdate,
    patient: PatientDep,
    if_match: IfMatchDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> PatientPublic:
    """Change a patient's fields; send If-Match with the ETag you read."""
    updated = await database.run(
        patients.update, patient=patient, data=body, if_match=if_match, audit=audit
    )
    response.headers["ETag"] = etag(updated.version)
    return updated


@router.get(
    "/{patient_id}/candidacy",
    name="patient.candidacy",
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 422),
)
async def read_candidacy(patient: PatientDep, database: DatabaseDep, audit: AuditDep) -> Candidacy:
    """Whether the patient is a candidate, with reasons and missing evaluation steps."""
    return await database.run(patients.assess_candidacy, patient=patient, audit=audit)


@router.get(
    "/{patient_id}/progress",
    name="patient.progress",
    dependencies=[CLINICAL, FreshPatientProgress],
    responses=problem_responses(401, 403, 404, 422),
)
async def read_progress(
    patient: PatientRefDep,
    database: DatabaseDep,
    audit: AuditDep,
    procedure_id: uuid.UUID | None = None,
    as_of: Annotated[
        Day | None, Query(description="Default: today in the patient's time zone")
    ] = None,
) -> Progress:
    """Progress against the immediate, 1-3 month and 6-12+ month milestones, on one procedure's clock."""
    found = await database.query(
        progress.for_patient, patient=patient, procedure_id=procedure_id, as_of=as_of
    )
    await database.audited(audit, resource_id=patient.id, patient_id=patient.id)
    return found
