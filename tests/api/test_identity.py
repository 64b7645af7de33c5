"""Clinics, staff accounts and the signed-in account (`/v1/users/me`)."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from models.audit import AuditEvent
from models.identity import Clinic, UserAccount
from tests.factories import World

PROBLEM_JSON = "application/problem+json"
NEW_PASSWORD = "a fresh passphrase for the clinic"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def pointers(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422)
    return [error["pointer"] for error in body.get("errors") or []]


def create_clinic(
    client: TestClient, world: World, body: dict[str, Any], actor: str | None = "admin"
) -> httpx.Response:
    return client.post("/v1/clinics", headers=world.headers(actor), json=body)


def user_body(world: World, **overrides: Any) -> dict[str, Any]:
    return {
        "email": f"staff-{uuid.uuid4().hex[:8]}@example.org",
        "password": NEW_PASSWORD,
        "role": "clinician",
        "clinic_id": str(world.clinic_a.id),
    } | overrides


def create_user(
    client: TestClient, world: World, body: dict[str, Any], actor: str | None = "admin"
) -> httpx.Response:
    return client.post("/v1/users", headers=world.headers(actor), json=body)


def count(db: Session, model: type[Any]) -> int:
    total: int = db.exec(select(func.count()).select_from(model)).one()
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return total


# --- POST /v1/clinics ------------------------------------------------------------------------


def test_admin_creates_a_clinic(client: TestClient, world: World, db: Session) -> None:
    response = create_clinic(client, world, {"name": "Spine Centre", "timezone": "Europe/Vienna"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "timezone", "default_protocol_id"}
    assert body["name"] == "Spine Centre"
    assert body["timezone"] == "Europe/Vienna"
    stored = db.get(Clinic, uuid.UUID(body["id"]))
    assert stored is not None
    assert stored.name == "Spine Centre"


def test_clinic_creation_is_audited(client: TestClient, world: World, db: Session) -> None:
    response = create_clinic(client, world, {"name": "Audited", "timezone": "Europe/Berlin"})
    assert response.status_code == 201
    rows = db.exec(select(AuditEvent).where(AuditEvent.action == "clinic.create")).all()
    assert len(rows) == 1
    assert rows[0].actor_id == world.admin.id
    assert rows[0].outcome == "allowed"


def test_clinic_with_invalid_timezone_is_422(client: TestClient, world: World) -> None:
    response = create_clinic(client, world, {"name": "Base", "timezone": "Mars/Base"})
    assert "/timezone" in pointers(response)


def test_clinician_may_not_create_a_clinic(client: TestClient, world: World, db: Session) -> None:
    before = count(db, Clinic)
    response = create_clinic(
        client, world, {"name": "Rogue", "timezone": "Europe/Berlin"}, actor="clinician_a"
    )
    assert_problem(response, 403)
    assert count(db, Clinic) == before


def test_creating_a_clinic_without_token_is_401(client: TestClient, world: World) -> None:
    response = create_clinic(client, world, {"name": "Anon", "timezone": "Europe/Berlin"}, None)
    assert_problem(response, 401)


def test_clinic_body_may_not_set_id(client: TestClient, world: World) -> None:
    response = create_clinic(
        client, world, {"id": str(uuid.uuid4()), "name": "X", "timezone": "Europe/Berlin"}
    )
    assert "/id" in pointers(response)


@pytest.mark.parametrize(
    "name",
    ["Clinic\x00A", "Clinic\x07A", "Clinic\x1bA", "Clinic\nA", "Clinic\x7fA", "Clinic\x9fA"],
    ids=["nul", "bell", "escape", "newline", "del", "c1"],
)
def test_clinic_name_with_control_character_is_422(
    client: TestClient, world: World, db: Session, name: str
) -> None:
    before = count(db, Clinic)
    response = create_clinic(client, world, {"name": name, "timezone": "Europe/Berlin"})
    assert "/name" in pointers(response)
    assert count(db, Clinic) == before


@pytest.mark.parametrize("name", ["", "x" * 201], ids=["empty", "too-long"])
def test_clinic_name_length_is_checked(client: TestClient, world: World, name: str) -> None:
    response = create_clinic(client, world, {"name": name, "timezone": "Europe/Berlin"})
    assert "/name" in pointers(response)


# --- GET /v1/clinics -------------------------------------------------------------------------


def test_admin_lists_every_clinic(client: TestClient, world: World) -> None:
    response = client.get("/v1/clinics", headers=world.headers("admin"))
    assert response.status_code == 200, response.text
    ids = {c["id"] for c in response.json()}
    assert ids == {str(world.clinic_a.id), str(world.clinic_b.id)}


@pytest.mark.parametrize("actor", ["clinician_a", "researcher_a"])
def test_staff_list_only_their_own_clinic(client: TestClient, world: World, actor: str) -> None:
    response = client.get("/v1/clinics", headers=world.headers(actor))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["id"] for c in body] == [str(world.clinic_a.id)]
    assert body[0]["name"] == "Clinic A"


def test_clinician_b_lists_only_clinic_b(client: TestClient, world: World) -> None:
    response = client.get("/v1/clinics", headers=world.headers("clinician_b"))
    assert [c["id"] for c in response.json()] == [str(world.clinic_b.id)]


def test_patient_may_not_list_clinics(client: TestClient, world: World) -> None:
    assert_problem(client.get("/v1/clinics", headers=world.headers("patient_a")), 403)


def test_listing_clinics_without_token_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(client.get("/v1/clinics"), 401)


# --- POST /v1/users --------------------------------------------------------------------------


def test_admin_creates_a_clinician(client: TestClient, world: World) -> None:
    body = user_body(world, email="dr.new@example.org")
    response = create_user(client, world, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert uuid.UUID(created["id"])
    assert created["email"] == "dr.new@example.org"
    assert created["role"] == "clinician"
    assert created["clinic_id"] == str(world.clinic_a.id)


def test_created_user_response_exposes_no_password(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world))
    assert response.status_code == 201
    assert NEW_PASSWORD not in response.text
    assert "password" not in response.json()
    assert "argon2" not in response.text


@pytest.mark.parametrize("role", ["clinician", "researcher"])
def test_clinic_staff_need_a_clinic(client: TestClient, world: World, role: str) -> None:
    body = user_body(world, role=role)
    del body["clinic_id"]
    assert "/clinic_id" in pointers(create_user(client, world, body))


def test_null_clinic_id_for_clinician_is_422(client: TestClient, world: World) -> None:
    body = user_body(world, clinic_id=None)
    assert "/clinic_id" in pointers(create_user(client, world, body))


def test_admin_can_create_an_admin_without_clinic(client: TestClient, world: World) -> None:
    body = user_body(world, role="admin")
    del body["clinic_id"]
    response = create_user(client, world, body)
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "admin"
    assert response.json()["clinic_id"] is None


def test_patient_accounts_cannot_be_created_directly(
    client: TestClient, world: World, db: Session
) -> None:
    before = count(db, UserAccount)
    response = create_user(client, world, user_body(world, role="patient"))
    assert "/role" in pointers(response)
    assert count(db, UserAccount) == before


def test_admin_with_a_clinic_is_422(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, role="admin"))
    assert "/clinic_id" in pointers(response)


def test_unknown_clinic_is_422(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, clinic_id=str(uuid.uuid4())))
    assert "/clinic_id" in pointers(response)


def test_duplicate_email_is_409_regardless_of_case(client: TestClient, world: World) -> None:
    assert create_user(client, world, user_body(world, email="Twin@Example.org")).status_code == 201
    response = create_user(client, world, user_body(world, email="twin@example.ORG"))
    assert_problem(response, 409)


def test_email_of_an_existing_user_in_upper_case_is_409(client: TestClient, world: World) -> None:
    assert world.clinician_b.email is not None
    response = create_user(client, world, user_body(world, email=world.clinician_b.email.upper()))
    assert_problem(response, 409)


def test_short_password_is_422(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, password="x" * 14))
    assert "/password" in pointers(response)


def test_password_of_fifteen_characters_is_accepted(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, password="y" * 15))
    assert response.status_code == 201, response.text


def test_unknown_role_is_422(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, role="superuser"))
    assert "/role" in pointers(response)


def test_invalid_email_is_422(client: TestClient, world: World) -> None:
    response = create_user(client, world, user_body(world, email="not-an-email"))
    assert "/email" in pointers(response)


def test_created_user_can_log_in(client: TestClient, world: World) -> None:
    body = user_body(world, email="Login.Me@Example.org")
    assert create_user(client, world, body).status_code == 201
    response = client.post(
        "/v1/auth/token", data={"username": "Login.Me@Example.org", "password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.text
    me = client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.json()["email"] == "login.me@example.org"
    assert me.json()["role"] == "clinician"


@pytest.mark.parametrize("actor", ["clinician_a", "researcher_a", "patient_a"])
def test_non_admin_may_not_create_users(
    client: TestClient, world: World, db: Session, actor: str
) -> None:
    before = count(db, UserAccount)
    response = create_user(client, world, user_body(world, role="admin", clinic_id=None), actor)
    assert_problem(response, 403)
    assert count(db, UserAccount) == before


def test_creating_a_user_without_token_is_401(client: TestClient, world: World) -> None:
    assert_problem(create_user(client, world, user_body(world), None), 401)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", str(uuid.uuid4())),
        ("created_at", "2024-01-01T00:00:00+00:00"),
        ("patient_id", str(uuid.uuid4())),
        ("password_hash", "$argon2id$v=19$m=8,t=1,p=1$abc$def"),
    ],
)
def test_user_body_may_not_set_server_owned_fields(
    client: TestClient, world: World, field: str, value: str
) -> None:
    response = create_user(client, world, user_body(world) | {field: value})
    assert f"/{field}" in pointers(response)


# --- GET /v1/users/me ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "role"),
    [
        ("admin", "admin"),
        ("clinician_a", "clinician"),
        ("clinician_b", "clinician"),
        ("researcher_a", "researcher"),
    ],
)
def test_me_returns_own_staff_account(
    client: TestClient, world: World, actor: str, role: str
) -> None:
    response = client.get("/v1/users/me", headers=world.headers(actor))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(getattr(world, actor).id)
    assert body["role"] == role
    assert body["email"] == getattr(world, actor).email
    assert "password_hash" not in body


@pytest.mark.parametrize("actor", ["patient_a", "patient_b"])
def test_me_returns_own_patient_account(
    client: TestClient, world: World, db: Session, actor: str
) -> None:
    patient = getattr(world, actor)
    account = db.exec(select(UserAccount).where(UserAccount.patient_id == patient.id)).one()
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    response = client.get("/v1/users/me", headers=world.headers(actor))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(account.id)
    assert body["role"] == "patient"
    assert body["patient_id"] == str(patient.id)
    assert body["clinic_id"] == str(patient.clinic_id)


def test_me_without_token_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(client.get("/v1/users/me"), 401)


def test_a_password_with_a_control_character_is_422(client: TestClient, world: World) -> None:
    body = {
        "email": "nul@example.org",
        "password": "correct horse\x00battery staple",
        "role": "clinician",
        "clinic_id": str(world.clinic_a.id),
    }
    response = client.post("/v1/users", json=body, headers=world.headers("admin"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/password"
