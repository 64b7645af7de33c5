"""The demo loader goes through the real use-cases and leaves a consistent clinic behind."""

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.config import Settings
from api.demo import load
from models.identity import Role, UserAccount
from models.patient import Patient
from models.procedure import Procedure
from models.symptom_log import SymptomLog


def test_demo_loads_staff_patients_procedures_and_check_ins(
    db: Session, engine: Engine, settings: Settings
) -> None:
    seen: list[int] = []

    def progress(items: range) -> range:
        seen.extend(items)
        return items

    result = load(
        lambda: Session(engine, expire_on_commit=False),
        settings,
        patients_count=5,
        progress=progress,
    )

    assert seen == [1, 2, 3, 4, 5]
    assert db.exec(select(func.count()).select_from(Patient)).one() == 5
    assert db.exec(select(func.count()).select_from(Procedure)).one() == 5
    assert db.exec(select(func.count()).select_from(SymptomLog)).one() == result.logs > 0
    roles = set(db.exec(select(UserAccount.role).where(UserAccount.email.is_not(None))).all())  # type: ignore[union-attr]
    assert roles == {Role.admin, Role.clinician, Role.researcher}
    assert len(result.enrolment_code.replace("-", "")) == 12


def test_demo_is_deterministic_for_a_seed(db: Session, engine: Engine, settings: Settings) -> None:
    load(lambda: Session(engine, expire_on_commit=False), settings, patients_count=2, seed=3)
    mrns = sorted(db.exec(select(Patient.mrn)).all())
    assert mrns == ["DEMO-0001", "DEMO-0002"]
