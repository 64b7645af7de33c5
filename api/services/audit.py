"""The audit trail: one row per request that touches patient or account data.

A use-case records its row in its own transaction (so a change is never without its record);
requests refused before any use-case ran are recorded by the error handler.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert
from sqlmodel import Session, select

from api.services.access import Principal
from api.services.pagination import keyset_page
from api.services.records import connection_of
from models.audit import AuditEvent, AuditEventPublic, Outcome
from models.base import ordered_id, utc_now
from models.page import Page

# Built once; every request executes it with its own values.
_INSERT = insert(AuditEvent)


@dataclass
class Audit:
    """The audit context of one request; the route's name is its action."""

    action: str
    request_id: str
    ip: str | None
    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    clinic_id: uuid.UUID | None = None
    resource_id: str | None = None
    patient_id: uuid.UUID | None = None
    reason: str | None = None
    recorded: bool = False

    @property
    def resource_type(self) -> str:
        return self.action.split(".", 1)[0]

    def identify(self, principal: Principal) -> None:
        self.actor_id = principal.user_id
        self.actor_role = principal.role.value
        self.clinic_id = principal.clinic_id

    def target(self, *, resource_id: Any = None, patient_id: uuid.UUID | None = None) -> None:
        """Name the object the request is about, so even a refusal records what was asked for."""
        if resource_id is not None:
            self.resource_id = str(resource_id)
        if patient_id is not None:
            self.patient_id = patient_id

    def record(
        self,
        db: Session | Connection,
        *,
        outcome: Outcome = Outcome.allowed,
        status_code: int = 200,
        resource_id: Any = None,
        patient_id: uuid.UUID | None = None,
    ) -> None:
        """Add this request's row to the transaction; the caller's commit writes it."""
        self.target(resource_id=resource_id, patient_id=patient_id)
        # A Core INSERT: every request writes one, and the ORM unit of work adds nothing here.
        connection = connection_of(db)
        connection.execute(
            _INSERT,
            {
                "id": ordered_id(),
                "at": utc_now(),
                "actor_id": self.actor_id,
                "actor_role": self.actor_role,
                "clinic_id": self.clinic_id,
                "action": self.action,
                "resource_type": self.resource_type,
                "resource_id": self.resource_id,
                "patient_id": self.patient_id,
                "outcome": outcome,
                "status_code": status_code,
                "request_id": self.request_id,
                "ip": self.ip,
                "reason": self.reason,
            },
        )
        self.recorded = True


def outcome_for_status(status_code: int) -> Outcome:
    if status_code < 400:
        return Outcome.allowed
    if status_code in (401, 403, 404):
        return Outcome.denied
    return Outcome.failed


def record_refusal(session: Session, *, audit: Audit, status_code: int) -> None:
    """Record a request that ended in an error before its use-case recorded anything."""
    audit.record(session, outcome=outcome_for_status(status_code), status_code=status_code)
    session.commit()


def record_read(
    session: Session, *, audit: Audit, resource_id: Any = None, patient_id: uuid.UUID | None = None
) -> None:
    audit.record(session, resource_id=resource_id, patient_id=patient_id)
    session.commit()


def list_events(
    session: Session,
    *,
    limit: int,
    cursor: str | None,
    patient_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    action: str | None,
) -> Page[AuditEventPublic]:
    query = select(AuditEvent)
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    rows, next_cursor = keyset_page(
        session,
        query,
        sort=AuditEvent.at,
        key=AuditEvent.id,
        cursor=cursor,
        limit=limit,
        descending=True,
    )
    return Page[AuditEventPublic](
        items=[AuditEventPublic.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=next_cursor,
    )
