"""Plain factory functions for test data, and a small world of clinics, staff and patients."""

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session

from api import security
from api.config import Settings
from api.services import progress_store
from api.services.auth import _open_session
from models.identity import Clinic, Role, UserAccount
from models.patient import Patient

PASSWORD = "correct horse battery staple"
# Hashing once keeps factories fast; login tests still verify against a real Argon2id hash.
PASSWORD_HASH = security.hash_password(PASSWORD)


def make_clinic(db: Session, **overrides: Any) -> Clinic:
    clinic = Clinic(
        **({"name": f"Clinic {uuid.uuid4().hex[:6]}", "timezone": "Europe/Berlin"} | overrides)
    )
    db.add(clinic)
    db.commit()
    return clinic


def make_user(
    db: Session, *, role: Role, clinic: Clinic | None = None, **overrides: Any
) -> UserAccount:
    values = {
        "email": f"{role.value}-{uuid.uuid4().hex[:8]}@example.org",
        "password_hash": PASSWORD_HASH,
        "role": role,
        "clinic_id": clinic.id if clinic else None,
    } | overrides
    user = UserAccount(**values)
    db.add(user)
    db.commit()
    return user


def make_patient(db: Session, *, clinic: Clinic, **overrides: Any) -> Patient:
    values: dict[str, Any] = {
        "clinic_id": clinic.id,
        "mrn": f"MRN-{uuid.uuid4().hex[:8]}",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birth_date": date(1958, 4, 12),
        "sex": "female",
        "postal_code": "10115",
        "timezone": "Europe/Berlin",
        "stenosis_region": "lumbar",
        "stenosis_cause": "degenerative",
        "comorbidities": [],
        "smoker": False,
        "research_consent": True,
        "screening": {},
    } | overrides
    patient = Patient(**values)
    db.add(patient)
    db.flush()
    # As the service does: every patient has its stored progress row from the start.
    progress_store.refresh(db.connection(), patient_id=patient.id)
    db.commit()
    return patient


def token_for(db: Session, settings: Settings, user: UserAccount) -> str:
    pair = _open_session(db, settings=settings, user=user, device_name=None)
    db.commit()
    return pair.access_token


def patient_token(db: Session, settings: Settings, patient: Patient) -> str:
    user = make_user(
        db, role=Role.patient, clinic=None, email=None, password_hash=None, patient_id=patient.id
    )
    user.clinic_id = patient.clinic_id
    db.add(user)
    db.commit()
    return token_for(db, settings, user)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    clinic_a: Clinic
    clinic_b: Clinic
    admin: UserAccount
    clinician_a: UserAccount
    clinician_b: UserAccount
    researcher_a: UserAccount
    patient_a: Patient
    patient_b: Patient
    tokens: dict[str, str]

    def headers(self, actor: str | None) -> dict[str, str]:
        return auth(self.tokens[actor]) if actor else {}


def build_world(db: Session, settings: Settings) -> World:
    clinic_a, clinic_b = make_clinic(db, name="Clinic A"), make_clinic(db, name="Clinic B")
    admin = make_user(db, role=Role.admin)
    clinician_a = make_user(db, role=Role.clinician, clinic=clinic_a)
    clinician_b = make_user(db, role=Role.clinician, clinic=clinic_b)
    researcher_a = make_user(db, role=Role.researcher, clinic=clinic_a)
    patient_a = make_patient(db, clinic=clinic_a)
    patient_b = make_patient(db, clinic=clinic_b)
    tokens = {
        "admin": token_for(db, settings, admin),
        "clinician_a": token_for(db, settings, clinician_a),
        "clinician_b": token_for(db, settings, clinician_b),
        "researcher_a": token_for(db, settings, researcher_a),
        "patient_a": patient_token(db, settings, patient_a),
        "patient_b": patient_token(db, settings, patient_b),
    }
    return World(
        clinic_a,
        clinic_b,
        admin,
        clinician_a,
        clinician_b,
        researcher_a,
        patient_a,
        patient_b,
        tokens,
    )
