"""Opaque keyset cursors: the last row's sort value and id, so pages stay stable under ties."""

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Date, and_, or_
from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from api.errors import FieldError, RuleViolation
from models.base import EARLIEST_DAY, LATEST_DAY, plausible_day

T = TypeVar("T")


# Every instant the API stores is a day of 1900-2999 at some UTC offset (less than a day), so a
# cursor outside these days names no row; far from datetime.min/max, converting cannot overflow.
_EARLIEST_UTC_DAY = EARLIEST_DAY - timedelta(days=1)
_LATEST_UTC_DAY = LATEST_DAY + timedelta(days=1)


@dataclass(frozen=True)
class Cursor:
    """Parsed only as far as this service writes cursors: anything else is a 422 on `cursor`,
    never a value that fails later, when the query converts or binds it."""

    value: str  # the sort key of the last row seen, as text
    key: str  # its id: the tie-breaker

    @classmethod
    def at_instant(cls, value: datetime, key: str) -> "Cursor":
        return cls(value=value.isoformat(), key=key)

    def as_instant(self) -> datetime:
        """The instant in UTC, as the query binds it."""
        try:
            value = datetime.fromisoformat(self.value)
            if value.tzinfo is None:  # astimezone() would take it as the server's local time
                raise ValueError
            value = value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise _bad_cursor() from None
        if not _EARLIEST_UTC_DAY <= value.date() <= _LATEST_UTC_DAY:
            raise _bad_cursor()
        return value

    def as_date(self) -> date:
        try:
            return plausible_day(date.fromisoformat(self.value))
        except ValueError:
            raise _bad_cursor() from None

    def key_uuid(self) -> uuid.UUID:
        try:
            key = uuid.UUID(self.key)
        except ValueError:
            raise _bad_cursor() from None
        if str(key) != self.key:  # braces, capitals, bare hex: not how an id is written
            raise _bad_cursor()
        return key

    def as_id(self, parse: Callable[[str], str]) -> str:
        """The last id of a list sorted by its id alone (value and key both hold it), in the
        form `parse` accepts for such an id."""
        if self.key != self.value:
            raise _bad_cursor()
        try:
            return parse(self.value)
        except ValueError:  # pydantic's ValidationError is one
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
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor() from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and all(map(_issued_text, decoded))):
        raise _bad_cursor()
    value, key = decoded
    return Cursor(value=value, key=key)


def _issued_text(part: object) -> bool:
    """What this service writes in a cursor (instants, days, UUIDs, slugs) is printable ASCII:
    a NUL, another control character or a lone surrogate would only fail later, in the query."""
    return isinstance(part, str) and part.isascii() and part.isprintable()


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
