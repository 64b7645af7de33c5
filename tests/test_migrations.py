"""The Alembic migrations are the schema's only source: they apply, revert and match the models.

Each test gets a fresh, empty database of each backend (not the suite's shared one).
"""

import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table on the metadata)
from alembic import command
from api import migrations
from api.db import make_engine

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database(f"mig_{uuid.uuid4().hex[:12]}")
    return url


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if revision is None else str(revision)
    finally:
        engine.dispose()


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(migrations.alembic_config(url)).get_current_head()
    assert head is not None
    return head


MODEL_TABLES = {table.name for table in SQLModel.metadata.sorted_tables}


def test_a_fresh_database_upgrades_to_head_with_every_model_table(fresh_url: str) -> None:
    assert _tables(fresh_url) == set()
    migrations.upgrade(fresh_url)
    assert _tables(fresh_url) == MODEL_TABLES | {"alembic_version"}
    assert _current_revision(fresh_url) == _head(fresh_url)


def test_upgrade_downgrade_upgrade_round_trip(fresh_url: str) -> None:
    migrations.upgrade(fresh_url)
    migrations.downgrade(fresh_url, "base")
    assert _tables(fresh_url) == {"alembic_version"}, "downgrade to base left tables behind"
    assert _current_revision(fresh_url) is None

    migrations.upgrade(fresh_url)
    assert _tables(fresh_url) == MODEL_TABLES | {"alembic_version"}
    assert _current_revision(fresh_url) == _head(fresh_url)


def test_every_revision_downgrades_one_step_and_upgrades_again(fresh_url: str) -> None:
    """Each migration's downgrade undoes exactly its upgrade: step down and back up one by one."""
    migrations.upgrade(fresh_url)
    script = ScriptDirectory.from_config(migrations.alembic_config(fresh_url))
    revisions = [rev.revision for rev in script.walk_revisions()]  # newest first
    for revision in revisions:
        migrations.downgrade(fresh_url, "-1")
        migrations.upgrade(fresh_url, revision)
        assert _current_revision(fresh_url) == revision
        migrations.downgrade(fresh_url, "-1")
    assert _tables(fresh_url) == {"alembic_version"}
    migrations.upgrade(fresh_url)
    assert _current_revision(fresh_url) == _head(fresh_url)


def test_upgrading_an_up_to_date_database_changes_nothing(fresh_url: str) -> None:
    migrations.upgrade(fresh_url)
    before = _tables(fresh_url)
    migrations.upgrade(fresh_url)
    assert _tables(fresh_url) == before
    assert _current_revision(fresh_url) == _head(fresh_url)


def test_models_and_migrations_do_not_drift(fresh_url: str) -> None:
    """`alembic check`: autogenerate finds nothing to add, drop or alter at head."""
    migrations.upgrade(fresh_url)
    command.check(migrations.alembic_config(fresh_url))
