"""Database engine and sessions: SQLite (default) or PostgreSQL.

SQLite allows one writer at a time. Every request here writes (at least its audit row), so on
SQLite the requests that open a session take turns through an asyncio gate: waiting happens on
the event loop, never in a worker thread, so a waiting request cannot starve the thread pool the
running one needs. Transactions start with BEGIN IMMEDIATE so another process (the CLI) waits on
the busy timeout instead of failing on a stale snapshot. PostgreSQL needs neither.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlmodel import Session, create_engine

from api.config import Settings

P = ParamSpec("P")
R = TypeVar("R")

SQLITE_PRAGMAS = {
    "journal_mode": "WAL",
    "synchronous": "FULL",  # an acknowledged write survives power loss, not only a crash
    "foreign_keys": "ON",
}


def make_engine(database_url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 20) -> Engine:
    # hide_parameters: a database error must never carry patient values into a log.
    if not database_url.startswith("sqlite"):
        return create_engine(
            database_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        hide_parameters=True,
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass
class Database:
    engine: Engine
    serialize_writes: bool
    _gate: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        engine = make_engine(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.db_pool_size,
        )
        return cls(engine=engine, serialize_writes=settings.is_sqlite)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this request's turn to write (SQLite); immediate on PostgreSQL."""
        if not self.serialize_writes:
            yield
            return
        async with self._gate:
            yield

    def session(self) -> Session:
        # Objects stay readable after commit: responses are built from them afterwards.
        return Session(self.engine, expire_on_commit=False)

    async def run(
        self, use_case: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run a use-case in its own session, in a worker thread, during this request's turn."""

        def call() -> R:
            with self.session() as session:
                return use_case(session, *args, **kwargs)

        async with self.turn():
            return await run_in_threadpool(call)

    @contextlib.contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for long reads (exports) that does not take the write turn."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session


def get_database(request: Request) -> Database:
    database: Database = request.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[Session]:
    database = get_database(request)
    async with database.turn():
        session = database.session()
        try:
            yield session
        finally:
            # Closing rolls back anything uncommitted; it is quick and must finish before the
            # next request's turn begins.
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
