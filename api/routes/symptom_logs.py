"""Check-ins a clinician records or reviews for a patient, and the outcome→HTTP mapping that the
patient app's routes share."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlmodel import Session

from api.db import DatabaseDep
from api.deps import CLINICAL, AuditDep, PageDep, PatientDep, PrincipalDep, SymptomLogDep
from api.errors import Conflict, RuleViolation, problem_responses
from api.services import symptom_logs
from api.services.audit import Audit
from models.base import Day
from models.page import Page
from models.patient import Patient
from models.symptom_log import (
    BatchIn,
    BatchItemResult,
    BatchResult,
    CorrectionIn,
    LogSource,
    SymptomLog,
    SymptomLogIn,
    SymptomLogPublic,
)

router = APIRouter(prefix="/patients/{patient_id}/symptom-logs", tags=["symptom logs"])


def _answer(
    session: Session, outcome: symptom_logs.Outcome, patient: Patient, response: Response
) -> SymptomLogPublic:
    if outcome.status == "conflict":
        raise Conflict(
            "This client_id was already used for a log with different content",
            errors=outcome.errors,
        )
    if outcome.status == "rejected" or outcome.log is None:
        raise RuleViolation(
            "Invalid symptom log: " + outcome.errors[0].message, errors=outcome.errors
        )
    if outcome.status == "created":
        # Nothing can correct a log in the transaction that stored it: answer without another
        # (write-turn taking) read; the procedures were read once in this session already.
        response.status_code = 201
        return symptom_logs.to_public(outcome.log, symptom_logs.procedures_of(session, patient.id))
    response.status_code = 200
    return symptom_logs.public_logs(session, patient.id, [outcome.log])[0]


def answer_single(
    session: Session,
    *,
    patient: Patient,
    body: SymptomLogIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    [outcome] = symptom_logs.ingest(
        session, patient=patient, items=[body], source=source, by=by, audit=audit, batch=False
    )
    return _answer(session, outcome, patient, response)


def answer_batch(
    session: Session, *, patient: Patient, body: BatchIn, by: uuid.UUID, audit: Audit
) -> BatchResult:
    items = [symptom_logs.parse_item(raw, i) for i, raw in enumerate(body.logs)]
    outcomes = symptom_logs.ingest(
        session, patient=patient, items=items, source=LogSource.app, by=by, audit=audit, batch=True
    )
    return BatchResult(results=[_batch_item(o) for o in outcomes])


def _batch_item(outcome: symptom_logs.Outcome) -> BatchItemResult:
    status = {"created": "created", "duplicate": "duplicate"}.get(outcome.status, "rejected")
    return BatchItemResult(
        client_id=outcome.client_id,
        status=status,
        id=outcome.log.id if outcome.log and status != "rejected" else None,
        errors=[{"pointer": e.pointer, "message": e.message} for e in outcome.errors] or None,
        advice=symptom_logs.URGENT_ADVICE
        if outcome.log and outcome.log.red_flags and status != "rejected"
        else None,
    )


def answer_correction(
    session: Session,
    *,
    patient: Patient,
    original: SymptomLog,
    body: CorrectionIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    response: Response,
) -> SymptomLogPublic:
    outcome = symptom_logs.correct(
        session, patient=patient, original=original, data=body, source=source, by=by, audit=audit
    )
    return _answer(session, outcome, patient, response)


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
    patient: PatientDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Record a check-in for a patient (source: clinic)."""
    return await database.run(
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
    patient: PatientDep,
    original: SymptomLogDep,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    audit: AuditDep,
) -> SymptomLogPublic:
    """Correct a check-in; the original stays readable and is superseded."""
    return await database.run(
        answer_correction,
        patient=patient,
        original=original,
        body=body,
        source=LogSource.clinic,
        by=principal.user_id,
        audit=audit,
        response=response,
    )
