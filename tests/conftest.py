"""Fixtures: every API test runs on SQLite and on a real PostgreSQL started for the session.

The schema comes only from the Alembic migrations. Tests commit for real (the app's own
transactions, threads and crash tests need it); every table is emptied after each test.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

from api import migrations
from api.config import Environment, Settings
from api.db import make_engine
from api.main import create_app
from api.services import protocols
from tests import pg
from tests.factories import World, build_world

BACKENDS = ["sqlite", "postgresql"]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:  # noqa: ARG001
    """Random UUIDs in parameters get a fixed test id: pytest-xdist workers must collect the
    same ids."""
    if isinstance(val, str) and _UUID.fullmatch(val):
        return f"{argname}-uuid"
    return None


TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    try:
        server = pg.start_server()
    except pg.PostgresUnavailable as exc:
        # A missing PostgreSQL is a failure, never a skip: the suite promises both databases.
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "recovery.db"
        url = f"sqlite:///{path}"
    else:
        server: pg.PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"recovery_{_worker()}")
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(environment=Environment.test, database_url=database_url, secret_key=TEST_SECRET)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
def _running_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


# Reference data seeded by the migrations themselves stays.
SEEDED_TABLES = frozenset({"protocol"})


def _empty_all_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name not in SEEDED_TABLES:
                connection.execute(text(f'DELETE FROM "{table.name}"'))
        # What a test published beside the migration's default protocol, and the rules cache.
        connection.execute(text("DELETE FROM protocol WHERE NOT (id = 'default' AND version = 1)"))
    protocols.clear_cache()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session on the test database; every table is emptied afterwards."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
    _empty_all_tables(engine)


@pytest.fixture
def client(_running_client: TestClient, db: Session) -> TestClient:  # noqa: ARG001  (db cleans up)
    _running_client.headers.clear()
    _running_client.cookies.clear()
    return _running_client


@pytest.fixture
def world(db: Session, settings: Settings) -> World:
    """Two clinics with their staff, an admin, and a patient with app tokens in clinic A."""
    return build_world(db, settings)
