"""Check-ins a clinician records or reviews for a patient."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.db import DatabaseDep
from api.deps import (
    CLINICAL,
    AuditDep,
    PageDep,
    PatientDep,
    PatientRefDep,
    PrincipalDep,
    SymptomLogDep,
)
from api.errors import problem_responses
from api.services import check_in_writes, symptom_logs
from models.base import Day
from models.page import Page
from models.symptom_log import (
    CorrectionIn,
    LogSource,
    SymptomLogIn,
    SymptomLogPublic,
)

router = APIRouter(prefix="/patients/{patient_id}/symptom-logs", tags=["symptom logs"])


@router.post(
    "",
    name="symptom_log.create",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 409, 422)
    | {200: {"description": "A replay: the stored log"}},
)
async def post_log(
    body: SymptomLogIn,
    patient: PatientRefDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Record a check-in for a patient (source: clinic)."""
    [draft] = symptom_logs.draft_logs(
        [body], patient=patient, source=LogSource.clinic, by=principal.user_id, batch=False
    )
    status, log = await database.write(
        check_in_writes.store_one, patient=patient, draft=draft, audit=audit
    )
    response.status_code = status
    return log


@router.get(
    "",
    name="symptom_log.list",
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_logs(
    patient: PatientDep,
    database: DatabaseDep,
    audit: AuditDep,
    page: PageDep,
    from_: Annotated[Day | None, Query(alias="from", description="First local date")] = None,
    to: Annotated[Day | None, Query(description="Last local date")] = None,
) -> Page[SymptomLogPublic]:
    """The patient's check-ins between two local dates, corrections and originals included."""
    items, next_cursor = await database.query(
        symptom_logs.range_page,
        patient=patient,
        from_=from_,
        to=to,
        limit=page.limit,
        cursor=page.cursor,
    )
    await database.audited(audit, patient_id=patient.id)
    return Page[SymptomLogPublic](items=items, next_cursor=next_cursor)


@router.post(
    "/{log_id}/corrections",
    name="symptom_log.correct",
    status_code=201,
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 409, 422)
    | {200: {"description": "A replay: the stored correction"}},
)
async def correct_log(
    body: CorrectionIn,
    patient: PatientRefDep,
    original: SymptomLogDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Correct a check-in; the original stays readable and is superseded."""
    status, log = await database.write(
        check_in_writes.correct,
        patient=patient,
        original=original,
        body=body,
        source=LogSource.clinic,
        by=principal.user_id,
        audit=audit,
    )
    response.status_code = status
    return log
