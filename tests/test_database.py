"""The database layer: SQLite connection settings, write locking, foreign keys and UTC timestamps.

Each test runs on SQLite and on PostgreSQL (see tests/conftest.py); the SQLite-only ones skip on
PostgreSQL, where they do not apply.
"""

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from api.config import Settings
from api.db import Database, make_engine
from models.audit import AuditEvent, Outcome
from models.identity import Clinic
from models.patient import Patient, Sex, StenosisCause, StenosisRegion


def _require_sqlite(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite connection settings do not apply to PostgreSQL")


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    assert database, database_url
    return Path(database)


@pytest.fixture
def app_engine(database_url: str) -> Iterator[Engine]:
    """An engine made as the app makes its write engine (the default)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["write", "read"])
def any_app_engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    """The app's write engine and its read engine (deferred BEGIN): same connection settings."""
    engine = make_engine(database_url, immediate=request.param == "write")
    yield engine
    engine.dispose()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_connections_use_wal_journal(backend: str, any_app_engine: Engine) -> None:
    _require_sqlite(backend)
    assert str(_pragma(any_app_engine, "journal_mode")).lower() == "wal"


def test_sqlite_connections_sync_fully(backend: str, any_app_engine: Engine) -> None:
    _require_sqlite(backend)
    assert _pragma(any_app_engine, "synchronous") == 2  # FULL: a commit survives power loss


def test_sqlite_connections_enforce_foreign_keys(backend: str, any_app_engine: Engine) -> None:
    _require_sqlite(backend)
    assert _pragma(any_app_engine, "foreign_keys") == 1


def test_sqlite_connections_wait_for_the_write_lock(backend: str, any_app_engine: Engine) -> None:
    _require_sqlite(backend)
    busy_timeout = _pragma(any_app_engine, "busy_timeout")
    assert isinstance(busy_timeout, int)
    assert busy_timeout >= 5000


def test_sqlite_busy_timeout_follows_the_setting(backend: str, database_url: str) -> None:
    _require_sqlite(backend)
    engine = make_engine(database_url, busy_timeout_ms=7250)
    try:
        assert _pragma(engine, "busy_timeout") == 7250
    finally:
        engine.dispose()


def _try_write_lock(path: Path) -> str | None:
    """Try to take the write lock from another connection; the error text if it cannot."""
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return None
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        other.close()


def test_sqlite_transactions_take_the_write_lock_up_front(
    backend: str, database_url: str, app_engine: Engine
) -> None:
    """A transaction that has only read already holds the write lock (BEGIN IMMEDIATE), so a
    second writer waits at its start instead of failing later on a stale snapshot."""
    _require_sqlite(backend)
    path = _sqlite_path(database_url)
    assert _try_write_lock(path) is None  # control: nobody holds the lock yet
    with app_engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM clinic")).scalar_one()
        error = _try_write_lock(path)
        connection.rollback()
    assert error is not None, "a read-only transaction did not take the write lock"
    assert "database is locked" in error
    assert _try_write_lock(path) is None  # released with the transaction


def test_sqlite_session_transactions_take_the_write_lock_up_front(
    backend: str, database_url: str, app_engine: Engine
) -> None:
    """The same through an ORM session, the way every use-case runs."""
    _require_sqlite(backend)
    path = _sqlite_path(database_url)
    with Session(app_engine) as session:
        session.get(Clinic, uuid.uuid4())
        error = _try_write_lock(path)
    assert error is not None
    assert "database is locked" in error
    assert _try_write_lock(path) is None


def test_sqlite_read_transactions_do_not_take_the_write_lock(
    backend: str, database_url: str
) -> None:
    """The read engine (immediate=False) begins deferred, so its lookups never block a writer;
    also the control showing the lock test above can tell the two apart."""
    _require_sqlite(backend)
    path = _sqlite_path(database_url)
    engine = make_engine(database_url, immediate=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM clinic")).scalar_one()
            assert _try_write_lock(path) is None
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(db: Session) -> None:
    db.add(
        Patient(
            clinic_id=uuid.uuid4(),  # no such clinic
            mrn="MRN-FK",
            given_name="Ada",
            family_name="Lovelace",
            birth_date=date(1958, 4, 12),
            sex=Sex.female,
            timezone="Europe/Berlin",
            stenosis_region=StenosisRegion.lumbar,
            stenosis_cause=StenosisCause.degenerative,
        )
    )
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    assert db.execute(text("SELECT count(*) FROM patient")).scalar_one() == 0


def test_utc_timestamps_round_trip_as_aware_utc(db: Session) -> None:
    # 12:30:15.123456 at UTC+05:30 is 07:00:15.123456 UTC.
    written = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5.5)))
    clinic = Clinic(name="Clinic TZ", timezone="Asia/Kolkata", created_at=written)
    db.add(clinic)
    db.commit()
    db.expire_all()

    read = db.get_one(Clinic, clinic.id).created_at
    assert read.tzinfo is not None
    assert read.utcoffset() == timedelta(0)
    assert read == written
    assert read == datetime(2026, 3, 1, 7, 0, 15, 123456, tzinfo=UTC)


def test_utc_timestamps_compare_as_instants_in_queries(db: Session) -> None:
    """A filter by an aware timestamp in another offset finds the same instant."""
    at = datetime(2026, 3, 1, 7, 0, 15, 123456, tzinfo=UTC)
    event = AuditEvent(
        at=at,
        action="user.me",
        resource_type="user",
        outcome=Outcome.allowed,
        status_code=200,
        request_id="tz-test",
    )
    db.add(event)
    db.commit()
    db.expire_all()

    same_instant = at.astimezone(timezone(timedelta(hours=-8)))
    rows = db.exec(select(AuditEvent).where(AuditEvent.at == same_instant)).all()
    assert [row.id for row in rows] == [event.id]
    later = db.exec(select(AuditEvent).where(AuditEvent.at > same_instant)).all()
    assert later == []


def test_naive_timestamps_are_refused(db: Session) -> None:
    db.add(Clinic(name="Clinic naive", timezone="Europe/Berlin", created_at=datetime(2026, 3, 1)))  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive datetime"):
        db.commit()
    db.rollback()


# --- use-cases: one worker-thread trip each ---------------------------------------------------


def test_sqlite_use_cases_run_one_at_a_time_in_arrival_order(
    backend: str, settings: Settings
) -> None:
    """On SQLite every use-case (Core or Session) runs on one thread, first come first served:
    no two overlap, and none overtakes one that arrived earlier."""
    _require_sqlite(backend)
    database = Database.from_settings(settings)
    started: list[int] = []
    threads: set[int] = set()
    running = [0]
    most_at_once = [0]

    def use_case(_db: object, *, n: int) -> int:
        running[0] += 1
        most_at_once[0] = max(most_at_once[0], running[0])
        started.append(n)
        threads.add(threading.get_ident())
        time.sleep(0.005)
        running[0] -= 1
        return n

    async def submit_all() -> list[int]:
        calls = [
            database.write(use_case, n=n) if n % 2 else database.run(use_case, n=n)
            for n in range(12)
        ]
        return list(await asyncio.gather(*calls))

    try:
        assert asyncio.run(submit_all()) == list(range(12))
    finally:
        database.dispose()
    assert started == list(range(12))
    assert most_at_once[0] == 1
    assert len(threads) == 1


def test_a_core_use_case_keeps_only_what_it_commits(settings: Settings, db: Session) -> None:
    """`Database.write` rolls back whatever its use-case did not commit (an error midway)."""
    database = Database.from_settings(settings)
    name = f"uncommitted-{uuid.uuid4()}"

    def fails_midway(connection: Connection) -> None:
        connection.execute(
            insert(Clinic.__table__),  # type: ignore[attr-defined]
            {"id": uuid.uuid4(), "name": name, "timezone": "UTC", "created_at": datetime.now(UTC)},
        )
        raise RuntimeError("midway")

    try:
        with pytest.raises(RuntimeError, match="midway"):
            asyncio.run(database.write(fails_midway))
    finally:
        database.dispose()
    assert db.exec(select(Clinic).where(Clinic.name == name)).first() is None
