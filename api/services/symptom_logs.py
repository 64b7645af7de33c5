"""Symptom logs: offline-safe, idempotent ingestion (by the app's client_id), corrections that
supersede without editing, and reads on the procedure clock."""

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from api.errors import FieldError
from api.services import alerts, clock, scoring
from api.services.audit import Audit
from api.services.pagination import keyset_page
from models.base import utc_now
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
    log: SymptomLog | None = None
    errors: list[FieldError] = field(default_factory=list)


def content_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_item(raw: Any, index: int) -> SymptomLogIn | Outcome:
    """Validate one batch item on its own; a bad item becomes a `rejected` outcome."""
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
_LOCK_PATIENT = select(Patient.id).where(Patient.id == bindparam("patient_id")).with_for_update()


def _lock_patient(session: Session, patient_id: uuid.UUID) -> None:
    """Serialise one patient's log writes (PostgreSQL row lock; SQLite writes are serial anyway)."""
    session.exec(_LOCK_PATIENT, params={"patient_id": patient_id}).one()


def _build(
    item: SymptomLogIn | CorrectionIn,
    values: dict[str, Any],
    *,
    patient: Patient,
    source: LogSource,
    by: uuid.UUID,
    received_at: datetime,
    pointer: str,
) -> SymptomLog | list[FieldError]:
    errors = []
    recorded_at: datetime = values["recorded_at"]
    if recorded_at > received_at + FUTURE_TOLERANCE:
        errors.append(FieldError(f"{pointer}/recorded_at", "is more than 5 minutes in the future"))
    odi = None
    if values.get("odi_answers") is not None:
        try:
            odi = scoring.oswestry(values["odi_answers"])
        except scoring.TooManyUnanswered as exc:
            errors.append(FieldError(f"{pointer}/odi_answers", str(exc)))
    if errors:
        return errors
    timezone = values.get("timezone") or patient.timezone
    symptoms = values.get("symptoms")
    return SymptomLog(
        patient_id=patient.id,
        client_id=item.client_id,
        content_hash=content_hash(item.model_dump(mode="json", exclude_unset=True)),
        recorded_at=recorded_at,
        utc_offset_minutes=clock.utc_offset_minutes(recorded_at),
        timezone=timezone,
        local_date=clock.local_date(recorded_at, timezone),
        received_at=received_at,
        pain=values["pain"],
        leg_pain=values.get("leg_pain"),
        mobility=values.get("mobility"),
        walking_minutes=values.get("walking_minutes"),
        odi_answers=values.get("odi_answers"),
        odi=odi,
        symptoms=symptoms.model_dump(exclude_none=True)
        if isinstance(symptoms, Symptoms)
        else symptoms,
        side_effects=[str(v) for v in values.get("side_effects") or []],
        red_flags=[str(v) for v in values.get("red_flags") or []],
        note=values.get("note"),
        source=source,
        created_by_id=by,
    )


def _existing(
    session: Session, patient_id: uuid.UUID, client_ids: list[uuid.UUID]
) -> dict[uuid.UUID, SymptomLog]:
    if not client_ids:
        return {}
    rows = session.exec(
        select(SymptomLog).where(
            SymptomLog.patient_id == patient_id, col(SymptomLog.client_id).in_(client_ids)
        )
    )
    return {row.client_id: row for row in rows}


def effective_logs_of(
    session: Session, patient_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SymptomLog]]:
    """Each patient's logs that no correction supersedes."""
    if not patient_ids:
        return {}
    logs = list(session.exec(select(SymptomLog).where(col(SymptomLog.patient_id).in_(patient_ids))))
    superseded = {log.corrects_id for log in logs if log.corrects_id}
    grouped: dict[uuid.UUID, list[SymptomLog]] = {}
    for log in logs:
        if log.id not in superseded:
            grouped.setdefault(log.patient_id, []).append(log)
    return grouped


def effective_logs(session: Session, patient_id: uuid.UUID) -> list[SymptomLog]:
    logs = list(session.exec(select(SymptomLog).where(SymptomLog.patient_id == patient_id)))
    superseded = {log.corrects_id for log in logs if log.corrects_id}
    return [log for log in logs if log.id not in superseded]


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


def ingest(
    session: Session,
    *,
    patient: Patient,
    items: Sequence[SymptomLogIn | Outcome],
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
    batch: bool,
) -> list[Outcome]:
    """Store the valid new logs, report the rest; all in one transaction with alerts and audit."""
    _lock_patient(session, patient.id)
    received_at = utc_now()
    stored = _existing(
        session, patient.id, [i.client_id for i in items if isinstance(i, SymptomLogIn)]
    )
    outcomes: list[Outcome] = []
    created: list[SymptomLog] = []
    for index, item in enumerate(items):
        outcome = (
            item
            if isinstance(item, Outcome)
            else _decide(
                item,
                stored,
                patient=patient,
                source=source,
                by=by,
                received_at=received_at,
                pointer=f"/logs/{index}" if batch else "",
            )
        )
        if outcome.status == "created" and outcome.log is not None:
            created.append(outcome.log)
            stored[outcome.log.client_id] = outcome.log
        outcomes.append(outcome)
    session.add_all(created)
    if created:
        session.flush()
        alerts.check_new_logs(
            session,
            patient=patient,
            new_logs=created,
            procedures=procedures_of(session, patient.id),
        )
    single = None if batch else outcomes[0]
    status_code = 200 if batch else _single_status(outcomes[0])
    audit.record(
        session,
        status_code=status_code,
        patient_id=patient.id,
        resource_id=single.log.id if single and single.log else None,
    )
    session.commit()
    return outcomes


def _single_status(outcome: Outcome) -> int:
    return {"created": 201, "duplicate": 200, "conflict": 409}.get(outcome.status, 422)


def _decide(
    item: SymptomLogIn,
    stored: dict[uuid.UUID, SymptomLog],
    *,
    patient: Patient,
    source: LogSource,
    by: uuid.UUID,
    received_at: datetime,
    pointer: str,
) -> Outcome:
    previous = stored.get(item.client_id)
    if previous is not None:
        same = previous.content_hash == content_hash(
            item.model_dump(mode="json", exclude_unset=True)
        )
        return Outcome(
            "duplicate" if same else "conflict",
            item.client_id,
            log=previous,
            errors=[]
            if same
            else [
                FieldError(
                    f"{pointer}/client_id", "was already used for a log with different content"
                )
            ],
        )
    built = _build(
        item,
        item.model_dump(),
        patient=patient,
        source=source,
        by=by,
        received_at=received_at,
        pointer=pointer,
    )
    if isinstance(built, list):
        return Outcome("rejected", item.client_id, errors=built)
    return Outcome("created", item.client_id, log=built)


def correct(
    session: Session,
    *,
    patient: Patient,
    original: SymptomLog,
    data: CorrectionIn,
    source: LogSource,
    by: uuid.UUID,
    audit: Audit,
) -> Outcome:
    """Store a correction that supersedes `original` (which stays readable)."""
    _lock_patient(session, patient.id)
    stored = _existing(session, patient.id, [data.client_id])
    outcome = _correction_outcome(session, patient, original, data, stored, source, by)
    if outcome.status == "created" and outcome.log is not None:
        session.add(outcome.log)
        session.flush()
        alerts.check_new_logs(
            session,
            patient=patient,
            new_logs=[outcome.log],
            procedures=procedures_of(session, patient.id),
        )
    if outcome.status in ("created", "duplicate"):
        audit.record(
            session,
            status_code=201 if outcome.status == "created" else 200,
            resource_id=outcome.log.id if outcome.log else None,
            patient_id=patient.id,
        )
        session.commit()
    return outcome


def _correction_outcome(
    session: Session,
    patient: Patient,
    original: SymptomLog,
    data: CorrectionIn,
    stored: dict[uuid.UUID, SymptomLog],
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
    newer = session.exec(select(SymptomLog.id).where(SymptomLog.corrects_id == original.id)).first()
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
    values = _original_values(original) | data.model_dump(exclude_unset=True)
    built = _build(
        data, values, patient=patient, source=source, by=by, received_at=utc_now(), pointer=""
    )
    if isinstance(built, list):
        return Outcome("rejected", data.client_id, errors=built)
    built.corrects_id = original.id
    return Outcome("created", data.client_id, log=built)


def _original_values(log: SymptomLog) -> dict[str, Any]:
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


def _as_sent(log: SymptomLog) -> datetime:
    return log.recorded_at.astimezone(dt_timezone(timedelta(minutes=log.utc_offset_minutes)))


def to_public(
    log: SymptomLog, procedures: Sequence[Procedure], superseded_by: uuid.UUID | None = None
) -> SymptomLogPublic:
    procedure_id, day = clock.index_procedure(
        [clock.ProcedureDate(p.id, p.performed_on) for p in procedures], log.local_date
    )
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


def public_logs(
    session: Session, patient_id: uuid.UUID, logs: Sequence[SymptomLog]
) -> list[SymptomLogPublic]:
    procedures = procedures_of(session, patient_id)
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
    return [to_public(log, procedures, corrections.get(log.id)) for log in logs]


def sync_page(
    session: Session,
    *,
    patient: Patient,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    audit: Audit,
) -> tuple[list[SymptomLogPublic], str | None]:
    """Everything received after `since` (the app's watermark), oldest first, stable under ties."""
    query = select(SymptomLog).where(SymptomLog.patient_id == patient.id)
    if since is not None:
        query = query.where(col(SymptomLog.received_at) > since)
    rows, next_cursor = keyset_page(
        session, query, sort=SymptomLog.received_at, key=SymptomLog.id, cursor=cursor, limit=limit
    )
    items = public_logs(session, patient.id, rows)
    audit.record(session, patient_id=patient.id)
    session.commit()
    return items, next_cursor


def range_page(
    session: Session,
    *,
    patient: Patient,
    from_: date | None,
    to: date | None,
    limit: int,
    cursor: str | None,
    audit: Audit,
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
    items = public_logs(session, patient.id, rows)
    audit.record(session, patient_id=patient.id)
    session.commit()
    return items, next_cursor
