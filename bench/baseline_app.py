"""The bare baseline: a minimal FastAPI app doing the service's database write with raw sqlite3.

Each request writes in one transaction what the service's route writes: the row(s) of the
resource (a procedure, a symptom log, a batch of 500 logs; same columns and indexes as the
service's tables) and one audit-like row (same columns and indexes as audit_event), and commits,
on a database file with the service's pragmas: WAL, synchronous=FULL (an fsync per commit) and a
busy timeout. Request bodies are parsed and validated by Pydantic models of the same shape as the
service's. Like the service's routes, the handlers are plain `def` run in the
thread pool, and like the service on SQLite, writes take turns (here a lock; there an asyncio
gate). What it leaves out is everything the service adds on top: middleware, authentication,
the read of the account, validation, the ORM.

Run by bench/run.py: `uvicorn baseline_app:app --app-dir bench` with BENCH_BASELINE_DB set.
"""

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt

DB_PATH = os.environ.get("BENCH_BASELINE_DB", "baseline.db")
BUSY_TIMEOUT_MS = 5000
PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={BUSY_TIMEOUT_MS}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_event (
    id CHAR(32) NOT NULL PRIMARY KEY,
    at DATETIME NOT NULL,
    actor_id CHAR(32),
    actor_role VARCHAR(16),
    clinic_id CHAR(32),
    action VARCHAR(64) NOT NULL,
    resource_type VARCHAR(32) NOT NULL,
    resource_id VARCHAR(64),
    patient_id CHAR(32),
    outcome VARCHAR(16) NOT NULL,
    status_code INTEGER NOT NULL,
    request_id VARCHAR(64) NOT NULL,
    ip VARCHAR(64),
    reason VARCHAR(64)
);
CREATE INDEX IF NOT EXISTS ix_audit_event_at_id ON audit_event (at, id);
CREATE INDEX IF NOT EXISTS ix_audit_event_actor_id ON audit_event (actor_id);
CREATE INDEX IF NOT EXISTS ix_audit_event_action ON audit_event (action);
CREATE INDEX IF NOT EXISTS ix_audit_event_patient_id ON audit_event (patient_id);

CREATE TABLE IF NOT EXISTS procedure (
    id CHAR(32) NOT NULL PRIMARY KEY,
    patient_id CHAR(32) NOT NULL,
    performed_on DATE NOT NULL,
    treatment VARCHAR(16) NOT NULL,
    cell_source VARCHAR(16),
    harvest JSON,
    injections JSON NOT NULL,
    adjuncts JSON NOT NULL,
    baseline_pain FLOAT,
    baseline_leg_pain FLOAT,
    baseline_mobility FLOAT,
    baseline_odi FLOAT,
    protocol_id VARCHAR(64) NOT NULL,
    protocol_version INTEGER NOT NULL,
    notes VARCHAR(2000),
    override_reason VARCHAR(2000),
    created_by_id CHAR(32),
    version INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_procedure_patient_id_performed_on
    ON procedure (patient_id, performed_on);

CREATE TABLE IF NOT EXISTS symptom_log (
    id CHAR(32) NOT NULL PRIMARY KEY,
    patient_id CHAR(32) NOT NULL,
    client_id CHAR(32) NOT NULL,
    content_hash VARCHAR(64) NOT NULL,
    recorded_at DATETIME NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    local_date DATE NOT NULL,
    received_at DATETIME NOT NULL,
    pain INTEGER NOT NULL,
    leg_pain INTEGER,
    mobility INTEGER,
    walking_minutes INTEGER,
    odi_answers JSON,
    odi FLOAT,
    symptoms JSON,
    side_effects JSON NOT NULL,
    red_flags JSON NOT NULL,
    note VARCHAR(2000),
    source VARCHAR(16) NOT NULL,
    created_by_id CHAR(32),
    corrects_id CHAR(32),
    UNIQUE (patient_id, client_id)
);
CREATE INDEX IF NOT EXISTS ix_symptom_log_corrects_id ON symptom_log (corrects_id);
CREATE INDEX IF NOT EXISTS ix_symptom_log_patient_id_local_date
    ON symptom_log (patient_id, local_date);
CREATE INDEX IF NOT EXISTS ix_symptom_log_patient_id_received_at_id
    ON symptom_log (patient_id, received_at, id);
CREATE INDEX IF NOT EXISTS ix_symptom_log_patient_id_recorded_at_id
    ON symptom_log (patient_id, recorded_at, id);
"""

INSERT = (
    "INSERT INTO audit_event (id, at, actor_id, actor_role, clinic_id, action, resource_type,"
    " resource_id, patient_id, outcome, status_code, request_id, ip, reason)"
    " VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, 'allowed', ?, ?, '127.0.0.1', NULL)"
)
INSERT_PROCEDURE = (
    "INSERT INTO procedure (id, patient_id, performed_on, treatment, cell_source, harvest,"
    " injections, adjuncts, baseline_pain, baseline_leg_pain, baseline_mobility, baseline_odi,"
    " protocol_id, protocol_version, notes, override_reason, created_by_id, version, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'default', 1, ?, NULL, ?, 1, ?, ?)"
)
INSERT_LOG = (
    "INSERT INTO symptom_log (id, patient_id, client_id, content_hash, recorded_at,"
    " utc_offset_minutes, timezone, local_date, received_at, pain, leg_pain, mobility,"
    " walking_minutes, odi_answers, odi, symptoms, side_effects, red_flags, note, source,"
    " created_by_id, corrects_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 'app', ?, NULL)"
)
PATIENT_TIMEZONE = "Europe/Berlin"

ACTOR_ID = uuid.uuid4()
_local = threading.local()
_write_turn = threading.Lock()


def _connect() -> sqlite3.Connection:
    connection = sqlite3.connect(DB_PATH, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        connection.execute(f"PRAGMA {pragma}")
    return connection


def _connection() -> sqlite3.Connection:
    """One connection per worker thread, opened on first use."""
    connection: sqlite3.Connection | None = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = _connect()
    return connection


def _now() -> str:
    """A naive UTC timestamp as the service stores it on SQLite."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


def write(
    action: str,
    *,
    role: str = "admin",
    status_code: int = 200,
    resource_id: str | None = None,
    patient_id: str | None = None,
    statement: str | None = None,
    rows: Sequence[tuple[Any, ...]] = (),
) -> None:
    """Insert the rows (one executemany) and one audit row, and commit (BEGIN IMMEDIATE, as the
    service does)."""
    connection = _connection()
    audit = (
        uuid.uuid4().hex,
        _now(),
        ACTOR_ID.hex,
        role,
        action,
        action.split(".", 1)[0],
        resource_id,
        patient_id,
        status_code,
        uuid.uuid4().hex,
    )
    with _write_turn:
        connection.execute("BEGIN IMMEDIATE")
        try:
            if statement is not None:
                connection.executemany(statement, rows)
            connection.execute(INSERT, audit)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def write_audit(action: str) -> None:
    write(action)


# Request bodies: the same shape and constraints as the service's models.


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Treatment(StrEnum):
    stem_cell = "stem_cell"
    prp = "prp"
    prolotherapy = "prolotherapy"
    red_light = "red_light"


class Harvest(Strict):
    method: str = Field(min_length=1, max_length=32)
    site: str | None = Field(default=None, min_length=1, max_length=200)
    volume_ml: StrictFloat | None = Field(default=None, gt=0, le=1000)


class Injection(Strict):
    route: str = Field(min_length=1, max_length=32)
    levels: list[str] = Field(min_length=1, max_length=10)
    guidance: str = Field(min_length=1, max_length=32)
    volume_ml: StrictFloat | None = Field(default=None, gt=0, le=100)
    cell_count: StrictInt | None = Field(default=None, ge=0, le=10**12)


class Baseline(Strict):
    pain: StrictFloat | None = Field(default=None, ge=0, le=10)
    leg_pain: StrictFloat | None = Field(default=None, ge=0, le=10)
    mobility: StrictFloat | None = Field(default=None, ge=0, le=10)
    odi: StrictFloat | None = Field(default=None, ge=0, le=100)


class ProcedureIn(Strict):
    performed_on: date
    treatment: Treatment
    cell_source: str | None = Field(default=None, max_length=16)
    harvest: Harvest | None = None
    injections: list[Injection] = Field(default_factory=list, max_length=20)
    adjuncts: list[str] = Field(default_factory=list, max_length=3)
    baseline: Baseline | None = None
    notes: str | None = Field(default=None, max_length=2000)


Score = Annotated[StrictInt, Field(ge=0, le=10)]


class LogIn(Strict):
    client_id: uuid.UUID
    recorded_at: AwareDatetime
    timezone: str | None = Field(default=None, max_length=64)
    pain: Score
    leg_pain: Score | None = None
    mobility: Score | None = None
    walking_minutes: StrictInt | None = Field(default=None, ge=0, le=1440)
    symptoms: dict[str, Score] | None = None
    side_effects: list[str] = Field(default_factory=list, max_length=5)
    red_flags: list[str] = Field(default_factory=list, max_length=6)
    note: str | None = Field(default=None, max_length=2000)


class BatchIn(Strict):
    logs: list[LogIn] = Field(min_length=1, max_length=500)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _log_row(log: LogIn, patient_id: str, received_at: str) -> tuple[Any, ...]:
    fields = log.model_dump(mode="json", exclude_unset=True)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    timezone = log.timezone or PATIENT_TIMEZONE
    offset = log.recorded_at.utcoffset()
    return (
        uuid.uuid4().hex,
        patient_id,
        log.client_id.hex,
        hashlib.sha256(canonical.encode()).hexdigest(),
        log.recorded_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "),
        int(offset.total_seconds() // 60) if offset is not None else 0,
        timezone,
        log.recorded_at.astimezone(ZoneInfo(timezone)).date().isoformat(),
        received_at,
        log.pain,
        log.leg_pain,
        log.mobility,
        log.walking_minutes,
        None,  # odi_answers
        _json(log.symptoms),
        _json(log.side_effects),
        _json(log.red_flags),
        log.note,
        ACTOR_ID.hex,
    )


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    connection = _connect()
    connection.executescript(SCHEMA)
    connection.close()
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/users/me")
def users_me() -> dict[str, str]:
    """The bare counterpart of GET /v1/users/me: the audit write, a small JSON."""
    write_audit("user.me")
    return {"id": ACTOR_ID.hex, "email": "bench-admin@example.com", "role": "admin"}


@app.post("/patients/{patient_id}/procedures", status_code=201)
def create_procedure(patient_id: uuid.UUID, body: ProcedureIn) -> dict[str, Any]:
    """The bare counterpart of POST /v1/patients/{id}/procedures: validate, insert, commit."""
    procedure_id, now = uuid.uuid4(), _now()
    baseline = body.baseline or Baseline()
    row = (
        procedure_id.hex,
        patient_id.hex,
        body.performed_on.isoformat(),
        body.treatment.value,
        body.cell_source,
        _json(body.harvest.model_dump(mode="json", exclude_none=True) if body.harvest else None),
        _json([i.model_dump(mode="json", exclude_none=True) for i in body.injections]),
        _json(body.adjuncts),
        baseline.pain,
        baseline.leg_pain,
        baseline.mobility,
        baseline.odi,
        body.notes,
        ACTOR_ID.hex,
        now,
        now,
    )
    write(
        "procedure.create",
        role="clinician",
        status_code=201,
        resource_id=procedure_id.hex,
        patient_id=patient_id.hex,
        statement=INSERT_PROCEDURE,
        rows=[row],
    )
    return body.model_dump(mode="json") | {
        "id": str(procedure_id),
        "patient_id": str(patient_id),
        "protocol": {"id": "default", "version": 1},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


@app.post("/patients/{patient_id}/symptom-logs", status_code=201)
def create_log(patient_id: uuid.UUID, body: LogIn) -> dict[str, Any]:
    """The bare counterpart of POST /v1/me/symptom-logs: validate, insert the log row, commit."""
    row = _log_row(body, patient_id.hex, _now())
    write(
        "symptom_log.create_own",
        role="patient",
        status_code=201,
        resource_id=row[0],
        patient_id=patient_id.hex,
        statement=INSERT_LOG,
        rows=[row],
    )
    return body.model_dump(mode="json") | {
        "id": str(uuid.UUID(row[0])),
        "patient_id": str(patient_id),
        "utc_offset_minutes": row[5],
        "timezone": row[6],
        "local_date": row[7],
        "received_at": row[8],
        "source": "app",
    }


@app.post("/patients/{patient_id}/symptom-logs/batch")
def create_batch(patient_id: uuid.UUID, body: BatchIn) -> dict[str, Any]:
    """The bare counterpart of POST /v1/me/symptom-logs/batch: one executemany, one commit."""
    received_at = _now()
    rows = [_log_row(log, patient_id.hex, received_at) for log in body.logs]
    write(
        "symptom_log.batch_own",
        role="patient",
        patient_id=patient_id.hex,
        statement=INSERT_LOG,
        rows=rows,
    )
    return {
        "results": [
            {"client_id": str(log.client_id), "status": "created", "id": str(uuid.UUID(row[0]))}
            for log, row in zip(body.logs, rows, strict=True)
        ]
    }
