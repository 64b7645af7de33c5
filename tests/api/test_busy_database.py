"""A database held by another process past the busy timeout is a 503 with Retry-After (the
request wrote nothing and may be retried), never a 500 (the attacker's report: a sweep from
cron holding SQLite's write lock made check-ins fail with 500)."""

import sqlite3
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from api.config import Settings
from api.db import is_transient, make_engine
from api.main import create_app
from tests.factories import World

pytestmark = pytest.mark.xdist_group("busy-database")


@pytest.fixture
def impatient_client(settings: Settings, backend: str) -> Iterator[TestClient]:
    if backend != "sqlite":
        pytest.skip("SQLite's busy timeout; PostgreSQL's transient errors are classified below")
    app = create_app(settings.model_copy(update={"sqlite_busy_timeout_ms": 100}))
    with TestClient(app) as client:
        yield client


def _hold_write_lock(engine: Engine) -> sqlite3.Connection:
    """Another process's write lock on the same SQLite file."""
    other = sqlite3.connect(str(engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_check_in_while_another_process_holds_sqlite_is_503(
    impatient_client: TestClient, world: World, engine: Engine
) -> None:
    other = _hold_write_lock(engine)
    try:
        response = impatient_client.post(
            f"/v1/patients/{world.patient_a.id}/symptom-logs",
            headers=world.headers("clinician_a"),
            json={
                "client_id": str(uuid.uuid4()),
                "recorded_at": "2026-10-10T09:00:00+02:00",
                "pain": 3,
            },
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"]
    assert response.json()["type"].endswith("database-busy")


class _Sqlstate(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver message")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("original", "transient"),
    [
        (_Sqlstate("40P01"), True),  # deadlock_detected
        (_Sqlstate("40001"), True),  # serialization_failure
        (_Sqlstate("55P03"), True),  # lock_not_available
        (_Sqlstate("23505"), False),  # unique_violation: a real conflict, not "busy"
    ],
)
def test_postgresql_races_are_transient_and_other_errors_are_not(
    original: Exception, *, transient: bool
) -> None:
    assert is_transient(OperationalError("SELECT 1", {}, original)) is transient


def test_sqlite_lock_errors_are_transient(engine: Engine, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite only")
    other = _hold_write_lock(engine)
    try:
        impatient = make_engine(str(engine.url), busy_timeout_ms=0)
        with impatient.connect() as mine, pytest.raises(OperationalError) as caught:
            mine.execute(text("SELECT 1"))  # its BEGIN IMMEDIATE finds the lock taken
        impatient.dispose()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert is_transient(caught.value)
