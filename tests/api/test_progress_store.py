"""The stored progress equals the engine's report (issue 9): the patient list's progress_status
and today's progress read come from the store, and each must be what the milestone engine says
when it computes everything from the records."""

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.clinical.clock import today_in
from api.config import Settings
from api.services import progress, progress_store
from models.evaluation import PatientProgress, ProcedureEvaluation
from tests.api.test_progress import (
    EXPECTED,
    _clinic_in_every_state,
    _list,
    add_log,
    add_procedure,
    fresh_patient,
    read_progress,
)
from tests.factories import World


def engine_report(engine: Engine, patient_id: uuid.UUID) -> dict[str, Any]:
    """Today's report of the patient's latest procedure, computed by the engine from scratch."""
    with engine.connect() as connection:
        patient = progress_store.patient_row(connection, patient_id)
        assert patient is not None
        results = progress_store.evaluate_patient(
            connection, patient, as_of=today_in(patient.timezone)
        )
        alerts = progress.open_alerts(connection, patient_id)
    report = progress.from_evaluation(patient_id, results[-1], alerts)
    return report.model_dump(mode="json")


def test_every_listed_status_equals_the_engine(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    listed = {item["id"]: item["progress_status"] for item in _list(client, world)}
    for name, patient_id in made.items():
        if name == "no_procedure":
            assert listed[str(patient_id)] == "pending"
            continue
        expected = engine_report(engine, patient_id)
        current = next(
            m for m in expected["milestones"] if m["key"] == expected["current_milestone"]
        )
        assert listed[str(patient_id)] == current["status"] == EXPECTED[name], name


def test_todays_progress_read_from_the_store_equals_the_engine(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    for name, patient_id in made.items():
        if name == "no_procedure":
            continue
        served = read_progress(client, world, patient_id)
        assert served == engine_report(engine, patient_id), name


def test_a_stored_row_overtaken_by_the_clock_is_never_served(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """A row stored as of 40 days ago (a window has since opened and closed) is re-evaluated
    before a read answers: the list and the progress read say what the engine says today."""
    patient, headers = fresh_patient(db, settings, world)
    today = today_in("Europe/Berlin")
    add_procedure(client, world, patient.id, today - timedelta(days=100), baseline={"pain": 6})
    add_log(client, headers, today - timedelta(days=60), 6)
    add_log(client, headers, today - timedelta(days=50), 6)
    with engine.begin() as connection:
        progress_store.refresh(connection, patient_id=patient.id, today=today - timedelta(days=40))
    stale = db.exec(select(PatientProgress).where(PatientProgress.patient_id == patient.id)).one()
    db.commit()
    assert (stale.current_milestone, stale.progress_status) == ("short_term", "behind")

    listed = {i["id"]: i["progress_status"] for i in _list(client, world)}
    assert listed[str(patient.id)] == "not_met"
    assert read_progress(client, world, patient.id) == engine_report(engine, patient.id)


def test_changing_the_birth_date_rewrites_the_stored_age_factor(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, _ = fresh_patient(db, settings, world, birth_date=date(1970, 1, 1))
    procedure = add_procedure(client, world, patient.id, today_in("Europe/Berlin"))
    etag = client.get(f"/v1/patients/{patient.id}", headers=world.headers("clinician_a"))
    response = client.patch(
        f"/v1/patients/{patient.id}",
        json={"birth_date": "1940-01-01"},
        headers=world.headers("clinician_a") | {"If-Match": etag.headers["ETag"]},
    )
    assert response.status_code == 200, response.text
    stored = db.get_one(ProcedureEvaluation, uuid.UUID(procedure["id"]))
    db.commit()
    assert stored.age_at_procedure == today_in("Europe/Berlin").year - 1940  # born on 1 January
    assert "age" in {f["factor"] for f in stored.factors}
    assert read_progress(client, world, patient.id) == engine_report(engine, patient.id)


def test_the_app_schedule_and_the_progress_agree_on_the_next_check_in_after_a_log_from_ahead(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    """A log sent from a zone ahead of the patient's carries a date after the patient's today:
    the app's schedule and the progress report both count it from that date on."""
    patient, headers = fresh_patient(db, settings, world, timezone="Pacific/Pago_Pago")
    today = today_in("Pacific/Pago_Pago")
    add_procedure(client, world, patient.id, today - timedelta(days=10))
    add_log(client, headers, today, 4)
    ahead = datetime.now(ZoneInfo("Pacific/Kiritimati")) + timedelta(minutes=4)
    response = client.post(
        "/v1/me/symptom-logs",
        headers=headers,
        json={
            "client_id": str(uuid.uuid4()),
            "recorded_at": ahead.isoformat(),
            "timezone": "Pacific/Kiritimati",
            "pain": 4,
        },
    )
    assert response.status_code == 201, response.text
    assert date.fromisoformat(response.json()["local_date"]) > today

    schedule = client.get("/v1/me/check-ins", headers=headers).json()
    progress = client.get("/v1/me/progress", headers=headers).json()
    assert schedule["next_due_on"] == progress["next_check_in"]["due_on"]
    # The first log falls on day 9 in Pago Pago (09:00 at +01:00); the one from ahead, day 11, is
    # not counted yet.
    assert schedule["next_day"] == progress["next_check_in"]["day"] == 10


def _stored_statuses(engine: Engine, patient_id: uuid.UUID) -> dict[tuple[str, str], str]:
    with engine.connect() as connection:
        rows = connection.execute(
            progress_store.MILESTONE_EVALUATION.select().where(
                progress_store.MILESTONE_EVALUATION.c.patient_id == patient_id
            )
        ).all()
    return {(str(r.procedure_id), r.key): r.status for r in rows}


def _engine_statuses(engine: Engine, patient_id: uuid.UUID) -> dict[tuple[str, str], str]:
    with engine.connect() as connection:
        patient = progress_store.patient_row(connection, patient_id)
        assert patient is not None
        results = progress_store.evaluate_patient(
            connection, patient, as_of=today_in(patient.timezone)
        )
    return {(str(e.procedure.id), m.key): m.status for e in results for m in e.milestones}


def test_a_write_re_evaluates_the_earlier_procedures_it_touches(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """A write narrows the evaluation to the procedures it can change: a log on an earlier
    procedure's clock, and a procedure recorded between two others (it cuts the first one's
    clock short), re-evaluate those earlier procedures too."""
    patient, headers = fresh_patient(db, settings, world)
    today = today_in("Europe/Berlin")
    first = add_procedure(
        client, world, patient.id, today - timedelta(days=200), baseline={"pain": 7}
    )
    add_procedure(client, world, patient.id, today - timedelta(days=20), baseline={"pain": 7})
    for days_ago in (150, 140):  # the first procedure's short-term window: improved
        add_log(client, headers, today - timedelta(days=days_ago), 3)
    assert _stored_statuses(engine, patient.id)[(first["id"], "short_term")] == "met"
    assert _stored_statuses(engine, patient.id) == _engine_statuses(engine, patient.id)

    # A procedure 160 days ago takes those logs onto its own clock: the first one's short-term
    # window is left with none.
    add_procedure(client, world, patient.id, today - timedelta(days=160), baseline={"pain": 7})
    assert _stored_statuses(engine, patient.id)[(first["id"], "short_term")] == "insufficient_data"
    assert _stored_statuses(engine, patient.id) == _engine_statuses(engine, patient.id)
