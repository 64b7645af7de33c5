"""Liveness and readiness probes, and the X-Request-ID every response carries."""

import re
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from api.config import Environment, Settings
from api.main import create_app
from tests.factories import World

PROBLEM_JSON = "application/problem+json"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_problem_when_the_database_does_not_answer(tmp_path: Path) -> None:
    unreachable = tmp_path / "no-such-directory" / "recovery.db"
    settings = Settings(
        environment=Environment.test,
        database_url=f"sqlite:///{unreachable}",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200  # the process is up all the same
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == 503
    assert str(unreachable) not in response.text


def _requests(client: TestClient, world: World) -> dict[str, httpx2.Response]:
    big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    return {
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "openapi": client.get("/openapi.json"),
        "200 with a token": client.get("/v1/users/me", headers=world.headers("clinician_a")),
        "201": client.post(
            "/v1/clinics",
            headers=world.headers("admin"),
            json={"name": "Clinic C", "timezone": "Europe/Vienna"},
        ),
        "401": client.get("/v1/users/me"),
        "403": client.get("/v1/audit-events", headers=world.headers("clinician_a")),
        "404 unknown path": client.get("/v1/no-such-thing"),
        "405": client.delete("/v1/clinics", headers=world.headers("admin")),
        "413": client.post(
            "/v1/clinics",
            headers={**world.headers("admin"), "content-type": "application/json"},
            content=big,
        ),
        "422": client.get("/v1/audit-events?limit=0", headers=world.headers("admin")),
    }


def test_every_response_carries_a_request_id(client: TestClient, world: World) -> None:
    responses = _requests(client, world)
    missing = [name for name, r in responses.items() if "X-Request-ID" not in r.headers]
    assert missing == []
    malformed = [
        name for name, r in responses.items() if not REQUEST_ID.match(r.headers["X-Request-ID"])
    ]
    assert malformed == []
    ids = [r.headers["X-Request-ID"] for r in responses.values()]
    assert len(set(ids)) == len(ids), "request ids repeat across requests"


@pytest.mark.parametrize(
    "request_id", ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "a.b_c:d-E", "x" * 64]
)
def test_a_valid_incoming_request_id_is_echoed(client: TestClient, request_id: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id


def test_an_incoming_request_id_is_echoed_on_errors_too(client: TestClient) -> None:
    response = client.get("/v1/users/me", headers={"X-Request-ID": "trace-401"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "trace-401"


@pytest.mark.parametrize(
    "request_id",
    ["x" * 200, "x" * 65, "has spaces in it", "semi;colon", "new\\nline", "<script>", ""],
)
def test_an_invalid_incoming_request_id_is_replaced(client: TestClient, request_id: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    echoed = response.headers["X-Request-ID"]
    assert echoed != request_id
    assert REQUEST_ID.match(echoed)
