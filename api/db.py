"""Database engines and sessions: SQLite (default) or PostgreSQL.

Every request makes one trip to a worker thread. A write use-case runs there in its own session
(`Database.run`) or on its own Core connection (`Database.write`, the hot write paths) and
commits once. SQLite allows one writer at a time, so a use-case's transaction takes the
process's write turn (a lock) when it begins and gives it back once it has committed or rolled
back, and write use-cases run on one thread in arrival order: writers queue in the process,
first come first served, instead of sleeping in SQLite's busy handler, which turns lock waits
into tail latency. The request's lookups (who is calling, which patient) do not take the turn:
they run on a second engine in autocommit, which WAL answers from a snapshot without locks,
right on the event loop because they take microseconds (`Database.read`). Write transactions
start with BEGIN IMMEDIATE, so another process (the CLI) waits on the busy timeout instead of
failing on a stale snapshot. PostgreSQL needs none of this: its lookups go to a worker thread
and its writers run side by side.

Read-only use-cases (lists, progress, trends, cohort, exports) stay out of the write queue
(`Database.query`, `Database.query_core`): they run in a bounded pool of their own
(`RECOVERY_DB_READ_THREADS`), never on the writer thread and never in the write turn. Measured
on SQLite with 10,000 patients, one slow filtered list on the writer thread took
`GET /v1/users/me` from 291 to 0.4 req/s. Each query reads one snapshot and cannot write: on
SQLite its connection is `query_only` and its transaction a deferred BEGIN, whose snapshot WAL
fixes at the first read, without locks; on PostgreSQL it is REPEATABLE READ READ ONLY, on the
writers' pool. It is rolled back at its end. While a query holds its snapshot, SQLite's
checkpoints cannot recycle the WAL past it, so the WAL grows during long queries.

How to use: a read route runs its query, then writes its audit row, then answers:

    page = await database.query(patients.search, principal=principal, limit=..., q=q)
    await database.audited(audit, patient_id=patient.id)
    return page

A query use-case takes the session (or Core connection) first and keyword-only arguments, like
any use-case, but it neither records an audit row nor commits: a commit or rollback of its own
would split its reads across two snapshots, so `query` refuses its result
(`QueryTransactionEnded`), and a write raises the database's error. `audited` writes the row
as a short write use-case that takes its turn like any other; if it fails, the request fails,
so no data leaves without its audit row.
"""

import asyncio
import contextvars
import functools
import sqlite3
import threading
import uuid
from _thread import LockType as Lock
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, Literal, ParamSpec, TypeVar

import pydantic_core
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, create_engine

from api.config import Settings
from api.errors import DomainError
from api.services.audit import Audit

P = ParamSpec("P")
R = TypeVar("R")

SQLITE_PRAGMAS = {
    "journal_mode": "WAL",
    "synchronous": "FULL",  # an acknowledged write survives power loss, not only a crash
    "foreign_keys": "ON",
}
WRITE_TURN_WAIT_S = 30.0


def json_text(value: Any) -> str:
    """A JSON column's text, compact, in one call into pydantic-core (Rust): about six times as
    fast as `json.dumps`, and a check-in writes four such columns."""
    return pydantic_core.to_json(value).decode()


# PostgreSQL SQLSTATEs of a transaction that lost a race and may simply be tried again:
# deadlock_detected, serialization_failure, lock_not_available.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def is_transient(exc: BaseException) -> bool:
    """Whether a database error means "busy, try again": SQLite's lock held by another process
    past the busy timeout, or a PostgreSQL deadlock / serialization failure / lock timeout."""
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, sqlite3.OperationalError):
        return "locked" in str(original) or "busy" in str(original)
    return getattr(original, "sqlstate", None) in _TRANSIENT_SQLSTATES


class DatabaseBusy(DomainError):
    status_code, title, slug = 503, "Service Unavailable", "database-busy"

    def __init__(self) -> None:
        super().__init__("The database is busy; retry shortly")
        self.headers = {"Retry-After": "1"}


class QueryTransactionEnded(RuntimeError):
    """A query use-case committed or rolled back: its reads would span two snapshots."""


Begin = Literal["immediate", "autocommit", "snapshot"]


def make_engine(
    database_url: str,
    *,
    busy_timeout_ms: int = 5000,
    pool_size: int = 20,
    begin: Begin = "immediate",
) -> Engine:
    """`begin` says how a transaction starts on SQLite: `immediate` for writes (BEGIN IMMEDIATE),
    `autocommit` for lookups (no BEGIN), `snapshot` for query use-cases (a deferred BEGIN on a
    `query_only` connection). On PostgreSQL only `snapshot` changes anything."""
    # hide_parameters: a database error must never carry patient values into a log.
    if not database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
            json_serializer=json_text,
        )
        return read_only_snapshots(engine) if begin == "snapshot" else engine
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # Every worker thread may hold a connection (the default pool of 5 + 10 queues them).
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,
        json_serializer=json_text,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for name, value in SQLITE_PRAGMAS.items():
            cursor.execute(f"PRAGMA {name}={value}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if begin == "snapshot":
            cursor.execute("PRAGMA query_only=ON")  # any write raises
        cursor.close()

    # `autocommit` (the lookup engine) sends no BEGIN: each SELECT runs on its own, which WAL
    # answers from a consistent snapshot without any lock or extra round trip. A deferred BEGIN
    # takes no lock either; WAL fixes its snapshot at the first read and keeps it to the end.
    if begin != "autocommit":
        statement = "BEGIN IMMEDIATE" if begin == "immediate" else "BEGIN"

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(statement)

    return engine


def read_only_snapshots(engine: Engine) -> Engine:
    """PostgreSQL: the same pool, each transaction REPEATABLE READ (one snapshot) READ ONLY (a
    write raises). Both are set when a connection is checked out and reset when it goes back."""
    return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


_TURN = "write_turn"
_HOLDING = "holding_write_turn"


@event.listens_for(Session, "after_transaction_create")
def _take_turn(session: Session, transaction: SessionTransaction) -> None:
    turn: Lock | None = session.info.get(_TURN)
    if turn is None or transaction.parent is not None:
        return
    if not turn.acquire(timeout=WRITE_TURN_WAIT_S):
        raise DatabaseBusy()
    session.info[_HOLDING] = transaction


@event.listens_for(Session, "after_transaction_end")
def _give_turn_back(session: Session, transaction: SessionTransaction) -> None:
    if session.info.get(_HOLDING) is transaction:
        del session.info[_HOLDING]
        session.info[_TURN].release()


@dataclass
class Database:
    engine: Engine  # write use-cases
    read_engine: Engine  # the request's own lookups; the same engine on PostgreSQL
    query_engine: Engine  # read-only use-cases: one snapshot each, writes refused
    queries: ThreadPoolExecutor  # where they run, on either database (RECOVERY_DB_READ_THREADS)
    write_turn: Lock | None  # SQLite only
    # SQLite: write use-cases run on one thread, first come first served. They would take the write
    # turn one at a time anyway; a queue in front of one thread instead of 40 threads blocked on
    # the lock (which wakes them in no particular order) keeps the latency tail short, the next
    # use-case starts the moment the last one ends, and the GIL is not fought over.
    writer: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        def build(begin: Begin, pool_size: int = settings.db_pool_size) -> Engine:
            return make_engine(
                settings.database_url,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                pool_size=pool_size,
                begin=begin,
            )

        queries = ThreadPoolExecutor(settings.db_read_threads, thread_name_prefix="db-queries")
        engine = build("immediate")
        if not settings.is_sqlite:
            return cls(
                engine=engine,
                read_engine=engine,
                query_engine=read_only_snapshots(engine),
                queries=queries,
                write_turn=None,
            )
        return cls(
            engine=engine,
            read_engine=build("autocommit"),
            query_engine=build("snapshot", pool_size=settings.db_read_threads),
            queries=queries,
            write_turn=threading.Lock(),
            writer=ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-use-cases"),
        )

    def session(self) -> Session:
        """A use-case's session. Objects stay readable after commit (responses use them)."""
        session = Session(self.engine, expire_on_commit=False)
        if self.write_turn is not None:
            session.info[_TURN] = self.write_turn
        return session

    def read_session(self) -> Session:
        """A session for the request's lookups; it never takes the write turn."""
        return Session(self.read_engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.queries.shutdown(wait=True)
        if self.writer is not None:
            self.writer.shutdown(wait=True)
        self.engine.dispose()
        self.read_engine.dispose()
        self.query_engine.dispose()

    async def read(
        self, lookup: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """A short lookup. SQLite reads in WAL mode never wait on writers and take microseconds,
        so they run right here on the event loop; PostgreSQL's go to a worker thread."""

        def call() -> R:
            with self.read_session() as session:
                return lookup(session, *args, **kwargs)

        return call() if self.write_turn is not None else await run_in_threadpool(call)

    async def lookup(
        self, query: Callable[Concatenate[Connection, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like `read`, on a plain Core connection: for the lookups every request makes (the
        caller's token), where a Session's bookkeeping costs more than the query."""

        def call() -> R:
            with self.read_engine.connect() as connection:
                return query(connection, *args, **kwargs)

        return call() if self.write_turn is not None else await run_in_threadpool(call)

    @contextmanager
    def write_turn_held(self) -> Iterator[None]:
        """SQLite: this process's write turn for the block; PostgreSQL: nothing to wait for."""
        if self.write_turn is None:
            yield
            return
        if not self.write_turn.acquire(timeout=WRITE_TURN_WAIT_S):
            raise DatabaseBusy()
        try:
            yield
        finally:
            self.write_turn.release()

    async def _in_thread(self, call: Callable[[], R]) -> R:
        if self.writer is None:
            return await run_in_threadpool(call)
        return await _run_on(self.writer, call)

    async def write(
        self, use_case: Callable[Concatenate[Connection, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run a Core use-case (the check-in path) on its own connection, in a worker thread.
        It commits once at its end (`connection.commit()`), like a Session use-case; whatever
        it leaves uncommitted is rolled back."""

        def call() -> R:
            with self.write_turn_held(), self.engine.connect() as connection:
                return use_case(connection, *args, **kwargs)

        return await self._in_thread(call)

    async def run(
        self, use_case: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run a use-case in its own session, in a worker thread."""

        def call() -> R:
            with self.session() as session:
                return use_case(session, *args, **kwargs)

        return await self._in_thread(call)

    async def query(
        self, use_case: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run a read-only use-case in its own session, in the query pool, never on the writer
        thread nor in the write turn. It reads one snapshot, cannot write, and is rolled back
        at its end; if it commits or rolls back itself, `QueryTransactionEnded`."""

        def call() -> R:
            with Session(self.query_engine, expire_on_commit=False) as session:
                snapshot = session.begin()
                result = use_case(session, *args, **kwargs)
                _still_open(snapshot.is_active)
                return result

        return await _run_on(self.queries, call)

    async def query_core(
        self, use_case: Callable[Concatenate[Connection, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like `query`, on a plain Core connection."""

        def call() -> R:
            with self.query_engine.connect() as connection:
                snapshot = connection.begin()
                result = use_case(connection, *args, **kwargs)
                _still_open(snapshot.is_active)
                return result

        return await _run_on(self.queries, call)

    async def audited(
        self, audit: Audit, *, resource_id: Any = None, patient_id: uuid.UUID | None = None
    ) -> None:
        """Write the audit row of a read that ran in `query`: a short write use-case that takes
        its turn like any other. Await it before answering; if it fails, the request fails."""
        await self.write(_record_read, audit=audit, resource_id=resource_id, patient_id=patient_id)


def _still_open(is_active: bool) -> None:
    # Checked after the fact: raising from a commit event would leave the DBAPI connection in
    # its transaction while SQLAlchemy thinks it ended, and the pool would not roll it back.
    if not is_active:
        raise QueryTransactionEnded("a query use-case neither commits nor rolls back")


def _record_read(
    connection: Connection, *, audit: Audit, resource_id: Any, patient_id: uuid.UUID | None
) -> None:
    audit.record(connection, resource_id=resource_id, patient_id=patient_id)
    connection.commit()


async def _run_on(executor: ThreadPoolExecutor, call: Callable[[], R]) -> R:
    context = contextvars.copy_context()  # as anyio's worker threads do
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(context.run, call)
    )


async def get_database(request: Request) -> Database:
    database: Database = request.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
