"""Protocol rules, read from the protocol table (rows never change once written, so each is read
once per process)."""

from typing import Any

from sqlalchemy import Connection, Table, bindparam, select
from sqlmodel import Session

from api.services.records import connection_of
from models.protocol import Protocol

PROTOCOL: Table = Protocol.__table__  # type: ignore[attr-defined]
_RULES = select(PROTOCOL.c.rules).where(
    PROTOCOL.c.id == bindparam("id"), PROTOCOL.c.version == bindparam("version")
)
_cache: dict[tuple[str, int], dict[str, Any]] = {}


def rules(db: Session | Connection, protocol_id: str, version: int) -> dict[str, Any]:
    key = (protocol_id, version)
    if key not in _cache:
        found: dict[str, Any] = (
            connection_of(db).execute(_RULES, {"id": protocol_id, "version": version}).scalar_one()
        )
        _cache[key] = found
    return _cache[key]
