"""A realistic demo clinic: staff, patients with procedures, and months of check-ins.

Everything goes through the same use-cases as the API (validation, alerts, audit), so the demo
shows what real use produces. Deterministic: the same seed gives the same clinic.
"""

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from api.clinical.clock import today_in
from api.config import Settings
from api.services import enrolment, identity, patients, procedures, symptom_logs
from api.services.access import Principal
from api.services.audit import Audit
from api.services.records import PatientRef
from models.identity import ClinicCreate, Role, UserCreate
from models.patient import Patient, PatientCreate
from models.procedure import ProcedureCreate
from models.symptom_log import LogSource, SymptomLogIn

TIMEZONE = "America/Chicago"
PASSWORD = "demo-password-change-me"
TREATMENTS = [
    ("stem_cell", "bone_marrow", "bone_marrow_aspiration"),
    ("stem_cell", "adipose", "lipoaspiration"),
    ("stem_cell", "umbilical_cord", "none"),
    ("prp", None, "blood_draw"),
    ("prolotherapy", None, "none"),
    ("red_light", None, "none"),
]
GIVEN = {
    "female": ["Maria", "Linda", "Patricia", "Barbara", "Susan"],
    "male": ["James", "Robert", "Michael", "William", "David"],
}
FAMILY = [
    "Garcia",
    "Smith",
    "Nguyen",
    "Johnson",
    "Brown",
    "Miller",
    "Davis",
    "Lopez",
    "Wilson",
    "Clark",
]
SCHEDULE = list(range(0, 15)) + list(range(21, 92, 7)) + list(range(120, 361, 30))


@dataclass
class DemoResult:
    clinic_id: uuid.UUID
    users: dict[str, str]
    patients: int
    logs: int
    enrolment_code: str


def _audit(action: str) -> Audit:
    return Audit(action=action, request_id="demo", ip=None)


def _patient_body(rng: random.Random, n: int) -> PatientCreate:
    sex = rng.choice(["female", "male"])
    return PatientCreate.model_validate(
        {
            "mrn": f"DEMO-{n:04d}",
            "given_name": rng.choice(GIVEN[sex]),
            "family_name": rng.choice(FAMILY),
            "birth_date": date(
                rng.randint(1940, 1985), rng.randint(1, 12), rng.randint(1, 28)
            ).isoformat(),
            "sex": sex,
            "postal_code": f"{rng.randint(60000, 62999)}",
            "timezone": TIMEZONE,
            "stenosis": {"region": "lumbar", "cause": "degenerative"},
            "comorbidities": rng.sample(
                ["diabetes", "obesity", "osteoporosis", "heart_disease"], rng.choice([0, 0, 1, 2])
            ),
            "smoker": rng.random() < 0.2,
            "research_consent": rng.random() < 0.8,
            "screening": {
                "conservative_care_tried": ["physical_therapy", "pain_medication"],
                "conservative_care_failed": True,
                "evaluation": {
                    "medical_history_reviewed": True,
                    "physical_exam_done": True,
                    "imaging": ["mri"],
                    "labs_done": True,
                },
            },
        }
    )


def _procedure_body(
    rng: random.Random, performed_on: date, protocol_baseline: float
) -> ProcedureCreate:
    treatment, source, harvest = rng.choice(TREATMENTS)
    injections = (
        []
        if treatment == "red_light"
        else [
            {
                "route": rng.choice(["epidural", "facet", "intradiscal"]),
                "levels": [rng.choice(["L3-L4", "L4-L5", "L5-S1"])],
                "guidance": "fluoroscopy",
                "volume_ml": 3.0,
            }
        ]
    )
    return ProcedureCreate.model_validate(
        {
            "performed_on": performed_on.isoformat(),
            "treatment": treatment,
            "cell_source": source,
            "harvest": {"method": harvest},
            "injections": injections,
            # Half the clinic records a baseline at the visit; for the others it comes from the
            # check-ins of the 60 days before the procedure (CLINICAL.md §Baseline).
            "baseline": {"pain": protocol_baseline, "mobility": round(10 - protocol_baseline, 0)}
            if rng.random() < 0.5
            else None,
        }
    )


def _logs(
    rng: random.Random, performed_on: date, today: date, baseline: float
) -> list[SymptomLogIn]:
    responder = rng.random() < 0.7
    gain = rng.uniform(2.5, 4.5) if responder else rng.uniform(0, 1.5)
    # About one patient in ten has a spell of worse pain after the first fortnight (a worsening
    # alert; behind while a window is open), and about one in six stops checking in at some point.
    flare_from = rng.choice([28, 42, 63, 150]) if rng.random() < 0.1 else None
    stops_after = rng.choice([10, 35, 70, 120]) if rng.random() < 0.15 else None
    zone, logs = ZoneInfo(TIMEZONE), []
    for day in [-14, -7, -2, *SCHEDULE]:
        on = performed_on + timedelta(days=day)
        if on >= today or rng.random() < 0.15:  # in the past only, and patients miss some check-ins
            continue
        if stops_after is not None and day > stops_after:
            break
        trend = 0.0 if day < 0 else gain * min(1.0, day / 60)
        if flare_from is not None and flare_from <= day <= flare_from + 21:
            trend = -2.5  # pain about 2-3 points above the baseline
        pain = round(
            min(10, max(0, baseline - trend + rng.gauss(0, 0.8) + (1 if 0 <= day <= 3 else 0)))
        )
        at = datetime.combine(on, time(rng.randint(7, 20), rng.randint(0, 59)), zone)
        logs.append(
            SymptomLogIn(
                client_id=uuid.uuid4(),
                recorded_at=at,
                pain=pain,
                mobility=max(0, min(10, 10 - pain + rng.randint(-1, 1))),
                walking_minutes=max(0, int(60 - pain * 5 + rng.randint(-5, 5))),
                side_effects=["injection_site_pain"] if 0 <= day <= 4 else [],
                red_flags=["fever"] if day == 2 and rng.random() < 0.1 else [],
            )
        )
    return logs


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def load(
    session_factory: Callable[[], Session],
    settings: Settings,
    *,
    patients_count: int = 40,
    seed: int = 7,
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda items: items,
) -> DemoResult:
    rng = random.Random(seed)
    with session_factory() as session:
        clinic = identity.create_clinic(
            session,
            data=ClinicCreate(name="Demo Spine Clinic", timezone=TIMEZONE),
            audit=_audit("demo.clinic"),
        )
    users, ids = {}, {}
    for role in (Role.admin, Role.clinician, Role.researcher):
        email = f"demo-{role.value}@example.org"
        with session_factory() as session:
            user = identity.create_user(
                session,
                data=UserCreate(
                    email=email,
                    password=PASSWORD,
                    role=role,
                    clinic_id=None if role == Role.admin else clinic.id,
                ),
                audit=_audit("demo.user"),
            )
        users[role.value], ids[role] = email, user.id
    admin = Principal(
        user_id=ids[Role.admin],
        role=Role.admin,
        clinic_id=None,
        patient_id=None,
        session_id=uuid.uuid4(),
    )
    today, total, first_patient = today_in(TIMEZONE), 0, None
    for n in progress(range(1, patients_count + 1)):
        with session_factory() as session:
            body = _patient_body(rng, n).model_copy(update={"clinic_id": clinic.id})
            patient = patients.create(session, data=body, by=admin, audit=_audit("demo.patient"))
        baseline = float(rng.randint(5, 8))
        performed_on = today - timedelta(days=rng.randint(3, 420))
        ref = PatientRef(patient.id, clinic.id, TIMEZONE)
        with session_factory() as session, _engine_of(session).connect() as connection:
            procedures.record(
                connection,
                patient=ref,
                data=_procedure_body(rng, performed_on, baseline),
                by=admin,
                audit=_audit("demo.procedure"),
            )
        logs = _logs(rng, performed_on, today, baseline)
        with session_factory() as session, _engine_of(session).connect() as connection:
            drafts = symptom_logs.draft_logs(
                logs, patient=ref, source=LogSource.app, by=admin.user_id, batch=True
            )
            symptom_logs.ingest(
                connection,
                patient=ref,
                drafts=drafts,
                audit=_audit("demo.symptom_logs"),
                batch=True,
            )
        total += len(logs)
        first_patient = first_patient or patient.id
    assert first_patient is not None
    with session_factory() as session:
        row = session.get_one(Patient, first_patient)
        code = enrolment.issue_code(
            session, settings=settings, patient=row, by=admin, audit=_audit("demo.enrol")
        )
    return DemoResult(clinic.id, users, patients_count, total, code.code)
