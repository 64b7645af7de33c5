"""How the batch write path hands rows to the driver, checked against SQLAlchemy's own way.

The check-in path skips SQLAlchemy's per-bind parameter assembly (`TupleInsert`), formats SQLite
timestamps in one step (`UTCDateTime.bind_processor`), writes JSON columns with pydantic-core and
keys check-ins and audit events with UUIDv7s. Each must store exactly what the general path
would. Each database test runs on SQLite and on PostgreSQL (tests/conftest.py).
"""

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

from api.db import json_text
from api.services.records import SYMPTOM_LOG, LogRecord, TupleInsert
from models.base import UTCDateTime, ordered_id
from models.identity import Role
from models.symptom_log import LogSource
from tests.factories import make_clinic, make_patient, make_user

# --- UTCDateTime on SQLite: one step, the same text as the two-step chain ------------------------

_SQLITE = sqlite.dialect()
_ADAPTED = UTCDateTime().dialect_impl(_SQLITE)
_ONE_STEP = _ADAPTED.bind_processor(_SQLITE)
_CHAIN = TypeDecorator.bind_processor(_ADAPTED, _SQLITE)  # process_bind_param, then SQLAlchemy's


@given(
    # Naive bounds are what hypothesis takes; the offset is attached below.
    instant=st.datetimes(
        min_value=datetime(1900, 1, 2),  # noqa: DTZ001
        max_value=datetime(2999, 12, 30),  # noqa: DTZ001
    ),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_sqlite_timestamps_are_the_text_sqlalchemy_would_store(
    instant: datetime, offset_minutes: int
) -> None:
    aware = instant.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert _ONE_STEP is not None
    assert _CHAIN is not None
    assert _ONE_STEP(aware) == _CHAIN(aware)
    assert _ONE_STEP(aware.astimezone(UTC)) == _CHAIN(aware)


def test_sqlite_timestamps_keep_microseconds_and_none() -> None:
    assert _ONE_STEP is not None
    assert _ONE_STEP(datetime(2026, 3, 1, 7, tzinfo=UTC)) == "2026-03-01 07:00:00.000000"
    assert _ONE_STEP(None) is None


def test_sqlite_timestamps_refuse_naive_datetimes() -> None:
    assert _ONE_STEP is not None
    with pytest.raises(ValueError, match="naive"):
        _ONE_STEP(datetime(2026, 3, 1, 7))  # noqa: DTZ001  (the point of the test)


def test_other_databases_keep_the_chain() -> None:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    adapted = UTCDateTime().dialect_impl(dialect)
    value = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    processor = adapted.bind_processor(dialect)
    chain = TypeDecorator.bind_processor(adapted, dialect)
    assert (processor(value) if processor else value) == (chain(value) if chain else value)


# --- TupleInsert stores what insert(table) stores ---------------------------------------------


def _record(patient_id: uuid.UUID, user_id: uuid.UUID, **overrides: Any) -> LogRecord:
    values: dict[str, Any] = {
        "id": ordered_id(),
        "patient_id": patient_id,
        "client_id": uuid.uuid4(),
        "content_hash": "a" * 64,
        "recorded_at": datetime(2026, 3, 1, 8, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5))),
        "utc_offset_minutes": -300,
        "timezone": "America/New_York",
        "local_date": date(2026, 3, 1),
        "received_at": datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
        "pain": 6,
        "leg_pain": None,
        "mobility": 4,
        "walking_minutes": 25,
        "odi_answers": [1, 2, 3, None, 0, 5, 1, 2, 3, 4],
        "odi": 46.7,
        "symptoms": {"numbness": 2, "tingling": None, "weakness": 0},
        "side_effects": ["swelling"],
        "red_flags": [],
        "note": "Walked to the café ✓",
        "source": LogSource.app,
        "created_by_id": user_id,
        "corrects_id": None,
    }
    return LogRecord(**(values | overrides))


def _raw_row(engine: Engine, log_id: uuid.UUID) -> dict[str, Any]:
    """The row as the driver returns it, with no SQLAlchemy type processing."""
    key = log_id.hex if engine.dialect.name == "sqlite" else log_id
    placeholder = "?" if engine.dialect.name == "sqlite" else "%s"
    with engine.connect() as connection:
        result = connection.exec_driver_sql(
            f"SELECT * FROM symptom_log WHERE id = {placeholder}", (key,)
        )
        row = result.mappings().one()
    return {k: v for k, v in row.items() if k not in ("id", "client_id")}


def test_tuple_insert_stores_what_sqlalchemy_would(engine: Engine, db: Session) -> None:
    clinic = make_clinic(db)
    patient, user = (
        make_patient(db, clinic=clinic),
        make_user(db, role=Role.clinician, clinic=clinic),
    )
    ours = _record(patient.id, user.id)
    theirs = _record(patient.id, user.id)
    other = _record(patient.id, user.id, leg_pain=3, symptoms=None, odi_answers=None, note=None)
    with engine.connect() as connection:
        TupleInsert(SYMPTOM_LOG, LogRecord._fields)(connection, [ours, other])
        connection.execute(insert(SYMPTOM_LOG), [theirs._asdict()])
        connection.commit()
    assert _raw_row(engine, ours.id) == _raw_row(engine, theirs.id)
    assert _raw_row(engine, other.id)["leg_pain"] == 3


def test_tuple_insert_of_no_rows_does_nothing(engine: Engine) -> None:
    with engine.connect() as connection:
        TupleInsert(SYMPTOM_LOG, LogRecord._fields)(connection, [])
        assert not connection.in_transaction()


def test_tuple_insert_refuses_columns_the_table_lacks(engine: Engine) -> None:
    with engine.connect() as connection, pytest.raises(ValueError, match="binds"):
        TupleInsert(SYMPTOM_LOG, [*LogRecord._fields[:-1], "no_such_column"])(
            connection, [tuple(range(len(LogRecord._fields)))]
        )


# --- JSON text and ordered keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [[], ["fever", "new_weakness"], [1, None, 5], {"numbness": 2, "tingling": None}, "é ✓", None],
)
def test_json_columns_are_plain_json(value: object) -> None:
    assert json.loads(json_text(value)) == value


def test_ordered_ids_are_uuid7_and_ascend() -> None:
    ids = [ordered_id() for _ in range(2000)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
