"""Check-ins a clinician records or reviews for a patient, and the outcome→HTTP mapping that the
patient app's routes share."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection

from api.db import Database, DatabaseDep
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


async def store_single(
    database: Database,
    *,
    patient: PatientRef,
    body: SymptomLogIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    """Store one check-in (or answer its replay): drafted here, stored in the write use-case."""
    [draft] = symptom_logs.draft_logs([body], patient=patient, source=source, by=by, batch=False)
    return await database.write(
        _answer_single, patient=patient, draft=draft, audit=audit, response=response
    )


def _answer_single(
    connection: Connection,
    *,
    patient: PatientRef,
    draft: LogRecord | symptom_logs.Outcome,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    ingested = symptom_logs.ingest(
        connection, patient=patient, drafts=[draft], audit=audit, batch=False
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


async def store_batch(
    database: Database, *, patient: PatientRef, body: BatchIn, by: uuid.UUID, audit: Audit
) -> BatchResult:
    """Store a batch from the app. Its 500 items are validated and drafted in a worker thread of
    their own, outside the write use-case (see `symptom_logs.draft_logs`)."""
    drafts = await run_in_threadpool(
        symptom_logs.draft_batch, body.logs, patient=patient, source=LogSource.app, by=by
    )
    return await database.write(_answer_batch, patient=patient, drafts=drafts, audit=audit)


def _answer_batch(
    connection: Connection,
    *,
    patient: PatientRef,
    drafts: list[LogRecord | symptom_logs.Outcome],
    audit: Audit,
) -> BatchResult:
    ingested = symptom_logs.ingest(
        connection, patient=patient, drafts=drafts, audit=audit, batch=True
    )
    # Validated as plain dicts in one call: 0.3 ms for 500 items, against 1.2 ms for as many
    # `model_construct` calls.
    return BatchResult.model_validate({"results": [_batch_item(o) for o in ingested.outcomes]})


_URGENT_ADVICE = symptom_logs.URGENT_ADVICE.model_dump()


def _batch_item(outcome: symptom_logs.Outcome) -> dict[str, Any]:
    status = {"created": "created", "duplicate": "duplicate"}.get(outcome.status, "rejected")
    stored = outcome.log if status != "rejected" else None
    return {
        "client_id": outcome.client_id,
        "status": status,
        "id": stored.id if stored else None,
        "errors": [{"pointer": e.pointer, "message": e.message} for e in outcome.errors] or None,
        "advice": _URGENT_ADVICE if stored and stored.red_flags else None,
    }


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
    return await store_single(
        database,
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
