"""Clinics and user accounts."""

import uuid

from fastapi import APIRouter

from api.db import DatabaseDep
from api.deps import ADMIN, ANY_ROLE, STAFF, AuditDep, PrincipalDep
from api.errors import problem_responses
from api.services import identity
from models.identity import ClinicCreate, ClinicPublic, ClinicUpdate, UserCreate, UserPublic

router = APIRouter(tags=["identity"])


@router.post(
    "/clinics",
    name="clinic.create",
    status_code=201,
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 422),
)
async def create_clinic(body: ClinicCreate, database: DatabaseDep, audit: AuditDep) -> ClinicPublic:
    """Create a clinic."""
    return await database.run(identity.create_clinic, data=body, audit=audit)


@router.get(
    "/clinics", name="clinic.list", dependencies=[STAFF], responses=problem_responses(401, 403)
)
async def list_clinics(
    database: DatabaseDep, principal: PrincipalDep, audit: AuditDep
) -> list[ClinicPublic]:
    """List clinics: all of them for an admin, one's own for staff."""
    return await database.run(identity.list_clinics, principal=principal, audit=audit)


@router.patch(
    "/clinics/{clinic_id}",
    name="clinic.update",
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 404, 422),
)
async def update_clinic(
    clinic_id: uuid.UUID, body: ClinicUpdate, database: DatabaseDep, audit: AuditDep
) -> ClinicPublic:
    """Set the clinic's default protocol, which new procedures pin when they name none."""
    return await database.run(identity.update_clinic, clinic_id=clinic_id, data=body, audit=audit)


@router.post(
    "/users",
    name="user.create",
    status_code=201,
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_user(body: UserCreate, database: DatabaseDep, audit: AuditDep) -> UserPublic:
    """Create a staff account (admin, clinician or researcher)."""
    return await database.run(identity.create_user, data=body, audit=audit)


@router.get("/users/me", name="user.me", dependencies=[ANY_ROLE], responses=problem_responses(401))
async def read_me(database: DatabaseDep, principal: PrincipalDep, audit: AuditDep) -> UserPublic:
    """The signed-in account."""
    return await database.run(identity.read_me, principal=principal, audit=audit)
