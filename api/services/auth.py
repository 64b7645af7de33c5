"""Sign-in, token rotation, sign-out and bearer-token authentication."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from api import security
from api.config import Settings
from api.errors import Unauthorized
from api.services import throttle
from api.services.access import Principal
from api.services.audit import Audit
from api.services.records import PATIENT, PatientRef
from models.audit import Outcome
from models.base import utc_now
from models.identity import AuthSession, AuthToken, Role, TokenKind, TokenPair, UserAccount


@dataclass(frozen=True)
class LoginCandidate:
    """What the first half of a sign-in found: the hash to verify, off the write turn."""

    user_id: uuid.UUID | None
    password_hash: str | None
    throttle_keys: list[tuple[str, str]]


def _window(settings: Settings) -> throttle.Window:
    return throttle.Window(settings.login_max_failures, settings.login_window_seconds)


def start_login(
    session: Session, *, settings: Settings, email: str, ip: str | None
) -> LoginCandidate:
    secret = settings.secret_key.get_secret_value()
    keys = [("account", security.keyed_hash(secret, email.strip().lower()))]
    if ip:
        keys.append(("address", security.keyed_hash(secret, ip)))
    throttle.check(session, keys=keys, window=_window(settings), now=utc_now())
    # No account's email holds a NUL, and PostgreSQL refuses one in a query (a 500).
    user = (
        None
        if "\x00" in email
        else session.exec(
            select(UserAccount).where(UserAccount.email == email.strip().lower())
        ).first()
    )
    session.rollback()
    if user is None:
        return LoginCandidate(None, None, keys)
    return LoginCandidate(user.id, user.password_hash, keys)


def finish_login(
    session: Session, *, settings: Settings, candidate: LoginCandidate, verified: bool, audit: Audit
) -> TokenPair:
    if not verified or candidate.user_id is None:
        throttle.add_failure(
            session, keys=candidate.throttle_keys, window=_window(settings), now=utc_now()
        )
        audit.record(
            session, outcome=Outcome.denied, status_code=401, resource_id=candidate.user_id
        )
        session.commit()
        raise Unauthorized("Incorrect email or password")
    user = session.get_one(UserAccount, candidate.user_id)
    pair = _open_session(session, settings=settings, user=user, device_name=None)
    audit.actor_id, audit.actor_role = user.id, user.role.value
    audit.clinic_id = user.clinic_id
    audit.record(session, resource_id=user.id, patient_id=user.patient_id)
    session.commit()
    return pair


def _open_session(
    session: Session, *, settings: Settings, user: UserAccount, device_name: str | None
) -> TokenPair:
    family = AuthSession(user_id=user.id, device_name=device_name)
    session.add(family)
    session.flush()
    return _mint_pair(session, settings=settings, family=family, role=user.role)


def _refresh_lifetime(settings: Settings, role: Role) -> timedelta:
    if role == Role.patient:
        return timedelta(days=settings.patient_refresh_days)
    return timedelta(hours=settings.staff_refresh_hours)


def _mint_pair(
    session: Session, *, settings: Settings, family: AuthSession, role: Role
) -> TokenPair:
    secret = settings.secret_key.get_secret_value()
    now = utc_now()
    access = security.new_token(security.ACCESS_PREFIX)
    refresh = security.new_token(security.REFRESH_PREFIX)
    access_ttl = timedelta(minutes=settings.access_token_minutes)
    session.add_all(
        [
            AuthToken(
                token_hash=security.keyed_hash(secret, access),
                kind=TokenKind.access,
                session_id=family.id,
                expires_at=now + access_ttl,
            ),
            AuthToken(
                token_hash=security.keyed_hash(secret, refresh),
                kind=TokenKind.refresh,
                session_id=family.id,
                expires_at=now + _refresh_lifetime(settings, role),
            ),
        ]
    )
    return TokenPair(
        access_token=access, expires_in=int(access_ttl.total_seconds()), refresh_token=refresh
    )


def _find_token(
    session: Session, *, settings: Settings, token: str, kind: TokenKind
) -> tuple[AuthToken, AuthSession, UserAccount] | None:
    token_hash = security.keyed_hash(settings.secret_key.get_secret_value(), token)
    row = session.exec(
        select(AuthToken, AuthSession, UserAccount)
        .join(AuthSession, col(AuthSession.id) == AuthToken.session_id)
        .join(UserAccount, col(UserAccount.id) == AuthSession.user_id)
        .where(AuthToken.token_hash == token_hash, AuthToken.kind == kind)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def _is_live(token: AuthToken, family: AuthSession, now: datetime) -> bool:
    return family.revoked_at is None and token.expires_at > now


# Built once: every request runs it.
_TOKEN_LOOKUP = (
    sa_select(
        col(UserAccount.id),
        col(UserAccount.role),
        col(UserAccount.clinic_id),
        col(UserAccount.patient_id),
        col(AuthSession.id),
        col(AuthSession.revoked_at),
        col(AuthToken.expires_at),
        PATIENT.c.clinic_id,
        PATIENT.c.timezone,
    )
    .join(AuthSession, col(AuthSession.id) == AuthToken.session_id)
    .join(UserAccount, col(UserAccount.id) == AuthSession.user_id)
    .outerjoin(PATIENT, PATIENT.c.id == UserAccount.patient_id)
    .where(
        col(AuthToken.token_hash) == bindparam("token_hash"),
        col(AuthToken.kind) == TokenKind.access,
    )
)


def authenticate(connection: Connection, *, settings: Settings, token: str) -> Principal:
    """The caller behind an access token; every request runs this, so it selects plain
    columns in one Core query rather than three ORM objects."""
    token_hash = security.keyed_hash(settings.secret_key.get_secret_value(), token)
    row = connection.execute(_TOKEN_LOOKUP, {"token_hash": token_hash}).first()
    if row is None or row[5] is not None or row[6] <= utc_now():
        raise Unauthorized()
    user_id, role, clinic_id, patient_id, session_id = row[:5]
    patient_clinic_id, patient_timezone = row[7:9]
    return Principal(
        user_id=user_id,
        role=role,
        clinic_id=clinic_id,
        patient_id=patient_id,
        session_id=session_id,
        patient=PatientRef(patient_id, patient_clinic_id, patient_timezone)
        if patient_id is not None and patient_clinic_id is not None
        else None,
    )


def refresh(session: Session, *, settings: Settings, refresh_token: str, audit: Audit) -> TokenPair:
    found = _find_token(session, settings=settings, token=refresh_token, kind=TokenKind.refresh)
    now = utc_now()
    if found is None or not _is_live(found[0], found[1], now):
        raise Unauthorized("Invalid, expired or revoked refresh token")
    token, family, user = found
    audit.actor_id, audit.actor_role, audit.clinic_id = user.id, user.role.value, user.clinic_id
    # Conditional update: of two concurrent uses of one refresh token, exactly one wins.
    claimed = session.execute(
        update(AuthToken)
        .where(col(AuthToken.id) == token.id, col(AuthToken.used_at).is_(None))
        .values(used_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if claimed != 1:
        _revoke(session, family_id=family.id, reason="refresh_reuse", now=now)
        audit.record(
            session,
            outcome=Outcome.denied,
            status_code=401,
            resource_id=user.id,
            patient_id=user.patient_id,
        )
        session.commit()
        raise Unauthorized("Refresh token was already used; this sign-in has been revoked")
    pair = _mint_pair(session, settings=settings, family=family, role=user.role)
    audit.record(session, resource_id=user.id, patient_id=user.patient_id)
    session.commit()
    return pair


def _revoke(session: Session, *, family_id: uuid.UUID, reason: str, now: datetime) -> None:
    session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == family_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


def logout(session: Session, *, principal: Principal, audit: Audit) -> None:
    _revoke(session, family_id=principal.session_id, reason="logout", now=utc_now())
    audit.record(session, resource_id=principal.user_id, patient_id=principal.patient_id)
    session.commit()
