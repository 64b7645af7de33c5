"""Protocols: publishing versions, reading them, and their rules for the engine.

A version is never changed once written, so the rules of each are read once per process
(`rules`), and a procedure keeps the version it pinned until someone moves it explicitly.
"""

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, Table, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from api.errors import Conflict, NotFound
from api.services.audit import Audit
from api.services.pagination import Cursor, decode_cursor, encode_cursor
from api.services.records import connection_of
from models.page import Page
from models.protocol import (
    Protocol,
    ProtocolCreate,
    ProtocolId,
    ProtocolPublic,
    ProtocolRules,
    ProtocolVersions,
)

PROTOCOL: Table = Protocol.__table__  # type: ignore[attr-defined]
_RULES = select(PROTOCOL.c.rules).where(
    PROTOCOL.c.id == bindparam("id"), PROTOCOL.c.version == bindparam("version")
)
_cache: dict[tuple[str, int], dict[str, Any]] = {}
_PROTOCOL_ID: TypeAdapter[str] = TypeAdapter(ProtocolId)


def rules(db: Session | Connection, protocol_id: str, version: int) -> dict[str, Any]:
    key = (protocol_id, version)
    if key not in _cache:
        found: dict[str, Any] = (
            connection_of(db).execute(_RULES, {"id": protocol_id, "version": version}).scalar_one()
        )
        _cache[key] = found
    return _cache[key]


_LATEST = select(func.max(PROTOCOL.c.version)).where(PROTOCOL.c.id == bindparam("id"))
_VERSION = select(PROTOCOL.c.version).where(
    PROTOCOL.c.id == bindparam("id"), PROTOCOL.c.version == bindparam("version")
)


def clear_cache() -> None:
    """Forget the rules read so far (for tests that reset the database under a process)."""
    _cache.clear()


def latest_version(db: Session | Connection, protocol_id: str) -> int | None:
    """The newest version of a protocol, or None when there is no such protocol."""
    latest: int | None = connection_of(db).execute(_LATEST, {"id": protocol_id}).scalar()
    return latest


def version_exists(db: Session | Connection, protocol_id: str, version: int) -> bool:
    found = connection_of(db).execute(_VERSION, {"id": protocol_id, "version": version})
    return found.first() is not None


def _public(row: Protocol) -> ProtocolPublic:
    return ProtocolPublic(
        id=row.id,
        version=row.version,
        name=row.name,
        rules=ProtocolRules.model_validate(row.rules),
        created_at=row.created_at,
    )


def publish(session: Session, *, data: ProtocolCreate, audit: Audit) -> ProtocolPublic:
    """A new protocol (version 1), or the next version of an existing one. Procedures keep the
    version they pinned: nothing already recorded is measured differently."""
    audit.target(resource_id=data.id)
    row = Protocol(
        id=data.id,
        version=(latest_version(session, data.id) or 0) + 1,
        name=data.name,
        # Stored as it dumps: the engine reads a new version exactly as it reads the default.
        rules=data.rules.model_dump(mode="json"),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # Another publish of the same id took this version number first (the primary key).
        session.rollback()
        raise Conflict(
            f"Another version of protocol '{data.id}' was published at the same time; "
            "read the protocol and publish again"
        ) from None
    audit.record(session, status_code=201)
    session.commit()
    return _public(row)


def list_latest(
    session: Session, *, audit: Audit, limit: int, cursor: str | None
) -> Page[ProtocolPublic]:
    """Each protocol at its newest version, by id. The id is the whole sort key (it is unique
    here), so the cursor is the last id rather than `keyset_page`'s instant-and-UUID pair."""
    newest = (
        select(PROTOCOL.c.id, func.max(PROTOCOL.c.version).label("version"))
        .group_by(PROTOCOL.c.id)
        .subquery()
    )
    query = orm_select(Protocol).join(
        newest, and_(col(Protocol.id) == newest.c.id, col(Protocol.version) == newest.c.version)
    )
    after = decode_cursor(cursor)
    if after is not None:
        # Only an id as published: any other text would reach the query (a NUL fails there).
        query = query.where(col(Protocol.id) > after.as_id(_PROTOCOL_ID.validate_python))
    rows = list(session.exec(query.order_by(col(Protocol.id)).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    audit.record(session)
    session.commit()
    last = rows[-1].id if more else None
    return Page[ProtocolPublic](
        items=[_public(row) for row in rows],
        next_cursor=encode_cursor(Cursor(value=last, key=last)) if last else None,
    )


def read_versions(session: Session, *, protocol_id: str, audit: Audit) -> ProtocolVersions:
    audit.target(resource_id=protocol_id)
    query = orm_select(Protocol).where(Protocol.id == protocol_id)
    rows = list(session.exec(query.order_by(col(Protocol.version))))
    if not rows:
        raise NotFound("Protocol not found")
    audit.record(session)
    session.commit()
    return ProtocolVersions(id=protocol_id, versions=[_public(row) for row in rows])
