"""Shared column types, constrained field types and the metadata naming convention."""

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field as ColumnField
from sqlmodel import SQLModel
from uuid_utils.compat import uuid7

# Set before any table is defined: constraint names are stable across SQLite and PostgreSQL
# and Alembic can drop them by name later.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def ordered_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): a millisecond timestamp, then random bits; ascending within a
    process. For the tables that grow with every request (check-ins, the audit trail): a random
    key lands on a random page of the primary-key index, so a 500-log batch rewrote a few hundred
    index pages; ordered keys append to the last one. Measured on the batch bench: a third less
    kernel time, a quarter more logs per second. The timestamp is when the row was made, which
    its own `received_at` / `at` column says anyway; research exports drop internal ids."""
    return uuid7()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite has no timestamp type: values are stored as naive UTC text (which also sorts
    correctly) and come back with tzinfo=UTC, as PostgreSQL's timestamptz does.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, `process_bind_param` and then SQLAlchemy's own text formatting, done in
        one step: a batch of check-ins binds a thousand of these, and the two-step chain took
        2.4 µs a value. The text is the same, byte for byte (`SQLITE_UTC_TEXT`; tested against
        the chain). Other databases keep the chain."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given for a UTC column")
                value = value.astimezone(UTC)
            # 'YYYY-MM-DD HH:MM:SS.ffffff', SQLAlchemy's SQLite DATETIME storage format.
            return value.isoformat(" ", "microseconds")[:26]

        return process


def utc_column(**kwargs: Any) -> Any:
    """A `Field(sa_type=...)` for a UTC timestamp column."""
    return ColumnField(sa_type=UTCDateTime, **kwargs)


class EnumText(TypeDecorator[StrEnum]):
    """A StrEnum stored as plain text: no native PostgreSQL enum type to migrate later."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def enum_column(enum: type[StrEnum], length: int = 32, **kwargs: Any) -> Any:
    return ColumnField(sa_type=EnumText(enum, length), **kwargs)


# Control characters (C0 except tab/newline/carriage return, DEL, C1) are refused in every
# string a client sends: NUL breaks PostgreSQL and the rest have no place in clinical text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_control_line(value: str) -> str:
    if _CONTROL_LINE.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


no_control_line = _no_control_line

# One-line text: names, codes, identifiers.
Line = Annotated[str, AfterValidator(_no_control_line)]
Name = Annotated[Line, Field(min_length=1, max_length=200)]
ShortText = Annotated[Line, Field(min_length=1, max_length=100)]
# Multi-line free text: notes and descriptions.
Note = Annotated[str, Field(max_length=2000), AfterValidator(_no_control)]


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_text(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


# Far enough from date.min/max that day arithmetic and time zone shifts cannot overflow (a 500
# for "0001-01-01"), and wider than any patient's life or treatment.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2999, 12, 31)


def plausible_day(value: date) -> date:
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValueError(f"must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return value


# A calendar date sent as `YYYY-MM-DD` (API.md); pydantic alone also takes Unix times ("0").
Day = Annotated[date, BeforeValidator(_iso_date_text), AfterValidator(plausible_day)]


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` with a null default, as X with no default."""
    options = [o for o in schema.get("anyOf", ()) if o != {"type": "null"}]
    if "anyOf" not in schema or len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    only: dict[str, Any] = options[0]
    return only | rest


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A PATCH body's schema as it validates: the `NOT_NULL` fields take no null."""
    names: frozenset[str] = getattr(model, "NOT_NULL", frozenset())
    properties = schema.get("properties", {})
    for name in names:
        if name in properties:
            properties[name] = _without_null(properties[name])


class Patch(BaseModel):
    """A PATCH body: a field left out keeps its value. A field in `NOT_NULL` cannot be cleared
    (every record has one), so null there is a 422 naming the field, and the OpenAPI schema
    offers no null for it: a client generated from it never sends one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)
    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError("cannot be null")
        return value
