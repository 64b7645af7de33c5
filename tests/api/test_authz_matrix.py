"""Who may call what: every route under /v1/patients against every kind of caller.

Rows: each (method, path) of the patient routes. Columns: the owner clinic's clinician, another
clinic's clinician, a researcher, a patient's app token, no token, a bad token and an admin.
A refused request (401/403/404) must change nothing and still leave its audit row. A meta-test
fails when the app grows a patient route that has no row here. The protocol routes and a
clinic's settings, outside /v1/patients, have a matrix of their own at the end.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, select

from api.services import protocols
from models.audit import AuditEvent
from models.procedure import AdverseEvent, AdverseEventKind, Procedure, Treatment
from models.protocol import Protocol
from tests.factories import World

PROBLEM_JSON = "application/problem+json"


def today_berlin() -> date:
    return datetime.now(ZoneInfo("Europe/Berlin")).date()


# --- the objects the routes act on -----------------------------------------------------------


@dataclass
class Objects:
    """Patient A's procedure and adverse event, and lazily anything a route needs beyond them."""

    client: TestClient
    world: World
    procedure_id: uuid.UUID
    adverse_event_id: uuid.UUID
    _log_id: str | None = field(default=None)

    def log_id(self) -> str:
        """A symptom log of patient A, recorded by the admin (only routes that need one ask)."""
        if self._log_id is None:
            response = self.client.post(
                f"/v1/patients/{self.world.patient_a.id}/symptom-logs",
                headers=self.world.headers("admin"),
                json=log_body(),
            )
            assert response.status_code == 201, response.text
            self._log_id = response.json()["id"]
        return self._log_id

    def path(self, template: str) -> str:
        values: dict[str, Any] = {
            "patient_id": self.world.patient_a.id,
            "procedure_id": self.procedure_id,
            "adverse_event_id": self.adverse_event_id,
        }
        if "{log_id}" in template:
            values["log_id"] = self.log_id()
        return template.format(**values)


@pytest.fixture
def objects(client: TestClient, world: World, db: Session) -> Objects:
    performed_on = today_berlin() - timedelta(days=30)
    procedure = Procedure(
        patient_id=world.patient_a.id,
        performed_on=performed_on,
        treatment=Treatment.prp,
        harvest={"method": "blood_draw", "site": None, "volume_ml": 30.0},
        injections=[{"route": "epidural", "levels": ["L4-L5"], "guidance": "fluoroscopy"}],
        adjuncts=[],
        protocol_id="default",
        protocol_version=1,
        created_by_id=world.clinician_a.id,
    )
    db.add(procedure)
    db.flush()
    event = AdverseEvent(
        patient_id=world.patient_a.id,
        procedure_id=procedure.id,
        onset_on=performed_on + timedelta(days=1),
        kind=AdverseEventKind.headache,
        grade=1,
        serious=False,
    )
    db.add(event)
    db.commit()
    return Objects(client, world, procedure.id, event.id)


# --- request bodies --------------------------------------------------------------------------


def patient_body(ctx: Objects, actor: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mrn": f"AUTHZ-{uuid.uuid4().hex[:10]}",
        "given_name": "Grace",
        "family_name": "Hopper",
        "birth_date": "1956-12-09",
        "sex": "female",
        "timezone": "Europe/Berlin",
        "stenosis": {"region": "lumbar", "cause": "degenerative"},
    }
    if actor == "admin":
        body["clinic_id"] = str(ctx.world.clinic_a.id)
    return body


def procedure_body(_ctx: Objects, _actor: str) -> dict[str, Any]:
    return {
        "performed_on": (today_berlin() - timedelta(days=2)).isoformat(),
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "facet", "levels": ["L3-L4"], "guidance": "ultrasound"}],
    }


def adverse_event_body(ctx: Objects, _actor: str) -> dict[str, Any]:
    return {
        "procedure_id": str(ctx.procedure_id),
        "onset_on": (today_berlin() - timedelta(days=3)).isoformat(),
        "kind": "swelling",
        "grade": 1,
        "serious": False,
    }


def log_body() -> dict[str, Any]:
    recorded_at = datetime.now(ZoneInfo("Europe/Berlin")) - timedelta(hours=1)
    return {"client_id": str(uuid.uuid4()), "recorded_at": recorded_at.isoformat(), "pain": 4}


def correction_body(_ctx: Objects, _actor: str) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "pain": 3}


Body = Callable[[Objects, str], Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    ok: int = 200  # the answer for an allowed caller
    body: Body | None = None
    if_match: bool = False
    collection: bool = False  # takes no patient id: "another clinic" means "only their own"


ROUTES: list[Route] = [
    Route("POST", "/v1/patients", 201, patient_body, collection=True),
    Route("GET", "/v1/patients", collection=True),
    Route("GET", "/v1/patients/{patient_id}"),
    Route(
        "PATCH", "/v1/patients/{patient_id}", body=lambda _c, _a: {"smoker": True}, if_match=True
    ),
    Route("GET", "/v1/patients/{patient_id}/candidacy"),
    Route("POST", "/v1/patients/{patient_id}/procedures", 201, procedure_body),
    Route("GET", "/v1/patients/{patient_id}/procedures"),
    Route("GET", "/v1/patients/{patient_id}/procedures/{procedure_id}"),
    Route(
        "PATCH",
        "/v1/patients/{patient_id}/procedures/{procedure_id}",
        body=lambda _c, _a: {"notes": "corrected"},
        if_match=True,
    ),
    Route("POST", "/v1/patients/{patient_id}/adverse-events", 201, adverse_event_body),
    Route("GET", "/v1/patients/{patient_id}/adverse-events"),
    Route("GET", "/v1/patients/{patient_id}/adverse-events/{adverse_event_id}"),
    Route(
        "PATCH",
        "/v1/patients/{patient_id}/adverse-events/{adverse_event_id}",
        body=lambda _c, _a: {"resolved_on": today_berlin().isoformat()},
        if_match=True,
    ),
    Route("POST", "/v1/patients/{patient_id}/enrolment-codes", 201),
    # Routes of later issues (symptom logs, progress) under the same patient path.
    Route("GET", "/v1/patients/{patient_id}/progress"),
    Route("POST", "/v1/patients/{patient_id}/symptom-logs", 201, lambda _c, _a: log_body()),
    Route("GET", "/v1/patients/{patient_id}/symptom-logs"),
    Route(
        "POST", "/v1/patients/{patient_id}/symptom-logs/{log_id}/corrections", 201, correction_body
    ),
]

# actor -> the token key in World.tokens (None: no Authorization header at all)
ACTORS: dict[str, str | None] = {
    "owner_clinician": "clinician_a",
    "other_clinic_clinician": "clinician_b",
    "researcher": "researcher_a",
    "patient": "patient_a",  # the very patient the routes are about: still only /v1/me
    "no_token": None,
    "bad_token": None,
    "admin": "admin",
}
ALLOWED = {"owner_clinician", "admin"}
REFUSED = {"researcher": 403, "patient": 403, "no_token": 401, "bad_token": 401}


def headers_for(world: World, actor: str) -> dict[str, str]:
    if actor == "bad_token":
        return {"Authorization": "Bearer not-a-real-token"}
    return world.headers(ACTORS[actor])


def expected_status(route: Route, actor: str) -> int:
    if actor in ALLOWED:
        return route.ok
    if actor in REFUSED:
        return REFUSED[actor]
    assert actor == "other_clinic_clinician"
    return route.ok if route.collection else 404


# --- database snapshots ----------------------------------------------------------------------


def snapshot(db: Session) -> dict[str, tuple[int, int]]:
    """Row count and the sum of versions (where there is one) of every patient-data table."""
    result = {}
    for table in SQLModel.metadata.sorted_tables:
        if table.name in {"audit_event", "auth_session", "auth_token", "login_failure"}:
            continue
        versions = "SUM(version)" if "version" in table.columns else "0"
        row = db.execute(text(f'SELECT COUNT(*), {versions} FROM "{table.name}"')).one()
        result[table.name] = (int(row[0]), int(row[1] or 0))
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return result


def audit_rows(db: Session, request_id: str) -> list[AuditEvent]:
    rows = list(
        db.exec(
            select(AuditEvent)
            .where(AuditEvent.request_id == request_id)
            .execution_options(populate_existing=True)
        )
    )
    db.commit()
    return rows


# --- the matrix ------------------------------------------------------------------------------


def send(client: TestClient, ctx: Objects, route: Route, actor: str) -> httpx2.Response:
    path = ctx.path(route.path)
    headers = headers_for(ctx.world, actor)
    if route.if_match:
        headers["If-Match"] = '"1"'  # the objects are fresh: a valid If-Match
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = route.body(ctx, actor)
    return client.request(route.method, path, **kwargs)


def check_collection(response: httpx2.Response, route: Route, actor: str, world: World) -> None:
    body = response.json()
    own_clinic = world.clinic_b if actor == "other_clinic_clinician" else world.clinic_a
    if route.method == "POST":
        assert body["clinic_id"] == str(own_clinic.id)
        return
    listed = {item["id"] for item in body["items"]}
    clinics = {item["clinic_id"] for item in body["items"]}
    if actor == "admin":
        assert {str(world.patient_a.id), str(world.patient_b.id)} <= listed
        return
    mine, theirs = (
        (world.patient_b, world.patient_a)
        if actor == "other_clinic_clinician"
        else (world.patient_a, world.patient_b)
    )
    assert str(mine.id) in listed
    assert str(theirs.id) not in listed
    assert clinics == {str(own_clinic.id)}


MATRIX = [
    pytest.param(route, actor, id=f"{route.method} {route.path} as {actor}")
    for route in ROUTES
    for actor in ACTORS
]


@pytest.mark.parametrize(("route", "actor"), MATRIX)
def test_route_answers_each_actor(
    client: TestClient, db: Session, objects: Objects, route: Route, actor: str
) -> None:
    world = objects.world
    objects.path(route.path)  # build lazily-made objects before the snapshot
    before = snapshot(db)
    response = send(client, objects, route, actor)
    status = expected_status(route, actor)
    assert response.status_code == status, (
        f"{route.method} {route.path} as {actor}: {response.text}"
    )

    if status < 300:
        if route.collection:
            check_collection(response, route, actor, world)
        if route.if_match:
            assert response.headers["ETag"] == '"2"'
    else:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["status"] == status
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # A refusal changes nothing.
        assert snapshot(db) == before

    rows = audit_rows(db, response.headers["X-Request-ID"])
    assert rows, "every request about patient data leaves an audit row"
    outcome = "allowed" if status < 300 else "denied"
    assert {(r.outcome, r.status_code) for r in rows} == {(outcome, status)}


def test_other_clinic_clinician_cannot_register_into_clinic_a(
    client: TestClient, world: World, db: Session, objects: Objects
) -> None:
    before = snapshot(db)
    body = patient_body(objects, "other_clinic_clinician") | {"clinic_id": str(world.clinic_a.id)}
    response = client.post("/v1/patients", headers=world.headers("clinician_b"), json=body)
    assert response.status_code == 422, response.text
    assert snapshot(db) == before


def test_other_clinic_clinician_cannot_search_their_way_to_clinic_a(
    client: TestClient, world: World
) -> None:
    response = client.get(
        "/v1/patients",
        headers=world.headers("clinician_b"),
        params={"q": world.patient_a.mrn},
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def test_unknown_patient_is_404_for_the_owner_clinic_too(
    client: TestClient, world: World, objects: Objects
) -> None:
    """Another clinic's patient and a patient that does not exist look the same."""
    missing = uuid.uuid4()
    for route in ROUTES:
        if "{patient_id}" not in route.path:
            continue
        path = objects.path(route.path).replace(str(world.patient_a.id), str(missing))
        headers = world.headers("clinician_a") | ({"If-Match": '"1"'} if route.if_match else {})
        kwargs: dict[str, Any] = {"headers": headers}
        if route.body is not None:
            kwargs["json"] = route.body(objects, "owner_clinician")
        response = client.request(route.method, path, **kwargs)
        assert response.status_code == 404, f"{route.method} {route.path}: {response.text}"


# --- every patient route has rows ------------------------------------------------------------


def patient_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", "")
        if path != "/v1/patients" and not path.startswith("/v1/patients/"):
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def test_the_matrix_covers_every_patient_route(app: FastAPI) -> None:
    in_app = patient_routes(app)
    in_matrix = {(route.method, route.path) for route in ROUTES}
    assert len(in_matrix) == len(ROUTES), "a route is listed twice"
    assert in_app - in_matrix == set(), "routes without authorization rows"
    assert in_matrix - in_app == set(), "rows for routes the app does not have"


# --- protocols and a clinic's settings: staff routes outside /v1/patients --------------------


@dataclass(frozen=True)
class StaffRoute:
    method: str
    path: str
    allowed: frozenset[str]  # World token keys that may call it
    ok: int = 200
    body: Callable[[World, dict[str, Any]], Any] | None = None


STAFF = frozenset({"admin", "clinician_a", "researcher_a"})
STAFF_ROUTES = [
    StaffRoute("GET", "/v1/protocols", STAFF),
    StaffRoute("GET", "/v1/protocols/{protocol_id}", STAFF),
    StaffRoute(
        "POST",
        "/v1/protocols",
        frozenset({"admin"}),
        201,
        lambda _w, rules: {"id": "authz-protocol", "name": "Authz", "rules": rules},
    ),
    StaffRoute(
        "PATCH",
        "/v1/clinics/{clinic_id}",
        frozenset({"admin"}),
        body=lambda _w, _rules: {"default_protocol_id": "default"},
    ),
]
STAFF_ACTORS = ["admin", "clinician_a", "researcher_a", "patient_a", "no_token", "bad_token"]


@pytest.fixture
def default_rules(engine: Engine, db: Session) -> Iterator[dict[str, Any]]:
    """The default protocol's rules to publish; what a test published goes afterwards (the
    suite's cleanup keeps the protocol table, its reference data)."""
    row = db.get(Protocol, ("default", 1))
    assert row is not None
    db.commit()
    yield dict(row.rules)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM protocol WHERE NOT (id = 'default' AND version = 1)"))
    for key in [key for key in protocols._cache if key != ("default", 1)]:
        del protocols._cache[key]


def staff_status(route: StaffRoute, actor: str) -> int:
    if actor in route.allowed:
        return route.ok
    return 401 if actor in ("no_token", "bad_token") else 403


@pytest.mark.parametrize(
    ("route", "actor"),
    [
        pytest.param(route, actor, id=f"{route.method} {route.path} as {actor}")
        for route in STAFF_ROUTES
        for actor in STAFF_ACTORS
    ],
)
def test_staff_route_answers_each_actor(
    client: TestClient,
    db: Session,
    world: World,
    default_rules: dict[str, Any],
    route: StaffRoute,
    actor: str,
) -> None:
    path = route.path.format(protocol_id="default", clinic_id=world.clinic_a.id)
    headers = (
        {"Authorization": "Bearer not-a-real-token"}
        if actor == "bad_token"
        else world.headers(None if actor == "no_token" else actor)
    )
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = route.body(world, default_rules)
    before = snapshot(db)
    response = client.request(route.method, path, **kwargs)
    status = staff_status(route, actor)
    assert response.status_code == status, f"{route.method} {path} as {actor}: {response.text}"
    if status >= 300:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert snapshot(db) == before
    rows = audit_rows(db, response.headers["X-Request-ID"])
    outcome = "allowed" if status < 300 else "denied"
    assert {(r.outcome, r.status_code) for r in rows} == {(outcome, status)}


def test_the_staff_matrix_covers_every_protocol_and_clinic_settings_route(app: FastAPI) -> None:
    in_app = set()
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", "")
        if path.startswith(("/v1/protocols", "/v1/clinics/")):
            in_app |= {(m, path) for m in getattr(route, "methods", None) or () if m != "HEAD"}
    assert in_app == {(route.method, route.path) for route in STAFF_ROUTES}
