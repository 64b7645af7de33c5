"""Enrolment codes: issued by clinic staff for their own patients, traded once by the app."""

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from models.base import utc_now
from models.identity import AuthSession, EnrolmentCode, LoginFailure, UserAccount
from models.patient import Patient
from tests.factories import World, auth, make_patient

PROBLEM_JSON = "application/problem+json"
MAX_FAILURES = 5


def issue(client: TestClient, world: World, patient: Patient, actor: str = "clinician_a") -> str:
    response = client.post(
        f"/v1/patients/{patient.id}/enrolment-codes", headers=world.headers(actor)
    )
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


def enrol(client: TestClient, code: str, device_name: str = "Ada's phone") -> httpx.Response:
    return client.post("/v1/app/enrol", json={"code": code, "device_name": device_name})


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


# --- issuing codes ---------------------------------------------------------------------------


def test_clinician_issues_a_code_valid_for_72_hours(client: TestClient, world: World) -> None:
    before = utc_now()
    response = client.post(
        f"/v1/patients/{world.patient_a.id}/enrolment-codes", headers=world.headers("clinician_a")
    )
    after = utc_now()
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["code"], str)
    assert len(body["code"].replace("-", "")) >= 8
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.tzinfo is not None
    assert before + timedelta(hours=72) - timedelta(seconds=1) <= expires_at
    assert expires_at <= after + timedelta(hours=72) + timedelta(seconds=1)


def test_codes_are_stored_only_as_hashes(client: TestClient, world: World, db: Session) -> None:
    code = issue(client, world, world.patient_a)
    rows = db.exec(select(EnrolmentCode)).all()
    assert len(rows) == 1
    for value in rows[0].model_dump().values():
        assert code not in str(value)
        assert code.replace("-", "") not in str(value)


def test_admin_may_issue_a_code(client: TestClient, world: World) -> None:
    response = client.post(
        f"/v1/patients/{world.patient_a.id}/enrolment-codes", headers=world.headers("admin")
    )
    assert response.status_code == 201, response.text


def test_clinician_of_another_clinic_gets_404(client: TestClient, world: World) -> None:
    response = client.post(
        f"/v1/patients/{world.patient_a.id}/enrolment-codes", headers=world.headers("clinician_b")
    )
    assert_problem(response, 404)


@pytest.mark.parametrize("actor", ["researcher_a", "patient_a"])
def test_researcher_and_patient_may_not_issue_codes(
    client: TestClient, world: World, actor: str
) -> None:
    response = client.post(
        f"/v1/patients/{world.patient_a.id}/enrolment-codes", headers=world.headers(actor)
    )
    assert_problem(response, 403)


def test_issuing_a_code_without_token_is_401(client: TestClient, world: World) -> None:
    response = client.post(f"/v1/patients/{world.patient_a.id}/enrolment-codes")
    assert_problem(response, 401)


def test_issuing_a_code_for_an_unknown_patient_is_404(client: TestClient, world: World) -> None:
    response = client.post(
        f"/v1/patients/{uuid.uuid4()}/enrolment-codes", headers=world.headers("clinician_a")
    )
    assert_problem(response, 404)


def test_refused_issue_stores_no_code(client: TestClient, world: World, db: Session) -> None:
    response = client.post(
        f"/v1/patients/{world.patient_a.id}/enrolment-codes", headers=world.headers("clinician_b")
    )
    assert response.status_code == 404
    assert db.exec(select(EnrolmentCode)).all() == []


# --- redeeming codes -------------------------------------------------------------------------


def test_enrol_with_a_fresh_code_returns_patient_tokens(client: TestClient, world: World) -> None:
    code = issue(client, world, world.patient_a)
    response = enrol(client, code)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"]
    assert body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert 0 < body["expires_in"] <= 900
    assert body["patient_id"] == str(world.patient_a.id)


def test_enrolled_patient_token_works_on_users_me(client: TestClient, world: World) -> None:
    tokens = enrol(client, issue(client, world, world.patient_a)).json()
    response = client.get("/v1/users/me", headers=auth(tokens["access_token"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == "patient"
    assert body["patient_id"] == str(world.patient_a.id)


def test_enrolled_patient_refresh_token_works(client: TestClient, world: World) -> None:
    tokens = enrol(client, issue(client, world, world.patient_a)).json()
    response = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200, response.text


def test_enrolment_records_the_device_name(client: TestClient, world: World, db: Session) -> None:
    enrol(client, issue(client, world, world.patient_a), device_name="Pixel 8")
    sessions = db.exec(select(AuthSession).where(AuthSession.device_name == "Pixel 8")).all()
    assert len(sessions) == 1


def test_a_code_works_only_once(client: TestClient, world: World) -> None:
    code = issue(client, world, world.patient_a)
    assert enrol(client, code).status_code == 201
    body = assert_problem(enrol(client, code), 400)
    assert "access_token" not in body


def test_an_expired_code_is_400(client: TestClient, world: World, db: Session) -> None:
    code = issue(client, world, world.patient_a)
    db.exec(update(EnrolmentCode).values(expires_at=utc_now() - timedelta(seconds=1)))
    db.commit()
    assert_problem(enrol(client, code), 400)


def test_an_unknown_code_is_400(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(enrol(client, "ABCD-EFGH-JKMN"), 400)


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param(str.lower, id="lower-case"),
        pytest.param(lambda c: c.replace("-", ""), id="no-dashes"),
        pytest.param(lambda c: c.lower().replace("-", ""), id="lower-no-dashes"),
        pytest.param(lambda c: c.replace("-", " "), id="spaces"),
    ],
)
def test_code_is_normalised_before_lookup(client: TestClient, world: World, typed: Any) -> None:
    code = issue(client, world, world.patient_a)
    response = enrol(client, typed(code))
    assert response.status_code == 201, response.text
    assert response.json()["patient_id"] == str(world.patient_a.id)


def test_two_enrolments_give_two_device_sign_ins_for_one_account(
    client: TestClient, world: World, db: Session
) -> None:
    patient = make_patient(db, clinic=world.clinic_a)
    first = enrol(client, issue(client, world, patient), device_name="phone").json()
    second = enrol(client, issue(client, world, patient), device_name="tablet").json()
    assert first["access_token"] != second["access_token"]
    me_first = client.get("/v1/users/me", headers=auth(first["access_token"]))
    me_second = client.get("/v1/users/me", headers=auth(second["access_token"]))
    assert me_first.status_code == 200
    assert me_second.status_code == 200
    assert me_first.json()["id"] == me_second.json()["id"]
    db.expire_all()
    accounts = db.exec(select(UserAccount).where(UserAccount.patient_id == patient.id)).all()
    assert len(accounts) == 1
    sessions = db.exec(select(AuthSession).where(AuthSession.user_id == accounts[0].id)).all()
    assert sorted(s.device_name or "" for s in sessions) == ["phone", "tablet"]


def test_enrolment_reuses_an_existing_patient_account(
    client: TestClient, world: World, db: Session
) -> None:
    existing = db.exec(
        select(UserAccount).where(UserAccount.patient_id == world.patient_a.id)
    ).one()
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    tokens = enrol(client, issue(client, world, world.patient_a)).json()
    response = client.get("/v1/users/me", headers=auth(tokens["access_token"]))
    assert response.json()["id"] == str(existing.id)


def test_enrolled_patient_account_belongs_to_the_patients_clinic(
    client: TestClient, world: World, db: Session
) -> None:
    patient = make_patient(db, clinic=world.clinic_b)
    tokens = enrol(client, issue(client, world, patient, actor="clinician_b")).json()
    body = client.get("/v1/users/me", headers=auth(tokens["access_token"])).json()
    assert body["clinic_id"] == str(world.clinic_b.id)
    assert body["email"] is None


def test_enrol_with_unknown_body_field_is_422(client: TestClient, world: World) -> None:
    code = issue(client, world, world.patient_a)
    response = client.post(
        "/v1/app/enrol",
        json={"code": code, "device_name": "x", "patient_id": str(world.patient_b.id)},
    )
    body = assert_problem(response, 422)
    assert "/patient_id" in [e["pointer"] for e in body["errors"]]


def test_a_code_rejected_for_an_unknown_field_stays_usable(
    client: TestClient, world: World
) -> None:
    code = issue(client, world, world.patient_a)
    client.post("/v1/app/enrol", json={"code": code, "device_name": "x", "role": "admin"})
    assert enrol(client, code).status_code == 201


def test_enrol_with_control_character_in_device_name_is_422(
    client: TestClient, world: World
) -> None:
    code = issue(client, world, world.patient_a)
    body = assert_problem(enrol(client, code, device_name="phone\x00"), 422)
    assert "/device_name" in [e["pointer"] for e in body["errors"]]


def test_enrolment_is_throttled_after_five_bad_codes(client: TestClient, world: World) -> None:
    code = issue(client, world, world.patient_a)
    for i in range(MAX_FAILURES):
        assert enrol(client, f"ZZZZ-ZZZZ-ZZZ{i + 2}").status_code == 400
    response = enrol(client, code)
    assert_problem(response, 429)
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60


def test_throttled_enrolment_does_not_use_up_the_code(
    client: TestClient, world: World, db: Session
) -> None:
    code = issue(client, world, world.patient_a)
    for i in range(MAX_FAILURES):
        enrol(client, f"ZZZZ-ZZZZ-ZZZ{i + 2}")
    assert enrol(client, code).status_code == 429
    db.exec(update(LoginFailure).values(at=utc_now() - timedelta(minutes=2)))
    db.commit()
    assert enrol(client, code).status_code == 201
    db.expire_all()
    assert all(row.used_at is not None for row in db.exec(select(EnrolmentCode)))


# --- what a patient token may do -------------------------------------------------------------


def _staff_only_requests(world: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/v1/clinics", {"name": "Clinic P", "timezone": "Europe/Berlin"}),
        ("GET", "/v1/clinics", None),
        (
            "POST",
            "/v1/users",
            {
                "email": "patient-made@example.org",
                "password": "a long enough password 123",
                "role": "clinician",
                "clinic_id": str(world.clinic_a.id),
            },
        ),
        ("GET", "/v1/audit-events", None),
        ("POST", f"/v1/patients/{world.patient_a.id}/enrolment-codes", None),
    ]


@pytest.mark.parametrize(
    "index",
    range(5),
    ids=["create-clinic", "list-clinics", "create-user", "audit-events", "enrolment-code"],
)
def test_patient_token_is_refused_on_staff_routes(
    client: TestClient, world: World, db: Session, index: int
) -> None:
    method, path, body = _staff_only_requests(world)[index]
    response = client.request(method, path, headers=world.headers("patient_a"), json=body)
    assert_problem(response, 403)
    db.expire_all()
    assert db.exec(select(EnrolmentCode)).all() == []
    assert (
        db.exec(
            select(UserAccount).where(col(UserAccount.email) == "patient-made@example.org")
        ).all()
        == []
    )


def test_patient_token_may_read_users_me(client: TestClient, world: World) -> None:
    response = client.get("/v1/users/me", headers=world.headers("patient_a"))
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "patient"
    assert response.json()["patient_id"] == str(world.patient_a.id)
