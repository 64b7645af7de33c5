"""Check-ins a clinician records or reviews for a patient, and the outcome→HTTP mapping that the
patient app's routes share."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import Connection

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
from api.errors import Conflict, RuleViolation, problem_responses
from api.services import symptom_logs
from api.services.audit import Audit
from api.services.records import LogRecord, PatientRef
from models.base import Day
from models.page import Page
from models.symptom_log import (
    BatchIn,
    BatchItemResult,
    BatchResult,
    CorrectionIn,
    LogSource,
    SymptomLogIn,
    SymptomLogPublic,
)

router = APIRouter(prefix="/patients/{patient_id}/symptom-logs", tags=["symptom logs"])


def _raise_unless_stored(outcome: symptom_logs.Outcome) -> LogRecord:
    if outcome.status == "conflict":
        raise Conflict(
            "This client_id was already used for a log with different content",
            errors=outcome.errors,
        )
    if outcome.status == "rejected" or outcome.log is None:
        raise RuleViolation(
            "Invalid symptom log: " + outcome.errors[0].message, errors=outcome.errors
        )
    return outcome.log


def answer_single(
    connection: Connection,
    *,
    patient: PatientRef,
    body: SymptomLogIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    ingested = symptom_logs.ingest(
        connection, patient=patient, items=[body], source=source, by=by, audit=audit, batch=False
    )
    [outcome] = ingested.outcomes
    log = _raise_unless_stored(outcome)
    if outcome.status == "created":
        # Nothing can have corrected a log in the transaction that stored it: answer from what
        # was written, with the procedures that transaction read.
        response.status_code = 201
        return symptom_logs.to_public(log, ingested.clock)
    response.status_code = 200
    return symptom_logs.public_records(connection, patient.id, [log])[0]


def answer_batch(
    connection: Connection, *, patient: PatientRef, body: BatchIn, by: uuid.UUID, audit: Audit
) -> BatchResult:
    items = symptom_logs.parse_items(body.logs)
    ingested = symptom_logs.ingest(
        connection,
        patient=patient,
        items=items,
        source=LogSource.app,
        by=by,
        audit=audit,
        batch=True,
    )
    return BatchResult(results=[_batch_item(o) for o in ingested.outcomes])


def _batch_item(outcome: symptom_logs.Outcome) -> BatchItemResult:
    status = {"created": "created", "duplicate": "duplicate"}.get(outcome.status, "rejected")
    # Built from values this module made and typed; up to 500 per request, so not re-validated.
    return BatchItemResult.model_construct(
        client_id=outcome.client_id,
        status=status,
        id=outcome.log.id if outcome.log and status != "rejected" else None,
        errors=[{"pointer": e.pointer, "message": e.message} for e in outcome.errors] or None,
        advice=symptom_logs.URGENT_ADVICE
        if outcome.log and outcome.log.red_flags and status != "rejected"
        else None,
    )


def answer_correction(
    connection: Connection,
    *,
    patient: PatientRef,
    original: LogRecord,
    body: CorrectionIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    outcome = symptom_logs.correct(
        connection,
        patient=patient,
        original=original,
        data=body,
        source=source,
        by=by,
        audit=audit,
    )
    log = _raise_unless_stored(outcome)
    response.status_code = 201 if outcome.status == "created" else 200
    return symptom_logs.public_records(connection, patient.id, [log])[0]


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
    return await database.write(
        answer_single,
        patient=patient,
        body=body,
        source=LogSource.clinic,
        by=principal.user_id,
        audit=audit,
        response=response,
    )


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
    items, next_cursor = await database.run(
        symptom_logs.range_page,
        patient=patient,
        from_=from_,
        to=to,
        limit=page.limit,
        cursor=page.cursor,
        audit=audit,
    )
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
    return await database.write(
        answer_correction,
        patient=patient,
        original=original,
        body=body,
        source=LogSource.clinic,
        by=principal.user_id,
        audit=audit,
        response=response,
    )
