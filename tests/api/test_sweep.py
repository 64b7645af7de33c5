"""The clock sweep and the alerts it raises, from the outside (issue 9, point 3; CLINICAL.md
§Check-in schedule, §Red flags and alerts, §Milestones).

Time travels one way here: every write through the API evaluates as of the real today, and the
sweep is then run with a chosen `now` days or weeks later (`sweep.run(engine, now=...)`), or a
stored evaluation is first put back to an earlier day (`progress_store.refresh(today=...)`).
Histories that must raise nothing until the sweep are posted log-first (the app checked in on
schedule), then the procedure, so that its write evaluates them once. Nothing sleeps.
"""

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Row, func, select, text
from sqlmodel import Session

from api.background import sweep_once
from api.config import Settings
from api.db import Database, make_engine
from api.main import create_app
from api.services import progress_store, sweep
from api.services.alerts import ALERT
from models.patient import Patient
from tests.factories import World, auth, make_patient, patient_token

BERLIN = "Europe/Berlin"
KIRITIMATI = "Pacific/Kiritimati"  # UTC+14
PAGO_PAGO = "Pacific/Pago_Pago"  # UTC-11
PROGRESS = progress_store.PATIENT_PROGRESS
PROCEDURES = progress_store.PROCEDURE_EVALUATION
MILESTONES = progress_store.MILESTONE_EVALUATION
# CLINICAL.md §Check-in schedule
SCHEDULED_DAYS = [
    *range(0, 15),
    *range(21, 92, 7),
    *range(120, 361, 30),
    *range(450, 721, 90),
]


# --- helpers -----------------------------------------------------------------------------------


def today_in(zone: str = BERLIN) -> date:
    return datetime.now(ZoneInfo(zone)).date()


def local_instant(on: date, zone: str = BERLIN, at: clock_time = clock_time(12)) -> datetime:
    """`at` o'clock on `on` in `zone`, as the UTC instant the sweep takes."""
    return datetime.combine(on, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def sweep_on(engine: Engine, on: date, zone: str = BERLIN, **kwargs: Any) -> sweep.SweepCounts:
    """One sweep (`recovery-tracker sweep`) at noon on `on` in `zone`."""
    counts = sweep.run(engine, now=local_instant(on, zone), **kwargs)
    assert counts is not None, "the sweep found its lock taken"
    return counts


def store_as_of(engine: Engine, patient_id: uuid.UUID, on: date) -> None:
    """Store the patient's evaluation as the write path would have on `on`."""
    with engine.connect() as connection:
        progress_store.refresh(connection, patient_id=patient_id, today=on)
        connection.commit()


def rows(engine: Engine, query: Any) -> list[Row[Any]]:
    """Read and end the transaction at once (SQLite: never hold the write lock over a request)."""
    with engine.connect() as connection:
        return list(connection.execute(query))


def progress_row(engine: Engine, patient_id: uuid.UUID) -> Row[Any]:
    [row] = rows(engine, select(PROGRESS).where(PROGRESS.c.patient_id == patient_id))
    return row


def new_patient(
    db: Session, settings: Settings, world: World, zone: str = BERLIN
) -> tuple[Patient, dict[str, str]]:
    patient = make_patient(db, clinic=world.clinic_a, timezone=zone)
    return patient, auth(patient_token(db, settings, patient))


def add_procedure(
    client: TestClient,
    world: World,
    patient: Patient,
    performed_on: date,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": performed_on.isoformat(),
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
    }
    if baseline is not None:
        body["baseline"] = baseline
    response = client.post(
        f"/v1/patients/{patient.id}/procedures", headers=world.headers("clinician_a"), json=body
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def recorded_at(on: date, zone: str) -> str:
    """Noon on `on` in `zone`, or a minute ago if that is still to come (no future check-ins)."""
    noon = datetime.combine(on, clock_time(12), tzinfo=ZoneInfo(zone))
    return min(noon, datetime.now(ZoneInfo(zone)) - timedelta(minutes=1)).isoformat()


def post_logs(
    client: TestClient,
    headers: dict[str, str],
    performed_on: date,
    pains: dict[int, int],
    zone: str = BERLIN,
) -> list[dict[str, Any]]:
    """The app's check-ins: pain by day since `performed_on`, one batch."""
    logs = [
        {
            "client_id": str(uuid.uuid4()),
            "recorded_at": recorded_at(performed_on + timedelta(days=day), zone),
            "pain": pain,
        }
        for day, pain in pains.items()
    ]
    response = client.post("/v1/me/symptom-logs/batch", headers=headers, json={"logs": logs})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * len(logs), results
    return results


def on_schedule(through_day: int, pain: int) -> dict[int, int]:
    """A check-in on every scheduled day up to `through_day`."""
    return {day: pain for day in SCHEDULED_DAYS if day <= through_day}


def alerts_of(
    client: TestClient, world: World, patient: Patient, **params: Any
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"patient_id": str(patient.id), "limit": 500} | params
    response = client.get("/v1/alerts", headers=world.headers("clinician_a"), params=query)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def only_alert(client: TestClient, world: World, patient: Patient, kind: str) -> dict[str, Any]:
    items = alerts_of(client, world, patient, kind=kind)
    assert len(items) == 1, items
    return items[0]


def kinds(client: TestClient, world: World, patient: Patient) -> list[str]:
    return sorted(a["kind"] for a in alerts_of(client, world, patient))


def snapshot(client: TestClient, world: World, patient: Patient) -> list[tuple[Any, ...]]:
    """Every alert of the patient as (kind, id, status, occurrences, details)."""
    return sorted(
        (a["kind"], a["id"], a["status"], a["occurrences"], repr(sorted(a["details"].items())))
        for a in alerts_of(client, world, patient)
    )


def read_progress(
    client: TestClient, world: World, patient: Patient, as_of: date
) -> dict[str, Any]:
    response = client.get(
        f"/v1/patients/{patient.id}/progress",
        headers=world.headers("clinician_a"),
        params={"as_of": as_of.isoformat()},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in report["milestones"]}


def assert_store_matches_report(
    client: TestClient, world: World, engine: Engine, patient: Patient
) -> dict[str, Any]:
    """The stored rows say what GET /v1/patients/{id}/progress says on the stored day."""
    row = progress_row(engine, patient.id)
    report = read_progress(client, world, patient, row.as_of)
    current = by_key(report).get(report["current_milestone"] or "")
    assert row.progress_status == (current["status"] if current else "pending")
    assert row.current_milestone == report["current_milestone"]
    stored = rows(
        engine,
        select(MILESTONES.c.key, MILESTONES.c.state, MILESTONES.c.status)
        .where(MILESTONES.c.procedure_id == row.procedure_id)
        .order_by(MILESTONES.c.position),
    )
    assert [tuple(m) for m in stored] == [
        (m["key"], m["state"], m["status"]) for m in report["milestones"]
    ]
    [evaluation] = rows(
        engine, select(PROCEDURES).where(PROCEDURES.c.procedure_id == row.procedure_id)
    )
    assert evaluation.as_of == row.as_of
    assert evaluation.progress_status == row.progress_status
    return report


def assert_one_open_per_kind(engine: Engine) -> None:
    doubles = rows(
        engine,
        select(ALERT.c.patient_id, ALERT.c.kind, func.count())
        .where(ALERT.c.status == "open")
        .group_by(ALERT.c.patient_id, ALERT.c.kind)
        .having(func.count() > 1),
    )
    assert doubles == []


def missed_details(
    procedure: dict[str, Any],
    performed_on: date,
    *,
    first: int,
    through: int,
    phase: str,
    grace: int,
    detected_on: date,
) -> dict[str, Any]:
    return {
        "procedure_id": procedure["id"],
        "missed_from_day": first,
        "missed_from_on": (performed_on + timedelta(days=first)).isoformat(),
        "missed_through_day": through,
        "missed_through_on": (performed_on + timedelta(days=through)).isoformat(),
        "phase": phase,
        "grace_days": grace,
        "detected_on": detected_on.isoformat(),
    }


def not_met_details(
    procedure: dict[str, Any], performed_on: date, milestones: list[str], closed_day: int
) -> dict[str, Any]:
    return {
        "procedure_id": procedure["id"],
        "milestones": milestones,
        # The record of what was raised, kept in the alert itself (merged as a set on a bump).
        "closings": sorted(f"{procedure['id']}/{key}" for key in milestones),
        "findings": ["pain_not_improved"],
        "closed_on": (performed_on + timedelta(days=closed_day)).isoformat(),
    }


# --- the reproductions -------------------------------------------------------------------


def test_day_100_with_pain_unchanged_raises_milestone_not_met(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """Pain 6 against a baseline of 6 through the short-term window: on day 100 the report says
    closed / not_met, and now GET /v1/alerts says so too."""
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=80)
    post_logs(client, headers, performed_on, on_schedule(77, pain=6))
    procedure = add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    assert alerts_of(client, world, patient) == []  # day 80: the window is still open
    assert (
        by_key(assert_store_matches_report(client, world, engine, patient))["short_term"]["status"]
        == "behind"
    )

    day_100 = performed_on + timedelta(days=100)
    counts = sweep_on(engine, day_100)

    assert (counts.candidates, counts.evaluated) == (1, 1)
    assert counts.alerts == {"milestone_not_met": 1, "missed_check_in": 1}
    report = assert_store_matches_report(client, world, engine, patient)
    assert report["as_of"] == day_100.isoformat()
    assert report["day"] == 100
    short_term = by_key(report)["short_term"]
    assert (short_term["state"], short_term["status"]) == ("closed", "not_met")
    assert short_term["observed"]["n_logs"] == 7
    assert short_term["observed"]["pain_change"] == 0.0
    assert [f["code"] for f in short_term["findings"]] == ["pain_not_improved"]
    assert progress_row(engine, patient.id).progress_status == "not_met"

    alert = only_alert(client, world, patient, "milestone_not_met")
    assert alert["patient_id"] == str(patient.id)
    assert (alert["status"], alert["occurrences"], alert["log_id"]) == ("open", 1, None)
    assert alert["details"] == not_met_details(procedure, performed_on, ["short_term"], 91)
    # No check-in since day 77: days 84 and 91 went by with their 4 days' grace.
    missed = only_alert(client, world, patient, "missed_check_in")
    assert missed["details"] == missed_details(
        procedure, performed_on, first=84, through=91, phase="weekly", grace=4, detected_on=day_100
    )
    assert report["open_alerts"] == 2


def test_day_40_without_any_log_raises_missed_check_in(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, _ = new_patient(db, settings, world)
    performed_on = today_in()
    procedure = add_procedure(client, world, patient, performed_on)
    assert alerts_of(client, world, patient) == []  # day 0: nothing is due yet

    day_40 = performed_on + timedelta(days=40)
    counts = sweep_on(engine, day_40)

    assert (counts.evaluated, counts.alerts) == (1, {"missed_check_in": 1})
    alert = only_alert(client, world, patient, "missed_check_in")
    assert (alert["status"], alert["occurrences"], alert["log_id"]) == ("open", 1, None)
    # Every check-in from day 0 on, the last whose grace has run out being day 35's (35 + 4 < 40).
    assert alert["details"] == missed_details(
        procedure, performed_on, first=0, through=35, phase="weekly", grace=4, detected_on=day_40
    )
    assert alerts_of(client, world, patient, kind="milestone_not_met") == []
    report = assert_store_matches_report(client, world, engine, patient)
    assert report["day"] == 40
    assert report["open_alerts"] == 1


def test_a_procedure_recorded_40_days_late_is_caught_up_by_todays_sweep(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """Recorded 40 days after the fact, with no log: today's sweep at the latest raises one
    missed_check_in for days 0-35 (the write itself may already have), and no sweep after it
    raises another."""
    patient, _ = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=40)
    procedure = add_procedure(client, world, patient, performed_on)
    sweep_on(engine, today_in())

    alert = only_alert(client, world, patient, "missed_check_in")
    assert alert["details"] == missed_details(
        procedure,
        performed_on,
        first=0,
        through=35,
        phase="weekly",
        grace=4,
        detected_on=today_in(),
    )
    assert kinds(client, world, patient) == ["missed_check_in"]
    assert alert["occurrences"] == 1
    assert sweep_on(engine, today_in()).evaluated == 0
    assert_store_matches_report(client, world, engine, patient)


# --- once, and only when due ---------------------------------------------------------------------


def test_a_closing_raises_once_however_often_the_sweep_runs(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=80)
    post_logs(client, headers, performed_on, on_schedule(77, pain=6))
    add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    day_100 = performed_on + timedelta(days=100)
    assert sweep_on(engine, day_100).evaluated == 1
    raised = snapshot(client, world, patient)
    assert [kind for kind, *_ in raised] == ["milestone_not_met", "missed_check_in"]

    again = sweep_on(engine, day_100)  # the same day: no longer due
    assert (again.evaluated, again.alerts) == (0, {})
    next_day = sweep_on(engine, day_100 + timedelta(days=1))
    assert next_day.alerts == {}
    with engine.connect() as connection:  # one patient twice in one chunk
        counts = sweep.sweep_chunk(
            connection,
            patient_ids=[patient.id, patient.id],
            now=local_instant(day_100 + timedelta(days=30)),
        )
    assert (counts.candidates, counts.evaluated) == (2, 1)
    assert counts.alerts == {}

    assert snapshot(client, world, patient) == raised
    assert_one_open_per_kind(engine)
    assert_store_matches_report(client, world, engine, patient)


def test_a_forced_reevaluation_is_made_as_of_now_and_raises_nothing_again(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """`run(force=True)` (`recovery-tracker reevaluate`) with a `now`: every patient is evaluated
    on their today at that instant, due or not, and what was raised is not raised again."""
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=80)
    post_logs(client, headers, performed_on, on_schedule(77, pain=6))
    add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    day_100 = performed_on + timedelta(days=100)
    sweep_on(engine, day_100)
    raised = snapshot(client, world, patient)

    day_102 = day_100 + timedelta(days=2)  # not due: the next change is on day 121
    forced = sweep_on(engine, day_102, force=True, patient_ids=[patient.id])

    assert (forced.evaluated, forced.alerts) == (1, {})
    assert progress_row(engine, patient.id).as_of == day_102
    assert sweep_on(engine, day_102 + timedelta(days=1)).alerts == {}
    assert snapshot(client, world, patient) == raised
    assert_store_matches_report(client, world, engine, patient)


def test_the_sweep_leaves_patients_that_are_not_due_alone(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, _ = new_patient(db, settings, world)
    add_procedure(client, world, patient, today_in())  # day 0: the next change is tomorrow
    before = rows(engine, select(PROGRESS).order_by(PROGRESS.c.patient_id))
    evaluations = rows(engine, select(PROCEDURES))

    counts = sweep.run(engine)  # now

    assert counts is not None
    assert (counts.evaluated, counts.alerts) == (0, {})
    assert rows(engine, select(PROGRESS).order_by(PROGRESS.c.patient_id)) == before
    assert rows(engine, select(PROCEDURES)) == evaluations
    assert rows(engine, select(ALERT)) == []
    # Patients without a procedure are never due: the clock changes nothing for them.
    assert progress_row(engine, world.patient_a.id).next_change_on is None


def test_the_sweep_logs_its_progress_and_counts_without_patient_data(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    patient, _ = new_patient(db, settings, world)
    performed_on = today_in()
    add_procedure(client, world, patient, performed_on)
    with caplog.at_level(logging.INFO, logger="recovery_tracker.sweep"):
        sweep_on(engine, performed_on + timedelta(days=40))
    messages = [r.getMessage() for r in caplog.records if r.name == "recovery_tracker.sweep"]
    assert "sweep started: 1 patient(s) to look at" in messages
    assert "sweep progress: 1/1 patient(s)" in messages
    [done] = [m for m in messages if m.startswith("sweep done")]
    assert "1 candidates, 1 re-evaluated" in done
    assert "missed_check_in" in done
    logged = "\n".join(messages)
    for secret in (patient.mrn, patient.given_name, patient.family_name, str(patient.id)):
        assert secret not in logged
    assert patient.id.hex not in logged


# --- catching up after downtime --------------------------------------------------------------------


def test_after_two_weeks_down_each_alert_is_raised_once(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """Stored on day 84 (due again on day 85), swept on day 98: two weekly check-ins missed and
    the short-term window closed in between. One evaluation, one alert of each kind."""
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=84)
    post_logs(client, headers, performed_on, on_schedule(77, pain=6))
    procedure = add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    stored = progress_row(engine, patient.id)
    assert stored.as_of == today_in()
    assert stored.next_change_on == performed_on + timedelta(days=85)
    assert alerts_of(client, world, patient) == []

    day_98 = performed_on + timedelta(days=98)
    counts = sweep_on(engine, day_98)

    assert (counts.candidates, counts.evaluated) == (1, 1)
    assert counts.alerts == {"milestone_not_met": 1, "missed_check_in": 1}
    missed = only_alert(client, world, patient, "missed_check_in")
    assert missed["occurrences"] == 1
    assert missed["details"] == missed_details(
        procedure, performed_on, first=84, through=91, phase="weekly", grace=4, detected_on=day_98
    )
    not_met = only_alert(client, world, patient, "milestone_not_met")
    assert not_met["occurrences"] == 1
    assert not_met["details"] == not_met_details(procedure, performed_on, ["short_term"], 91)
    assert progress_row(engine, patient.id).as_of == day_98
    assert_store_matches_report(client, world, engine, patient)
    assert sweep_on(engine, day_98).evaluated == 0


def test_a_week_of_missed_daily_check_ins_is_one_alert(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in()
    procedure = add_procedure(client, world, patient, performed_on)
    post_logs(client, headers, performed_on, {0: 5})

    day_12 = performed_on + timedelta(days=12)
    counts = sweep_on(engine, day_12)

    assert (counts.evaluated, counts.alerts) == (1, {"missed_check_in": 1})
    alert = only_alert(client, world, patient, "missed_check_in")
    assert alert["occurrences"] == 1
    # Days 1 to 9: day 10's two days of grace run to day 12.
    assert alert["details"] == missed_details(
        procedure, performed_on, first=1, through=9, phase="daily", grace=2, detected_on=day_12
    )
    assert_store_matches_report(client, world, engine, patient)


# --- missed check-ins: a log, a resolution, a later interval ---------------------------------------


def test_a_log_after_a_missed_alert_holds_the_next_one_back_for_an_interval_and_grace(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    today = today_in()
    performed_on = today - timedelta(days=10)
    post_logs(client, headers, performed_on, dict.fromkeys(range(5), 5))
    procedure = add_procedure(client, world, patient, performed_on)
    sweep_on(engine, today)
    first = only_alert(client, world, patient, "missed_check_in")  # days 5-7, seen on day 10
    assert first["details"] == missed_details(
        procedure, performed_on, first=5, through=7, phase="daily", grace=2, detected_on=today
    )

    post_logs(client, headers, performed_on, {10: 4})  # the patient checks in again today
    for day in (11, 12, 13):  # day 11's check-in has two days' grace: missed from day 14
        counts = sweep_on(engine, performed_on + timedelta(days=day))
        assert counts.alerts == {}, day
        assert only_alert(client, world, patient, "missed_check_in") == first

    day_14 = performed_on + timedelta(days=14)
    assert sweep_on(engine, day_14).alerts == {"missed_check_in": 1}
    bumped = only_alert(client, world, patient, "missed_check_in")
    assert bumped["id"] == first["id"]  # still open: the same alert, raised again
    assert bumped["occurrences"] == 2
    assert bumped["details"] == missed_details(
        procedure, performed_on, first=11, through=11, phase="daily", grace=2, detected_on=day_14
    )
    assert_one_open_per_kind(engine)
    assert_store_matches_report(client, world, engine, patient)


def test_a_resolved_missed_alert_stays_resolved_until_a_later_interval_is_missed(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in()
    procedure = add_procedure(client, world, patient, performed_on)
    post_logs(client, headers, performed_on, {0: 5})
    day_5 = performed_on + timedelta(days=5)
    assert sweep_on(engine, day_5).alerts == {"missed_check_in": 1}
    first = only_alert(client, world, patient, "missed_check_in")
    assert first["details"] == missed_details(
        procedure, performed_on, first=1, through=2, phase="daily", grace=2, detected_on=day_5
    )
    response = client.post(
        f"/v1/alerts/{first['id']}/resolve",
        headers=world.headers("clinician_a"),
        json={"note": "Phoned: app was logged out"},
    )
    assert response.status_code == 200, response.text
    resolved = response.json()

    # The same missed days, however the sweep comes back to them, raise nothing new.
    assert sweep_on(engine, day_5).alerts == {}
    assert sweep_on(engine, day_5, force=True).alerts == {}
    assert [a["id"] for a in alerts_of(client, world, patient)] == [first["id"]]

    day_6 = performed_on + timedelta(days=6)  # day 3's grace has run out
    assert sweep_on(engine, day_6).alerts == {"missed_check_in": 1}
    items = alerts_of(client, world, patient, kind="missed_check_in")
    assert len(items) == 2
    [new] = [a for a in items if a["status"] == "open"]
    [old] = [a for a in items if a["status"] == "resolved"]
    assert new["id"] != first["id"]
    assert new["occurrences"] == 1
    assert new["details"] == missed_details(
        procedure, performed_on, first=3, through=3, phase="daily", grace=2, detected_on=day_6
    )
    assert old["details"] == first["details"]
    assert (old["occurrences"], old["resolved_at"]) == (1, resolved["resolved_at"])


# --- each patient's own today -------------------------------------------------------------------


def test_a_patient_is_due_by_the_date_in_their_own_time_zone(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    ahead, _ = new_patient(db, settings, world, zone=KIRITIMATI)
    behind, _ = new_patient(db, settings, world, zone=PAGO_PAGO)
    performed_on = datetime.now(UTC).date() - timedelta(days=1)  # on or before both todays
    for patient in (ahead, behind):
        add_procedure(client, world, patient, performed_on)
        store_as_of(engine, patient.id, performed_on)  # day 0, due again on day 1
        assert progress_row(engine, patient.id).next_change_on == performed_on + timedelta(days=1)
    day_1 = performed_on + timedelta(days=1)

    # 00:30 on day 1 in Kiritimati is 23:30 two days earlier in Pago Pago.
    early = local_instant(day_1, KIRITIMATI, clock_time(0, 30))
    counts = sweep.run(engine, now=early)
    assert counts is not None
    assert counts.evaluated == 1
    assert progress_row(engine, ahead.id).as_of == day_1
    assert progress_row(engine, behind.id).as_of == performed_on

    # 00:30 on day 1 in Pago Pago: its turn (and Kiritimati's day 2 has begun).
    late = local_instant(day_1, PAGO_PAGO, clock_time(0, 30))
    counts = sweep.run(engine, now=late)
    assert counts is not None
    assert counts.evaluated == 2
    assert progress_row(engine, behind.id).as_of == day_1
    assert progress_row(engine, ahead.id).as_of == day_1 + timedelta(days=1)
    assert rows(engine, select(ALERT)) == []


# --- two sweeps at once ---------------------------------------------------------------------------


def _run_both(work: Callable[[Engine], sweep.SweepCounts | None], database_url: str) -> list[Any]:
    """`work` in two threads at once, each on its own engine (as two processes would be)."""
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def one() -> None:
        engine = make_engine(database_url)
        try:
            barrier.wait(timeout=10)
            results.append(work(engine))
        except Exception as exc:  # reported below, not lost in the thread
            results.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    assert not [r for r in results if isinstance(r, Exception)], results
    return results


@pytest.mark.parametrize("how", ["run", "chunk"])
def test_two_concurrent_sweeps_raise_each_alert_once(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    engine: Engine,
    database_url: str,
    how: str,
) -> None:
    """`run`: two commands (PostgreSQL: the advisory lock lets one work). `chunk`: two chunks of
    the same patients, past any lock (PostgreSQL: the row locks and the re-check decide;
    SQLite: the write lock)."""
    performed_on = today_in()
    patients = [new_patient(db, settings, world)[0] for _ in range(4)]
    for patient in patients:
        add_procedure(client, world, patient, performed_on)
    now = local_instant(performed_on + timedelta(days=40))
    with engine.connect() as connection:
        due = sweep.due_patients(connection, now=now)
    assert sorted(due) == sorted(p.id for p in patients)

    def work(own: Engine) -> sweep.SweepCounts | None:
        if how == "run":
            return sweep.run(own, now=now)
        with own.connect() as connection:
            # No time budget: this is about the locks, and a busy machine must not cut it short.
            return sweep.sweep_chunk(connection, patient_ids=due, now=now, budget_s=3600)

    results = [r for r in _run_both(work, database_url) if r is not None]
    assert sum(r.evaluated for r in results) == len(patients)
    assert sum(r.alerts.get("missed_check_in", 0) for r in results) == len(patients)
    for patient in patients:
        [alert] = alerts_of(client, world, patient)
        assert (alert["kind"], alert["status"], alert["occurrences"]) == (
            "missed_check_in",
            "open",
            1,
        )
        assert alert["details"]["missed_through_day"] == 35
    assert_one_open_per_kind(engine)


def test_only_one_process_sweeps_while_the_lock_is_held(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    engine: Engine,
    backend: str,
) -> None:
    patient, _ = new_patient(db, settings, world)
    performed_on = today_in()
    add_procedure(client, world, patient, performed_on)
    now = local_instant(performed_on + timedelta(days=40))
    database = Database.from_settings(settings)
    try:
        with engine.connect() as holder:
            assert sweep.try_sweep_lock(holder)
            try:
                held_run = sweep.run(engine, now=now)
                held_serve = asyncio.run(sweep_once(database, now=now))
            finally:
                sweep.release_sweep_lock(holder)
        if backend == "postgresql":  # another process holds it: both stand aside
            assert (held_run, held_serve) == (None, None)
            assert alerts_of(client, world, patient) == []
            served = asyncio.run(sweep_once(database, now=now))
            assert served is not None
            assert (served.evaluated, served.alerts) == (1, {"missed_check_in": 1})
        else:  # SQLite: one process; the write lock orders the sweeps
            assert held_run is not None
            assert held_run.alerts == {"missed_check_in": 1}
            assert held_serve is not None
            assert held_serve.evaluated == 0
    finally:
        database.dispose()
    assert only_alert(client, world, patient, "missed_check_in")["occurrences"] == 1


# --- milestone_not_met from a write ---------------------------------------------------------------


def test_a_late_log_that_closes_a_window_not_met_raises_in_its_own_request(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=100)
    procedure = add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    post_logs(client, headers, performed_on, {35: 6})  # one log: closed, insufficient_data
    assert alerts_of(client, world, patient, kind="milestone_not_met") == []

    post_logs(client, headers, performed_on, {50: 6})  # the app syncs a late check-in

    alert = only_alert(client, world, patient, "milestone_not_met")
    assert (alert["status"], alert["occurrences"]) == ("open", 1)
    assert alert["details"] == not_met_details(procedure, performed_on, ["short_term"], 91)
    report = assert_store_matches_report(client, world, engine, patient)
    assert by_key(report)["short_term"]["status"] == "not_met"
    assert sweep_on(engine, today_in()).alerts == {}


def test_a_correction_that_turns_a_closed_window_not_met_raises_in_its_own_request(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=100)
    procedure = add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    results = post_logs(client, headers, performed_on, {35: 3, 50: 3})
    report = assert_store_matches_report(client, world, engine, patient)
    assert by_key(report)["short_term"]["status"] == "met"
    assert alerts_of(client, world, patient, kind="milestone_not_met") == []

    # Pain 6 on day 50 after all: the median is 4.5, a drop of 1.5 (25 %): not improved.
    response = client.post(
        f"/v1/me/symptom-logs/{results[1]['id']}/corrections",
        headers=headers,
        json={"client_id": str(uuid.uuid4()), "pain": 6},
    )
    assert response.status_code == 201, response.text

    alert = only_alert(client, world, patient, "milestone_not_met")
    assert (alert["status"], alert["occurrences"]) == ("open", 1)
    assert alert["details"] == not_met_details(procedure, performed_on, ["short_term"], 91)
    report = assert_store_matches_report(client, world, engine, patient)
    short_term = by_key(report)["short_term"]
    assert (short_term["status"], short_term["observed"]["pain"]) == ("not_met", 4.5)


# --- one open alert per patient and kind ----------------------------------------------------------


def test_a_second_closing_bumps_the_open_milestone_alert(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    patient, headers = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=220)
    post_logs(client, headers, performed_on, on_schedule(210, pain=6))
    procedure = add_procedure(client, world, patient, performed_on, baseline={"pain": 6})
    first = only_alert(client, world, patient, "milestone_not_met")  # short_term, at once
    assert first["details"] == not_met_details(procedure, performed_on, ["short_term"], 91)

    day_366 = performed_on + timedelta(days=366)
    counts = sweep_on(engine, day_366)

    assert counts.alerts == {"milestone_not_met": 1, "missed_check_in": 1}
    bumped = only_alert(client, world, patient, "milestone_not_met")
    assert bumped["id"] == first["id"]
    assert (bumped["status"], bumped["occurrences"]) == ("open", 2)
    assert bumped["details"] == not_met_details(
        procedure, performed_on, ["long_term", "short_term"], 366
    )
    missed = only_alert(client, world, patient, "missed_check_in")
    assert missed["details"] == missed_details(
        procedure,
        performed_on,
        first=240,
        through=330,
        phase="monthly",
        grace=10,
        detected_on=day_366,
    )
    report = assert_store_matches_report(client, world, engine, patient)
    long_term = by_key(report)["long_term"]
    assert (long_term["state"], long_term["status"], long_term["substantial"]) == (
        "closed",
        "not_met",
        False,
    )
    assert sweep_on(engine, day_366 + timedelta(days=3)).alerts == {}  # day 360's grace: 370
    assert only_alert(client, world, patient, "milestone_not_met")["occurrences"] == 2
    assert_one_open_per_kind(engine)


def test_the_database_holds_one_open_alert_per_patient_and_kind(
    engine: Engine, backend: str
) -> None:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = :name"
        if backend == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE indexname = :name"
    )
    with engine.connect() as connection:
        found = connection.execute(text(query), {"name": "uq_alert_patient_id_kind_open"}).all()
    assert len(found) == 1


# --- the periodic task of `serve` ------------------------------------------------------------------


@pytest.fixture
def sweeping_app(settings: Settings) -> Iterator[TestClient]:
    """A second app, as `serve` runs it: sweeping every second."""
    app = create_app(settings.model_copy(update={"sweep_interval_seconds": 1}), run_sweep=True)
    with TestClient(app) as running:
        yield running


def test_the_server_sweeps_periodically(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    engine: Engine,
    sweeping_app: TestClient,  # noqa: ARG001 (running in the background)
) -> None:
    patient, _ = new_patient(db, settings, world)
    performed_on = today_in() - timedelta(days=1)
    add_procedure(client, world, patient, performed_on)
    store_as_of(engine, patient.id, performed_on)  # as stored yesterday: due today
    assert progress_row(engine, patient.id).next_change_on <= today_in()

    deadline = time.monotonic() + 10
    while progress_row(engine, patient.id).as_of != today_in():
        assert time.monotonic() < deadline, "the periodic sweep did not evaluate the patient"
        time.sleep(0.05)
    assert_store_matches_report(client, world, engine, patient)
    assert alerts_of(client, world, patient) == []


def test_a_chunk_stops_after_its_time_budget_and_the_sweep_goes_on_from_there(
    client: TestClient, world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    """A transaction ends once it has run its budget (on SQLite it holds the one write lock):
    with no budget at all, each chunk evaluates one patient, in ascending id order, and the
    sweep still reaches every due patient."""
    patients = [new_patient(db, settings, world)[0] for _ in range(3)]
    for patient in patients:
        add_procedure(client, world, patient, today_in())
    day_40 = local_instant(today_in() + timedelta(days=40))
    ids = [p.id for p in patients]

    with engine.connect() as connection:
        first = sweep.sweep_chunk(connection, patient_ids=ids, now=day_40, budget_s=0)
    assert (first.candidates, first.evaluated) == (1, 1)
    assert progress_row(engine, min(ids)).as_of == (day_40.astimezone(ZoneInfo(BERLIN))).date()

    counts = sweep.run(engine, now=day_40)
    assert counts is not None
    assert counts.evaluated == 2  # the other two: the first is no longer due
    assert {progress_row(engine, i).as_of for i in ids} == {
        day_40.astimezone(ZoneInfo(BERLIN)).date()
    }
