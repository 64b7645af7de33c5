"""Symptom logs: offline-safe, idempotent ingestion (by the app's client_id), corrections that
supersede without editing, and reads on the procedure clock.

Writes work on a Core connection with plain rows (api/services/records.py says why); the reads
of whole histories use the ORM.
"""

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from api.clinical import clock, scoring
from api.clinical.clock import ProcedureDate
from api.errors import FieldError
from api.services import alerts, progress_store
from api.services.audit import Audit
from api.services.pagination import keyset_page
from api.services.records import (
    LOG_COLUMNS,
    PATIENT,
    SYMPTOM_LOG,
    LogRecord,
    PatientRef,
    TupleInsert,
    procedure_refs,
)
from models.base import ordered_id, utc_now
from models.patient import Patient
from models.procedure import Procedure
from models.symptom_log import (
    Advice,
    CorrectionIn,
    LogSource,
    SymptomLog,
    SymptomLogIn,
    SymptomLogPublic,
    Symptoms,
)

FUTURE_TOLERANCE = timedelta(minutes=5)
URGENT_ADVICE = Advice(
    urgent=True,
    message=(
        "Get medical help right away: call your clinic now, or emergency services if you cannot "
        "reach them. Fever, new weakness or numbness, changes in bladder or bowel control, "
        "numbness between the legs, a severe headache or signs of a wound infection after a "
        "spinal injection need to be checked at once."
    ),
)


@dataclass
class Outcome:
    """What became of one submitted log."""

    status: str  # created | duplicate | conflict | rejected
    client_id: uuid.UUID | None
    log: LogRecord | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class Ingested:
    outcomes: list[Outcome]
    clock: list[ProcedureDate]  # the patient's procedures, as the transaction saw them


# What `json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)` makes, without
# building an encoder per call. Stored hashes decide replay (200) against conflict (409): the
# canonical text must never change.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def content_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(payload).encode()).hexdigest()


_BATCH_ITEMS = TypeAdapter(list[SymptomLogIn])


def parse_items(raw_items: Sequence[Any]) -> list[SymptomLogIn | Outcome]:
    """Every batch item validated, or rejected on its own.

    A batch with no bad item (the usual case) is validated in one call on the decoded JSON; for
    these JSON-typed values (objects, arrays, strings, numbers) and this model, Python-mode
    validation accepts exactly what JSON mode does. A batch with a bad item is validated item by
    item in JSON mode, so each error reads as it would for the same log posted alone."""
    try:
        return list(_BATCH_ITEMS.validate_python(raw_items))
    except ValidationError:
        return [parse_item(raw, index) for index, raw in enumerate(raw_items)]


def parse_item(raw: Any, index: int) -> SymptomLogIn | Outcome:
    """Validate one batch item on its own; a bad item becomes a `rejected` outcome. As JSON, so
    an item is judged exactly as the same log posted alone would be."""
    client_id = _client_id_of(raw)
    try:
        return SymptomLogIn.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        errors = [FieldError(_item_pointer(index, e["loc"]), e["msg"]) for e in exc.errors()]
        return Outcome("rejected", client_id, errors=errors)


def _item_pointer(index: int, loc: Sequence[int | str]) -> str:
    """A JSON Pointer (RFC 6901) into item `index`: `/logs/3/pain`, or `/logs/3` for the item."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/".join([f"/logs/{index}", *parts])


def _client_id_of(raw: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw.get("client_id"))) if isinstance(raw, dict) else None
    except ValueError:
        return None


# Statements built once: constructing them per request costs more than running them.
_LOCK_PATIENT = (
    sa_select(PATIENT.c.id).where(PATIENT.c.id == bindparam("patient_id")).with_for_update()
)
_BY_CLIENT_IDS = sa_select(*LOG_COLUMNS).where(
    SYMPTOM_LOG.c.patient_id == bindparam("patient_id"),
    SYMPTOM_LOG.c.client_id.in_(bindparam("client_ids", expanding=True)),
)
_INSERT_LOGS = TupleInsert(SYMPTOM_LOG, LogRecord._fields)
_CORRECTION_OF = sa_select(SYMPTOM_LOG.c.id).where(SYMPTOM_LOG.c.corrects_id == bindparam("log_id"))
_CORRECTIONS_OF = sa_select(SYMPTOM_LOG.c.corrects_id, SYMPTOM_LOG.c.id).where(
    SYMPTOM_LOG.c.corrects_id.in_(bindparam("log_ids", expanding=True))
)


def _lock_patient(connection: Connection, patient_id: uuid.UUID) -> None:
    """Serialise one patient's log writes: a row lock on PostgreSQL. SQLite writers already
    take turns (api/db.py), and it has no row locks to take."""
    if connection.dialect.name != "sqlite":
        connection.execute(_LOCK_PATIENT, {"patient_id": patient_id}).one()


def _new_log(
    item: SymptomLogIn | CorrectionIn,
    fields: dict[str, Any],
    *,
    patient: PatientRef,
    source: LogSource,
    by: uuid.UUID,
    received_at: datetime,
    pointer: str,
    corrects_id: uuid.UUID | None = None,
) -> LogRecord | list[FieldError]:
    """A new log's row, or what is wrong with it."""
    errors = []
    recorded_at: datetime = fields["recorded_at"]
    if recorded_at > received_at + FUTURE_TOLERANCE:
        errors.append(FieldError(f"{pointer}/recorded_at", "is more than 5 minutes in the future"))
    odi = None
    if fields.get("odi_answers") is not None:
        try:
            odi = scoring.oswestry(fields["odi_answers"])
        except scoring.TooManyUnanswered as exc:
            errors.append(FieldError(f"{pointer}/odi_answers", str(exc)))
    if errors:
        return errors
    timezone = fields.get("timezone") or patient.timezone
    return LogRecord(
        id=ordered_id(),
        patient_id=patient.id,
        client_id=item.client_id,
        content_hash=content_hash(item.model_dump(mode="json", exclude_unset=True)),
        recorded_at=recorded_at.astimezone(UTC),  # as stored; the offset is kept below
        utc_offset_minutes=clock.utc_offset_minutes(recorded_at),
        timezone=timezone,
        local_date=clock.local_date(recorded_at, timezone),
        received_at=received_at,
        pain=fields["pain"],
        leg_pain=fields.get("leg_pain"),
        mobility=fields.get("mobility"),
        walking_minutes=fields.get("walking_minutes"),
        odi_answers=fields.get("odi_answers"),
        odi=odi,
        symptoms=_symptoms(fields.get("symptoms")),
        side_effects=[str(v) for v in fields.get("side_effects") or []],
        red_flags=[str(v) for v in fields.get("red_flags") or []],
        note=fields.get("note"),
        source=source,
        created_by_id=by,
        corrects_id=corrects_id,
    )


def _symptoms(symptoms: Symptoms | dict[str, Any] | None) -> dict[str, Any] | None:
    return symptoms.model_dump() if isinstance(symptoms, Symptoms) else symptoms


def _existing(
    connection: Connection, patient_id: uuid.UUID, client_ids: list[uuid.UUID]
) -> dict[uuid.UUID, LogRecord]:
    if not client_ids:
        return {}
    rows = connection.execute(_BY_CLIENT_IDS, {"patient_id": patient_id, "client_ids": client_ids})
    return {row.client_id: LogRecord._make(row) for row in rows}


_PROCEDURES = (
    select(Procedure)
    .where(Procedure.patient_id == bindparam("patient_id"))
    .order_by(col(Procedure.performed_on), col(Procedure.id))
)


def procedures_of(session: Session, patient_id: uuid.UUID) -> list[Procedure]:
    """The patient's procedures by date, read once per session (a use-case asks several times)."""
    memo: dict[uuid.UUID, list[Procedure]] = session.info.setdefault("procedures_of", {})
    if patient_id not in memo:
        memo[patient_id] = list(session.exec(_PROCEDURES, params={"patient_id": patient_id}))
    return memo[patient_id]


def draft_batch(
    raw_items: Sequence[Any], *, patient: PatientRef, source: LogSource, by: uuid.UUID
) -> list[LogRecord | Outcome]:
    """A batch's items validated and drafted (see `draft_logs`)."""
    return draft_logs(parse_items(raw_items), patient=patient, source=source, by=by, batch=True)


def draft_logs(
    items: Sequence[SymptomLogIn | Outcome],
    *,
    patient: PatientRef,
    source: LogSource,
    by: uuid.UUID,
    batch: bool,
) -> list[LogRecord | Outcome]:
    """Each valid new log as it would be stored, or why it cannot be.

    Everything that needs no database (hashing, the calendar, ODI, the clinical checks) is done
    here, before the write transaction, so it does not hold SQLite's one write turn: the turn is
    what a busy server's check-in throughput is bounded by. `received_at` is stamped again when
    the log is stored (`ingest`), so receipt order stays commit order for the sync watermark."""
    now = utc_now()
    out: list[LogRecord | Outcome] = []
    for index, item in enumerate(items):
        if isinstance(item, Outcome):
            out.append(item)
            continue
        log = _new_log(
            item,
            item.__dict__,  # the validated fields (read only), without copying them
            patient=patient,
            source=source,
            by=by,
            received_at=now,
            pointer=f"/logs/{index}" if batch else "",
        )
        out.append(
            Outcome("rejected", item.client_id, errors=log) if isinstance(log, list) else log
        )
    return out


def ingest(
    connection: Connection,
    *,
    patient: PatientRef,
    drafts: Sequence[LogRecord | Outcome],
    audit: Audit,
    batch: bool,
) -> Ingested:
    """Store the drafted logs that are new, report the rest; all in one transaction with alerts
    and audit."""
    _lock_patient(connection, patient.id)
    procedures = procedure_refs(connection, patient.id)
    received_at = utc_now()
    stored = _existing(
        connection, patient.id, [d.client_id for d in drafts if isinstance(d, LogRecord)]
    )
    outcomes: list[Outcome] = []
    created: list[LogRecord] = []
    for index, draft in enumerate(drafts):
        if isinstance(draft, Outcome):
            outcomes.append(draft)
            continue
        previous = stored.get(draft.client_id)
        if previous is None:
            log = draft.received(received_at)
            created.append(log)
            stored[log.client_id] = log
            outcomes.append(Outcome("created", log.client_id, log=log))
        else:
            pointer = f"/logs/{index}" if batch else ""
            outcomes.append(_replay(previous, draft.content_hash, pointer))
    if created:
        _INSERT_LOGS(connection, created)
        alerts.check_new_logs(connection, patient=patient, new_logs=created, procedures=procedures)
        progress_store.refresh(
            connection, patient_id=patient.id, log_dates={log.local_date for log in created}
        )
    single = None if batch else outcomes[0]
    status_code = 200 if batch else _single_status(outcomes[0])
    audit.record(
        connection,
        status_code=status_code,
        patient_id=patient.id,
        resource_id=single.log.id if single and single.log else None,
    )
    connection.commit()
    return Ingested(outcomes, [p.clock_date for p in procedures])


def _single_status(outcome: Outcome) -> int:
    return {"created": 201, "duplicate": 200, "conflict": 409}.get(outcome.status, 422)


def _replay(previous: LogRecord, content_hash: str, pointer: str) -> Outcome:
    """A client_id seen before: the stored log if the content is the same, else a conflict."""
    if previous.content_hash == content_hash:
        return Outcome("duplicate", previous.client_id, log=previous)
    error = FieldError(f"{pointer}/client_id", "was already used for a log with different content")
    return Outcome("conflict", previous.client_id, log=previous, errors=[error])


def correct(
    connection: Connection,
    *,
    patient: PatientRef,
    original: LogRecord,
    data: CorrectionIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
) -> Outcome:
    """Store a correction that supersedes `original` (which stays readable)."""
    _lock_patient(connection, patient.id)
    stored = _existing(connection, patient.id, [data.client_id])
    outcome = _correction_outcome(connection, patient, original, data, stored, source, by)
    if outcome.status == "created" and outcome.log is not None:
        _INSERT_LOGS(connection, [outcome.log])
        alerts.check_new_logs(
            connection,
            patient=patient,
            new_logs=[outcome.log],
            procedures=procedure_refs(connection, patient.id),
        )
        # The correction may move the log to another day: both days' procedures can change.
        progress_store.refresh(
            connection,
            patient_id=patient.id,
            log_dates={original.local_date, outcome.log.local_date},
        )
    if outcome.status in ("created", "duplicate"):
        audit.record(
            connection,
            status_code=201 if outcome.status == "created" else 200,
            resource_id=outcome.log.id if outcome.log else None,
            patient_id=patient.id,
        )
        connection.commit()
    return outcome


def _correction_outcome(
    connection: Connection,
    patient: PatientRef,
    original: LogRecord,
    data: CorrectionIn,
    stored: dict[uuid.UUID, LogRecord],
    source: LogSource,
    by: uuid.UUID,
) -> Outcome:
    previous = stored.get(data.client_id)
    if previous is not None:
        same = previous.corrects_id == original.id and previous.content_hash == content_hash(
            data.model_dump(mode="json", exclude_unset=True)
        )
        return Outcome(
            "duplicate" if same else "conflict",
            data.client_id,
            log=previous,
            errors=[] if same else [FieldError("/client_id", "was already used for other content")],
        )
    newer = connection.execute(_CORRECTION_OF, {"log_id": original.id}).scalar()
    if newer is not None:
        return Outcome(
            "conflict",
            data.client_id,
            errors=[
                FieldError(
                    "", f"this log was already corrected by {newer}; correct that version instead"
                )
            ],
        )
    fields = _original_values(original) | data.model_dump(exclude_unset=True)
    log = _new_log(
        data,
        fields,
        patient=patient,
        source=source,
        by=by,
        received_at=utc_now(),
        pointer="",
        corrects_id=original.id,
    )
    if isinstance(log, list):
        return Outcome("rejected", data.client_id, errors=log)
    return Outcome("created", data.client_id, log=log)


def _original_values(log: LogRecord) -> dict[str, Any]:
    names = (
        "pain",
        "leg_pain",
        "mobility",
        "walking_minutes",
        "odi_answers",
        "symptoms",
        "side_effects",
        "red_flags",
        "note",
        "recorded_at",
        "timezone",
    )
    values = {name: getattr(log, name) for name in names}
    # Stored in UTC; carry the offset the app sent, or the correction would report +00:00.
    values["recorded_at"] = _as_sent(log)
    return values


def _as_sent(log: LogRecord | SymptomLog) -> datetime:
    return log.recorded_at.astimezone(dt_timezone(timedelta(minutes=log.utc_offset_minutes)))


def to_public(
    log: LogRecord | SymptomLog,
    procedures: Sequence[ProcedureDate],
    superseded_by: uuid.UUID | None = None,
) -> SymptomLogPublic:
    procedure_id, day = clock.index_procedure(procedures, log.local_date)
    return SymptomLogPublic(
        id=log.id,
        patient_id=log.patient_id,
        client_id=log.client_id,
        recorded_at=_as_sent(log),
        utc_offset_minutes=log.utc_offset_minutes,
        timezone=log.timezone,
        local_date=log.local_date,
        received_at=log.received_at,
        procedure_id=procedure_id,
        day=day,
        odi=log.odi,
        source=log.source,
        corrects_id=log.corrects_id,
        superseded_by_id=superseded_by,
        pain=log.pain,
        leg_pain=log.leg_pain,
        mobility=log.mobility,
        walking_minutes=log.walking_minutes,
        odi_answers=log.odi_answers,
        symptoms=Symptoms.model_validate(log.symptoms) if log.symptoms else None,
        side_effects=log.side_effects,
        red_flags=log.red_flags,
        note=log.note,
        advice=URGENT_ADVICE if log.red_flags else None,
    )


def public_records(
    connection: Connection, patient_id: uuid.UUID, logs: Sequence[LogRecord]
) -> list[SymptomLogPublic]:
    """Logs as the API shows them, each with the correction that supersedes it, if any."""
    dates = [p.clock_date for p in procedure_refs(connection, patient_id)]
    ids = [log.id for log in logs]
    corrections: dict[uuid.UUID, uuid.UUID] = (
        {row.corrects_id: row.id for row in connection.execute(_CORRECTIONS_OF, {"log_ids": ids})}
        if ids
        else {}
    )
    return [to_public(log, dates, corrections.get(log.id)) for log in logs]


def public_logs(
    session: Session, patient_id: uuid.UUID, logs: Sequence[SymptomLog]
) -> list[SymptomLogPublic]:
    dates = [ProcedureDate(p.id, p.performed_on) for p in procedures_of(session, patient_id)]
    ids = [log.id for log in logs]
    corrections = (
        dict(
            session.exec(
                select(SymptomLog.corrects_id, SymptomLog.id).where(
                    col(SymptomLog.corrects_id).in_(ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    return [to_public(log, dates, corrections.get(log.id)) for log in logs]


def sync_page(
    session: Session,
    *,
    patient: Patient,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[SymptomLogPublic], str | None]:
    """Everything received after `since` (the app's watermark), oldest first, stable under ties."""
    query = select(SymptomLog).where(SymptomLog.patient_id == patient.id)
    if since is not None:
        query = query.where(col(SymptomLog.received_at) > since)
    rows, next_cursor = keyset_page(
        session, query, sort=SymptomLog.received_at, key=SymptomLog.id, cursor=cursor, limit=limit
    )
    return public_logs(session, patient.id, rows), next_cursor


def range_page(
    session: Session,
    *,
    patient: Patient,
    from_: date | None,
    to: date | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[SymptomLogPublic], str | None]:
    """Logs by local date range, in recorded order, superseded ones included and marked."""
    query = select(SymptomLog).where(SymptomLog.patient_id == patient.id)
    if from_ is not None:
        query = query.where(col(SymptomLog.local_date) >= from_)
    if to is not None:
        query = query.where(col(SymptomLog.local_date) <= to)
    rows, next_cursor = keyset_page(
        session, query, sort=SymptomLog.recorded_at, key=SymptomLog.id, cursor=cursor, limit=limit
    )
    return public_logs(session, patient.id, rows), next_cursor
