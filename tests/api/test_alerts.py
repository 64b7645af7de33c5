"""Clinic alerts over HTTP: raised by check-ins in the log's own transaction, one open alert per
patient and kind, listed with filters and stable pages, acknowledged and resolved, and kept
inside the clinic (API.md "Dashboard reads", CLINICAL.md "Red flags and alerts")."""

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.services.audit import Audit
from models.audit import AuditEvent
from models.patient import Patient
from models.symptom_log import Alert, AlertKind, AlertStatus, SymptomLog
from tests.factories import World, make_patient

PROBLEM_JSON = "application/problem+json"
PERFORMED_ON = date(2026, 9, 1)


# --- helpers -----------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def add_procedure(
    client: TestClient,
    world: World,
    *,
    performed_on: date = PERFORMED_ON,
    baseline: dict[str, Any] | None = None,
    patient: Patient | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": performed_on.isoformat(),
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
    }
    if baseline is not None:
        body["baseline"] = baseline
    patient = patient or world.patient_a
    response = client.post(
        f"/v1/patients/{patient.id}/procedures", headers=world.headers("clinician_a"), json=body
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def on_day(day: int, hour: int = 9) -> str:
    """09:00 Berlin time on `day` after PERFORMED_ON (the world's patients live in Berlin)."""
    local = PERFORMED_ON + timedelta(days=day)
    offset = "+02:00" if local < date(2026, 10, 25) else "+01:00"
    return f"{local.isoformat()}T{hour:02d}:00:00{offset}"


def log(
    client: TestClient,
    world: World,
    *,
    pain: int = 3,
    recorded_at: str = "2026-10-10T09:00:00+02:00",
    red_flags: list[str] | None = None,
    actor: str = "patient_a",
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": recorded_at,
        "pain": pain,
    }
    if red_flags is not None:
        body["red_flags"] = red_flags
    return client.post("/v1/me/symptom-logs", headers=world.headers(actor), json=body | extra)


def created_log(client: TestClient, world: World, **kwargs: Any) -> dict[str, Any]:
    response = log(client, world, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def list_alerts(
    client: TestClient, world: World, actor: str = "clinician_a", **params: Any
) -> list[dict[str, Any]]:
    response = client.get("/v1/alerts", headers=world.headers(actor), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    items: list[dict[str, Any]] = body["items"]
    return items


def only_alert(client: TestClient, world: World, **params: Any) -> dict[str, Any]:
    items = list_alerts(client, world, **params)
    assert len(items) == 1, items
    return items[0]


def acknowledge(
    client: TestClient, world: World, alert_id: str, actor: str = "clinician_a", **kwargs: Any
) -> httpx.Response:
    kwargs.setdefault("json", {})
    return client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=world.headers(actor), **kwargs)


def resolve(
    client: TestClient, world: World, alert_id: str, actor: str = "clinician_a", **kwargs: Any
) -> httpx.Response:
    kwargs.setdefault("json", {})
    return client.post(f"/v1/alerts/{alert_id}/resolve", headers=world.headers(actor), **kwargs)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def fetch(db: Session, query: Any) -> list[Any]:
    """Read through the test session and end its transaction (SQLite: do not hold the lock)."""
    rows = list(db.exec(query))
    db.commit()
    return rows


def insert_alert(
    db: Session,
    patient: Patient,
    *,
    kind: AlertKind = AlertKind.red_flag,
    status: AlertStatus = AlertStatus.open,
    raised_at: datetime | None = None,
) -> Alert:
    raised_at = raised_at or datetime.now(UTC)
    alert = Alert(
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        kind=kind,
        status=status,
        raised_at=raised_at,
        last_raised_at=raised_at,
        details={},
        acknowledged_at=raised_at if status != AlertStatus.open else None,
        resolved_at=raised_at if status == AlertStatus.resolved else None,
    )
    db.add(alert)
    db.commit()
    return alert


# --- red flags ---------------------------------------------------------------------------------


def test_a_red_flag_log_raises_an_open_alert(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    stored = created_log(client, world, pain=5, red_flags=["fever"])
    assert stored["advice"]["urgent"] is True

    alert = only_alert(client, world, status="open", kind="red_flag")
    assert alert["kind"] == "red_flag"
    assert alert["status"] == "open"
    assert alert["patient_id"] == str(world.patient_a.id)
    assert alert["details"]["red_flags"] == ["fever"]
    assert alert["log_id"] == stored["id"]
    assert alert["occurrences"] == 1
    assert alert["acknowledged_at"] is None
    assert alert["resolved_at"] is None
    raised_at = instant(alert["raised_at"])
    assert raised_at.tzinfo is not None
    assert abs(datetime.now(UTC) - raised_at) < timedelta(minutes=5)


def test_a_red_flag_before_any_procedure_still_raises_an_alert(
    client: TestClient, world: World
) -> None:
    stored = created_log(client, world, red_flags=["saddle_numbness", "bladder_bowel_change"])
    alert = only_alert(client, world, status="open", kind="red_flag")
    assert alert["kind"] == "red_flag"
    assert alert["log_id"] == stored["id"]
    assert sorted(alert["details"]["red_flags"]) == ["bladder_bowel_change", "saddle_numbness"]


def test_a_log_without_red_flags_raises_nothing(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    created_log(client, world, pain=5)
    created_log(client, world, pain=4, red_flags=[], recorded_at="2026-10-11T09:00:00+02:00")
    # The clock's own alerts (a check-in missed since) are not the log's doing.
    assert list_alerts(client, world, kind="red_flag") == []
    assert list_alerts(client, world, kind="worsening") == []


def test_a_second_red_flag_bumps_the_open_alert(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    created_log(client, world, red_flags=["fever"])
    first = only_alert(client, world, status="open", kind="red_flag")
    second_log = created_log(
        client,
        world,
        red_flags=["new_weakness", "fever"],
        recorded_at="2026-10-11T09:00:00+02:00",
    )

    alert = only_alert(client, world, status="open", kind="red_flag")
    assert alert["id"] == first["id"]
    assert alert["occurrences"] == 2
    assert sorted(alert["details"]["red_flags"]) == ["fever", "new_weakness"]
    assert alert["log_id"] == second_log["id"]
    assert alert["raised_at"] == first["raised_at"]
    assert instant(alert["last_raised_at"]) >= instant(first["last_raised_at"])
    assert len(list_alerts(client, world, kind="red_flag")) == 1


def test_concurrent_red_flags_share_one_open_alert(client: TestClient, world: World) -> None:
    """Simultaneous check-ins of one patient: one open alert counting every one of them."""
    writers = 6
    barrier = threading.Barrier(writers)
    statuses: list[int] = []
    flags = ["fever", "new_weakness", "saddle_numbness", "severe_headache", "fever", "fever"]

    def post(i: int) -> None:
        barrier.wait(timeout=10)
        response = log(
            client, world, red_flags=[flags[i]], recorded_at=f"2026-10-{10 + i}T09:00:00+02:00"
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [201] * writers
    alert = only_alert(client, world)
    assert alert["status"] == "open"
    assert alert["occurrences"] == writers
    assert sorted(alert["details"]["red_flags"]) == sorted(set(flags))


def test_a_replayed_red_flag_log_does_not_bump_the_alert(client: TestClient, world: World) -> None:
    body = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": "2026-10-10T09:00:00+02:00",
        "pain": 6,
        "red_flags": ["fever"],
    }
    headers = world.headers("patient_a")
    assert client.post("/v1/me/symptom-logs", headers=headers, json=body).status_code == 201
    assert client.post("/v1/me/symptom-logs", headers=headers, json=body).status_code == 200
    assert only_alert(client, world)["occurrences"] == 1


# --- acknowledge and resolve ---------------------------------------------------------------------


def test_acknowledge_then_a_new_red_flag_opens_a_new_alert(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    created_log(client, world, red_flags=["fever"])
    first = only_alert(client, world, status="open", kind="red_flag")

    response = acknowledge(client, world, first["id"])
    assert response.status_code == 200, response.text
    acknowledged = response.json()
    assert acknowledged["id"] == first["id"]
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_at"] is not None
    assert instant(acknowledged["acknowledged_at"]) >= instant(first["raised_at"])
    assert acknowledged["resolved_at"] is None
    assert list_alerts(client, world, status="open", kind="red_flag") == []

    new_log = created_log(
        client, world, red_flags=["wound_infection_signs"], recorded_at="2026-10-12T09:00:00+02:00"
    )
    opened = only_alert(client, world, status="open", kind="red_flag")
    assert opened["id"] != first["id"]
    assert opened["occurrences"] == 1
    assert opened["log_id"] == new_log["id"]
    assert opened["details"]["red_flags"] == ["wound_infection_signs"]
    still = only_alert(client, world, status="acknowledged")
    assert still["id"] == first["id"]
    assert still["details"]["red_flags"] == ["fever"]
    assert still["occurrences"] == 1
    assert len(list_alerts(client, world, kind="red_flag")) == 2


@pytest.mark.parametrize(
    ("path", "status"), [("acknowledge", "acknowledged"), ("resolve", "resolved")]
)
def test_no_body_is_needed(client: TestClient, world: World, path: str, status: str) -> None:
    """API.md gives acknowledge no body and resolve an optional note: a client may send none."""
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    response = client.post(f"/v1/alerts/{alert['id']}/{path}", headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


def test_acknowledge_twice_keeps_the_first_time(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    first = acknowledge(client, world, alert["id"])
    again = acknowledge(client, world, alert["id"])
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "acknowledged"
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]


def test_resolve_then_acknowledge_is_a_conflict_and_resolve_is_idempotent(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world, status="open", kind="red_flag")

    response = resolve(client, world, alert["id"], json={"note": "Called the patient; seen in ER"})
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["id"] == alert["id"]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert instant(resolved["resolved_at"]) >= instant(alert["raised_at"])
    assert resolved["acknowledged_at"] is not None  # resolving implies someone looked at it
    assert list_alerts(client, world, status="open", kind="red_flag") == []
    assert only_alert(client, world, status="resolved", kind="red_flag")["id"] == alert["id"]

    assert_problem(acknowledge(client, world, alert["id"]), 409)
    assert only_alert(client, world, kind="red_flag")["status"] == "resolved"

    again = resolve(client, world, alert["id"], json={"note": "again"})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "resolved"
    assert again.json()["resolved_at"] == resolved["resolved_at"]


def test_resolve_an_acknowledged_alert(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    acknowledged = acknowledge(client, world, alert["id"]).json()
    response = resolve(client, world, alert["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "resolved"
    assert body["acknowledged_at"] == acknowledged["acknowledged_at"]
    assert body["resolved_at"] is not None


def test_resolving_opens_the_way_for_a_new_alert(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    assert resolve(client, world, alert["id"]).status_code == 200
    created_log(client, world, red_flags=["fever"], recorded_at="2026-10-11T09:00:00+02:00")
    opened = only_alert(client, world, status="open")
    assert opened["id"] != alert["id"]


def test_admin_may_acknowledge_and_resolve(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world, actor="admin")
    assert acknowledge(client, world, alert["id"], actor="admin").status_code == 200
    assert resolve(client, world, alert["id"], actor="admin").status_code == 200


@pytest.mark.parametrize("path", ["acknowledge", "resolve"])
@pytest.mark.parametrize(
    "body",
    [
        {"status": "resolved"},
        {"note": "ok", "acknowledged_at": "2026-10-10T09:00:00+02:00"},
        {"resolved_by_id": str(uuid.uuid4())},
    ],
)
def test_unknown_fields_in_the_body_are_rejected(
    client: TestClient, world: World, path: str, body: dict[str, Any]
) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    response = client.post(
        f"/v1/alerts/{alert['id']}/{path}", headers=world.headers("clinician_a"), json=body
    )
    problem = assert_problem(response, 422)
    assert problem.get("errors")
    assert only_alert(client, world)["status"] == "open"  # nothing changed


def test_a_note_over_2000_characters_is_rejected(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)
    assert_problem(resolve(client, world, alert["id"], json={"note": "x" * 2001}), 422)
    assert only_alert(client, world)["status"] == "open"


def test_an_unknown_alert_is_404(client: TestClient, world: World) -> None:
    missing = uuid.uuid4()
    assert_problem(acknowledge(client, world, str(missing)), 404)
    assert_problem(resolve(client, world, str(missing)), 404)


# --- filters and pages -----------------------------------------------------------------------


def test_filters_by_status_kind_and_patient(client: TestClient, world: World, db: Session) -> None:
    other = make_patient(db, clinic=world.clinic_a)
    a_red = insert_alert(db, world.patient_a, kind=AlertKind.red_flag)
    a_worse = insert_alert(
        db, world.patient_a, kind=AlertKind.worsening, status=AlertStatus.acknowledged
    )
    a_missed = insert_alert(
        db, world.patient_a, kind=AlertKind.missed_check_in, status=AlertStatus.resolved
    )
    other_red = insert_alert(db, other, kind=AlertKind.red_flag)
    other_milestone = insert_alert(db, other, kind=AlertKind.milestone_not_met)
    b_red = insert_alert(db, world.patient_b, kind=AlertKind.red_flag)

    def ids(**params: Any) -> set[str]:
        return {item["id"] for item in list_alerts(client, world, **params)}

    clinic_a = {str(a.id) for a in (a_red, a_worse, a_missed, other_red, other_milestone)}
    assert ids() == clinic_a
    assert ids(status="open") == {str(a_red.id), str(other_red.id), str(other_milestone.id)}
    assert ids(status="acknowledged") == {str(a_worse.id)}
    assert ids(status="resolved") == {str(a_missed.id)}
    assert ids(kind="red_flag") == {str(a_red.id), str(other_red.id)}
    assert ids(kind="milestone_not_met") == {str(other_milestone.id)}
    assert ids(patient_id=str(world.patient_a.id)) == {
        str(a_red.id),
        str(a_worse.id),
        str(a_missed.id),
    }
    assert ids(patient_id=str(other.id), kind="red_flag", status="open") == {str(other_red.id)}
    assert ids(patient_id=str(world.patient_a.id), status="open", kind="worsening") == set()
    # Another clinic's patient: nothing, never an error that reveals it.
    assert ids(patient_id=str(world.patient_b.id)) == set()
    # The admin sees every clinic.
    admin = {item["id"] for item in list_alerts(client, world, actor="admin")}
    assert admin == clinic_a | {str(b_red.id)}


@pytest.mark.parametrize(
    ("name", "value"),
    [("status", "closed"), ("kind", "fever"), ("patient_id", "not-a-uuid"), ("limit", "0")],
)
def test_invalid_filters_are_422(client: TestClient, world: World, name: str, value: str) -> None:
    response = client.get("/v1/alerts", headers=world.headers("clinician_a"), params={name: value})
    body = assert_problem(response, 422)
    assert name in [error["pointer"] for error in body.get("errors") or []]


def _walk(client: TestClient, world: World, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        query = params | {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/alerts", headers=world.headers("clinician_a"), params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 1
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    pytest.fail("pagination did not end")


def test_pages_of_one_are_newest_first_and_stable_under_ties(
    client: TestClient, world: World, db: Session
) -> None:
    tie = datetime(2026, 10, 10, 7, 0, tzinfo=UTC)  # whole second: no microseconds
    patients = [world.patient_a] + [make_patient(db, clinic=world.clinic_a) for _ in range(4)]
    tied = [insert_alert(db, p, raised_at=tie) for p in patients]
    tied += [insert_alert(db, world.patient_a, kind=AlertKind.worsening, raised_at=tie)]
    newest = insert_alert(
        db, patients[1], kind=AlertKind.worsening, raised_at=tie + timedelta(seconds=1)
    )
    oldest = insert_alert(
        db, patients[2], kind=AlertKind.worsening, raised_at=tie - timedelta(microseconds=1)
    )
    insert_alert(db, world.patient_b, raised_at=tie)  # another clinic: never listed

    walked = _walk(client, world)
    ids = [item["id"] for item in walked]
    assert len(ids) == len(set(ids)) == len(tied) + 2
    assert ids[0] == str(newest.id)
    assert ids[-1] == str(oldest.id)
    assert set(ids[1:-1]) == {str(a.id) for a in tied}
    times = [instant(item["raised_at"]) for item in walked]
    assert times == sorted(times, reverse=True)
    # The same order as one big page, and again on a second walk.
    assert ids == [item["id"] for item in list_alerts(client, world, limit=500)]
    assert ids == [item["id"] for item in _walk(client, world)]


def test_pages_respect_the_filters(client: TestClient, world: World, db: Session) -> None:
    tie = datetime(2026, 10, 10, 7, 0, 0, 123456, tzinfo=UTC)
    patients = [make_patient(db, clinic=world.clinic_a) for _ in range(3)]
    wanted = [insert_alert(db, p, raised_at=tie) for p in patients]
    for p in patients:
        insert_alert(db, p, kind=AlertKind.worsening, raised_at=tie)
    walked = _walk(client, world, kind="red_flag", status="open")
    assert sorted(item["id"] for item in walked) == sorted(str(a.id) for a in wanted)


def test_a_foreign_cursor_is_rejected(client: TestClient, world: World) -> None:
    response = client.get(
        "/v1/alerts", headers=world.headers("clinician_a"), params={"cursor": "not-ours"}
    )
    assert_problem(response, 422)


# --- one transaction with the log ----------------------------------------------------------------


def test_the_alert_commits_in_the_same_transaction_as_the_log(
    app: FastAPI,
    client: TestClient,
    world: World,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Audit.record
    pending_alerts: list[Any] = []

    def failing_record(self: Audit, connection: Connection, **kwargs: Any) -> None:
        if self.action == "symptom_log.create_own":
            # Written in this transaction, not yet committed: the failure must take it back.
            pending_alerts.extend(connection.execute(select(Alert.id)).all())
            raise RuntimeError("the audit store failed")
        original(self, connection, **kwargs)

    client_id = str(uuid.uuid4())
    body = {
        "client_id": client_id,
        "recorded_at": "2026-10-10T09:00:00+02:00",
        "pain": 7,
        "red_flags": ["fever"],
    }
    monkeypatch.setattr(Audit, "record", failing_record)
    with TestClient(app, raise_server_exceptions=False) as failing:
        response = failing.post(
            "/v1/me/symptom-logs", headers=world.headers("patient_a"), json=body
        )
    monkeypatch.undo()

    problem = assert_problem(response, 500)
    assert problem.get("request_id")
    assert "Traceback" not in response.text
    assert pending_alerts, "the alert was not in the transaction when it failed"
    assert fetch(db, select(SymptomLog).where(SymptomLog.patient_id == world.patient_a.id)) == []
    assert fetch(db, select(Alert)) == []

    # Nothing half-done is left behind: the same check-in goes through once the fault is gone.
    retry = client.post("/v1/me/symptom-logs", headers=world.headers("patient_a"), json=body)
    assert retry.status_code == 201, retry.text
    alert = only_alert(client, world, status="open")
    assert alert["log_id"] == retry.json()["id"]
    assert alert["occurrences"] == 1
    stored = fetch(db, select(SymptomLog).where(SymptomLog.patient_id == world.patient_a.id))
    assert [row.client_id for row in stored] == [uuid.UUID(client_id)]


def test_a_bumped_alert_rolls_back_with_its_log(
    app: FastAPI,
    client: TestClient,
    world: World,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created_log(client, world, red_flags=["fever"])
    before = only_alert(client, world)
    original = Audit.record

    def failing_record(self: Audit, session: Session, **kwargs: Any) -> None:
        if self.action == "symptom_log.create_own":
            raise RuntimeError("the audit store failed")
        original(self, session, **kwargs)

    monkeypatch.setattr(Audit, "record", failing_record)
    with TestClient(app, raise_server_exceptions=False) as failing:
        response = log(
            failing,
            world,
            red_flags=["new_weakness"],
            recorded_at="2026-10-11T09:00:00+02:00",
        )
    monkeypatch.undo()
    assert_problem(response, 500)

    after = only_alert(client, world)
    assert after["id"] == before["id"]
    assert after["occurrences"] == 1
    assert after["details"]["red_flags"] == ["fever"]
    assert after["log_id"] == before["log_id"]
    assert len(fetch(db, select(SymptomLog))) == 1


# --- the database guarantees one open alert per patient and kind ---------------------------------


def test_the_partial_unique_index_allows_closed_and_other_alerts(world: World, db: Session) -> None:
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag)
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag, status=AlertStatus.acknowledged)
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag, status=AlertStatus.resolved)
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag, status=AlertStatus.resolved)
    insert_alert(db, world.patient_a, kind=AlertKind.worsening)
    insert_alert(db, world.patient_b, kind=AlertKind.red_flag)
    assert len(fetch(db, select(Alert))) == 6


def test_the_partial_unique_index_refuses_a_second_open_alert(world: World, db: Session) -> None:
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag)
    with pytest.raises(IntegrityError):
        insert_alert(db, world.patient_a, kind=AlertKind.red_flag)
    db.rollback()
    rows = fetch(db, select(Alert).where(Alert.patient_id == world.patient_a.id))
    assert len(rows) == 1


def test_the_partial_unique_index_refuses_two_open_alerts_in_one_flush(
    world: World, db: Session
) -> None:
    now = datetime.now(UTC)
    for _ in range(2):
        db.add(
            Alert(
                patient_id=world.patient_a.id,
                clinic_id=world.clinic_a.id,
                kind=AlertKind.worsening,
                status=AlertStatus.open,
                raised_at=now,
                last_raised_at=now,
                details={},
            )
        )
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    assert fetch(db, select(Alert)) == []


def test_reopening_an_acknowledged_alert_beside_an_open_one_is_refused(
    world: World, db: Session
) -> None:
    insert_alert(db, world.patient_a, kind=AlertKind.red_flag)
    old = insert_alert(
        db, world.patient_a, kind=AlertKind.red_flag, status=AlertStatus.acknowledged
    )
    old.status = AlertStatus.open
    db.add(old)
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    statuses = fetch(db, select(Alert.status).where(Alert.patient_id == world.patient_a.id))
    assert sorted(statuses) == [AlertStatus.acknowledged, AlertStatus.open]


# --- worsening -----------------------------------------------------------------------------------


def worsening(client: TestClient, world: World) -> list[dict[str, Any]]:
    return list_alerts(client, world, kind="worsening")


def test_worsening_after_two_consecutive_high_logs_after_day_14(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    created_log(client, world, pain=6, recorded_at=on_day(19))
    assert worsening(client, world) == []  # one log is not a trend
    second = created_log(client, world, pain=6, recorded_at=on_day(26))

    (alert,) = worsening(client, world)
    assert alert["status"] == "open"
    assert alert["patient_id"] == str(world.patient_a.id)
    assert alert["log_id"] == second["id"]
    assert alert["occurrences"] == 1
    assert list_alerts(client, world, kind="red_flag") == []


def test_worsening_is_raised_once_while_open(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    for day in (19, 26):
        created_log(client, world, pain=7, recorded_at=on_day(day))
    (first,) = worsening(client, world)
    created_log(client, world, pain=8, recorded_at=on_day(33))
    (again,) = worsening(client, world)
    assert again["id"] == first["id"]
    assert again["status"] == "open"


@pytest.mark.parametrize(
    ("pains_by_day", "why"),
    [
        ({19: 5, 26: 5}, "baseline + 1 is not worse"),
        ({19: 6, 26: 5, 33: 6}, "high logs that are not consecutive"),
        ({7: 6, 10: 6, 14: 6}, "days 14 and before are the immediate window"),
        ({13: 6, 14: 6, 15: 6}, "only one of the pair is after day 14"),
        ({19: 6}, "a single log"),
        ({19: 3, 26: 2, 33: 4}, "getting better"),
    ],
)
def test_no_worsening_otherwise(
    client: TestClient, world: World, pains_by_day: dict[int, int], why: str
) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    for day, pain in pains_by_day.items():
        created_log(client, world, pain=pain, recorded_at=on_day(day))
    assert worsening(client, world) == [], why


def test_worsening_needs_the_second_log_after_day_14(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    for day in (14, 15):
        created_log(client, world, pain=6, recorded_at=on_day(day))
    assert worsening(client, world) == []
    created_log(client, world, pain=6, recorded_at=on_day(16))
    assert len(worsening(client, world)) == 1


def test_worsening_without_a_baseline_is_never_raised(client: TestClient, world: World) -> None:
    add_procedure(client, world)
    for day in (20, 21, 22):
        created_log(client, world, pain=10, recorded_at=on_day(day))
    assert worsening(client, world) == []


def test_worsening_against_a_baseline_from_pre_procedure_logs(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world)
    for day, pain in ((-20, 3), (-10, 4), (-2, 5)):
        created_log(client, world, pain=pain, recorded_at=on_day(day))
    # Median baseline 4: pain 6 twice after day 14 is worse.
    created_log(client, world, pain=6, recorded_at=on_day(20))
    assert worsening(client, world) == []
    created_log(client, world, pain=6, recorded_at=on_day(27))
    assert len(worsening(client, world)) == 1


def test_worsening_from_logs_sent_out_of_order(client: TestClient, world: World) -> None:
    """An app syncing late: the later check-in arrives first; the pair is still consecutive."""
    add_procedure(client, world, baseline={"pain": 3})
    created_log(client, world, pain=5, recorded_at=on_day(30))
    created_log(client, world, pain=5, recorded_at=on_day(23))
    assert len(worsening(client, world)) == 1


def test_a_new_worsening_alert_after_the_first_was_acknowledged(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 4})
    for day in (19, 26):
        created_log(client, world, pain=6, recorded_at=on_day(day))
    (first,) = worsening(client, world)
    assert acknowledge(client, world, first["id"]).status_code == 200
    created_log(client, world, pain=7, recorded_at=on_day(33))
    opened = list_alerts(client, world, kind="worsening", status="open")
    assert len(opened) == 1
    assert opened[0]["id"] != first["id"]


# --- access --------------------------------------------------------------------------------------


def test_another_clinic_cannot_see_or_touch_the_alerts(client: TestClient, world: World) -> None:
    created_log(client, world, red_flags=["fever"])
    alert = only_alert(client, world)

    assert list_alerts(client, world, actor="clinician_b") == []
    assert list_alerts(client, world, actor="clinician_b", status="open") == []
    assert list_alerts(client, world, actor="clinician_b", patient_id=alert["patient_id"]) == []
    assert_problem(acknowledge(client, world, alert["id"], actor="clinician_b"), 404)
    assert_problem(resolve(client, world, alert["id"], actor="clinician_b"), 404)
    assert only_alert(client, world)["status"] == "open"


@pytest.mark.parametrize("actor", ["patient_a", "researcher_a"])
def test_patients_and_researchers_may_not_read_alerts(
    client: TestClient, world: World, actor: str
) -> None:
    created_log(client, world, red_flags=["fever"])
    alert_id = str(only_alert(client, world)["id"])
    assert_problem(client.get("/v1/alerts", headers=world.headers(actor)), 403)
    assert_problem(acknowledge(client, world, alert_id, actor=actor), 403)
    assert_problem(resolve(client, world, alert_id, actor=actor), 403)


def test_alerts_need_a_token(client: TestClient) -> None:
    assert_problem(client.get("/v1/alerts"), 401)
    assert_problem(client.post(f"/v1/alerts/{uuid.uuid4()}/acknowledge", json={}), 401)


def test_listing_alerts_is_audited(client: TestClient, world: World, db: Session) -> None:
    list_alerts(client, world, patient_id=str(world.patient_a.id))
    events = fetch(db, select(AuditEvent).where(col(AuditEvent.action) == "alert.list"))
    assert len(events) == 1
    assert events[0].patient_id == world.patient_a.id


# --- worsening: what the clinician reads --------------------------------------------------------


def reading(stored: dict[str, Any], day: int) -> dict[str, Any]:
    """A log of a worsening pair as the alert's details give it."""
    return {
        "id": stored["id"],
        "day": day,
        "local_date": (PERFORMED_ON + timedelta(days=day)).isoformat(),
        "pain": stored["pain"],
    }


def batch(client: TestClient, world: World, pains_by_day: dict[int, int]) -> dict[int, str]:
    """The logs sent in one batch; their ids by day."""
    logs = [
        {"client_id": str(uuid.uuid4()), "recorded_at": on_day(day), "pain": pain}
        for day, pain in pains_by_day.items()
    ]
    response = client.post(
        "/v1/me/symptom-logs/batch", headers=world.headers("patient_a"), json={"logs": logs}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * len(logs)
    return {day: r["id"] for day, r in zip(pains_by_day, results, strict=True)}


def test_a_worsening_alert_names_the_pair_of_logs_and_the_rule(
    client: TestClient, world: World
) -> None:
    procedure = add_procedure(client, world, baseline={"pain": 3})
    first = created_log(client, world, pain=6, recorded_at=on_day(20))
    second = created_log(client, world, pain=5, recorded_at=on_day(21))
    (alert,) = worsening(client, world)
    assert alert["log_id"] == second["id"]
    assert alert["details"] == {
        "procedure_id": procedure["id"],
        "baseline_pain": 3.0,
        "threshold": 5.0,
        "logs": [reading(first, 20), reading(second, 21)],
    }


def test_a_batch_that_brings_both_logs_points_at_the_later_one(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 3})
    ids = batch(client, world, {20: 6, 21: 7})
    (alert,) = worsening(client, world)
    assert alert["log_id"] == ids[21]
    assert [(r["id"], r["day"], r["pain"]) for r in alert["details"]["logs"]] == [
        (ids[20], 20, 6),
        (ids[21], 21, 7),
    ]


def test_a_batch_out_of_order_names_its_latest_pair(client: TestClient, world: World) -> None:
    add_procedure(client, world, baseline={"pain": 3})
    ids = batch(client, world, {22: 8, 20: 6, 24: 2, 21: 7})
    (alert,) = worsening(client, world)
    assert alert["log_id"] == ids[22]
    assert [r["id"] for r in alert["details"]["logs"]] == [ids[21], ids[22]]
    assert alert["occurrences"] == 1


def test_a_pair_completed_by_an_earlier_log_sent_late_points_at_the_later_log(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, baseline={"pain": 3})
    later = created_log(client, world, pain=5, recorded_at=on_day(30))
    earlier = created_log(client, world, pain=6, recorded_at=on_day(23))
    (alert,) = worsening(client, world)
    assert alert["log_id"] == later["id"]
    assert alert["details"]["logs"] == [reading(earlier, 23), reading(later, 30)]


def test_a_bump_of_an_open_worsening_alert_keeps_the_latest_pair(
    client: TestClient, world: World
) -> None:
    procedure = add_procedure(client, world, baseline={"pain": 4})
    for day in (19, 26):
        created_log(client, world, pain=7, recorded_at=on_day(day))
    (first,) = worsening(client, world)
    third = created_log(client, world, pain=8, recorded_at=on_day(33))
    (alert,) = worsening(client, world)
    assert alert["id"] == first["id"]
    assert alert["occurrences"] == 2
    assert alert["log_id"] == third["id"]
    assert alert["details"] == {
        "procedure_id": procedure["id"],
        "baseline_pain": 4.0,
        "threshold": 6.0,
        "logs": [first["details"]["logs"][1], reading(third, 33)],
    }


def test_a_worsening_alert_reads_a_baseline_from_pre_procedure_logs(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world)
    for day, pain in ((-20, 3), (-10, 4), (-2, 6)):
        created_log(client, world, pain=pain, recorded_at=on_day(day))
    for day in (20, 27):
        created_log(client, world, pain=7, recorded_at=on_day(day))
    (alert,) = worsening(client, world)
    assert (alert["details"]["baseline_pain"], alert["details"]["threshold"]) == (4.0, 6.0)
