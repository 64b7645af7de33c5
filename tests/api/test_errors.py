"""Every error is RFC 9457 problem+json: routing errors, validation, body limits and crashes."""

import copy
import json
import logging
from collections.abc import Callable, Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from api.config import Settings
from api.logs import FORMAT, SafeFormatter
from api.main import create_app
from tests.factories import World

PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = ("type", "title", "status", "detail")
MIB = 1024 * 1024


def assert_problem(response: httpx2.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body: dict[str, object] = response.json()
    missing = [field for field in PROBLEM_FIELDS if field not in body]
    assert missing == [], body
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def pointers(body: dict[str, object]) -> list[str]:
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert set(error) == {"pointer", "message"}, error
        assert isinstance(error["message"], str)
        assert error["message"]
    return [str(error["pointer"]) for error in errors]


def count_clinics(db: Session) -> int:
    count = int(db.execute(text("SELECT count(*) FROM clinic")).scalar_one())
    db.commit()  # end the read: on SQLite it holds the write lock (BEGIN IMMEDIATE)
    return count


CLINIC = {"name": "Clinic C", "timezone": "Europe/Vienna"}


# --- routing ---------------------------------------------------------------------------------


def test_unknown_path_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/v1/no-such-resource"), 404)


def test_unknown_path_outside_the_api_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/no/such/page"), 404)


def test_wrong_method_is_405_problem(client: TestClient, world: World) -> None:
    response = client.delete("/v1/clinics", headers=world.headers("admin"))
    assert_problem(response, 405)
    assert "Allow" in response.headers


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["id", "created_at", "clinic_id", "colour"])
def test_an_unknown_body_field_is_422_naming_it(
    client: TestClient, world: World, db: Session, field: str
) -> None:
    response = client.post(
        "/v1/clinics", headers=world.headers("admin"), json=CLINIC | {field: "x"}
    )
    body = assert_problem(response, 422)
    assert f"/{field}" in pointers(body)
    assert count_clinics(db) == 2  # only the world's


@pytest.mark.parametrize("char", ["\u0000", "\u0007", "\u001b", "\u007f", "\u0085", "\n"])
def test_a_control_character_in_a_name_is_422_naming_it(
    client: TestClient, world: World, db: Session, char: str
) -> None:
    response = client.post(
        "/v1/clinics",
        headers=world.headers("admin"),
        json=CLINIC | {"name": f"Clinic{char}C"},
    )
    body = assert_problem(response, 422)
    assert pointers(body) == ["/name"]
    assert count_clinics(db) == 2


def test_a_name_over_200_characters_is_422(client: TestClient, world: World) -> None:
    response = client.post(
        "/v1/clinics", headers=world.headers("admin"), json=CLINIC | {"name": "x" * 201}
    )
    assert pointers(assert_problem(response, 422)) == ["/name"]


def test_a_name_of_200_characters_is_accepted(client: TestClient, world: World) -> None:
    response = client.post(
        "/v1/clinics", headers=world.headers("admin"), json=CLINIC | {"name": "x" * 200}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("payload", [b'{"name": ', b"{'name': 'x'}", b"not json", b'{"a":1}}'])
def test_malformed_json_is_422_problem(
    client: TestClient, world: World, db: Session, payload: bytes
) -> None:
    response = client.post(
        "/v1/clinics",
        headers={**world.headers("admin"), "content-type": "application/json"},
        content=payload,
    )
    body = assert_problem(response, 422)
    # The body as a whole is at fault: the pointer is "" (the whole document), not a position.
    assert pointers(body) == [""]
    assert count_clinics(db) == 2


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
def test_a_bad_query_parameter_is_422_naming_it(
    client: TestClient, world: World, limit: str
) -> None:
    response = client.get(f"/v1/audit-events?limit={limit}", headers=world.headers("admin"))
    body = assert_problem(response, 422)
    assert pointers(body) == ["limit"]


@pytest.mark.parametrize("limit", ["1", "500"])
def test_limits_at_the_bounds_are_accepted(client: TestClient, world: World, limit: str) -> None:
    response = client.get(f"/v1/audit-events?limit={limit}", headers=world.headers("admin"))
    assert response.status_code == 200, response.text


# --- body size -------------------------------------------------------------------------------


def big_clinic_body() -> bytes:
    body = json.dumps(CLINIC | {"name": "x" * int(1.1 * MIB)}).encode()
    assert len(body) > MIB
    return body


def test_a_body_over_1_mib_with_content_length_is_413(
    client: TestClient, world: World, db: Session
) -> None:
    body = big_clinic_body()
    response = client.post(
        "/v1/clinics",
        headers={**world.headers("admin"), "content-type": "application/json"},
        content=body,
    )
    assert response.request.headers["content-length"] == str(len(body))
    assert_problem(response, 413)
    assert count_clinics(db) == 2


def test_a_streamed_body_over_1_mib_is_413(client: TestClient, world: World, db: Session) -> None:
    body = big_clinic_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = client.post(
        "/v1/clinics",
        headers={**world.headers("admin"), "content-type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert count_clinics(db) == 2


def test_announced_and_streamed_oversized_bodies_are_the_same_problem(
    client: TestClient, world: World
) -> None:
    body = big_clinic_body()
    headers = {**world.headers("admin"), "content-type": "application/json"}
    announced = client.post("/v1/clinics", headers=headers, content=body)
    streamed = client.post("/v1/clinics", headers=headers, content=iter([body]))
    assert "content-length" not in streamed.request.headers
    assert assert_problem(streamed, 413)["type"] == assert_problem(announced, 413)["type"]


def test_a_streamed_body_under_the_limit_is_accepted(client: TestClient, world: World) -> None:
    """Control for the test above: streaming alone is not what gets refused."""
    body = json.dumps(CLINIC).encode()

    def chunks() -> Iterator[bytes]:
        yield body[:5]
        yield body[5:]

    response = client.post(
        "/v1/clinics",
        headers={**world.headers("admin"), "content-type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 201, response.text


def test_a_form_body_over_1_mib_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"username=a%40example.org&password="
        for _ in range(20):
            yield b"x" * (64 * 1024)

    response = client.post(
        "/v1/auth/token",
        headers={"content-type": "application/x-www-form-urlencoded"},
        content=chunks(),
    )
    assert_problem(response, 413)


# --- unhandled errors ------------------------------------------------------------------------


@pytest.fixture
def crashing_client(settings: Settings) -> Iterator[TestClient]:
    """A separate app with one route that fails with an exception nobody handles."""
    app = create_app(settings)

    @app.get("/crash")
    def crash() -> None:
        # Built at run time, as a value from the database would be: the traceback's source
        # lines must not be what carries it into the log.
        raise RuntimeError("-".join(["secret", "detail"]))

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_an_unhandled_error_is_500_problem_with_the_request_id(
    crashing_client: TestClient,
) -> None:
    response = crashing_client.get("/crash")
    body = assert_problem(response, 500)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "secret-detail" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert "crash" not in str(body["detail"])


def test_an_unhandled_error_keeps_an_incoming_request_id(crashing_client: TestClient) -> None:
    response = crashing_client.get("/crash", headers={"X-Request-ID": "trace-500"})
    body = assert_problem(response, 500)
    assert response.headers["X-Request-ID"] == "trace-500"
    assert body["request_id"] == "trace-500"


def _uncached(record: logging.LogRecord) -> logging.LogRecord:
    fresh = copy.copy(record)
    fresh.exc_text = None
    return fresh


def test_an_unhandled_error_is_logged_without_its_message(
    crashing_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = crashing_client.get("/crash")
    assert response.status_code == 500
    formatter = SafeFormatter(FORMAT)
    # caplog's own handler has already cached its (unsafe) exception text on the record; the
    # app's only handler formats with SafeFormatter, so format fresh copies as it would.
    formatted = [formatter.format(_uncached(record)) for record in caplog.records]
    with_traceback = [line for line in formatted if "RuntimeError" in line]
    assert with_traceback, formatted  # control: the error was logged, frames and type
    assert any(response.headers["X-Request-ID"] in line for line in with_traceback)
    leaking = [line for line in formatted if "secret-detail" in line]
    assert leaking == []


# --- every error ------------------------------------------------------------------------------


Case = Callable[[TestClient, World], httpx2.Response]

CASES: dict[str, tuple[int, Case]] = {
    "no token": (401, lambda c, _w: c.get("/v1/users/me")),
    "bad token": (
        401,
        lambda c, _w: c.get("/v1/users/me", headers={"Authorization": "Bearer rta_forged"}),
    ),
    "bad password": (
        401,
        lambda c, w: c.post(
            "/v1/auth/token",
            data={"username": str(w.admin.email), "password": "not the right password"},
        ),
    ),
    "wrong role": (
        403,
        lambda c, w: c.post("/v1/clinics", headers=w.headers("clinician_a"), json=CLINIC),
    ),
    "other clinic's patient": (
        404,
        lambda c, w: c.post(
            f"/v1/patients/{w.patient_a.id}/enrolment-codes", headers=w.headers("clinician_b")
        ),
    ),
    "unknown path": (404, lambda c, _w: c.get("/v1/nowhere")),
    "wrong method": (405, lambda c, w: c.put("/v1/users/me", headers=w.headers("admin"))),
    "unknown enrolment code": (
        400,
        lambda c, _w: c.post("/v1/app/enrol", json={"code": "AAAA-BBBB-CCCC", "device_name": "x"}),
    ),
    "duplicate email": (
        409,
        lambda c, w: c.post(
            "/v1/users",
            headers=w.headers("admin"),
            json={
                "email": str(w.clinician_a.email),
                "password": "a-long-enough-password",
                "role": "clinician",
                "clinic_id": str(w.clinic_a.id),
            },
        ),
    ),
    "too large": (
        413,
        lambda c, w: c.post(
            "/v1/clinics",
            headers={**w.headers("admin"), "content-type": "application/json"},
            content=big_clinic_body(),
        ),
    ),
    "validation": (
        422,
        lambda c, w: c.post("/v1/clinics", headers=w.headers("admin"), json={"name": "x"}),
    ),
    "rule violation": (
        422,
        lambda c, w: c.post(
            "/v1/users",
            headers=w.headers("admin"),
            json={
                "email": "r@example.org",
                "password": "a-long-enough-password",
                "role": "researcher",
            },
        ),
    ),
    "bad path parameter": (
        422,
        lambda c, w: c.post("/v1/patients/not-a-uuid/enrolment-codes", headers=w.headers("admin")),
    ),
    "bad cursor": (
        422,
        lambda c, w: c.get("/v1/audit-events?cursor=garbage", headers=w.headers("admin")),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_error_is_problem_json(client: TestClient, world: World, case: str) -> None:
    status, call = CASES[case]
    response = call(client, world)
    assert_problem(response, status)
    assert response.headers.get("X-Request-ID")


def test_401_asks_for_a_bearer_token(client: TestClient) -> None:
    response = client.get("/v1/users/me")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
