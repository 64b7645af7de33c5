"""The bare baseline: a minimal FastAPI app doing the service's database write with raw sqlite3.

Each request inserts one audit-like row (same columns and indexes as the service's audit_event)
and commits, on a database file with the service's pragmas: WAL, synchronous=FULL (an fsync per
commit) and a busy timeout. Like the service's routes, the handlers are plain `def` run in the
thread pool, and like the service on SQLite, writes take turns (here a lock; there an asyncio
gate). What it leaves out is everything the service adds on top: middleware, authentication,
the read of the account, validation, the ORM.

Run by bench/run.py: `uvicorn baseline_app:app --app-dir bench` with BENCH_BASELINE_DB set.
"""

import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

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
"""

INSERT = (
    "INSERT INTO audit_event (id, at, actor_id, actor_role, clinic_id, action, resource_type,"
    " resource_id, patient_id, outcome, status_code, request_id, ip, reason)"
    " VALUES (?, ?, ?, ?, NULL, ?, ?, NULL, NULL, 'allowed', 200, ?, '127.0.0.1', NULL)"
)

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


def write_audit(action: str) -> None:
    """Insert one audit row and commit (BEGIN IMMEDIATE, as the service does)."""
    connection = _connection()
    row = (
        uuid.uuid4().hex,
        datetime.now(UTC).isoformat(),
        ACTOR_ID.hex,
        "admin",
        action,
        action.split(".", 1)[0],
        uuid.uuid4().hex,
    )
    with _write_turn:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(INSERT, row)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


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
