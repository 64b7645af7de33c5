"""The procedure clock (CLINICAL.md §The clock): calendar dates in a patient's own time zone and
days since the index procedure. Pure functions."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def today_in(timezone: str, *, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone)).date()


def start_of_day(day: date, timezone: str) -> datetime:
    """The instant (UTC) at which `day` begins in a zone: when "today in the patient's time zone"
    becomes that day."""
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


def local_date(instant: datetime, timezone: str) -> date:
    """The calendar date of an instant in a zone: DST and travel shift the clock, not the day."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def utc_offset_minutes(instant: datetime) -> int:
    offset = instant.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


@dataclass(frozen=True)
class ProcedureDate:
    id: uuid.UUID
    performed_on: date


def index_procedure(
    procedures: Sequence[ProcedureDate], on: date
) -> tuple[uuid.UUID | None, int | None]:
    """The latest procedure on or before `on` (the first one for earlier dates), and the day."""
    if not procedures:
        return None, None
    ordered = sorted(procedures, key=lambda p: (p.performed_on, str(p.id)))
    chosen = ordered[0]
    for procedure in ordered:
        if procedure.performed_on <= on:
            chosen = procedure
    return chosen.id, (on - chosen.performed_on).days


def clock_range(
    procedures: Sequence[ProcedureDate], procedure_id: uuid.UUID
) -> tuple[date | None, date | None]:
    """The local dates whose index procedure is `procedure_id`, as [start, end) (None: open).

    The same placement as `index_procedure`, worked out once for a procedure instead of once
    per log: its own date up to the next procedure's, and for the first one every earlier date
    too. Of two procedures on one date the later (by id) takes that date, as there."""
    ordered = sorted(procedures, key=lambda p: (p.performed_on, str(p.id)))
    position = next(i for i, p in enumerate(ordered) if p.id == procedure_id)
    start = ordered[position].performed_on if position > 0 else None
    end = ordered[position + 1].performed_on if position + 1 < len(ordered) else None
    return start, end
