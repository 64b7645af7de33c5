"""The audit trail: one row per request, refusals included; no secrets in it; an admin-only,
cursor-paginated list; and no path through the API that changes or removes a row."""

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlmodel import Session, col, select

from models.audit import AuditEvent, Outcome
from models.base import utc_now
from tests.factories import PASSWORD, World, auth

PROBLEM_JSON = "application/problem+json"


# --- helpers ---------------------------------------------------------------------------------


# The reads below end their transaction at once: on SQLite a transaction holds the write lock
# from its start (BEGIN IMMEDIATE), and the app's requests need it. They do not expire the
# session either, so reading `world` attributes afterwards opens no new transaction.


def audit_rows(db: Session) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.at), col(AuditEvent.id))
    rows = list(db.exec(query.execution_options(populate_existing=True)))
    db.commit()
    return rows


def raw_audit_rows(db: Session) -> list[dict[str, Any]]:
    """Every column of every row, as the database holds it."""
    rows = [dict(row) for row in db.execute(text("SELECT * FROM audit_event")).mappings()]
    db.commit()
    return rows


def only_row(db: Session) -> AuditEvent:
    rows = audit_rows(db)
    assert len(rows) == 1, [(r.action, r.outcome, r.status_code) for r in rows]
    return rows[0]


def add_event(db: Session, **values: Any) -> AuditEvent:
    defaults: dict[str, Any] = {
        "at": utc_now() - timedelta(days=1),
        "actor_id": uuid.uuid4(),
        "actor_role": "clinician",
        "action": "patient.read",
        "resource_type": "patient",
        "outcome": Outcome.allowed,
        "status_code": 200,
        "request_id": uuid.uuid4().hex,
        "ip": "10.0.0.1",
    }
    row = AuditEvent(**(defaults | values))
    db.add(row)
    db.commit()
    return row


def list_events(client: TestClient, world: World, **params: Any) -> httpx2.Response:
    return client.get("/v1/audit-events", params=params, headers=world.headers("admin"))


def enrolment_code_url(world: World) -> str:
    return f"/v1/patients/{world.patient_a.id}/enrolment-codes"


# --- one row per request ---------------------------------------------------------------------


def test_reading_me_writes_one_allowed_row(client: TestClient, world: World, db: Session) -> None:
    assert audit_rows(db) == []
    response = client.get("/v1/users/me", headers=world.headers("clinician_a"))
    assert response.status_code == 200

    row = only_row(db)
    assert row.actor_id == world.clinician_a.id
    assert row.actor_role == "clinician"
    assert row.clinic_id == world.clinic_a.id
    assert row.action == "user.me"
    assert row.resource_type == "user"
    assert row.resource_id == str(world.clinician_a.id)
    assert row.outcome == Outcome.allowed
    assert row.status_code == 200
    assert row.request_id == response.headers["X-Request-ID"]
    assert row.ip
    assert utc_now() - timedelta(minutes=1) < row.at <= utc_now()


def test_a_row_keeps_the_callers_request_id(client: TestClient, world: World, db: Session) -> None:
    headers = world.headers("clinician_a") | {"X-Request-ID": "trace-me-1"}
    assert client.get("/v1/users/me", headers=headers).status_code == 200
    assert only_row(db).request_id == "trace-me-1"


def test_another_clinics_patient_is_404_with_a_denied_row(
    client: TestClient, world: World, db: Session
) -> None:
    response = client.post(enrolment_code_url(world), headers=world.headers("clinician_b"))
    assert response.status_code == 404

    row = only_row(db)
    assert row.outcome == Outcome.denied
    assert row.status_code == 404
    assert row.action == "enrolment_code.create"
    assert row.patient_id == world.patient_a.id
    assert row.actor_id == world.clinician_b.id
    assert row.actor_role == "clinician"
    assert row.request_id == response.headers["X-Request-ID"]


def test_a_role_without_the_right_is_403_with_a_denied_row(
    client: TestClient, world: World, db: Session
) -> None:
    response = client.post(enrolment_code_url(world), headers=world.headers("researcher_a"))
    assert response.status_code == 403

    row = only_row(db)
    assert row.outcome == Outcome.denied
    assert row.status_code == 403
    assert row.action == "enrolment_code.create"
    assert row.actor_id == world.researcher_a.id
    assert row.actor_role == "researcher"


@pytest.mark.parametrize("headers", [{}, auth("rta_forged-token")], ids=["no token", "forged"])
def test_no_valid_token_is_401_with_an_anonymous_denied_row(
    client: TestClient, world: World, db: Session, headers: dict[str, str]
) -> None:
    response = client.post(enrolment_code_url(world), headers=headers)
    assert response.status_code == 401

    row = only_row(db)
    assert row.outcome == Outcome.denied
    assert row.status_code == 401
    assert row.action == "enrolment_code.create"
    assert row.actor_id is None
    assert row.actor_role is None
    assert row.request_id == response.headers["X-Request-ID"]


def test_a_refused_request_body_is_a_failed_row(
    client: TestClient, world: World, db: Session
) -> None:
    response = client.post(
        "/v1/clinics", headers=world.headers("admin"), json={"name": "x", "id": "y"}
    )
    assert response.status_code == 422

    row = only_row(db)
    assert row.outcome == Outcome.failed
    assert row.status_code == 422
    assert row.action == "clinic.create"
    assert row.actor_id == world.admin.id


# --- no secrets ------------------------------------------------------------------------------


def test_audit_rows_hold_no_tokens_or_passwords(
    client: TestClient, world: World, db: Session
) -> None:
    wrong_password = "wrong-password-" + uuid.uuid4().hex
    assert (
        client.post(
            "/v1/auth/token", data={"username": str(world.admin.email), "password": wrong_password}
        ).status_code
        == 401
    )
    login = client.post(
        "/v1/auth/token", data={"username": str(world.admin.email), "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    first = login.json()
    assert client.get("/v1/users/me", headers=auth(first["access_token"])).status_code == 200
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert client.get("/v1/users/me", headers=auth(second["access_token"])).status_code == 200
    reused = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert client.post("/v1/auth/logout", headers=auth(second["access_token"])).status_code in (
        204,
        401,  # the reuse above revoked the sign-in
    )

    secrets = {
        "password": PASSWORD,
        "wrong password": wrong_password,
        "access token": first["access_token"],
        "refresh token": first["refresh_token"],
        "second access token": second["access_token"],
        "second refresh token": second["refresh_token"],
    }
    rows = raw_audit_rows(db)
    assert len(rows) >= 6  # control: every request above was recorded
    leaks = [
        (name, column)
        for row in rows
        for column, value in row.items()
        for name, secret in secrets.items()
        if value is not None and secret in str(value)
    ]
    assert leaks == []


# --- the list: access ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "status"),
    [("clinician_a", 403), ("researcher_a", 403), ("patient_a", 403), (None, 401), ("admin", 200)],
)
def test_only_admins_list_audit_events(
    client: TestClient, world: World, actor: str | None, status: int
) -> None:
    response = client.get("/v1/audit-events", headers=world.headers(actor))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert "items" not in response.json()


def test_the_list_has_the_documented_fields(client: TestClient, world: World, db: Session) -> None:
    row = add_event(db, patient_id=world.patient_a.id, resource_id=str(world.patient_a.id))
    response = list_events(client, world)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    [item] = body["items"]
    documented = {"id", "at", "actor_id", "actor_role", "action", "resource_type", "resource_id"}
    documented |= {"patient_id", "outcome", "request_id", "ip"}
    assert set(item) >= documented
    assert item["id"] == str(row.id)
    assert item["patient_id"] == str(world.patient_a.id)
    assert datetime.fromisoformat(item["at"]) == row.at  # RFC 3339 with an offset
    assert datetime.fromisoformat(item["at"]).tzinfo is not None


def test_listing_the_trail_is_itself_recorded(
    client: TestClient, world: World, db: Session
) -> None:
    response = list_events(client, world, patient_id=str(world.patient_a.id))
    assert response.status_code == 200
    row = only_row(db)
    assert row.action == "audit_event.list"
    assert row.actor_id == world.admin.id
    assert row.patient_id == world.patient_a.id


# --- the list: filters -----------------------------------------------------------------------

P1, P2 = uuid.uuid4(), uuid.uuid4()
A1, A2 = uuid.uuid4(), uuid.uuid4()
MATRIX = {  # name: (patient_id, actor_id, action)
    "r1": (P1, A1, "patient.read"),
    "r2": (P1, A2, "procedure.create"),
    "r3": (P2, A1, "procedure.create"),
    "r4": (None, A1, "user.me"),
    "r5": (P2, A2, "patient.read"),
}


@pytest.fixture
def matrix(db: Session) -> dict[str, AuditEvent]:
    return {
        name: add_event(db, patient_id=patient_id, actor_id=actor_id, action=action)
        for name, (patient_id, actor_id, action) in MATRIX.items()
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patient_id": str(P1)}, {"r1", "r2"}),
        ({"actor_id": str(A1)}, {"r1", "r3", "r4"}),
        ({"action": "procedure.create"}, {"r2", "r3"}),
        ({"patient_id": str(P2), "actor_id": str(A2)}, {"r5"}),
        ({"patient_id": str(uuid.uuid4())}, set()),
    ],
    ids=["patient_id", "actor_id", "action", "patient_and_actor", "no_match"],
)
def test_filters_narrow_the_list(
    client: TestClient,
    world: World,
    matrix: dict[str, AuditEvent],
    params: dict[str, str],
    expected: set[str],
) -> None:
    everything = list_events(client, world, limit=500)
    assert everything.status_code == 200
    all_ids = {item["id"] for item in everything.json()["items"]}
    assert all_ids == {str(row.id) for row in matrix.values()}  # control: unfiltered sees all

    response = list_events(client, world, limit=500, **params)
    assert response.status_code == 200, response.text
    found = {item["id"] for item in response.json()["items"]}
    assert found == {str(matrix[name].id) for name in expected}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("patient_id", "not-a-uuid"),
        ("actor_id", "42"),
        ("action", "DROP TABLE"),
        ("action", "x" * 65),
    ],
)
def test_a_bad_filter_is_422_naming_it(
    client: TestClient, world: World, name: str, value: str
) -> None:
    response = list_events(client, world, **{name: value})
    assert response.status_code == 422
    assert name in [error["pointer"] for error in response.json()["errors"]]


# --- the list: pagination --------------------------------------------------------------------


def walk(client: TestClient, world: World, limit: int) -> tuple[list[str], list[int]]:
    """Follow next_cursor to the end; the ids in order and the size of each page."""
    ids: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = list_events(client, world, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, sizes
    pytest.fail("pagination did not end")


def test_cursor_pagination_walks_every_row_once_newest_first(
    client: TestClient, world: World, db: Session
) -> None:
    base = (utc_now() - timedelta(days=2)).replace(microsecond=123456)
    offsets = [0, 0, 0, 0, 0, -1, 3, -2, -2, 5, 1]  # seconds; five rows share one instant
    rows = [add_event(db, at=base + timedelta(seconds=s)) for s in offsets]
    expected = [str(r.id) for r in sorted(rows, key=lambda r: (r.at, r.id), reverse=True)]

    ids, sizes = walk(client, world, limit=2)

    assert len(ids) == len(set(ids)), "a row appeared twice"
    assert ids == expected
    assert sizes == [2, 2, 2, 2, 2, 1]


def test_a_full_last_page_ends_the_walk(client: TestClient, world: World, db: Session) -> None:
    at = utc_now() - timedelta(days=1)
    rows = [add_event(db, at=at) for _ in range(4)]
    ids, sizes = walk(client, world, limit=2)
    assert sorted(ids) == sorted(str(r.id) for r in rows)
    assert sizes == [2, 2]


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        _b64({"a": 1}),
        _b64([1, 2]),
        # Fixed ids: pytest-xdist workers must collect identical test ids.
        _b64(["not-a-time", "6f1c2b9e-8d5a-4e3b-9a7c-1d2e3f4a5b6c"]),
        _b64(["2026-01-01T00:00:00", "6f1c2b9e-8d5a-4e3b-9a7c-1d2e3f4a5b6c"]),  # no offset
        _b64(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        "x" * 600,
    ],
)
def test_a_garbage_cursor_is_422_naming_it(client: TestClient, world: World, cursor: str) -> None:
    response = list_events(client, world, cursor=cursor)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert [error["pointer"] for error in response.json()["errors"]] == ["cursor"]


# --- append-only -----------------------------------------------------------------------------


def test_no_route_changes_or_removes_audit_events(app: FastAPI) -> None:
    writers = [
        (context.path, sorted(context.methods or []))
        for context in iter_route_contexts(app.routes)
        if "audit" in str(context.path) and set(context.methods or []) - {"GET", "HEAD"}
    ]
    assert writers == []


def mutates_audit(statement: str) -> bool:
    flat = " ".join(statement.split()).lower()
    if "audit_event" not in flat:
        return False
    if flat.startswith("insert"):
        return "on conflict" in flat or flat.startswith(("insert or replace", "insert or ignore"))
    return not flat.startswith("select")


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the test runs."""
    seen: list[str] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_the_statement_check_catches_updates_and_deletes() -> None:
    assert mutates_audit("UPDATE audit_event SET outcome=? WHERE audit_event.id = ?")
    assert mutates_audit('DELETE FROM "audit_event"')
    assert mutates_audit("TRUNCATE audit_event")
    assert mutates_audit("INSERT INTO audit_event (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET")
    assert not mutates_audit("INSERT INTO audit_event (id, at) VALUES (?, ?)")
    assert not mutates_audit("SELECT audit_event.id FROM audit_event")
    assert not mutates_audit("UPDATE auth_token SET used_at=?")


def exercise_the_api(client: TestClient, world: World) -> list[int]:
    """A broad tour of the API, successes and refusals; the status codes, in order."""
    admin, clinician = world.headers("admin"), world.headers("clinician_a")
    statuses: list[int] = []

    def call(method: str, url: str, **kwargs: Any) -> httpx2.Response:
        response = client.request(method, url, **kwargs)
        statuses.append(response.status_code)
        return response

    email = str(world.admin.email)
    call("POST", "/v1/auth/token", data={"username": email, "password": "wrong password here"})
    pair = call("POST", "/v1/auth/token", data={"username": email, "password": PASSWORD}).json()
    new_pair = call("POST", "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    call("POST", "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse
    call("GET", "/v1/users/me", headers=auth(new_pair.json()["access_token"]))
    call("GET", "/v1/users/me", headers=clinician)
    call("POST", "/v1/clinics", headers=admin, json={"name": "Clinic C", "timezone": "UTC"})
    call("GET", "/v1/clinics", headers=admin)
    call("GET", "/v1/clinics", headers=clinician)
    user = {
        "email": f"c-{uuid.uuid4().hex[:6]}@example.org",
        "password": "a-long-enough-password",
        "role": "clinician",
        "clinic_id": str(world.clinic_a.id),
    }
    call("POST", "/v1/users", headers=admin, json=user)
    call("POST", "/v1/users", headers=admin, json=user)  # duplicate: 409
    code = call("POST", enrolment_code_url(world), headers=clinician).json()["code"]
    enrolled = call("POST", "/v1/app/enrol", json={"code": code, "device_name": "Phone"})
    call("POST", "/v1/app/enrol", json={"code": code, "device_name": "Phone"})  # used: 400
    call("GET", "/v1/users/me", headers=auth(enrolled.json()["access_token"]))
    call("POST", enrolment_code_url(world), headers=world.headers("clinician_b"))  # 404
    call("POST", enrolment_code_url(world), headers=world.headers("researcher_a"))  # 403
    call("POST", enrolment_code_url(world))  # 401
    call("GET", "/v1/audit-events", headers=admin, params={"limit": 2})
    call("GET", "/v1/audit-events", headers=admin, params={"patient_id": str(world.patient_a.id)})
    call("GET", "/v1/audit-events", headers=admin, params={"cursor": "garbage"})
    call("GET", "/v1/audit-events", headers=clinician)
    call("DELETE", "/v1/audit-events", headers=admin)
    call("DELETE", f"/v1/audit-events/{uuid.uuid4()}", headers=admin)
    call("POST", "/v1/clinics", headers=admin, json={"name": "x", "extra": 1})
    call("POST", "/v1/clinics", headers=admin, content=b"x" * (1024 * 1024 + 1))
    call("GET", "/v1/nowhere")
    call("POST", "/v1/auth/logout", headers=clinician)
    call("GET", "/v1/users/me", headers=clinician)  # signed out: 401
    return statuses


def test_no_request_updates_or_deletes_audit_rows(
    client: TestClient, world: World, db: Session, statements: list[str]
) -> None:
    assert client.get("/v1/users/me", headers=world.headers("admin")).status_code == 200
    before = raw_audit_rows(db)
    assert len(before) == 1

    statuses = exercise_the_api(client, world)

    # Control: the tour reached successes and refusals alike, and the listener saw the writes.
    assert {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 422} <= set(statuses)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT")]
    assert len(inserts) >= 20
    offenders = [s for s in statements if mutates_audit(s)]
    assert offenders == []
    after = raw_audit_rows(db)
    assert [row for row in before if row not in after] == []  # the first row is untouched
    assert len(after) > len(before)
