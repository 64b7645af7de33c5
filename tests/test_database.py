"""The database layer: SQLite connection settings, write locking, foreign keys and UTC timestamps.

Each test runs on SQLite and on PostgreSQL (see tests/conftest.py); the SQLite-only ones skip on
PostgreSQL, where they do not apply.
"""

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlmodel import Session, select

from api.config import Settings
from api.db import Begin, Database, QueryTransactionEnded, make_engine
from api.services.audit import Audit
from api.services.records import connection_of
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


@pytest.fixture(params=["immediate", "autocommit", "snapshot"])
def any_app_engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    """The app's write, lookup and query engines: the same connection settings."""
    engine = make_engine(database_url, begin=request.param)
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


@pytest.mark.parametrize("begin", ["autocommit", "snapshot"])
def test_sqlite_read_transactions_do_not_take_the_write_lock(
    backend: str, database_url: str, begin: Begin
) -> None:
    """The lookup engine (autocommit) and the query engine (deferred BEGIN) never block a
    writer; also the control showing the lock test above can tell them apart."""
    _require_sqlite(backend)
    path = _sqlite_path(database_url)
    engine = make_engine(database_url, begin=begin)
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


# --- query use-cases: read-only, outside the write queue ---------------------------------------

WAIT_S = 10.0  # a ceiling, so a broken test fails instead of hanging; passing tests never reach it
CLINIC: Any = Clinic.__table__  # type: ignore[attr-defined]

Reader = Session | Connection


@pytest.fixture
def database(settings: Settings, db: Session) -> Iterator[Database]:  # noqa: ARG001  (db cleans up)
    database = Database.from_settings(settings)
    yield database
    database.dispose()


@pytest.fixture(params=["query", "query_core"])
def query(request: pytest.FixtureRequest, database: Database) -> Callable[..., Any]:
    """`Database.query` (a Session) and `Database.query_core` (a Core connection)."""
    method: Callable[..., Any] = getattr(database, request.param)
    return method


def _count_clinics(reader: Reader) -> int:
    count: int = reader.execute(text("SELECT count(*) FROM clinic")).scalar_one()
    return count


def _add_clinic(session: Session, *, name: str) -> None:
    session.add(Clinic(name=name, timezone="UTC"))
    session.commit()


def _clinic_named(db: Session, name: str) -> Clinic | None:
    return db.exec(select(Clinic).where(Clinic.name == name)).first()


def test_a_query_completes_while_a_write_use_case_is_in_progress(database: Database) -> None:
    """The measured stall: a query no longer waits behind the write queue. It runs on a thread
    of its own pool while a write use-case holds its transaction (and, on SQLite, the turn)."""
    writing, release = threading.Event(), threading.Event()
    threads: dict[str, str] = {}

    def slow_write(session: Session) -> None:
        threads["write"] = threading.current_thread().name
        session.add(Clinic(name="in progress", timezone="UTC"))
        session.flush()
        writing.set()
        assert release.wait(WAIT_S)
        session.commit()

    def count(session: Session) -> int:
        threads["query"] = threading.current_thread().name
        return _count_clinics(session)

    async def scenario() -> int:
        write = asyncio.create_task(database.run(slow_write))
        try:
            assert await asyncio.to_thread(writing.wait, WAIT_S)
            return await asyncio.wait_for(database.query(count), WAIT_S)
        finally:
            release.set()
            await write

    assert asyncio.run(scenario()) == 0  # and it did not see the uncommitted row
    assert threads["query"].startswith("db-queries")
    assert threads["query"] != threads["write"]


def test_the_query_pool_is_bounded(settings: Settings, db: Session) -> None:  # noqa: ARG001
    """With 2 query threads, a third query waits until one of the first two ends."""
    database = Database.from_settings(settings.model_copy(update={"db_read_threads": 2}))
    entered, release = threading.Semaphore(0), threading.Event()
    guard, running, most = threading.Lock(), [0], [0]

    def hold(session: Session, *, n: int) -> int:
        _count_clinics(session)  # holds a connection, as a real query does
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        entered.release()
        assert release.wait(WAIT_S)
        with guard:
            running[0] -= 1
        return n

    async def scenario() -> tuple[bool, list[int]]:
        calls = [asyncio.create_task(database.query(hold, n=n)) for n in range(2)]
        try:
            for _ in calls:
                assert await asyncio.to_thread(entered.acquire, True, WAIT_S)
            calls.append(asyncio.create_task(database.query(hold, n=2)))
            third_started = await asyncio.to_thread(entered.acquire, True, 0.3)
        finally:
            release.set()
        return third_started, list(await asyncio.gather(*calls))

    try:
        third_started, results = asyncio.run(scenario())
    finally:
        database.dispose()
    assert not third_started
    assert results == [0, 1, 2]
    assert most[0] == 2


def test_a_query_use_case_reads_one_snapshot(database: Database, query: Callable[..., Any]) -> None:
    """A row committed while a query runs is not in the query's second read: every statement of
    one query use-case sees the same snapshot (SQLite: WAL, PostgreSQL: REPEATABLE READ)."""
    first_read, committed = threading.Event(), threading.Event()

    def count_twice(reader: Reader) -> tuple[int, int]:
        before = _count_clinics(reader)
        first_read.set()
        assert committed.wait(WAIT_S)
        return before, _count_clinics(reader)

    async def scenario() -> tuple[tuple[int, int], int]:
        reading = asyncio.create_task(query(count_twice))
        try:
            assert await asyncio.to_thread(first_read.wait, WAIT_S)
            await database.run(_add_clinic, name="committed meanwhile")
        finally:
            committed.set()
        return await reading, await query(_count_clinics)

    (before, after), next_query = asyncio.run(scenario())
    assert before == after == 0
    assert next_query == 1


def test_a_write_inside_a_query_use_case_is_refused(db: Session, query: Callable[..., Any]) -> None:
    """SQLite: `query_only`; PostgreSQL: a READ ONLY transaction. The ORM and Core alike."""
    name = f"written-in-a-query-{uuid.uuid4()}"

    def writes(reader: Reader) -> None:
        if isinstance(reader, Session):
            reader.add(Clinic(name=name, timezone="UTC"))
            reader.flush()
        else:
            row = {"id": uuid.uuid4(), "name": name, "timezone": "UTC"}
            reader.execute(insert(CLINIC), row | {"created_at": datetime.now(UTC)})

    with pytest.raises(DBAPIError, match=r"readonly database|read-only transaction"):
        asyncio.run(query(writes))
    assert _clinic_named(db, name) is None


def test_a_query_use_case_cannot_commit(query: Callable[..., Any]) -> None:
    """A commit would end the use-case's snapshot (and it has nothing to write): its result is
    refused, and the connection goes back to the pool clean."""

    def commits(reader: Reader) -> None:
        _count_clinics(reader)
        reader.commit()

    with pytest.raises(QueryTransactionEnded):
        asyncio.run(query(commits))
    assert asyncio.run(query(_count_clinics)) == 0  # its connection, reused, begins anew


def test_postgresql_query_connections_write_again_back_in_the_pool(
    backend: str, settings: Settings, db: Session
) -> None:
    """Queries share the writers' pool on PostgreSQL: READ ONLY and REPEATABLE READ are reset
    when the connection goes back, so the next use-case on it writes as usual."""
    if backend != "postgresql":
        pytest.skip("SQLite queries have an engine (and connections) of their own")
    database = Database.from_settings(settings.model_copy(update={"db_pool_size": 1}))
    name = f"after-a-query-{uuid.uuid4()}"

    def dbapi_connection(reader: Reader) -> int:
        return id(connection_of(reader).connection.dbapi_connection)

    def add_clinic(session: Session) -> int:
        _add_clinic(session, name=name)
        return dbapi_connection(session)

    async def scenario() -> tuple[int, int]:
        return await database.query(dbapi_connection), await database.run(add_clinic)

    try:
        queried_on, written_on = asyncio.run(scenario())
    finally:
        database.dispose()
    assert written_on == queried_on
    assert _clinic_named(db, name) is not None


def _read_audit() -> Audit:
    return Audit(
        action="patient.progress",
        request_id="req-audited",
        ip="192.0.2.7",
        actor_id=uuid.uuid4(),
        actor_role="clinician",
        clinic_id=uuid.uuid4(),
    )


def test_audited_writes_one_audit_row_with_the_requests_fields(
    database: Database, db: Session
) -> None:
    audit, patient_id = _read_audit(), uuid.uuid4()
    asyncio.run(database.audited(audit, resource_id=patient_id, patient_id=patient_id))

    rows = db.exec(select(AuditEvent)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor_id, row.actor_role, row.clinic_id) == (
        audit.actor_id,
        "clinician",
        audit.clinic_id,
    )
    assert (row.action, row.resource_type) == ("patient.progress", "patient")
    assert (row.resource_id, row.patient_id) == (str(patient_id), patient_id)
    assert (row.outcome, row.status_code) == (Outcome.allowed, 200)
    assert (row.request_id, row.ip) == ("req-audited", "192.0.2.7")
    assert audit.recorded  # the error handler will not record the request a second time


def test_sqlite_audited_takes_its_write_turn(backend: str, database: Database) -> None:
    """The audit row of a query is a write like any other: on SQLite it waits for the turn."""
    _require_sqlite(backend)
    writing, release = threading.Event(), threading.Event()

    def slow_write(session: Session) -> None:
        _count_clinics(session)
        writing.set()
        assert release.wait(WAIT_S)

    async def scenario() -> bool:
        write = asyncio.create_task(database.run(slow_write))
        try:
            assert await asyncio.to_thread(writing.wait, WAIT_S)
            audited = asyncio.create_task(database.audited(_read_audit()))
            done, _ = await asyncio.wait([audited], timeout=0.3)
        finally:
            release.set()
        await asyncio.gather(write, audited)
        return bool(done)

    assert not asyncio.run(scenario())
