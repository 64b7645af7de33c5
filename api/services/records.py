"""Plain-data views of the rows the check-in path reads and writes, with the Core statements that
load them.

Every check-in (and every request naming a patient) goes through these. Measured on SQLite, the
ORM's per-object bookkeeping costs about three times the query itself (a patient by id: 236 µs
through a Session against 88 µs with Core; a log INSERT with its flush: 407 µs against 118 µs),
so this path works on rows, frozen dataclasses and named tuples instead. A batch's logs are
written with `TupleInsert` (below).
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, select
from sqlmodel import Session

from api.clinical.clock import ProcedureDate
from models.patient import Patient
from models.procedure import Procedure
from models.symptom_log import LogSource, SymptomLog


def connection_of(db: Session | Connection) -> Connection:
    """The Core connection under a use-case, whether it runs in a session or on a connection:
    for the helpers both kinds call (the audit row, protocol rules)."""
    return db.connection() if isinstance(db, Session) else db


PATIENT: Table = Patient.__table__  # type: ignore[attr-defined]
PROCEDURE: Table = Procedure.__table__  # type: ignore[attr-defined]
SYMPTOM_LOG: Table = SymptomLog.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PatientRef:
    """Who a patient is for access checks and the clock: no identifying field."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    timezone: str


_PATIENT_REF = select(PATIENT.c.id, PATIENT.c.clinic_id, PATIENT.c.timezone).where(
    PATIENT.c.id == bindparam("patient_id")
)


def patient_ref(connection: Connection, patient_id: uuid.UUID) -> PatientRef | None:
    row = connection.execute(_PATIENT_REF, {"patient_id": patient_id}).first()
    return None if row is None else PatientRef(*row)


@dataclass(frozen=True, slots=True)
class ProcedureRef:
    """What the clock and the alert rules need of a procedure."""

    id: uuid.UUID
    patient_id: uuid.UUID
    performed_on: date
    protocol_id: str
    protocol_version: int
    baseline_pain: float | None
    baseline_leg_pain: float | None
    baseline_mobility: float | None
    baseline_odi: float | None

    @property
    def clock_date(self) -> ProcedureDate:
        return ProcedureDate(self.id, self.performed_on)


_PROCEDURE_REFS = (
    select(
        PROCEDURE.c.id,
        PROCEDURE.c.patient_id,
        PROCEDURE.c.performed_on,
        PROCEDURE.c.protocol_id,
        PROCEDURE.c.protocol_version,
        PROCEDURE.c.baseline_pain,
        PROCEDURE.c.baseline_leg_pain,
        PROCEDURE.c.baseline_mobility,
        PROCEDURE.c.baseline_odi,
    )
    .where(PROCEDURE.c.patient_id == bindparam("patient_id"))
    .order_by(PROCEDURE.c.performed_on, PROCEDURE.c.id)
)


def procedure_refs(connection: Connection, patient_id: uuid.UUID) -> list[ProcedureRef]:
    """The patient's procedures by date."""
    return [
        ProcedureRef(*row)
        for row in connection.execute(_PROCEDURE_REFS, {"patient_id": patient_id})
    ]


class LogRecord(NamedTuple):
    """One stored symptom log, as its row holds it, in the row's column order.

    A named tuple rather than a frozen dataclass: a batch builds 500 of these, and a frozen
    dataclass's `__init__` (one `object.__setattr__` per field) took 2.7 µs against 0.8 µs."""

    id: uuid.UUID
    patient_id: uuid.UUID
    client_id: uuid.UUID
    content_hash: str
    recorded_at: datetime
    utc_offset_minutes: int
    timezone: str
    local_date: date
    received_at: datetime
    pain: int
    leg_pain: int | None
    mobility: int | None
    walking_minutes: int | None
    odi_answers: list[int | None] | None
    odi: float | None
    symptoms: dict[str, Any] | None
    side_effects: list[str]
    red_flags: list[str]
    note: str | None
    source: LogSource
    created_by_id: uuid.UUID | None
    corrects_id: uuid.UUID | None

    def received(self, at: datetime) -> "LogRecord":
        """This log with `received_at` restamped (`_replace` is twice as slow)."""
        return LogRecord._make((*self[:_RECEIVED_AT], at, *self[_RECEIVED_AT + 1 :]))


_RECEIVED_AT = LogRecord._fields.index("received_at")
LOG_COLUMNS = tuple(SYMPTOM_LOG.c[name] for name in LogRecord._fields)


_LOG_BY_ID = select(*LOG_COLUMNS).where(SYMPTOM_LOG.c.id == bindparam("log_id"))


def log_record(connection: Connection, log_id: uuid.UUID) -> LogRecord | None:
    row = connection.execute(_LOG_BY_ID, {"log_id": log_id}).first()
    return None if row is None else LogRecord._make(row)


class TupleInsert:
    """An INSERT of many rows given as tuples (in `names` order), for the batch write path.

    Each value is converted by its column's own type, with the same bind processors SQLAlchemy
    applies, and the rows go to the driver's `executemany` as they are. What this skips is
    `connection.execute(insert(table), dicts)` assembling every row's parameters through the
    compiled statement, bind by bind: for 500 check-ins that cost about as much as the
    conversions themselves. The plan (SQL text, bind order, processors) is made once per
    dialect; a statement whose binds are not exactly `names` is refused when it is planned."""

    def __init__(self, table: Table, names: Sequence[str]) -> None:
        self._table, self._names = table, tuple(names)
        self._plans: WeakKeyDictionary[Dialect, _InsertPlan] = WeakKeyDictionary()

    def __call__(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        plan = self._plans.get(connection.dialect)
        if plan is None:
            plan = self._plans[connection.dialect] = self._plan(connection.dialect)
        connection.exec_driver_sql(plan.sql, plan.encode(rows))

    def _plan(self, dialect: Dialect) -> "_InsertPlan":
        compiled = insert(self._table).compile(dialect=dialect, column_keys=list(self._names))
        order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        if sorted(order) != sorted(self._names):
            raise ValueError(f"INSERT binds {order} are not the columns {self._names}")
        processors = [
            self._table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order
        ]
        positions = [self._names.index(name) for name in order]
        return _InsertPlan(compiled.string, order, positions, processors, compiled.positional)


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    sql: str
    names: Sequence[str]  # the binds, in the statement's order
    positions: Sequence[int]  # where each bind's value is in a row
    processors: Sequence[Callable[[Any], Any] | None]
    positional: bool

    def encode(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's parameters for `rows`, converted column by column. A value that every
        row shares (one object: the batch's patient, author, receipt time) is converted once."""
        columns = []
        for position, process in zip(self.positions, self.processors, strict=True):
            values = [row[position] for row in rows]
            if process is not None:
                first = values[0]
                if all(value is first for value in values):
                    values = [process(first)] * len(values)
                else:
                    values = [process(value) for value in values]
            columns.append(values)
        encoded = list(zip(*columns, strict=True))
        return (
            encoded
            if self.positional
            else [dict(zip(self.names, row, strict=True)) for row in encoded]
        )
