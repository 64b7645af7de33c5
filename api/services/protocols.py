"""Protocol rules, read from the protocol table (rows never change once written)."""

from typing import Any

from sqlmodel import Session

from models.protocol import Protocol

_cache: dict[tuple[str, int], dict[str, Any]] = {}


def rules(session: Session, protocol_id: str, version: int) -> dict[str, Any]:
    key = (protocol_id, version)
    if key not in _cache:
        _cache[key] = session.get_one(Protocol, key).rules
    return _cache[key]
