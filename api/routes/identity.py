"""Clinics and user accounts."""

from fastapi import APIRouter

from api.db import SessionDep
from api.deps import ADMIN, ANY_ROLE, STAFF, AuditDep, PrincipalDep
from api.errors import problem_responses
from api.services import identity
from models.identity import ClinicCreate, ClinicPublic, UserCreate, UserPublic

router = APIRouter(tags=["identity"])


@router.post(
    "/clinics",
    name="clinic.create",
    status_code=201,
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 422),
)
def create_clinic(body: ClinicCreate, session: SessionDep, audit: AuditDep) -> ClinicPublic:
    """Create a clinic."""
    return identity.create_clinic(session, data=body, audit=audit)


@router.get(
    "/clinics", name="clinic.list", dependencies=[STAFF], responses=problem_responses(401, 403)
)
def list_clinics(
    session: SessionDep, principal: PrincipalDep, audit: AuditDep
) -> list[ClinicPublic]:
    """List clinics: all of them for an admin, one's own for staff."""
    return identity.list_clinics(session, principal=principal, audit=audit)


@router.post(
    "/users",
    name="user.create",
    status_code=201,
    dependencies=[ADMIN],
    responses=problem_responses(401, 403, 409, 422),
)
def create_user(body: UserCreate, session: SessionDep, audit: AuditDep) -> UserPublic:
    """Create a staff account (admin, clinician or researcher)."""
    return identity.create_user(session, data=body, audit=audit)


@router.get("/users/me", name="user.me", dependencies=[ANY_ROLE], responses=problem_responses(401))
def read_me(session: SessionDep, principal: PrincipalDep, audit: AuditDep) -> UserPublic:
    """The signed-in account."""
    return identity.read_me(session, principal=principal, audit=audit)
