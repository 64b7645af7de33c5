"""Patient app enrolment: a clinician issues a one-time code, the app trades it for tokens."""

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from api import security
from api.config import Settings
from api.errors import BadRequest
from api.services import throttle
from api.services.access import Principal
from api.services.audit import Audit
from api.services.auth import _open_session
from models.audit import Outcome
from models.base import utc_now
from models.identity import EnrolmentCode, EnrolmentCodePublic, EnrolResponse, Role, UserAccount
from models.patient import Patient


def issue_code(
    session: Session, *, settings: Settings, patient: Patient, by: Principal, audit: Audit
) -> EnrolmentCodePublic:
    code = security.new_enrolment_code()
    expires_at = utc_now() + timedelta(hours=settings.enrolment_code_hours)
    row = EnrolmentCode(
        code_hash=security.keyed_hash(
            settings.secret_key.get_secret_value(), security.normalise_enrolment_code(code)
        ),
        patient_id=patient.id,
        created_by_id=by.user_id,
        expires_at=expires_at,
    )
    session.add(row)
    audit.record(session, status_code=201, resource_id=row.id, patient_id=patient.id)
    session.commit()
    return EnrolmentCodePublic(code=code, expires_at=expires_at)


def enrol(
    session: Session,
    *,
    settings: Settings,
    code: str,
    device_name: str,
    ip: str | None,
    audit: Audit,
) -> EnrolResponse:
    secret = settings.secret_key.get_secret_value()
    window = throttle.Window(settings.login_max_failures, settings.login_window_seconds)
    keys = [("enrol", security.keyed_hash(secret, ip or "unknown"))]
    now = utc_now()
    throttle.check(session, keys=keys, window=window, now=now)
    code_hash = security.keyed_hash(secret, security.normalise_enrolment_code(code))
    row = session.exec(select(EnrolmentCode).where(EnrolmentCode.code_hash == code_hash)).first()
    # Single use even under concurrent redemption: only one conditional update succeeds.
    claimed = (
        row is not None
        and row.expires_at > now
        and session.execute(
            update(EnrolmentCode)
            .where(col(EnrolmentCode.id) == row.id, col(EnrolmentCode.used_at).is_(None))
            .values(used_at=now)
        ).rowcount  # type: ignore[attr-defined]
        == 1
    )
    if row is None or not claimed:
        throttle.add_failure(session, keys=keys, window=window, now=now)
        audit.record(
            session,
            outcome=Outcome.failed,
            status_code=400,
            patient_id=row.patient_id if row else None,
        )
        session.commit()
        raise BadRequest("This enrolment code is unknown, already used or expired")
    patient = session.get_one(Patient, row.patient_id)
    user = _patient_account(session, patient)
    pair = _open_session(session, settings=settings, user=user, device_name=device_name)
    audit.actor_id, audit.actor_role, audit.clinic_id = (
        user.id,
        Role.patient.value,
        patient.clinic_id,
    )
    audit.record(session, status_code=201, resource_id=user.id, patient_id=patient.id)
    session.commit()
    return EnrolResponse(**pair.model_dump(), patient_id=patient.id)


def _patient_account(session: Session, patient: Patient) -> UserAccount:
    user = session.exec(select(UserAccount).where(UserAccount.patient_id == patient.id)).first()
    if user is None:
        user = UserAccount(role=Role.patient, clinic_id=patient.clinic_id, patient_id=patient.id)
        session.add(user)
        session.flush()
    return user
