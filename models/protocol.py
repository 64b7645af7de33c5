"""Treatment protocols: the milestone rules a procedure is measured against, kept as data."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Column, Field, SQLModel

from models.base import utc_column, utc_now

DEFAULT_PROTOCOL_ID = "default"


class Protocol(SQLModel, table=True):
    __tablename__ = "protocol"
    id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    name: str = Field(max_length=200)
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_column(default_factory=utc_now)
