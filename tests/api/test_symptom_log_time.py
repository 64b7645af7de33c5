"""The procedure clock for symptom logs (CLINICAL.md §The clock): offsets, time zones, DST,
travel, and the index procedure and day of each log."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.config import Settings
from models.patient import Patient
from models.symptom_log import SymptomLog
from tests.factories import World, auth, make_patient, patient_token

PROBLEM_JSON = "application/problem+json"
ME_LOGS = "/v1/me/symptom-logs"


# --- helpers ---------------------------------------------------------------------------------


def log_body(recorded_at: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"client_id": str(uuid.uuid4()), "recorded_at": recorded_at, "pain": 4}
    return body | overrides


def post_log(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> httpx2.Response:
    return client.post(ME_LOGS, json=body, headers=headers)


def create_log(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = post_log(client, headers, body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_procedure(
    client: TestClient, world: World, performed_on: str, patient: Patient | None = None
) -> dict[str, Any]:
    target = patient or world.patient_a
    response = client.post(
        f"/v1/patients/{target.id}/procedures",
        json={
            "performed_on": performed_on,
            "treatment": "prp",
            "harvest": {"method": "blood_draw"},
            "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
        },
        headers=world.headers("clinician_a"),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def pointers(response: httpx2.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    errors: list[dict[str, str]] = response.json().get("errors") or []
    assert errors, "a 422 names the offending fields"
    return [error["pointer"] for error in errors]


def stored(db: Session, log_id: str) -> SymptomLog:
    row = db.exec(
        select(SymptomLog)
        .where(SymptomLog.id == uuid.UUID(log_id))
        .execution_options(populate_existing=True)
    ).one()
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return row


def count_logs(db: Session) -> int:
    rows = list(db.exec(select(SymptomLog.id)))
    db.commit()
    return len(rows)


def all_logs(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = client.get(ME_LOGS, params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


@pytest.fixture
def me(world: World) -> dict[str, str]:
    """patient_a's app: clinic A, Europe/Berlin."""
    return world.headers("patient_a")


# --- the timestamp itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    "recorded_at",
    [
        "2026-06-10T10:00:00",  # no offset
        "2026-06-10 10:00:00",
        "2026-06-10",  # a date is not an instant
        "10:00:00+02:00",
        "yesterday",
        "",
        None,
        ["2026-06-10T10:00:00+02:00"],
        {"at": "2026-06-10T10:00:00+02:00"},
    ],
)
def test_recorded_at_needs_an_offset(
    client: TestClient, me: dict[str, str], db: Session, recorded_at: Any
) -> None:
    response = post_log(client, me, log_body(recorded_at))
    assert pointers(response) == ["/recorded_at"]
    assert count_logs(db) == 0


@pytest.mark.parametrize("recorded_at", [1781085600, 1781085600.5, "1781085600", True])
def test_recorded_at_as_a_unix_number_is_422(
    client: TestClient, me: dict[str, str], db: Session, recorded_at: Any
) -> None:
    response = post_log(client, me, log_body(recorded_at))
    assert pointers(response) == ["/recorded_at"]
    assert count_logs(db) == 0


def test_recorded_at_more_than_five_minutes_ahead_is_422(
    client: TestClient, me: dict[str, str], db: Session
) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=6)
    response = post_log(client, me, log_body(ahead.isoformat()))
    assert pointers(response) == ["/recorded_at"]
    # The same instant in another offset is just as far ahead.
    response = post_log(client, me, log_body(ahead.astimezone(_zone(-7 * 60)).isoformat()))
    assert pointers(response) == ["/recorded_at"]
    far = post_log(client, me, log_body("2027-06-10T10:00:00+02:00"))
    assert pointers(far) == ["/recorded_at"]
    assert count_logs(db) == 0


def test_recorded_at_four_minutes_ahead_is_accepted(client: TestClient, me: dict[str, str]) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=4)
    log = create_log(client, me, log_body(ahead.astimezone(_zone(14 * 60)).isoformat()))
    assert datetime.fromisoformat(log["recorded_at"]) == ahead
    assert log["utc_offset_minutes"] == 14 * 60


def _zone(minutes: int) -> timezone:
    return timezone(timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("recorded_at", "minutes"),
    [
        ("2026-06-10T22:30:00-07:00", -420),
        ("2026-06-10T22:30:00+05:45", 345),
        ("2026-06-10T22:30:00-03:30", -210),
        ("2026-06-10T22:30:00+00:00", 0),
        ("2026-06-10T22:30:00Z", 0),
        ("2026-06-10T22:30:00.250+14:00", 840),
    ],
)
def test_recorded_at_is_echoed_with_its_original_offset(
    client: TestClient, me: dict[str, str], db: Session, recorded_at: str, minutes: int
) -> None:
    log = create_log(client, me, log_body(recorded_at, timezone="America/Los_Angeles"))
    sent = datetime.fromisoformat(recorded_at)
    echoed = datetime.fromisoformat(log["recorded_at"])
    assert echoed == sent
    assert echoed.utcoffset() == timedelta(minutes=minutes)
    assert log["utc_offset_minutes"] == minutes

    row = stored(db, log["id"])
    assert row.utc_offset_minutes == minutes
    assert row.recorded_at == sent
    assert row.recorded_at.utcoffset() == timedelta(0)  # stored as UTC

    # A later read (and a replay) says the same.
    listed = all_logs(client, me)[log["id"]]
    assert listed["recorded_at"] == log["recorded_at"]
    assert listed["utc_offset_minutes"] == minutes
    replay = post_log(
        client,
        me,
        log_body(recorded_at, timezone="America/Los_Angeles") | {"client_id": log["client_id"]},
    )
    assert replay.status_code == 200, replay.text
    assert replay.json()["recorded_at"] == log["recorded_at"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "berlin", "CEST", "+02:00", "Europe/Berlin "])
def test_unknown_time_zone_is_422(
    client: TestClient, me: dict[str, str], db: Session, zone: str
) -> None:
    response = post_log(client, me, log_body("2026-06-10T10:00:00+02:00", timezone=zone))
    assert pointers(response) == ["/timezone"]
    assert count_logs(db) == 0


# --- local_date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded_at", "local_date"),
    [
        # DST starts in Berlin that night (02:00 CET -> 03:00 CEST).
        ("2026-03-29T01:30:00+01:00", "2026-03-29"),
        ("2026-03-29T03:30:00+02:00", "2026-03-29"),
        ("2026-03-28T23:30:00+01:00", "2026-03-28"),
        # DST ends: 02:00-03:00 happens twice on 2026-10-25.
        ("2026-10-25T02:30:00+02:00", "2026-10-25"),
        ("2026-10-25T02:30:00+01:00", "2026-10-25"),
        ("2026-10-24T23:30:00+02:00", "2026-10-24"),
        ("2026-10-25T23:30:00+01:00", "2026-10-25"),
        ("2026-10-25T00:30:00+02:00", "2026-10-25"),
        # Sent in UTC: the date is Berlin's, not UTC's.
        ("2026-06-10T22:30:00Z", "2026-06-11"),
        ("2026-06-10T21:59:59Z", "2026-06-10"),
    ],
)
def test_local_date_in_the_patients_zone(
    client: TestClient, me: dict[str, str], recorded_at: str, local_date: str
) -> None:
    log = create_log(client, me, log_body(recorded_at))
    assert log["timezone"] == "Europe/Berlin"
    assert log["local_date"] == local_date


@pytest.mark.parametrize(
    ("recorded_at", "local_date"),
    [
        # New York's DST ends at 02:00 on 2026-11-01; 23:30 EST is still that day.
        ("2026-11-01T23:30:00-05:00", "2026-11-01"),
        ("2026-11-01T01:30:00-04:00", "2026-11-01"),
        ("2026-11-01T01:30:00-05:00", "2026-11-01"),
        ("2026-10-31T23:30:00-04:00", "2026-10-31"),
        ("2026-03-08T23:30:00-04:00", "2026-03-08"),
    ],
)
def test_local_date_for_a_patient_in_new_york(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    recorded_at: str,
    local_date: str,
) -> None:
    patient = make_patient(db, clinic=world.clinic_a, timezone="America/New_York")
    headers = auth(patient_token(db, settings, patient))
    log = create_log(client, headers, log_body(recorded_at))
    assert log["patient_id"] == str(patient.id)
    assert log["timezone"] == "America/New_York"
    assert log["local_date"] == local_date


def test_a_travelling_patient_logs_on_the_local_day(
    client: TestClient, me: dict[str, str], db: Session
) -> None:
    instant = "2026-06-10T22:30:00-07:00"
    abroad = create_log(client, me, log_body(instant, timezone="America/Los_Angeles"))
    assert abroad["timezone"] == "America/Los_Angeles"
    assert abroad["local_date"] == "2026-06-10"
    assert abroad["utc_offset_minutes"] == -420
    assert datetime.fromisoformat(abroad["recorded_at"]).utcoffset() == timedelta(hours=-7)

    home = create_log(client, me, log_body(instant))
    assert home["timezone"] == "Europe/Berlin"
    assert home["local_date"] == "2026-06-11"  # 07:30 the next morning in Berlin
    assert home["utc_offset_minutes"] == -420  # the offset the app sent is kept

    assert stored(db, abroad["id"]).local_date == date(2026, 6, 10)
    assert stored(db, home["id"]).local_date == date(2026, 6, 11)


def test_the_zone_decides_the_date_not_the_offset(client: TestClient, me: dict[str, str]) -> None:
    # The app sent UTC but names Tokyo: 2026-06-10T20:00Z is 05:00 on the 11th in Tokyo.
    log = create_log(client, me, log_body("2026-06-10T20:00:00Z", timezone="Asia/Tokyo"))
    assert log["local_date"] == "2026-06-11"
    assert log["utc_offset_minutes"] == 0


# --- index procedure and day -----------------------------------------------------------------


def test_no_procedure_means_no_procedure_id_or_day(client: TestClient, me: dict[str, str]) -> None:
    log = create_log(client, me, log_body("2026-07-15T10:00:00+02:00"))
    assert log["procedure_id"] is None
    assert log["day"] is None


def test_each_log_gets_its_index_procedure_and_day(
    client: TestClient, world: World, me: dict[str, str]
) -> None:
    june = create_procedure(client, world, "2026-06-01")
    august = create_procedure(client, world, "2026-08-01")
    cases = [
        ("2026-07-15T10:00:00+02:00", june["id"], 44),
        ("2026-08-01T00:10:00+02:00", august["id"], 0),
        ("2026-07-31T23:50:00+02:00", june["id"], 60),
        ("2026-05-20T10:00:00+02:00", june["id"], -12),
        ("2026-06-01T08:00:00+02:00", june["id"], 0),
        ("2026-09-10T10:00:00+02:00", august["id"], 40),
        # 23:30 on 31 July in New York is 1 August in UTC and in Berlin; the log's zone decides.
        ("2026-07-31T23:30:00-04:00", june["id"], 60),
    ]
    logs = []
    for recorded_at, procedure_id, day in cases:
        zone = "America/New_York" if recorded_at.endswith("-04:00") else None
        body = log_body(recorded_at) | ({"timezone": zone} if zone else {})
        log = create_log(client, me, body)
        assert (log["procedure_id"], log["day"]) == (procedure_id, day), recorded_at
        logs.append(log)
    listed = all_logs(client, me)
    for log in logs:
        assert listed[log["id"]]["procedure_id"] == log["procedure_id"]
        assert listed[log["id"]]["day"] == log["day"]


def test_a_procedure_added_later_changes_the_derived_clock(
    client: TestClient, world: World, me: dict[str, str]
) -> None:
    july = create_log(client, me, log_body("2026-07-15T10:00:00+02:00"))
    may = create_log(client, me, log_body("2026-05-20T10:00:00+02:00"))
    assert july["procedure_id"] is None

    june = create_procedure(client, world, "2026-06-01")
    listed = all_logs(client, me)
    assert (listed[july["id"]]["procedure_id"], listed[july["id"]]["day"]) == (june["id"], 44)
    assert (listed[may["id"]]["procedure_id"], listed[may["id"]]["day"]) == (june["id"], -12)

    july_procedure = create_procedure(client, world, "2026-07-10")
    listed = all_logs(client, me)
    assert (listed[july["id"]]["procedure_id"], listed[july["id"]]["day"]) == (
        july_procedure["id"],
        5,
    )
    assert (listed[may["id"]]["procedure_id"], listed[may["id"]]["day"]) == (june["id"], -12)

    # The clinic's view agrees.
    response = client.get(
        f"/v1/patients/{world.patient_a.id}/symptom-logs", headers=world.headers("clinician_a")
    )
    assert response.status_code == 200, response.text
    clinic = {item["id"]: item for item in response.json()["items"]}
    assert clinic[july["id"]]["procedure_id"] == july_procedure["id"]
    assert clinic[july["id"]]["day"] == 5
