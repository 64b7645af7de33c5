"""Enrolment codes a clinician hands to a patient for the mobile app."""

from fastapi import APIRouter

from api.db import DatabaseDep
from api.deps import CLINICAL, AuditDep, PatientDep, PrincipalDep, SettingsDep
from api.errors import problem_responses
from api.services import enrolment
from models.identity import EnrolmentCodePublic

router = APIRouter(tags=["identity"])


@router.post(
    "/patients/{patient_id}/enrolment-codes",
    name="enrolment_code.create",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 422),
)
async def create_enrolment_code(
    patient: PatientDep,
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> EnrolmentCodePublic:
    """Issue a single-use code (valid 72 hours) that the patient types into the app."""
    return await database.run(
        enrolment.issue_code, settings=settings, patient=patient, by=principal, audit=audit
    )
