"""Work the server does when no request comes: the periodic clock sweep (api/services/sweep.py).

Each chunk of the sweep is a write use-case like any other (`Database.write`), so on SQLite it
takes its turn in the write queue between requests instead of holding the database for the
whole sweep. With several API processes on PostgreSQL, the sweep's advisory lock lets one
process do the work; the others find it taken and wait for the next round.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool

from api.db import Database
from api.services import sweep

logger = logging.getLogger("recovery_tracker.sweep")


async def sweep_once(
    database: Database, *, now: datetime | None = None
) -> sweep.SweepCounts | None:
    """One sweep of the due patients; None when another process holds the sweep lock."""
    now = now or datetime.now(UTC)
    with database.engine.connect() as lock:
        if not await run_in_threadpool(sweep.try_sweep_lock, lock):
            logger.info("sweep skipped: another process is sweeping")
            return None
        try:
            due = await database.lookup(sweep.due_patients, now=now)
            total = sweep.SweepCounts()
            started = time.monotonic()
            remaining = sorted(due)
            while remaining:
                # Each chunk is a write use-case of its own: requests take turns in between.
                done = await database.write(
                    sweep.sweep_chunk, patient_ids=remaining[: sweep.CHUNK], now=now
                )
                total.add(done)
                remaining = remaining[done.candidates :]
            if due:
                sweep.log_counts(total, time.monotonic() - started)
            return total
        finally:
            await run_in_threadpool(sweep.release_sweep_lock, lock)


async def sweep_periodically(database: Database, interval_s: float) -> None:
    """Sweep now, then every `interval_s` seconds, until cancelled. A failed round is logged
    (type and stack frames only, as every log here) and the next one runs as planned."""
    while True:
        try:
            await sweep_once(database)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("sweep failed; retrying in %d s", interval_s)
        await asyncio.sleep(interval_s)
