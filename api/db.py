"""Database engines and sessions: SQLite (default) or PostgreSQL.

Every request makes one trip to a worker thread: its use-case runs there in its own session
(`Database.run`) or on its own Core connection (`Database.write`, the hot write paths) and
commits once. SQLite allows one writer at a time, so a use-case's transaction takes the
process's write turn (a lock) when it begins and gives it back once it has committed or rolled
back, and use-cases run on one thread in arrival order: writers queue in the process, first
come first served, instead of sleeping in SQLite's busy handler, which turns lock waits into
tail latency. The request's lookups (who is calling, which
patient) do not take the turn: they run on a second engine in autocommit, which WAL answers
from a snapshot without locks, right on the event loop because they take microseconds
(`Database.read`). Write transactions start with BEGIN IMMEDIATE, so another process (the CLI)
waits on the busy timeout instead of failing on a stale snapshot. PostgreSQL needs none of this:
its lookups go to a worker thread and its writers run side by side.
"""

import asyncio
import contextvars
import functools
import threading
from _thread import LockType as Lock
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import pydantic_core
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, create_engine

from api.config import Settings
from api.errors import DomainError

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


class DatabaseBusy(DomainError):
    status_code, title, slug = 503, "Service Unavailable", "database-busy"

    def __init__(self) -> None:
        super().__init__("The database is busy; retry shortly")
        self.headers = {"Retry-After": "1"}


def make_engine(
    database_url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 20, immediate: bool = True
) -> Engine:
    # hide_parameters: a database error must never carry patient values into a log.
    if not database_url.startswith("sqlite"):
        return create_engine(
            database_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
            json_serializer=json_text,
        )
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
        cursor.close()

    if immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    # Without `immediate` (the lookup engine) no BEGIN is sent: each SELECT runs in autocommit,
    # which WAL answers from a consistent snapshot without any lock or extra round trip.

    return engine


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
    engine: Engine  # writes (and the reads of a use-case)
    read_engine: Engine  # the request's own lookups; the same engine on PostgreSQL
    write_turn: Lock | None  # SQLite only
    # SQLite: use-cases run on one thread, first come first served. They would take the write
    # turn one at a time anyway; a queue in front of one thread instead of 40 threads blocked on
    # the lock (which wakes them in no particular order) keeps the latency tail short, the next
    # use-case starts the moment the last one ends, and the GIL is not fought over.
    writer: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        def build(immediate: bool) -> Engine:
            return make_engine(
                settings.database_url,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                pool_size=settings.db_pool_size,
                immediate=immediate,
            )

        engine = build(immediate=True)
        if not settings.is_sqlite:
            return cls(engine=engine, read_engine=engine, write_turn=None)
        return cls(
            engine=engine,
            read_engine=build(immediate=False),
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
        """A session for lookups and long reads that never takes the write turn."""
        return Session(self.read_engine, expire_on_commit=False)

    def dispose(self) -> None:
        if self.writer is not None:
            self.writer.shutdown(wait=True)
        self.engine.dispose()
        self.read_engine.dispose()

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
        context = contextvars.copy_context()  # as anyio's worker threads do
        return await asyncio.get_running_loop().run_in_executor(
            self.writer, functools.partial(context.run, call)
        )

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


async def get_database(request: Request) -> Database:
    database: Database = request.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
