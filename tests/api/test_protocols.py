"""Protocols as data an admin manages: publishing protocols and versions, reading them, every
rule of the rules document at its JSON pointer, a clinic's default protocol, and the pinning
of procedures (publishing moves none; an explicit, audited PATCH does)."""

import copy
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from api.services import protocols
from models.audit import AuditEvent
from models.identity import Clinic
from models.patient import Patient
from models.procedure import Procedure
from models.protocol import Protocol, ProtocolRules
from tests.factories import World, make_patient

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(autouse=True)
def _only_the_seeded_protocol(engine: Engine) -> Iterator[None]:
    """The protocol table is reference data that the suite's cleanup keeps: what a test
    publishes goes, and so does what the process cached of it."""
    yield
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM protocol WHERE NOT (id = 'default' AND version = 1)"))
    for key in [key for key in protocols._cache if key != ("default", 1)]:
        del protocols._cache[key]


# --- helpers ---------------------------------------------------------------------------------


def default_rules(db: Session) -> dict[str, Any]:
    row = db.get(Protocol, ("default", 1))
    assert row is not None
    rules = copy.deepcopy(row.rules)
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return rules


@pytest.fixture
def rules(db: Session) -> dict[str, Any]:
    return default_rules(db)


def publish(
    client: TestClient,
    world: World,
    rules: dict[str, Any],
    protocol_id: str = "spine-2027",
    actor: str = "admin",
    **overrides: Any,
) -> httpx2.Response:
    body = {"id": protocol_id, "name": f"Protocol {protocol_id}", "rules": rules} | overrides
    return client.post("/v1/protocols", headers=world.headers(actor), json=body)


def published(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def pointers(response: httpx2.Response) -> list[str]:
    body = assert_problem(response, 422)
    return [error["pointer"] for error in body.get("errors") or []]


def stored_versions(db: Session, protocol_id: str) -> list[int]:
    query = select(Protocol.version).where(Protocol.id == protocol_id)
    versions = sorted(db.exec(query.execution_options(populate_existing=True)))
    db.commit()
    return versions


def audit_row(db: Session, response: httpx2.Response) -> AuditEvent:
    query = select(AuditEvent).where(AuditEvent.request_id == response.headers["X-Request-ID"])
    [row] = db.exec(query.execution_options(populate_existing=True)).all()
    db.commit()
    return row


def today_berlin() -> date:
    return datetime.now(ZoneInfo("Europe/Berlin")).date()


def procedure_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": (today_berlin() - timedelta(days=3)).isoformat(),
        "treatment": "prp",
        "harvest": {"method": "blood_draw", "volume_ml": 30.0},
        "injections": [{"route": "epidural", "levels": ["L3-L4"], "guidance": "ultrasound"}],
    }
    return body | overrides


def record_procedure(
    client: TestClient, world: World, patient: Patient | None = None, **overrides: Any
) -> dict[str, Any]:
    target = patient or world.patient_a
    response = client.post(
        f"/v1/patients/{target.id}/procedures",
        headers=world.headers("admin"),
        json=procedure_body(**overrides),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def procedure_url(world: World, procedure_id: str) -> str:
    return f"/v1/patients/{world.patient_a.id}/procedures/{procedure_id}"


def set_clinic_default(
    client: TestClient, world: World, clinic: Clinic, protocol_id: str | None
) -> httpx2.Response:
    return client.patch(
        f"/v1/clinics/{clinic.id}",
        headers=world.headers("admin"),
        json={"default_protocol_id": protocol_id},
    )


# --- the default protocol --------------------------------------------------------------------


def test_the_stored_default_validates_and_dumps_back_to_itself(rules: dict[str, Any]) -> None:
    """Version 1 of `default`, as the migration stored it, is a valid document; validated and
    dumped it is the same document, so the engine reads a published version the same way."""
    assert ProtocolRules.model_validate(rules).model_dump(mode="json") == rules


def test_the_default_is_listed_and_readable(client: TestClient, world: World) -> None:
    response = client.get("/v1/protocols/default", headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "default"
    assert [v["version"] for v in body["versions"]] == [1]
    assert body["versions"][0]["name"] == "Default protocol (CLINICAL.md)"
    assert response.headers["ETag"] == '"1"'


# --- publishing ------------------------------------------------------------------------------


def test_a_new_protocol_starts_at_version_1(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    response = publish(client, world, rules, "spine-2027", name="Spine protocol 2027")
    body = published(response)
    assert set(body) == {"id", "version", "name", "rules", "created_at"}
    assert (body["id"], body["version"], body["name"]) == ("spine-2027", 1, "Spine protocol 2027")
    assert body["rules"] == rules
    assert response.headers["Location"] == "/v1/protocols/spine-2027"
    assert response.headers["ETag"] == '"1"'
    row = db.get(Protocol, ("spine-2027", 1))
    assert row is not None
    assert row.rules == rules  # stored as sent: the engine reads what the admin published
    db.commit()


def test_an_existing_id_gets_the_next_version(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    assert published(publish(client, world, rules, "default"))["version"] == 2
    assert published(publish(client, world, rules, "default"))["version"] == 3
    assert published(publish(client, world, rules, "other"))["version"] == 1
    assert stored_versions(db, "default") == [1, 2, 3]


def test_reading_a_protocol_lists_every_version_oldest_first(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    changed = copy.deepcopy(rules)
    changed["metrics"]["pain"]["improved_points"] = 1.5
    published(publish(client, world, changed, "default", name="Default, MCID 1.5"))
    response = client.get("/v1/protocols/default", headers=world.headers("researcher_a"))
    assert response.status_code == 200, response.text
    versions = response.json()["versions"]
    assert [(v["version"], v["name"]) for v in versions] == [
        (1, "Default protocol (CLINICAL.md)"),
        (2, "Default, MCID 1.5"),
    ]
    assert versions[0]["rules"] == rules
    assert versions[1]["rules"]["metrics"]["pain"]["improved_points"] == 1.5
    assert response.headers["ETag"] == '"2"'


def test_the_list_shows_each_protocol_at_its_latest_version(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    for protocol_id in ("default", "b-protocol", "a-protocol", "default"):
        published(publish(client, world, rules, protocol_id))
    response = client.get("/v1/protocols", headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(p["id"], p["version"]) for p in body["items"]] == [
        ("a-protocol", 1),
        ("b-protocol", 1),
        ("default", 3),
    ]
    assert body["next_cursor"] is None


def test_list_pages_walk_every_protocol_once(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    for protocol_id in ("p1", "p2", "p3", "p4"):
        published(publish(client, world, rules, protocol_id))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/protocols", headers=world.headers("admin"), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["default", "p1", "p2", "p3", "p4"]


@pytest.mark.parametrize("cursor", ["garbage!", "WyJ4Il0"])
def test_a_garbage_cursor_is_422_naming_it(client: TestClient, world: World, cursor: str) -> None:
    response = client.get(
        "/v1/protocols", headers=world.headers("admin"), params={"cursor": cursor}
    )
    assert pointers(response) == ["cursor"]


@pytest.mark.parametrize("actor", ["admin", "clinician_a", "researcher_a"])
def test_an_unknown_protocol_is_404(client: TestClient, world: World, actor: str) -> None:
    response = client.get("/v1/protocols/no-such-protocol", headers=world.headers(actor))
    assert_problem(response, 404)


def test_concurrent_publishes_never_share_a_version(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    """The primary key (id, version) takes one of two publishes that read the same latest
    version; the other is a 409 (PostgreSQL) unless the two ran one after the other (SQLite's
    write turn always makes them)."""
    writers = 4
    barrier = threading.Barrier(writers)
    responses: dict[int, httpx2.Response] = {}

    def write(i: int) -> None:
        barrier.wait()
        responses[i] = publish(client, world, rules, "default", name=f"writer {i}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = [r.status_code for r in responses.values()]
    assert len(statuses) == writers
    assert set(statuses) <= {201, 409}, [r.text for r in responses.values()]
    versions = [r.json()["version"] for r in responses.values() if r.status_code == 201]
    assert versions, "at least one publish goes through"
    assert len(set(versions)) == len(versions)
    assert stored_versions(db, "default") == [1, *sorted(versions)]


def test_a_publish_that_lost_the_race_is_409_and_stores_nothing(
    client: TestClient,
    world: World,
    db: Session,
    rules: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if another publish had taken the version between the read and the insert.
    monkeypatch.setattr(protocols, "latest_version", lambda _db, _protocol_id: None)
    response = publish(client, world, rules, "default")
    body = assert_problem(response, 409)
    assert "published at the same time" in body["detail"]
    assert stored_versions(db, "default") == [1]
    row = audit_row(db, response)
    assert (row.action, row.outcome, row.status_code) == ("protocol.create", "failed", 409)


def test_publishing_is_admin_only_and_a_refusal_stores_nothing(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    for actor, status in (("clinician_a", 403), ("researcher_a", 403), ("patient_a", 403)):
        assert_problem(publish(client, world, rules, "default", actor=actor), status)
    no_token = client.post("/v1/protocols", json={"id": "x", "name": "x", "rules": rules})
    assert_problem(no_token, 401)
    assert stored_versions(db, "default") == [1]


def test_protocol_requests_are_audited(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    created = publish(client, world, rules, "spine-2027")
    read = client.get("/v1/protocols/spine-2027", headers=world.headers("clinician_a"))
    listed = client.get("/v1/protocols", headers=world.headers("researcher_a"))
    missing = client.get("/v1/protocols/nope", headers=world.headers("clinician_a"))
    expected = [
        (created, "protocol.create", "admin", "spine-2027", "allowed", 201),
        (read, "protocol.read", "clinician", "spine-2027", "allowed", 200),
        (listed, "protocol.list", "researcher", None, "allowed", 200),
        (missing, "protocol.read", "clinician", "nope", "denied", 404),
    ]
    for response, action, role, resource_id, outcome, status in expected:
        row = audit_row(db, response)
        assert (row.action, row.actor_role, row.resource_type) == (action, role, "protocol")
        assert (row.resource_id, row.outcome, row.status_code) == (resource_id, outcome, status)
        assert row.patient_id is None


# --- validation: every rule at its pointer ---------------------------------------------------


# (where to break the default document, the value, the pointer of the 422). One document per
# rule; tests/services/test_protocol_rules.py tries more on the model alone.
BROKEN_RULES = [
    ("milestones/1/start_day", 10, "/rules/milestones/1/start_day"),  # windows overlap
    ("milestones/2/start_day", 60, "/rules/milestones/2/start_day"),  # not in order
    ("milestones/1/end_day", 20, "/rules/milestones/1/end_day"),  # ends before it starts
    ("milestones/1/key", "long_term", "/rules/milestones/1/key"),  # keys in their order
    ("milestones/2", None, "/rules/milestones/2"),  # exactly three windows
    ("milestones/0/min_logs_when_closed", 2, "/rules/milestones/0/min_logs_when_closed"),
    ("milestones/1/pain_flare", {}, "/rules/milestones/1/pain_flare"),
    ("milestones/0/pain_flare/to_day", 15, "/rules/milestones/0/pain_flare/to_day"),
    (
        "milestones/0/soreness_persisting/from_day",
        30,
        "/rules/milestones/0/soreness_persisting/from_day",
    ),
    ("milestones/1/min_logs_when_closed", 0, "/rules/milestones/1/min_logs_when_closed"),
    ("metrics/pain/improved_points", 11, "/rules/metrics/pain/improved_points"),
    ("metrics/odi/worse_points", 150, "/rules/metrics/odi/worse_points"),
    ("metrics/mobility/improved_percent", 0, "/rules/metrics/mobility/improved_percent"),
    ("metrics/pain/substantial_percent", 101, "/rules/metrics/pain/substantial_percent"),
    ("metrics/odi/range", [0, 10], "/rules/metrics/odi/range"),
    ("metrics/mobility/better", "lower", "/rules/metrics/mobility/better"),
    ("benchmark_met_rate", 70, "/rules/benchmark_met_rate"),
    ("baseline/window_days", [-1, -60], "/rules/baseline/window_days/0"),
    ("baseline/window_days", [-60, 0], "/rules/baseline/window_days/1"),
    ("check_in_schedule/1/from_day", 10, "/rules/check_in_schedule/1/from_day"),
    ("check_in_schedule/1/to_day", 20, "/rules/check_in_schedule/1/to_day"),
    ("check_in_schedule/1/every_days", 0, "/rules/check_in_schedule/1/every_days"),
    ("check_in_schedule/1/grace_days", -1, "/rules/check_in_schedule/1/grace_days"),
    ("worsening/consecutive_logs", 3, "/rules/worsening/consecutive_logs"),
    ("factors/age_moderate_from_years", -1, "/rules/factors/age_moderate_from_years"),
    ("caveat", "", "/rules/caveat"),
    ("caveat", "x" * 2001, "/rules/caveat"),
    ("milestones/0/expected", "nul\x00", "/rules/milestones/0/expected"),
    ("milestones/0/label", "two\nlines", "/rules/milestones/0/label"),
    ("surprise", True, "/rules/surprise"),
]


def _break(rules: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(rules)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    target: Any = document
    for part in parents:
        target = target[part]
    if path == "milestones/2":
        target.pop()
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "pointer"), BROKEN_RULES, ids=[p for _, _, p in BROKEN_RULES]
)
def test_a_broken_rules_document_is_422_at_its_pointer(
    client: TestClient,
    world: World,
    db: Session,
    rules: dict[str, Any],
    path: str,
    value: Any,
    pointer: str,
) -> None:
    response = publish(client, world, _break(rules, path, value), "default")
    assert pointer in pointers(response)
    assert stored_versions(db, "default") == [1]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        pytest.param({"id": "Spine 2027"}, "/id", id="id not a slug"),
        pytest.param({"id": "x" * 65}, "/id", id="id too long"),
        pytest.param({"name": ""}, "/name", id="empty name"),
        pytest.param({"name": "a\x07b"}, "/name", id="control character"),
        pytest.param({"version": 9}, "/version", id="version is the service's"),
        pytest.param({"rules": None}, "/rules", id="no rules"),
    ],
)
def test_a_bad_publish_body_is_422_at_its_pointer(
    client: TestClient, world: World, rules: dict[str, Any], overrides: dict[str, Any], pointer: str
) -> None:
    body = {"id": "spine", "name": "Spine", "rules": rules} | overrides
    response = client.post("/v1/protocols", headers=world.headers("admin"), json=body)
    assert pointers(response) == [pointer]


# --- a clinic's default protocol -------------------------------------------------------------


def test_an_admin_sets_a_clinics_default_protocol(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    published(publish(client, world, rules, "spine-2027"))
    response = set_clinic_default(client, world, world.clinic_a, "spine-2027")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": str(world.clinic_a.id),
        "name": "Clinic A",
        "timezone": "Europe/Berlin",
        "default_protocol_id": "spine-2027",
    }
    listed = client.get("/v1/clinics", headers=world.headers("clinician_a")).json()
    assert [c["default_protocol_id"] for c in listed] == ["spine-2027"]
    row = audit_row(db, response)
    assert (row.action, row.resource_id) == ("clinic.update", str(world.clinic_a.id))


def test_new_procedures_pin_their_clinics_default_at_its_latest_version(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    published(publish(client, world, rules, "spine-2027"))
    published(publish(client, world, rules, "spine-2027"))
    assert set_clinic_default(client, world, world.clinic_a, "spine-2027").status_code == 200
    assert record_procedure(client, world)["protocol"] == {"id": "spine-2027", "version": 2}
    # Another clinic's patients keep `default`; a procedure that names a protocol gets it.
    other = record_procedure(client, world, world.patient_b)
    assert other["protocol"] == {"id": "default", "version": 1}
    named = record_procedure(client, world, protocol_id="default")
    assert named["protocol"] == {"id": "default", "version": 1}


def test_null_resets_the_clinic_to_the_default_protocol(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    published(publish(client, world, rules, "spine-2027"))
    assert set_clinic_default(client, world, world.clinic_a, "spine-2027").status_code == 200
    response = set_clinic_default(client, world, world.clinic_a, None)
    assert response.status_code == 200, response.text
    assert response.json()["default_protocol_id"] == "default"
    assert record_procedure(client, world)["protocol"] == {"id": "default", "version": 1}


@pytest.mark.parametrize("protocol_id", ["no-such-protocol", "Not A Slug", ""])
def test_a_clinic_default_must_name_an_existing_protocol(
    client: TestClient, world: World, db: Session, protocol_id: str
) -> None:
    response = set_clinic_default(client, world, world.clinic_a, protocol_id)
    assert pointers(response) == ["/default_protocol_id"]
    clinic = db.get(Clinic, world.clinic_a.id, populate_existing=True)
    assert clinic is not None
    assert clinic.default_protocol_id is None
    db.commit()


def test_the_clinic_body_is_strict(client: TestClient, world: World) -> None:
    url = f"/v1/clinics/{world.clinic_a.id}"
    empty = client.patch(url, headers=world.headers("admin"), json={})
    assert pointers(empty) == ["/default_protocol_id"]
    extra = client.patch(
        url, headers=world.headers("admin"), json={"default_protocol_id": None, "name": "X"}
    )
    assert pointers(extra) == ["/name"]


def test_an_unknown_clinic_is_404(client: TestClient, world: World) -> None:
    response = client.patch(
        "/v1/clinics/7b0f7f4e-4c42-4d8e-9f3e-0c1b2a3d4e5f",
        headers=world.headers("admin"),
        json={"default_protocol_id": "default"},
    )
    assert_problem(response, 404)


@pytest.mark.parametrize(("actor", "status"), [("clinician_a", 403), ("researcher_a", 403)])
def test_only_an_admin_sets_a_clinics_default(
    client: TestClient, world: World, db: Session, actor: str, status: int
) -> None:
    response = client.patch(
        f"/v1/clinics/{world.clinic_a.id}",
        headers=world.headers(actor),
        json={"default_protocol_id": "default"},
    )
    assert_problem(response, status)
    clinic = db.get(Clinic, world.clinic_a.id, populate_existing=True)
    assert clinic is not None
    assert clinic.default_protocol_id is None
    db.commit()


# --- pinned procedures -----------------------------------------------------------------------


def test_publishing_a_version_moves_no_procedure(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    before = record_procedure(client, world)
    assert before["protocol"] == {"id": "default", "version": 1}
    published(publish(client, world, rules, "default"))
    response = client.get(procedure_url(world, before["id"]), headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    assert response.json()["protocol"] == {"id": "default", "version": 1}
    assert response.headers["ETag"] == '"1"'  # not even touched
    # Procedures recorded from now on pin the new version.
    assert record_procedure(client, world)["protocol"] == {"id": "default", "version": 2}
    [row] = db.exec(
        select(Procedure)
        .where(Procedure.id == uuid.UUID(before["id"]))
        .execution_options(populate_existing=True)
    ).all()
    assert (row.protocol_id, row.protocol_version, row.version) == ("default", 1, 1)
    db.commit()


def move(
    client: TestClient, world: World, procedure_id: str, protocol: Any, if_match: str = '"1"'
) -> httpx2.Response:
    return client.patch(
        procedure_url(world, procedure_id),
        headers=world.headers("clinician_a") | {"If-Match": if_match},
        json={"protocol": protocol},
    )


def test_a_procedure_moves_to_another_version_only_explicitly_and_audited(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    created = record_procedure(client, world)
    published(publish(client, world, rules, "default"))
    response = move(client, world, created["id"], {"id": "default", "version": 2})
    assert response.status_code == 200, response.text
    assert response.json()["protocol"] == {"id": "default", "version": 2}
    assert response.headers["ETag"] == '"2"'
    row = audit_row(db, response)
    assert (row.action, row.reason, row.outcome) == (
        "procedure.update",
        "protocol_change",
        "allowed",
    )


def test_a_procedure_can_move_to_another_protocol(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    created = record_procedure(client, world)
    published(publish(client, world, rules, "spine-2027"))
    response = move(client, world, created["id"], {"id": "spine-2027", "version": 1})
    assert response.status_code == 200, response.text
    assert response.json()["protocol"] == {"id": "spine-2027", "version": 1}


def test_other_corrections_are_no_protocol_change(
    client: TestClient, world: World, db: Session
) -> None:
    created = record_procedure(client, world)
    notes = client.patch(
        procedure_url(world, created["id"]),
        headers=world.headers("clinician_a") | {"If-Match": '"1"'},
        json={"notes": "corrected"},
    )
    assert notes.status_code == 200, notes.text
    assert audit_row(db, notes).reason is None
    # Naming the version it already has changes nothing to audit as a move.
    same = move(client, world, created["id"], {"id": "default", "version": 1}, if_match='"2"')
    assert same.status_code == 200, same.text
    assert audit_row(db, same).reason is None


@pytest.mark.parametrize(
    "protocol",
    [
        pytest.param({"id": "default", "version": 2}, id="unknown version"),
        pytest.param({"id": "no-such-protocol", "version": 1}, id="unknown protocol"),
    ],
)
def test_moving_to_a_protocol_version_that_does_not_exist_is_422(
    client: TestClient, world: World, db: Session, protocol: dict[str, Any]
) -> None:
    created = record_procedure(client, world)
    response = move(client, world, created["id"], protocol)
    assert pointers(response) == ["/protocol"]
    row = db.get(Procedure, uuid.UUID(created["id"]), populate_existing=True)
    assert row is not None
    assert (row.protocol_id, row.protocol_version, row.version) == ("default", 1, 1)
    db.commit()


@pytest.mark.parametrize(
    ("protocol", "pointer"),
    [
        pytest.param(None, "/protocol", id="null"),
        pytest.param({"id": "default"}, "/protocol/version", id="no version"),
        pytest.param({"id": "default", "version": 0}, "/protocol/version", id="version 0"),
        pytest.param({"id": "default", "version": "1"}, "/protocol/version", id="version text"),
        pytest.param({"id": "Default", "version": 1}, "/protocol/id", id="id not a slug"),
        pytest.param({"id": "default", "version": 1, "x": 1}, "/protocol/x", id="unknown field"),
    ],
)
def test_a_malformed_protocol_change_is_422_at_its_pointer(
    client: TestClient, world: World, protocol: Any, pointer: str
) -> None:
    created = record_procedure(client, world)
    assert pointers(move(client, world, created["id"], protocol)) == [pointer]


def test_a_protocol_change_needs_if_match(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    created = record_procedure(client, world)
    published(publish(client, world, rules, "default"))
    response = client.patch(
        procedure_url(world, created["id"]),
        headers=world.headers("clinician_a"),
        json={"protocol": {"id": "default", "version": 2}},
    )
    assert_problem(response, 428)
    stale = move(client, world, created["id"], {"id": "default", "version": 2}, if_match='"7"')
    assert_problem(stale, 412)


def test_progress_reads_the_version_the_procedure_pins(
    client: TestClient, world: World, rules: dict[str, Any]
) -> None:
    """The engine reads a published version as it reads the default: here the short-term
    window of version 2 opens on day 20 instead of 30."""
    created = record_procedure(client, world)
    changed = copy.deepcopy(rules)
    changed["milestones"][1]["start_day"] = 20
    published(publish(client, world, changed, "default"))
    url = f"/v1/patients/{world.patient_a.id}/progress"
    before = client.get(url, headers=world.headers("clinician_a"))
    assert before.status_code == 200, before.text
    assert before.json()["protocol"] == {"id": "default", "version": 1}
    assert before.json()["milestones"][1]["start_day"] == 30
    assert move(client, world, created["id"], {"id": "default", "version": 2}).status_code == 200
    after = client.get(url, headers=world.headers("clinician_a")).json()
    assert after["protocol"] == {"id": "default", "version": 2}
    assert after["milestones"][1]["start_day"] == 20


def test_a_new_patient_of_a_clinic_with_a_default_pins_it(
    client: TestClient, world: World, db: Session, rules: dict[str, Any]
) -> None:
    published(publish(client, world, rules, "spine-2027"))
    assert set_clinic_default(client, world, world.clinic_b, "spine-2027").status_code == 200
    patient = make_patient(db, clinic=world.clinic_b)
    assert record_procedure(client, world, patient)["protocol"] == {
        "id": "spine-2027",
        "version": 1,
    }
    stored = db.exec(
        select(Procedure.protocol_id)
        .where(col(Procedure.patient_id) == patient.id)
        .execution_options(populate_existing=True)
    ).all()
    assert stored == ["spine-2027"]
    db.commit()


# --- crafted ids and cursors -----------------------------------------------------------------


def _cursor(value: Any) -> str:
    """A list cursor as anyone can build one: base64url of JSON (a lone surrogate is escaped)."""
    import base64  # here, not at the top: this block was appended to a file others edit
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "WyJcdWQ4MDAiLCAieCJd",  # ["\ud800", "x"]: a lone surrogate, a 500 on both databases
        "WyJcdTAwMDAiLCAieCJd",  # ["\u0000", "x"]: a NUL, a 500 on PostgreSQL
        _cursor(["\ud800", "\ud800"]),
        _cursor(["p1\x00", "p1\x00"]),
        _cursor(["p1", "p2"]),  # the id is the whole key: both parts hold it
        _cursor(["Spine 2027", "Spine 2027"]),  # not an id as published
        _cursor(["p1\n", "p1\n"]),
        _cursor(["a" * 65, "a" * 65]),
        _cursor(["", ""]),
    ],
)
def test_a_list_cursor_that_names_no_protocol_id_is_422(
    client: TestClient, world: World, cursor: str
) -> None:
    response = client.get(
        "/v1/protocols", headers=world.headers("admin"), params={"cursor": cursor}
    )
    assert pointers(response) == ["cursor"]


def test_a_list_cursor_of_an_id_is_taken_even_for_an_id_not_published(
    client: TestClient, world: World
) -> None:
    response = client.get(
        "/v1/protocols", headers=world.headers("admin"), params={"cursor": _cursor(["a", "a"])}
    )
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["items"]] == ["default"]


@pytest.mark.parametrize(
    "protocol_id", ["%00", "a%00b", "a%0A", "%ED%A0%80", "Default", "spine%202027", "a" * 65]
)
def test_a_path_id_that_no_protocol_can_have_is_422_naming_it(
    client: TestClient, world: World, protocol_id: str
) -> None:
    """The same form as an id on creation (lowercase letters, digits, '-', '_', 1 to 64), as a
    UUID path parameter is checked: the text never reaches the query (a NUL fails there)."""
    response = client.get(f"/v1/protocols/{protocol_id}", headers=world.headers("clinician_a"))
    assert pointers(response) == ["protocol_id"]
