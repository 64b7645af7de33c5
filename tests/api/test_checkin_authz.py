"""Who may call each check-in and alert route: every route x every actor, with the status the
contract promises (API.md §General rules), and no data leaking across patients or clinics."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.factories import World

PROBLEM_JSON = "application/problem+json"
ACTORS = [
    "patient_a",  # the owner: patient_a's own data
    "patient_b",  # another patient (clinic B)
    "clinician_a",  # a clinician of patient_a's clinic
    "clinician_b",  # a clinician of another clinic
    "researcher_a",  # a researcher of patient_a's clinic
    "admin",
    None,  # no token
]


@dataclass
class Scene:
    """patient_a and patient_b each with a red-flag log, which opened one alert per clinic."""

    world: World
    log_a: dict[str, Any]
    log_b: dict[str, Any]
    alert_a: dict[str, Any]
    alert_b: dict[str, Any]


def new_log(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": "2026-09-15T09:30:00+02:00",
        "pain": 5,
    }
    return body | overrides


def _alert_of(client: TestClient, world: World, actor: str) -> dict[str, Any]:
    response = client.get("/v1/alerts", headers=world.headers(actor))
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()["items"]
    assert len(alerts) == 1, alerts
    return alerts[0]


@pytest.fixture
def scene(client: TestClient, world: World) -> Scene:
    logs = {}
    for actor in ("patient_a", "patient_b"):
        response = client.post(
            "/v1/me/symptom-logs",
            json=new_log(red_flags=["fever"]),
            headers=world.headers(actor),
        )
        assert response.status_code == 201, response.text
        logs[actor] = response.json()
    return Scene(
        world=world,
        log_a=logs["patient_a"],
        log_b=logs["patient_b"],
        alert_a=_alert_of(client, world, "clinician_a"),
        alert_b=_alert_of(client, world, "clinician_b"),
    )


# --- the table -------------------------------------------------------------------------------

# (method, path template) -> (how to call it, expected status per actor)
Call = Callable[[Scene], tuple[str, Any]]  # -> (url, json body or None)

ME_EXPECTED = {
    "patient_a": 200,
    "patient_b": 200,  # on their own record
    "clinician_a": 403,
    "clinician_b": 403,
    "researcher_a": 403,
    "admin": 403,
    None: 401,
}
CLINICAL_EXPECTED = {
    "patient_a": 403,
    "patient_b": 403,
    "clinician_a": 200,
    "clinician_b": 404,
    "researcher_a": 403,
    "admin": 200,
    None: 401,
}
ALERT_LIST_EXPECTED = {
    "patient_a": 403,
    "patient_b": 403,
    "clinician_a": 200,
    "clinician_b": 200,  # their own clinic's alerts only (checked below)
    "researcher_a": 403,
    "admin": 200,
    None: 401,
}


def _with(expected: dict[str | None, int], **changes: int) -> dict[str | None, int]:
    return expected | changes


def _patient_a(scene: Scene) -> str:
    return f"/v1/patients/{scene.world.patient_a.id}"


TABLE: dict[tuple[str, str], tuple[Call, dict[str | None, int]]] = {
    ("POST", "/v1/me/symptom-logs"): (
        lambda _s: ("/v1/me/symptom-logs", new_log()),
        _with(ME_EXPECTED, patient_a=201, patient_b=201),
    ),
    ("POST", "/v1/me/symptom-logs/batch"): (
        lambda _s: ("/v1/me/symptom-logs/batch", {"logs": [new_log()]}),
        ME_EXPECTED,
    ),
    ("GET", "/v1/me/symptom-logs"): (lambda _s: ("/v1/me/symptom-logs", None), ME_EXPECTED),
    ("POST", "/v1/me/symptom-logs/{log_id}/corrections"): (
        lambda s: (
            f"/v1/me/symptom-logs/{s.log_a['id']}/corrections",
            {"client_id": str(uuid.uuid4()), "pain": 2},
        ),
        _with(ME_EXPECTED, patient_a=201, patient_b=404),
    ),
    ("GET", "/v1/me/check-ins"): (lambda _s: ("/v1/me/check-ins", None), ME_EXPECTED),
    # Not a route of this issue, but a /v1/me route all the same: same rules.
    ("GET", "/v1/me/progress"): (lambda _s: ("/v1/me/progress", None), ME_EXPECTED),
    ("POST", "/v1/patients/{patient_id}/symptom-logs"): (
        lambda s: (f"{_patient_a(s)}/symptom-logs", new_log()),
        _with(CLINICAL_EXPECTED, clinician_a=201, admin=201),
    ),
    ("GET", "/v1/patients/{patient_id}/symptom-logs"): (
        lambda s: (f"{_patient_a(s)}/symptom-logs", None),
        CLINICAL_EXPECTED,
    ),
    ("POST", "/v1/patients/{patient_id}/symptom-logs/{log_id}/corrections"): (
        lambda s: (
            f"{_patient_a(s)}/symptom-logs/{s.log_a['id']}/corrections",
            {"client_id": str(uuid.uuid4()), "pain": 2},
        ),
        _with(CLINICAL_EXPECTED, clinician_a=201, admin=201),
    ),
    ("GET", "/v1/alerts"): (lambda _s: ("/v1/alerts", None), ALERT_LIST_EXPECTED),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): (
        lambda s: (f"/v1/alerts/{s.alert_a['id']}/acknowledge", {"note": "calling the patient"}),
        CLINICAL_EXPECTED,
    ),
    ("POST", "/v1/alerts/{alert_id}/resolve"): (
        lambda s: (f"/v1/alerts/{s.alert_a['id']}/resolve", {"note": "seen in clinic"}),
        CLINICAL_EXPECTED,
    ),
}

CASES = [
    pytest.param(route, actor, id=f"{route[0]} {route[1]} as {actor or 'anonymous'}")
    for route in TABLE
    for actor in ACTORS
]


def send(client: TestClient, scene: Scene, route: tuple[str, str], actor: str | None) -> Any:
    call, _ = TABLE[route]
    url, body = call(scene)
    method = route[0]
    headers = scene.world.headers(actor)
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, json=body, headers=headers)


@pytest.mark.parametrize(("route", "actor"), CASES)
def test_route_answers_each_actor(
    client: TestClient, scene: Scene, route: tuple[str, str], actor: str | None
) -> None:
    _, expected = TABLE[route]
    response: httpx2.Response = send(client, scene, route, actor)
    assert response.status_code == expected[actor], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["status"] == response.status_code
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    if response.status_code < 300:
        check_what_was_seen(scene, route, actor, response.json())


def check_what_was_seen(
    scene: Scene, route: tuple[str, str], actor: str | None, body: dict[str, Any]
) -> None:
    """A permitted call still shows only what the actor may see."""
    world = scene.world
    method, path = route
    if path.startswith("/v1/me/"):
        own = world.patient_a if actor == "patient_a" else world.patient_b
        if method == "GET" and path == "/v1/me/symptom-logs":
            own_log = scene.log_a if actor == "patient_a" else scene.log_b
            assert [item["id"] for item in body["items"]] == [own_log["id"]]
        elif path == "/v1/me/symptom-logs/batch":
            [result] = body["results"]
            assert result["status"] == "created"
        elif path == "/v1/me/progress":
            assert body["patient_id"] == str(own.id)
        elif method == "POST":
            assert body["patient_id"] == str(own.id)
            assert body["source"] == "app"
    elif path.startswith("/v1/patients/"):
        if method == "GET":
            assert [item["id"] for item in body["items"]] == [scene.log_a["id"]]
        else:
            assert body["patient_id"] == str(world.patient_a.id)
            assert body["source"] == "clinic"
    elif path == "/v1/alerts":
        seen = {item["id"] for item in body["items"]}
        expected = {
            "clinician_a": {scene.alert_a["id"]},
            "clinician_b": {scene.alert_b["id"]},
            "admin": {scene.alert_a["id"], scene.alert_b["id"]},
        }[str(actor)]
        assert seen == expected
    else:
        assert body["id"] == scene.alert_a["id"]
        assert body["status"] == ("acknowledged" if path.endswith("acknowledge") else "resolved")


def test_the_alert_list_keeps_clinics_apart_even_when_filtered(
    client: TestClient, scene: Scene
) -> None:
    world = scene.world
    response = client.get(
        "/v1/alerts",
        params={"patient_id": str(world.patient_b.id)},
        headers=world.headers("clinician_a"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def test_other_clinic_cannot_touch_an_alert_and_it_stays_open(
    client: TestClient, scene: Scene
) -> None:
    world = scene.world
    for action in ("acknowledge", "resolve"):
        response = client.post(
            f"/v1/alerts/{scene.alert_a['id']}/{action}",
            json={},
            headers=world.headers("clinician_b"),
        )
        assert response.status_code == 404, response.text
    [alert] = client.get("/v1/alerts", headers=world.headers("clinician_a")).json()["items"]
    assert alert["status"] == "open"
    # An unknown alert id is a 404 too, for everyone who may use the route.
    for actor in ("clinician_a", "admin"):
        response = client.post(
            f"/v1/alerts/{uuid.uuid4()}/acknowledge", json={}, headers=world.headers(actor)
        )
        assert response.status_code == 404, response.text


def test_a_patient_cannot_read_another_patients_logs_through_the_clinic_route(
    client: TestClient, scene: Scene
) -> None:
    world = scene.world
    response = client.get(
        f"/v1/patients/{world.patient_b.id}/symptom-logs", headers=world.headers("patient_b")
    )
    assert response.status_code == 403, response.text


def test_an_invalid_token_is_401_everywhere(client: TestClient, scene: Scene) -> None:
    for route in TABLE:
        call, _ = TABLE[route]
        url, body = call(scene)
        headers = {"Authorization": "Bearer not-a-real-token"}
        if route[0] == "GET":
            response = client.get(url, headers=headers)
        else:
            response = client.post(url, json=body, headers=headers)
        assert response.status_code == 401, (route, response.text)


def test_every_check_in_and_alert_route_is_in_the_table(app: FastAPI) -> None:
    routes = set()
    for context in iter_route_contexts(app.routes):
        path = context.path
        if not isinstance(path, str):
            continue
        if path.startswith("/v1/me") or "/symptom-logs" in path or "/alerts" in path:
            for method in context.methods or ():
                if method != "HEAD":
                    routes.add((method, path))
    assert routes, "no routes found: the walk is broken"
    missing = routes - set(TABLE)
    assert not missing, f"routes without an authorization row: {sorted(missing)}"
    stale = set(TABLE) - routes
    assert not stale, f"table rows for routes that do not exist: {sorted(stale)}"
