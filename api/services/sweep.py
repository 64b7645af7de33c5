"""The clock sweep: re-evaluates the patients whose stored progress the clock alone has changed
(a window opened or closed, a check-in fell due or was missed), and raises the alerts that
calls for, in the same transaction as each re-evaluation.

`due_patients` finds the candidates with one indexed query; `sweep_chunk` re-evaluates a chunk
of them, each under its patient's lock and only if still due (a conditional re-check inside the
transaction), so two sweeps (two API processes, or `recovery-tracker sweep` from cron beside a
server) can never raise an alert twice: the second finds the patient no longer due. On
PostgreSQL an advisory lock (`try_sweep_lock`) also keeps all but one process from doing the
work at the same time. The sweep is idempotent and catches up after downtime: a patient due
since last week is evaluated once, as of today, and each missed interval or closed milestone
raises one alert, not one per day missed.
"""

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, bindparam, select, text

from api.clinical.clock import today_in
from api.services import progress_store
from api.services.records import PATIENT

logger = logging.getLogger("recovery_tracker.sweep")
PROGRESS = progress_store.PATIENT_PROGRESS
CHUNK = 200  # patients per transaction at most: one fsync per chunk
# A transaction ends once it has run this long (after the patient in hand): on SQLite it holds
# the database's one write lock, and the server's requests wait behind it.
CHUNK_BUDGET_S = 0.25
_SWEEP_LOCK_KEY = 0x5EE9_0001  # pg_advisory_lock key of the sweep

_DUE = (
    select(PROGRESS.c.patient_id)
    .where(PROGRESS.c.due_at <= bindparam("now", type_=PROGRESS.c.due_at.type))
    .order_by(PROGRESS.c.patient_id)
)
_STILL_DUE = (
    select(PROGRESS.c.next_change_on, PATIENT.c.timezone)
    .select_from(PATIENT.outerjoin(PROGRESS, PROGRESS.c.patient_id == PATIENT.c.id))
    .where(PATIENT.c.id == bindparam("patient_id"))
)
_LOCK_PATIENT = (
    select(PATIENT.c.id).where(PATIENT.c.id == bindparam("patient_id")).with_for_update()
)


@dataclass
class SweepCounts:
    """What a sweep did."""

    candidates: int = 0
    evaluated: int = 0
    alerts: dict[str, int] = field(default_factory=dict)

    def add(self, other: "SweepCounts") -> None:
        self.candidates += other.candidates
        self.evaluated += other.evaluated
        for kind, count in other.alerts.items():
            self.alerts[kind] = self.alerts.get(kind, 0) + count


def due_patients(connection: Connection, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Patients whose stored progress the clock has overtaken: their `due_at` (the start of
    their next change date in their own time zone) has passed."""
    return list(connection.execute(_DUE, {"now": now or datetime.now(UTC)}).scalars())


def _lock(connection: Connection, patient_id: uuid.UUID) -> None:
    if connection.dialect.name != "sqlite":  # SQLite: the write transaction is the lock
        connection.execute(_LOCK_PATIENT, {"patient_id": patient_id}).first()


def _due_today(
    connection: Connection, patient_id: uuid.UUID, now: datetime
) -> tuple[date, bool] | None:
    """The patient's today, and whether their stored progress is (still) due on it; None for
    a patient that does not exist."""
    row = connection.execute(_STILL_DUE, {"patient_id": patient_id}).first()
    if row is None:
        return None
    today = today_in(row.timezone, now=now)
    return today, row.next_change_on is not None and row.next_change_on <= today


def sweep_chunk(
    connection: Connection,
    *,
    patient_ids: Sequence[uuid.UUID],
    now: datetime | None = None,
    force: bool = False,
    budget_s: float = CHUNK_BUDGET_S,
) -> SweepCounts:
    """Re-evaluate the patients of a chunk that are still due (all of them with `force`), in
    ascending id order, and commit once. It stops early, after at least one patient, once it
    has run `budget_s`: `candidates` says how many it went through, the caller goes on from
    there. Patients are locked in id order, so two sweeps never wait on each other in a
    cycle (PostgreSQL found such deadlocks between the cron sweep and a read's catch-up)."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    counts = SweepCounts()
    for patient_id in sorted(patient_ids):
        if counts.candidates and time.monotonic() - started > budget_s:
            break
        counts.candidates += 1
        _lock(connection, patient_id)
        found = _due_today(connection, patient_id, now)
        if found is None or not (found[1] or force):
            continue
        today = found[0]
        refreshed = progress_store.refresh(
            connection, patient_id=patient_id, today=today, raise_missed=True
        )
        counts.evaluated += 1
        for kind in refreshed.raised if refreshed else ():
            counts.alerts[kind] = counts.alerts.get(kind, 0) + 1
    connection.commit()
    return counts


def try_sweep_lock(connection: Connection) -> bool:
    """PostgreSQL: take the sweep's session advisory lock if no other process holds it (held
    until `release_sweep_lock` or the connection closes). SQLite: always True (one process)."""
    if connection.dialect.name == "sqlite":
        return True
    taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _SWEEP_LOCK_KEY})
    result = bool(taken.scalar())
    connection.commit()
    return result


def release_sweep_lock(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SWEEP_LOCK_KEY})
        connection.commit()


_ALL_PATIENTS = select(PATIENT.c.id).order_by(PATIENT.c.id)


def all_patients(connection: Connection) -> list[uuid.UUID]:
    return list(connection.execute(_ALL_PATIENTS).scalars())


def run(
    engine: Engine,
    *,
    now: datetime | None = None,
    patient_ids: list[uuid.UUID] | None = None,
    force: bool = False,
) -> SweepCounts | None:
    """One sweep from a command (cron, `migrate`, `reevaluate`): the due patients (or
    `patient_ids`, re-evaluated whether due or not with `force`), a chunk per transaction.
    None when another process holds the sweep's lock (PostgreSQL)."""
    with engine.connect() as lock:
        if not try_sweep_lock(lock):
            logger.info("sweep skipped: another process is sweeping")
            return None
        try:
            if patient_ids is None:
                patient_ids = all_patients(lock) if force else due_patients(lock, now=now)
                lock.rollback()
            return _sweep_chunks(engine, patient_ids, now=now, force=force)
        finally:
            release_sweep_lock(lock)


def _sweep_chunks(
    engine: Engine, patient_ids: list[uuid.UUID], *, now: datetime | None, force: bool
) -> SweepCounts:
    total = SweepCounts()
    started = time.monotonic()
    logger.info("sweep started: %d patient(s) to look at", len(patient_ids))
    remaining = sorted(patient_ids)
    while remaining:
        with engine.connect() as connection:
            done = sweep_chunk(connection, patient_ids=remaining[:CHUNK], now=now, force=force)
        total.add(done)
        remaining = remaining[done.candidates :]
        logger.info("sweep progress: %d/%d patient(s)", total.candidates, len(patient_ids))
    log_counts(total, time.monotonic() - started)
    return total


def log_counts(counts: SweepCounts, seconds: float) -> None:
    logger.info(
        "sweep done in %.1f s: %d candidates, %d re-evaluated, alerts %s",
        seconds,
        counts.candidates,
        counts.evaluated,
        counts.alerts or "none",
    )


def due_now(
    connection: Connection,
    *,
    clinic_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """The patients (of a clinic, or one patient; all by default) whose stored progress the
    clock has overtaken: a read checks this first (one index range), so that it never answers
    from a row the sweep has not reached yet."""
    query = _DUE
    if clinic_id is not None:
        query = query.where(PROGRESS.c.clinic_id == clinic_id)
    if patient_id is not None:
        query = query.where(PROGRESS.c.patient_id == patient_id)
    return list(connection.execute(query, {"now": now or datetime.now(UTC)}).scalars())
