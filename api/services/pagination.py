"""Opaque keyset cursors: the last row's sort value and id, so pages stay stable under ties."""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Date, and_, or_
from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from api.errors import FieldError, RuleViolation

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    value: str  # the sort key of the last row seen, as text
    key: str  # its id: the tie-breaker

    @classmethod
    def at_instant(cls, value: datetime, key: str) -> "Cursor":
        return cls(value=value.isoformat(), key=key)

    def as_instant(self) -> datetime:
        try:
            value = datetime.fromisoformat(self.value)
        except ValueError:
            raise _bad_cursor() from None
        if value.tzinfo is None:
            raise _bad_cursor()
        return value

    def as_date(self) -> date:
        try:
            return date.fromisoformat(self.value)
        except ValueError:
            raise _bad_cursor() from None

    def key_uuid(self) -> uuid.UUID:
        try:
            return uuid.UUID(self.key)
        except ValueError:
            raise _bad_cursor() from None


def _bad_cursor() -> RuleViolation:
    return RuleViolation(
        "The cursor is not one this service issued",
        errors=[FieldError("cursor", "must be a next_cursor value from a previous page")],
    )


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.value, cursor.key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> Cursor | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, key = json.loads(raw)
        if not isinstance(value, str) or not isinstance(key, str):
            raise ValueError
        return Cursor(value=value, key=key)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor() from None


def keyset_page(
    session: Session,
    query: SelectOfScalar[T],
    *,
    sort: Any,
    key: Any,
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page of `query` ordered by (sort, key), after the row the cursor names."""
    sort, key = col(sort), col(key)
    after = decode_cursor(cursor)
    if after is not None:
        value = after.as_date() if isinstance(sort.type, Date) else after.as_instant()
        last = after.key_uuid()
        if descending:
            query = query.where(or_(sort < value, and_(sort == value, key < last)))
        else:
            query = query.where(or_(sort > value, and_(sort == value, key > last)))
    order = (sort.desc(), key.desc()) if descending else (sort, key)
    rows = list(session.exec(query.order_by(*order).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    if not more:
        return rows, None
    last_row = rows[-1]
    mark = getattr(last_row, sort.key)
    return rows, encode_cursor(Cursor(value=mark.isoformat(), key=str(getattr(last_row, key.key))))
