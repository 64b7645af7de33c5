"""The audit trail, for admins."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.db import DatabaseDep
from api.deps import ADMIN, AuditDep, PageDep
from api.errors import problem_responses
from api.services import audit as audit_service
from models.audit import AuditEventPublic
from models.page import Page

router = APIRouter(tags=["audit"])


@router.get(
    "/audit-events",
    name="audit_event.list",
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 422),
)
async def list_audit_events(
    database: DatabaseDep,
    audit: AuditDep,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None,
) -> Page[AuditEventPublic]:
    """Audit events, newest first, filtered by patient, actor or action."""
    found = await database.query(
        audit_service.list_events,
        limit=page.limit,
        cursor=page.cursor,
        patient_id=patient_id,
        actor_id=actor_id,
        action=action,
    )
    await database.audited(audit, patient_id=patient_id)
    return found
