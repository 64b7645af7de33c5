"""The check-in write use-cases as the API answers them: one log, a batch from the app, and a
correction, each with the HTTP status its outcome means.

Logs are drafted before the write turn (`symptom_logs.draft_logs`); these functions are the
write use-cases that store them. The patient app's routes and the clinician's both call them.
"""

import uuid
from typing import Any

from sqlalchemy import Connection

from api.errors import Conflict, RuleViolation
from api.services import symptom_logs
from api.services.audit import Audit
from api.services.records import LogRecord, PatientRef
from models.symptom_log import BatchResult, CorrectionIn, LogSource, SymptomLogPublic


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


def store_one(
    connection: Connection,
    *,
    patient: PatientRef,
    draft: LogRecord | symptom_logs.Outcome,
    audit: Audit,
) -> tuple[int, SymptomLogPublic]:
    """Store one drafted check-in, or answer its replay: (201 or 200, the stored log).

    Raises Conflict (409) for a client_id reused with other content, RuleViolation (422) for a
    log that breaks a rule."""
    ingested = symptom_logs.ingest(
        connection, patient=patient, drafts=[draft], audit=audit, batch=False
    )
    [outcome] = ingested.outcomes
    log = _raise_unless_stored(outcome)
    if outcome.status == "created":
        # Nothing can have corrected a log in the transaction that stored it: answer from what
        # was written, with the procedures that transaction read.
        return 201, symptom_logs.to_public(log, ingested.clock)
    return 200, symptom_logs.public_records(connection, patient.id, [log])[0]


def store_batch(
    connection: Connection,
    *,
    patient: PatientRef,
    drafts: list[LogRecord | symptom_logs.Outcome],
    audit: Audit,
) -> BatchResult:
    """Store a drafted batch: each item created, a duplicate or rejected, in request order."""
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


def correct(
    connection: Connection,
    *,
    patient: PatientRef,
    original: LogRecord,
    body: CorrectionIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
) -> tuple[int, SymptomLogPublic]:
    """Store a correction of `original`, or answer its replay: (201 or 200, the correction).

    Raises Conflict (409) and RuleViolation (422) as `store_one` does."""
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
    status = 201 if outcome.status == "created" else 200
    return status, symptom_logs.public_records(connection, patient.id, [log])[0]
