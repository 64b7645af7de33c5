"""Symptom logs (check-ins): ingestion, idempotency, ODI, red-flag advice and alerts, corrections,
sync and range reads, the check-in schedule and the worsening alert."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select, update

from api.config import Settings
from models.patient import Patient
from models.symptom_log import Alert, SymptomLog
from tests.factories import World, auth, make_patient, patient_token

PROBLEM_JSON = "application/problem+json"
ME_LOGS = "/v1/me/symptom-logs"
SCHEDULE_DAYS = [
    *range(15),
    *range(21, 92, 7),
    *range(120, 361, 30),
    *range(450, 721, 90),
]


# --- helpers ---------------------------------------------------------------------------------


def log_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": "2026-09-15T09:30:00+02:00",
        "pain": 5,
    }
    return body | overrides


def full_log_body(**overrides: Any) -> dict[str, Any]:
    return (
        log_body(
            timezone="Europe/Berlin",
            pain=6,
            leg_pain=4,
            mobility=5,
            walking_minutes=30,
            odi_answers=[2] * 10,
            symptoms={"numbness": 3, "tingling": 2, "weakness": 1},
            side_effects=["injection_site_pain", "fatigue"],
            red_flags=["fever"],
            note="Stiff in the morning.\nBetter after a short walk.",
        )
        | overrides
    )


def at(day: date, hour: int = 10, offset: str = "+02:00") -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00{offset}"


def today_in(zone: str = "Europe/Berlin") -> date:
    return datetime.now(ZoneInfo(zone)).date()


def patient_logs_url(patient: Patient) -> str:
    return f"/v1/patients/{patient.id}/symptom-logs"


def post_log(
    client: TestClient, world: World, body: dict[str, Any], actor: str = "patient_a"
) -> httpx2.Response:
    return client.post(ME_LOGS, json=body, headers=world.headers(actor))


def create_log(
    client: TestClient, world: World, body: dict[str, Any], actor: str = "patient_a"
) -> dict[str, Any]:
    response = post_log(client, world, body, actor)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_procedure(
    client: TestClient,
    world: World,
    performed_on: date | str,
    patient: Patient | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": str(performed_on),
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
    } | extra
    target = patient or world.patient_a
    response = client.post(
        f"/v1/patients/{target.id}/procedures", json=body, headers=world.headers("clinician_a")
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def pointers(response: httpx2.Response) -> list[str]:
    body = assert_problem(response, 422)
    errors: list[dict[str, str]] = body.get("errors") or []
    assert errors, "a 422 names the offending fields"
    return [error["pointer"] for error in errors]


def fresh(db: Session, query: Any) -> list[Any]:
    """Rows as the database holds them now, without expiring the world's objects (reloading
    those later would open a transaction that, on SQLite, holds the write lock)."""
    rows = list(db.exec(query.execution_options(populate_existing=True)))
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return rows


def stored_logs(db: Session, patient: Patient | None = None) -> list[SymptomLog]:
    query = select(SymptomLog)
    if patient is not None:
        query = query.where(SymptomLog.patient_id == patient.id)
    return fresh(db, query)


def stored_alerts(db: Session, kind: str | None = None) -> list[Alert]:
    query = select(Alert)
    if kind is not None:
        query = query.where(Alert.kind == kind)
    return fresh(db, query)


def count_logs(db: Session) -> int:
    total: int = db.exec(select(func.count()).select_from(SymptomLog)).one()
    db.commit()
    return total


def list_alerts(client: TestClient, world: World, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/alerts", params=params, headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def walk(
    client: TestClient, url: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = params | ({"cursor": cursor} if cursor else {})
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params.get("limit", 50)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


# --- creating --------------------------------------------------------------------------------


def test_create_with_every_field_returns_the_stored_log(
    client: TestClient, world: World, db: Session
) -> None:
    procedure = create_procedure(client, world, "2026-09-01")
    body = full_log_body()
    before = datetime.now(UTC)
    response = post_log(client, world, body)
    after = datetime.now(UTC)
    assert response.status_code == 201, response.text
    log = response.json()

    for key, value in body.items():
        if key != "recorded_at":
            assert log[key] == value, key
    recorded = datetime.fromisoformat(log["recorded_at"])
    assert recorded == datetime.fromisoformat(body["recorded_at"])
    assert recorded.utcoffset() == timedelta(hours=2)
    assert log["utc_offset_minutes"] == 120
    uuid.UUID(log["id"])
    assert log["patient_id"] == str(world.patient_a.id)
    received = datetime.fromisoformat(log["received_at"])
    assert received.tzinfo is not None
    assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1)
    assert log["local_date"] == "2026-09-15"
    assert log["procedure_id"] == procedure["id"]
    assert log["day"] == 14
    assert log["odi"] == 40.0
    assert log["source"] == "app"
    assert log["corrects_id"] is None
    assert log["superseded_by_id"] is None

    [row] = stored_logs(db, world.patient_a)
    assert str(row.id) == log["id"]
    assert str(row.client_id) == body["client_id"]
    assert row.pain == 6
    assert row.leg_pain == 4
    assert row.mobility == 5
    assert row.walking_minutes == 30
    assert row.odi_answers == [2] * 10
    assert row.odi == 40.0
    assert row.symptoms == {"numbness": 3, "tingling": 2, "weakness": 1}
    assert row.side_effects == ["injection_site_pain", "fatigue"]
    assert row.red_flags == ["fever"]
    assert row.note == body["note"]
    assert row.timezone == "Europe/Berlin"
    assert row.local_date == date(2026, 9, 15)
    assert row.utc_offset_minutes == 120
    assert row.recorded_at == datetime(2026, 9, 15, 7, 30, tzinfo=UTC)
    assert row.source == "app"
    assert row.created_by_id is not None


def test_minimal_log_defaults(client: TestClient, world: World) -> None:
    log = create_log(client, world, log_body())
    assert log["timezone"] == "Europe/Berlin"  # the patient's
    for key in ("leg_pain", "mobility", "walking_minutes", "odi_answers", "odi", "symptoms"):
        assert log[key] is None, key
    assert log["side_effects"] == []
    assert log["red_flags"] == []
    assert log["note"] is None
    assert log["advice"] is None
    assert log["procedure_id"] is None
    assert log["day"] is None


@pytest.mark.parametrize(
    ("answers", "odi"),
    [
        ([2] * 10, 40.0),
        ([0] * 10, 0.0),
        ([5] * 10, 100.0),
        ([3, 2, 1, 0, 5, 4, 2, 3, 1, 0], 42.0),
        # One section unanswered: sum / (5 * 9) * 100, one decimal.
        ([3, 2, 1, 0, 5, 4, 2, 3, 1, None], 46.7),  # 21 / 45
        ([None, 1, 1, 1, 1, 1, 1, 1, 1, 1], 20.0),  # 9 / 45
        ([1, 0, 0, 0, 0, None, 0, 0, 0, 0], 2.2),  # 1 / 45
    ],
)
def test_odi_is_computed_from_the_answers(
    client: TestClient, world: World, answers: list[int | None], odi: float
) -> None:
    log = create_log(client, world, log_body(odi_answers=answers))
    assert log["odi"] == odi
    assert log["odi_answers"] == answers


def test_odi_with_two_sections_unanswered_is_422(
    client: TestClient, world: World, db: Session
) -> None:
    answers = [2, 2, None, 2, 2, 2, None, 2, 2, 2]
    response = post_log(client, world, log_body(odi_answers=answers))
    assert pointers(response) == ["/odi_answers"]
    assert count_logs(db) == 0


@pytest.mark.parametrize("length", [0, 9, 11])
def test_odi_needs_exactly_ten_answers(
    client: TestClient, world: World, db: Session, length: int
) -> None:
    response = post_log(client, world, log_body(odi_answers=[1] * length))
    assert "/odi_answers" in pointers(response)
    assert count_logs(db) == 0


@pytest.mark.parametrize(("index", "value"), [(0, 6), (3, 6), (9, -1), (5, "2"), (7, 2.5)])
def test_odi_answer_out_of_range_is_422_at_its_index(
    client: TestClient, world: World, index: int, value: Any
) -> None:
    answers: list[Any] = [1] * 10
    answers[index] = value
    response = post_log(client, world, log_body(odi_answers=answers))
    assert pointers(response) == [f"/odi_answers/{index}"]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"pain": 11}, "/pain"),
        ({"pain": -1}, "/pain"),
        ({"pain": "5"}, "/pain"),
        ({"pain": 5.5}, "/pain"),
        ({"pain": True}, "/pain"),
        ({"pain": None}, "/pain"),
        ({"leg_pain": 11}, "/leg_pain"),
        ({"mobility": -1}, "/mobility"),
        ({"walking_minutes": 1441}, "/walking_minutes"),
        ({"walking_minutes": -1}, "/walking_minutes"),
        ({"symptoms": {"numbness": 11}}, "/symptoms/numbness"),
        ({"symptoms": {"dizziness": 1}}, "/symptoms/dizziness"),
        ({"side_effects": ["nausea"]}, "/side_effects/0"),
        ({"red_flags": ["fever", "chest_pain"]}, "/red_flags/1"),
        ({"note": "x" * 2001}, "/note"),
        ({"note": "bad\x00byte"}, "/note"),
        ({"client_id": "not-a-uuid"}, "/client_id"),
        ({"id": str(uuid.uuid4())}, "/id"),
        ({"source": "clinic"}, "/source"),
        ({"patient_id": str(uuid.uuid4())}, "/patient_id"),
    ],
)
def test_invalid_fields_are_422_with_a_pointer(
    client: TestClient, world: World, db: Session, overrides: dict[str, Any], pointer: str
) -> None:
    response = post_log(client, world, log_body(**overrides))
    assert pointer in pointers(response)
    assert count_logs(db) == 0


@pytest.mark.parametrize("missing", ["client_id", "recorded_at", "pain"])
def test_required_fields(client: TestClient, world: World, missing: str) -> None:
    body = log_body()
    del body[missing]
    response = post_log(client, world, body)
    assert pointers(response) == [f"/{missing}"]


def test_walking_minutes_bounds_are_inclusive(client: TestClient, world: World) -> None:
    assert create_log(client, world, log_body(walking_minutes=0))["walking_minutes"] == 0
    assert create_log(client, world, log_body(walking_minutes=1440))["walking_minutes"] == 1440


# --- idempotency -----------------------------------------------------------------------------


def test_replaying_an_identical_log_returns_the_stored_one(
    client: TestClient, world: World, db: Session
) -> None:
    body = full_log_body()
    first = post_log(client, world, body)
    assert first.status_code == 201, first.text
    again = post_log(client, world, body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json() == first.json()
    # Same content with the keys in another order is still the same log.
    reordered = dict(reversed(list(body.items())))
    third = post_log(client, world, reordered)
    assert third.status_code == 200, third.text
    assert third.json()["id"] == first.json()["id"]
    assert count_logs(db) == 1


def test_same_client_id_with_different_content_is_409(
    client: TestClient, world: World, db: Session
) -> None:
    body = log_body(pain=5)
    original = create_log(client, world, body)
    response = post_log(client, world, body | {"pain": 6})
    assert_problem(response, 409)
    [row] = stored_logs(db)
    assert str(row.id) == original["id"]
    assert row.pain == 5


def test_client_ids_are_per_patient(client: TestClient, world: World, db: Session) -> None:
    body = log_body()
    mine = create_log(client, world, body, actor="patient_a")
    theirs = create_log(client, world, body, actor="patient_b")
    assert mine["id"] != theirs["id"]
    assert theirs["patient_id"] == str(world.patient_b.id)
    assert count_logs(db) == 2


def test_concurrent_identical_posts_store_one_row(
    client: TestClient, world: World, db: Session
) -> None:
    body = full_log_body(red_flags=[])
    headers = world.headers("patient_a")

    def send(_: int) -> httpx2.Response:
        return client.post(ME_LOGS, json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 201}, [r.text for r in responses if r.status_code >= 300]
    assert statuses.count(201) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert count_logs(db) == 1


# --- red flags and advice --------------------------------------------------------------------


def test_red_flags_get_urgent_advice_and_an_alert_at_once(
    client: TestClient, world: World, db: Session
) -> None:
    log = create_log(client, world, log_body(red_flags=["saddle_numbness", "new_weakness"]))
    advice = log["advice"]
    assert advice["urgent"] is True
    assert "medical help right away" in advice["message"].lower()

    [alert] = list_alerts(client, world, kind="red_flag", status="open")
    assert alert["patient_id"] == str(world.patient_a.id)
    assert alert["log_id"] == log["id"]
    assert alert["occurrences"] == 1
    assert set(alert["details"]["red_flags"]) >= {"saddle_numbness", "new_weakness"}
    # Written in the same request: the row is there, raised no earlier than the log arrived.
    [row] = stored_alerts(db, "red_flag")
    assert row.clinic_id == world.clinic_a.id
    assert row.raised_at >= datetime.fromisoformat(log["received_at"])


def test_a_log_without_red_flags_gets_no_advice_and_no_alert(
    client: TestClient, world: World, db: Session
) -> None:
    log = create_log(client, world, log_body(pain=9, side_effects=["headache"]))
    assert log["advice"] is None
    assert stored_alerts(db) == []
    assert list_alerts(client, world) == []


def test_a_replayed_red_flag_log_keeps_its_advice_and_raises_nothing_new(
    client: TestClient, world: World, db: Session
) -> None:
    body = log_body(red_flags=["fever"])
    create_log(client, world, body)
    again = post_log(client, world, body)
    assert again.status_code == 200, again.text
    assert again.json()["advice"]["urgent"] is True
    [alert] = stored_alerts(db, "red_flag")
    assert alert.occurrences == 1


def test_two_red_flag_logs_keep_one_open_alert(client: TestClient, world: World) -> None:
    create_log(client, world, log_body(red_flags=["fever"]))
    second = create_log(
        client,
        world,
        log_body(red_flags=["wound_infection_signs"], recorded_at=at(date(2026, 9, 16))),
    )
    [alert] = list_alerts(client, world, kind="red_flag")
    assert alert["status"] == "open"
    assert alert["occurrences"] == 2
    assert alert["log_id"] == second["id"]
    assert set(alert["details"]["red_flags"]) >= {"fever", "wound_infection_signs"}


def test_a_new_red_flag_after_resolving_opens_a_new_alert(client: TestClient, world: World) -> None:
    create_log(client, world, log_body(red_flags=["fever"]))
    [alert] = list_alerts(client, world, kind="red_flag")
    resolved = client.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"note": "Called the patient; seen in clinic."},
        headers=world.headers("clinician_a"),
    )
    assert resolved.status_code == 200, resolved.text
    create_log(client, world, log_body(red_flags=["fever"], recorded_at=at(date(2026, 9, 16))))
    alerts = list_alerts(client, world, kind="red_flag")
    assert sorted(a["status"] for a in alerts) == ["open", "resolved"]


def test_a_clinician_records_a_log_with_source_clinic(
    client: TestClient, world: World, db: Session
) -> None:
    body = full_log_body(red_flags=["fever"])
    response = client.post(
        patient_logs_url(world.patient_a), json=body, headers=world.headers("clinician_a")
    )
    assert response.status_code == 201, response.text
    log = response.json()
    assert log["source"] == "clinic"
    assert log["patient_id"] == str(world.patient_a.id)
    assert log["odi"] == 40.0
    [row] = stored_logs(db)
    assert row.source == "clinic"
    assert row.created_by_id == world.clinician_a.id
    # A red flag entered by the clinic raises the alert too.
    assert len(list_alerts(client, world, kind="red_flag")) == 1
    again = client.post(
        patient_logs_url(world.patient_a), json=body, headers=world.headers("clinician_a")
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == log["id"]


# --- corrections -----------------------------------------------------------------------------


def correct(
    client: TestClient,
    world: World,
    log_id: str,
    body: dict[str, Any],
    actor: str = "patient_a",
    patient: Patient | None = None,
) -> httpx2.Response:
    if actor.startswith("patient"):
        url = f"{ME_LOGS}/{log_id}/corrections"
    else:
        url = f"{patient_logs_url(patient or world.patient_a)}/{log_id}/corrections"
    return client.post(url, json=body, headers=world.headers(actor))


def test_a_correction_supersedes_the_original(
    client: TestClient, world: World, db: Session
) -> None:
    procedure = create_procedure(client, world, "2026-09-01")
    original = create_log(client, world, full_log_body(red_flags=[]))
    fix = {"client_id": str(uuid.uuid4()), "pain": 3}
    response = correct(client, world, original["id"], fix)
    assert response.status_code == 201, response.text
    corrected = response.json()

    assert corrected["id"] != original["id"]
    assert corrected["client_id"] == fix["client_id"]
    assert corrected["corrects_id"] == original["id"]
    assert corrected["superseded_by_id"] is None
    assert corrected["pain"] == 3
    assert corrected["source"] == "app"
    for key in (
        "patient_id",
        "leg_pain",
        "mobility",
        "walking_minutes",
        "odi_answers",
        "odi",
        "symptoms",
        "side_effects",
        "red_flags",
        "note",
        "timezone",
        "local_date",
        "utc_offset_minutes",
        "recorded_at",
    ):
        assert corrected[key] == original[key], key
    assert corrected["procedure_id"] == procedure["id"]
    assert corrected["day"] == 14

    listed = by_id(walk(client, ME_LOGS, world.headers("patient_a")))
    assert set(listed) == {original["id"], corrected["id"]}
    assert listed[original["id"]]["superseded_by_id"] == corrected["id"]
    assert listed[original["id"]]["pain"] == original["pain"]  # never edited in place
    assert listed[corrected["id"]]["superseded_by_id"] is None
    assert listed[corrected["id"]]["corrects_id"] == original["id"]

    clinic_view = by_id(
        walk(client, patient_logs_url(world.patient_a), world.headers("clinician_a"))
    )
    assert clinic_view[original["id"]]["superseded_by_id"] == corrected["id"]
    assert clinic_view[corrected["id"]]["corrects_id"] == original["id"]

    rows = {str(r.id): r for r in stored_logs(db)}
    assert rows[original["id"]].pain == 6
    assert str(rows[corrected["id"]].corrects_id) == original["id"]


def test_a_correction_can_change_time_and_odi(client: TestClient, world: World) -> None:
    original = create_log(client, world, log_body(odi_answers=[2] * 10))
    response = correct(
        client,
        world,
        original["id"],
        {
            "client_id": str(uuid.uuid4()),
            "recorded_at": "2026-09-14T21:00:00-04:00",
            "timezone": "America/New_York",
            "odi_answers": [1] * 10,
        },
    )
    assert response.status_code == 201, response.text
    corrected = response.json()
    assert corrected["local_date"] == "2026-09-14"
    assert corrected["timezone"] == "America/New_York"
    assert corrected["utc_offset_minutes"] == -240
    assert corrected["odi"] == 20.0
    assert corrected["pain"] == original["pain"]


def test_correcting_an_already_corrected_log_is_409(
    client: TestClient, world: World, db: Session
) -> None:
    original = create_log(client, world, log_body())
    first = correct(client, world, original["id"], {"client_id": str(uuid.uuid4()), "pain": 2})
    assert first.status_code == 201, first.text
    second = correct(client, world, original["id"], {"client_id": str(uuid.uuid4()), "pain": 3})
    assert_problem(second, 409)
    assert count_logs(db) == 2
    # The correction itself can be corrected.
    third = correct(client, world, first.json()["id"], {"client_id": str(uuid.uuid4()), "pain": 4})
    assert third.status_code == 201, third.text
    assert third.json()["corrects_id"] == first.json()["id"]


def test_replaying_a_correction_returns_it(client: TestClient, world: World, db: Session) -> None:
    original = create_log(client, world, log_body())
    fix = {"client_id": str(uuid.uuid4()), "pain": 2}
    first = correct(client, world, original["id"], fix)
    assert first.status_code == 201, first.text
    again = correct(client, world, original["id"], fix)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert count_logs(db) == 2
    # The same client_id with other content is a conflict.
    other = correct(client, world, original["id"], fix | {"pain": 1})
    assert_problem(other, 409)
    assert count_logs(db) == 2


def test_a_correction_adding_red_flags_raises_an_alert(
    client: TestClient, world: World, db: Session
) -> None:
    original = create_log(client, world, log_body())
    assert stored_alerts(db) == []
    response = correct(
        client,
        world,
        original["id"],
        {"client_id": str(uuid.uuid4()), "red_flags": ["bladder_bowel_change"]},
    )
    assert response.status_code == 201, response.text
    corrected = response.json()
    assert corrected["advice"]["urgent"] is True
    [alert] = list_alerts(client, world, kind="red_flag", status="open")
    assert alert["log_id"] == corrected["id"]


def test_a_clinician_corrects_a_log(client: TestClient, world: World) -> None:
    original = create_log(client, world, log_body(mobility=4))
    response = correct(
        client,
        world,
        original["id"],
        {"client_id": str(uuid.uuid4()), "mobility": 6},
        actor="clinician_a",
    )
    assert response.status_code == 201, response.text
    corrected = response.json()
    assert corrected["source"] == "clinic"
    assert corrected["corrects_id"] == original["id"]
    assert corrected["mobility"] == 6
    assert corrected["pain"] == original["pain"]


def test_correcting_another_patients_log_is_404(
    client: TestClient, world: World, db: Session
) -> None:
    theirs = create_log(client, world, log_body(), actor="patient_b")
    response = correct(client, world, theirs["id"], {"client_id": str(uuid.uuid4()), "pain": 1})
    assert_problem(response, 404)
    # Through the clinic route: a log of another patient of the same clinic is not found either.
    neighbour = make_patient(db, clinic=world.clinic_a)
    response = correct(
        client,
        world,
        theirs["id"],
        {"client_id": str(uuid.uuid4()), "pain": 1},
        actor="clinician_a",
        patient=neighbour,
    )
    assert_problem(response, 404)
    unknown = correct(client, world, str(uuid.uuid4()), {"client_id": str(uuid.uuid4()), "pain": 1})
    assert_problem(unknown, 404)
    assert count_logs(db) == 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"pain": 2}, "/client_id"),
        ({"client_id": "x", "pain": 2}, "/client_id"),
        ({"client_id": "00000000-0000-4000-8000-000000000000", "pain": 11}, "/pain"),
        ({"client_id": "00000000-0000-4000-8000-000000000000", "corrects_id": "x"}, "/corrects_id"),
        (
            {
                "client_id": "00000000-0000-4000-8000-000000000000",
                "recorded_at": "2026-09-15T10:00",
            },
            "/recorded_at",
        ),
    ],
)
def test_invalid_corrections_are_422(
    client: TestClient, world: World, db: Session, body: dict[str, Any], pointer: str
) -> None:
    original = create_log(client, world, log_body())
    response = correct(client, world, original["id"], body)
    assert pointer in pointers(response)
    assert count_logs(db) == 1


# --- reads -----------------------------------------------------------------------------------


def test_sync_since_a_watermark_returns_only_newer_logs(client: TestClient, world: World) -> None:
    old = [create_log(client, world, log_body()) for _ in range(2)]
    watermark = old[-1]["received_at"]
    new = [create_log(client, world, log_body()) for _ in range(2)]
    headers = world.headers("patient_a")

    items = walk(client, ME_LOGS, headers, since=watermark)
    assert [i["id"] for i in items] == [n["id"] for n in new]
    assert all(
        datetime.fromisoformat(i["received_at"]) > datetime.fromisoformat(watermark) for i in items
    )
    everything = walk(client, ME_LOGS, headers)
    assert [i["id"] for i in everything] == [log["id"] for log in old + new]
    # The watermark in another offset names the same instant.
    shifted = datetime.fromisoformat(watermark).astimezone(ZoneInfo("America/Los_Angeles"))
    items = walk(client, ME_LOGS, headers, since=shifted.isoformat())
    assert [i["id"] for i in items] == [n["id"] for n in new]


def test_sync_shows_only_the_callers_logs(client: TestClient, world: World) -> None:
    mine = create_log(client, world, log_body())
    create_log(client, world, log_body(), actor="patient_b")
    items = walk(client, ME_LOGS, world.headers("patient_a"))
    assert [i["id"] for i in items] == [mine["id"]]


def test_sync_since_without_an_offset_is_422(client: TestClient, world: World) -> None:
    response = client.get(
        ME_LOGS, params={"since": "2026-09-15T10:00:00"}, headers=world.headers("patient_a")
    )
    assert pointers(response) == ["since"]


def test_sync_pages_walk_every_log_once_in_received_order_under_ties(
    client: TestClient, world: World, db: Session
) -> None:
    created = [create_log(client, world, log_body()) for _ in range(7)]
    tied = [uuid.UUID(c["id"]) for c in created[1:5]]
    same_instant = datetime(2026, 9, 15, 8, 0, 0, 123456, tzinfo=UTC)
    db.exec(update(SymptomLog).where(col(SymptomLog.id).in_(tied)).values(received_at=same_instant))
    db.commit()
    rows = stored_logs(db)
    expected = [str(r.id) for r in sorted(rows, key=lambda r: (r.received_at, r.id))]

    items = walk(client, ME_LOGS, world.headers("patient_a"), limit=2)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == 7
    assert ids == expected
    received = [datetime.fromisoformat(i["received_at"]) for i in items]
    assert received == sorted(received)
    # Walking again gives the same order: stable under ties.
    again = walk(client, ME_LOGS, world.headers("patient_a"), limit=2)
    assert [i["id"] for i in again] == ids
    # Pages of 1 and of 3 agree.
    assert [i["id"] for i in walk(client, ME_LOGS, world.headers("patient_a"), limit=1)] == ids
    assert [i["id"] for i in walk(client, ME_LOGS, world.headers("patient_a"), limit=3)] == ids


def test_a_tampered_cursor_is_422(client: TestClient, world: World) -> None:
    response = client.get(
        ME_LOGS, params={"cursor": "not-a-cursor"}, headers=world.headers("patient_a")
    )
    assert pointers(response) == ["cursor"]


def test_clinic_reads_filter_on_local_date_inclusively(client: TestClient, world: World) -> None:
    logs = {}
    for day in (1, 2, 3, 4):
        # Late in the evening in Berlin: the UTC date would be the same, the local date counts.
        logs[day] = create_log(
            client, world, log_body(recorded_at=f"2026-06-0{day}T23:30:00+02:00")
        )
    url = patient_logs_url(world.patient_a)
    headers = world.headers("clinician_a")
    items = walk(client, url, headers, **{"from": "2026-06-02", "to": "2026-06-03"})
    assert [i["id"] for i in items] == [logs[2]["id"], logs[3]["id"]]
    assert [i["local_date"] for i in items] == ["2026-06-02", "2026-06-03"]
    assert [i["id"] for i in walk(client, url, headers, **{"from": "2026-06-04"})] == [
        logs[4]["id"]
    ]
    assert [i["id"] for i in walk(client, url, headers, to="2026-06-01")] == [logs[1]["id"]]
    assert walk(client, url, headers, **{"from": "2026-06-05"}) == []
    paged = walk(client, url, headers, limit=1)
    assert [i["id"] for i in paged] == [logs[d]["id"] for d in (1, 2, 3, 4)]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ],
)
def test_bad_clinic_read_parameters_are_422(
    client: TestClient, world: World, params: dict[str, Any], pointer: str
) -> None:
    response = client.get(
        patient_logs_url(world.patient_a), params=params, headers=world.headers("clinician_a")
    )
    assert pointers(response) == [pointer]


# --- check-in schedule -----------------------------------------------------------------------


def check_ins(client: TestClient, world: World, actor: str = "patient_a") -> dict[str, Any]:
    response = client.get("/v1/me/check-ins", headers=world.headers(actor))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_check_ins_due_today_on_day_ten_without_logs(client: TestClient, world: World) -> None:
    today = today_in()
    performed = today - timedelta(days=10)
    procedure = create_procedure(client, world, performed)
    body = check_ins(client, world)
    assert body["next_due_on"] == today.isoformat()
    assert body["day"] == 10
    assert body["next_day"] == 10
    assert body["procedure_id"] == procedure["id"]
    assert [s["day"] for s in body["schedule"]] == SCHEDULE_DAYS
    for item in body["schedule"]:
        assert item["due_on"] == (performed + timedelta(days=item["day"])).isoformat()
        assert item["logged"] is False


def test_check_ins_after_logging_today_is_due_tomorrow(client: TestClient, world: World) -> None:
    today = today_in()
    performed = today - timedelta(days=10)
    create_procedure(client, world, performed)
    now = datetime.now(ZoneInfo("Europe/Berlin")) - timedelta(minutes=1)
    create_log(client, world, log_body(recorded_at=now.isoformat()))
    body = check_ins(client, world)
    assert body["next_due_on"] == (today + timedelta(days=1)).isoformat()
    assert body["next_day"] == 11
    logged = [s["day"] for s in body["schedule"] if s["logged"]]
    assert logged == [10]


def test_check_ins_in_the_weekly_phase(client: TestClient, world: World) -> None:
    today = today_in()
    performed = today - timedelta(days=16)
    create_procedure(client, world, performed)
    body = check_ins(client, world)
    assert body["day"] == 16
    assert body["next_day"] == 21
    assert body["next_due_on"] == (performed + timedelta(days=21)).isoformat()


def test_check_ins_follow_the_latest_procedure(client: TestClient, world: World) -> None:
    today = today_in()
    create_procedure(client, world, today - timedelta(days=200))
    latest = create_procedure(client, world, today - timedelta(days=3))
    body = check_ins(client, world)
    assert body["procedure_id"] == latest["id"]
    assert body["day"] == 3
    assert body["next_due_on"] == today.isoformat()


def test_check_ins_without_a_procedure(client: TestClient, world: World) -> None:
    create_log(client, world, log_body())
    body = check_ins(client, world)
    assert body["next_due_on"] is None
    assert body["schedule"] == []


def test_check_ins_use_the_patients_own_day(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    """A patient far from Berlin gets 'today' in their own zone."""
    zone = "Pacific/Kiritimati"  # UTC+14: often a day ahead of Berlin
    patient = make_patient(db, clinic=world.clinic_a, timezone=zone)
    token = patient_token(db, settings, patient)
    today = today_in(zone)
    create_procedure(client, world, today - timedelta(days=5), patient=patient)
    response = client.get("/v1/me/check-ins", headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.json()["day"] == 5
    assert response.json()["next_due_on"] == today.isoformat()


# --- worsening -------------------------------------------------------------------------------

PERFORMED = date(2026, 9, 1)


def on_day(day: int) -> str:
    return at(PERFORMED + timedelta(days=day))


def log_on(client: TestClient, world: World, day: int, pain: int) -> dict[str, Any]:
    log = create_log(client, world, log_body(recorded_at=on_day(day), pain=pain))
    assert log["day"] == day
    return log


def worsening_alerts(client: TestClient, world: World) -> list[dict[str, Any]]:
    return list_alerts(client, world, kind="worsening")


def test_two_consecutive_late_logs_at_baseline_plus_two_raise_one_worsening_alert(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED, baseline={"pain": 4})
    log_on(client, world, 20, 6)
    assert worsening_alerts(client, world) == []
    second = log_on(client, world, 21, 7)
    [alert] = worsening_alerts(client, world)
    assert alert["status"] == "open"
    assert alert["patient_id"] == str(world.patient_a.id)
    assert alert["log_id"] == second["id"]
    log_on(client, world, 28, 8)  # still worse: the open alert is bumped, not duplicated
    alerts = worsening_alerts(client, world)
    assert [a["status"] for a in alerts] == ["open"]


def test_no_worsening_alert_when_the_second_log_is_below_the_threshold(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED, baseline={"pain": 4})
    log_on(client, world, 20, 6)
    log_on(client, world, 21, 5)
    log_on(client, world, 28, 6)  # not consecutive with day 20
    assert worsening_alerts(client, world) == []


def test_logs_up_to_day_fourteen_do_not_count_for_worsening(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED, baseline={"pain": 4})
    log_on(client, world, 13, 9)
    log_on(client, world, 14, 9)
    log_on(client, world, 15, 9)
    assert worsening_alerts(client, world) == []
    log_on(client, world, 16, 9)
    assert len(worsening_alerts(client, world)) == 1


def test_worsening_uses_the_median_of_pre_procedure_logs_as_baseline(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED)  # no explicit baseline
    log_on(client, world, -61, 10)  # outside the window
    for day, pain in ((-60, 2), (-30, 3), (-1, 4)):  # median 3
        log_on(client, world, day, pain)
    log_on(client, world, 0, 10)  # outside the window
    log_on(client, world, 20, 5)
    assert worsening_alerts(client, world) == []
    log_on(client, world, 21, 5)  # 5 >= 3 + 2 twice in a row
    assert len(worsening_alerts(client, world)) == 1


def test_worsening_below_a_logged_baseline_plus_two_raises_nothing(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED)
    for day, pain in ((-40, 2), (-20, 3), (-5, 4)):
        log_on(client, world, day, pain)
    log_on(client, world, 20, 4)
    log_on(client, world, 21, 4)
    assert worsening_alerts(client, world) == []


def test_no_baseline_means_no_worsening_alert(client: TestClient, world: World) -> None:
    create_procedure(client, world, PERFORMED)
    log_on(client, world, 20, 10)
    log_on(client, world, 21, 10)
    assert worsening_alerts(client, world) == []


def test_a_correction_counts_instead_of_the_log_it_corrects(
    client: TestClient, world: World
) -> None:
    create_procedure(client, world, PERFORMED, baseline={"pain": 4})
    first = log_on(client, world, 20, 3)
    log_on(client, world, 21, 7)
    assert worsening_alerts(client, world) == []
    response = correct(client, world, first["id"], {"client_id": str(uuid.uuid4()), "pain": 8})
    assert response.status_code == 201, response.text
    assert len(worsening_alerts(client, world)) == 1
