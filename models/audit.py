"""The append-only audit trail: who touched which patient or account record, and the outcome.

Rows hold identifiers only, never clinical values, notes or tokens.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import enum_column, ordered_id, utc_column, utc_now


class Outcome(StrEnum):
    allowed = "allowed"  # the action was carried out
    denied = "denied"  # 401, 403 or 404 (not visible to the caller)
    failed = "failed"  # refused for another reason: validation, conflict, precondition


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at_id", "at", "id"),)
    id: uuid.UUID = Field(default_factory=ordered_id, primary_key=True)
    at: datetime = utc_column(default_factory=utc_now)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=16)
    clinic_id: uuid.UUID | None = None
    action: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    patient_id: uuid.UUID | None = Field(default=None, index=True)
    outcome: Outcome = enum_column(Outcome, 16)
    status_code: int
    request_id: str = Field(max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    # A short code for an exceptional allowance, e.g. "contraindication_override"; never free text.
    reason: str | None = Field(default=None, max_length=64)


class AuditEventPublic(SQLModel):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: uuid.UUID | None
    outcome: Outcome
    status_code: int
    request_id: str
    ip: str | None
    reason: str | None = None
