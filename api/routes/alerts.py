"""Clinic alerts raised by check-ins: list, acknowledge, resolve (clinicians and admins)."""

import uuid

from fastapi import APIRouter

from api.db import DatabaseDep
from api.deps import CLINICAL, AlertDep, AuditDep, FreshClinicProgress, PageDep, PrincipalDep
from api.errors import problem_responses
from api.services import alerts
from models.page import Page
from models.symptom_log import AlertKind, AlertNote, AlertPublic, AlertStatus

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get(
    "",
    name="alert.list",
    # The queue shows today's clock alerts too (a check-in missed since midnight).
    dependencies=[CLINICAL, FreshClinicProgress],
    responses=problem_responses(401, 403, 422),
)
async def list_alerts(
    database: DatabaseDep,
    principal: PrincipalDep,
    audit: AuditDep,
    page: PageDep,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
    patient_id: uuid.UUID | None = None,
) -> Page[AlertPublic]:
    """The clinic's alerts, newest first."""
    found = await database.query(
        alerts.list_alerts,
        principal=principal,
        limit=page.limit,
        cursor=page.cursor,
        status=status,
        kind=kind,
        patient_id=patient_id,
    )
    await database.audited(audit, patient_id=patient_id)
    return found


@router.post(
    "/{alert_id}/acknowledge",
    name="alert.acknowledge",
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def acknowledge(
    alert: AlertDep,
    principal: PrincipalDep,
    database: DatabaseDep,
    audit: AuditDep,
    body: AlertNote | None = None,
) -> AlertPublic:
    """Acknowledge an alert: someone is on it (the body, with a note, is optional)."""
    note = body.note if body else None
    return await database.run(alerts.acknowledge, alert=alert, by=principal, note=note, audit=audit)


@router.post(
    "/{alert_id}/resolve",
    name="alert.resolve",
    dependencies=[CLINICAL],
    responses=problem_responses(401, 403, 404, 422),
)
async def resolve(
    alert: AlertDep,
    principal: PrincipalDep,
    database: DatabaseDep,
    audit: AuditDep,
    body: AlertNote | None = None,
) -> AlertPublic:
    """Resolve an alert, with an optional note (the body is optional)."""
    note = body.note if body else None
    return await database.run(alerts.resolve, alert=alert, by=principal, note=note, audit=audit)
