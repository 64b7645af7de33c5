"""Sign-in, refresh, sign-out, and the patient app's enrolment (public except logout)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm

from api import security
from api.db import DatabaseDep
from api.deps import ANY_ROLE, AuditDep, PrincipalDep, SettingsDep, client_address
from api.errors import problem_responses
from api.services import auth, enrolment
from models.identity import EnrolRequest, EnrolResponse, RefreshRequest, TokenPair

router = APIRouter(tags=["identity"])


@router.post("/auth/token", name="auth.token", responses=problem_responses(401, 422, 429))
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> TokenPair:
    """Sign in with email and password (OAuth2 password grant)."""
    candidate = await database.run(
        auth.start_login, settings=settings, email=form.username, ip=client_address(request)
    )
    # Argon2 takes tens of milliseconds: verify in a worker thread, outside the write turn.
    verified = await run_in_threadpool(
        security.verify_password, candidate.password_hash, form.password
    )
    return await database.run(
        auth.finish_login, settings=settings, candidate=candidate, verified=verified, audit=audit
    )


@router.post("/auth/refresh", name="auth.refresh", responses=problem_responses(401, 422))
async def refresh_token(
    body: RefreshRequest, database: DatabaseDep, settings: SettingsDep, audit: AuditDep
) -> TokenPair:
    """Trade a refresh token for a new pair; a reused refresh token revokes its sign-in."""
    return await database.run(
        auth.refresh, settings=settings, refresh_token=body.refresh_token, audit=audit
    )


@router.post(
    "/auth/logout",
    name="auth.logout",
    status_code=204,
    dependencies=[ANY_ROLE],
    responses=problem_responses(401),
)
async def logout(database: DatabaseDep, principal: PrincipalDep, audit: AuditDep) -> None:
    """Sign out: every token of this sign-in stops working."""
    await database.run(auth.logout, principal=principal, audit=audit)


@router.post(
    "/app/enrol", name="auth.enrol", status_code=201, responses=problem_responses(400, 422, 429)
)
async def enrol(
    body: EnrolRequest,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> EnrolResponse:
    """Trade a clinician-issued enrolment code for the patient app's tokens."""
    return await database.run(
        enrolment.enrol,
        settings=settings,
        code=body.code,
        device_name=body.device_name,
        ip=client_address(request),
        audit=audit,
    )
