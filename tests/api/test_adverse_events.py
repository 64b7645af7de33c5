"""Adverse events after a procedure: recording, date rules, listing, reading and resolving them."""

import threading
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from models.audit import AuditEvent
from models.patient import Patient
from models.procedure import AdverseEvent
from tests.factories import World, make_patient

PROBLEM_JSON = "application/problem+json"
PROCEDURE_DAYS_AGO = 20


# --- helpers ---------------------------------------------------------------------------------


def today_berlin() -> date:
    return datetime.now(ZoneInfo("Europe/Berlin")).date()


def days_ago(n: int) -> str:
    return (today_berlin() - timedelta(days=n)).isoformat()


def procedure_body(performed_on: str) -> dict[str, Any]:
    return {
        "performed_on": performed_on,
        "treatment": "stem_cell",
        "cell_source": "bone_marrow",
        "harvest": {"method": "bone_marrow_aspiration", "site": "iliac crest", "volume_ml": 60},
        "injections": [
            {
                "route": "intradiscal",
                "levels": ["L4-L5"],
                "guidance": "fluoroscopy",
                "volume_ml": 2,
                "cell_count": 10_000_000,
            }
        ],
    }


def make_procedure(
    client: TestClient, world: World, patient: Patient, performed_on: str | None = None
) -> str:
    response = client.post(
        f"/v1/patients/{patient.id}/procedures",
        headers=world.headers("admin"),
        json=procedure_body(performed_on or days_ago(PROCEDURE_DAYS_AGO)),
    )
    assert response.status_code == 201, response.text
    procedure_id: str = response.json()["id"]
    return procedure_id


@pytest.fixture
def procedure_id(client: TestClient, world: World) -> str:
    """A stem cell procedure of patient A, 20 days ago."""
    return make_procedure(client, world, world.patient_a)


def event_body(procedure_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "procedure_id": procedure_id,
        "onset_on": days_ago(PROCEDURE_DAYS_AGO - 1),
        "kind": "injection_site_pain",
        "grade": 2,
        "serious": False,
        "description": "Aching at the aspiration site, eased with paracetamol.",
        "resolved_on": days_ago(PROCEDURE_DAYS_AGO - 4),
    }
    return body | overrides


def events_url(patient: Patient, event_id: Any = None) -> str:
    base = f"/v1/patients/{patient.id}/adverse-events"
    return base if event_id is None else f"{base}/{event_id}"


def post_event(
    client: TestClient,
    world: World,
    body: Any,
    patient: Patient | None = None,
    actor: str = "clinician_a",
) -> httpx2.Response:
    return client.post(
        events_url(patient or world.patient_a), headers=world.headers(actor), json=body
    )


def create_event(
    client: TestClient, world: World, body: dict[str, Any], patient: Patient | None = None
) -> dict[str, Any]:
    response = post_event(client, world, body, patient)
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
    errors = body.get("errors") or []
    assert errors, "a 422 names the offending fields"
    return [error["pointer"] for error in errors]


def stored_events(db: Session) -> list[AdverseEvent]:
    rows = list(db.exec(select(AdverseEvent).execution_options(populate_existing=True)))
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return rows


def count_events(db: Session) -> int:
    total: int = db.exec(select(func.count()).select_from(AdverseEvent)).one()
    db.commit()
    return total


# --- creating --------------------------------------------------------------------------------


def test_create_returns_201_and_echoes_the_event(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    body = event_body(procedure_id)
    response = post_event(client, world, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == events_url(world.patient_a, created["id"])
    for key, value in body.items():
        assert created[key] == value, key
    assert created["patient_id"] == str(world.patient_a.id)
    assert created["version"] == 1
    uuid.UUID(created["id"])

    [row] = stored_events(db)
    assert str(row.id) == created["id"]
    assert str(row.procedure_id) == procedure_id
    assert row.patient_id == world.patient_a.id
    assert row.grade == 2

    audit = list(db.exec(select(AuditEvent).where(AuditEvent.action == "adverse_event.create")))
    db.commit()
    assert [(a.resource_id, a.patient_id, a.status_code) for a in audit] == [
        (created["id"], world.patient_a.id, 201)
    ]


def test_a_serious_unresolved_event_needs_only_the_required_fields(
    client: TestClient, world: World, procedure_id: str
) -> None:
    body = {
        "procedure_id": procedure_id,
        "onset_on": days_ago(2),
        "kind": "infection",
        "grade": 3,
        "serious": True,
    }
    created = create_event(client, world, body)
    assert created["resolved_on"] is None
    assert created["description"] is None
    assert created["serious"] is True


def test_serious_defaults_to_false(client: TestClient, world: World, procedure_id: str) -> None:
    body = event_body(procedure_id)
    del body["serious"]
    assert create_event(client, world, body)["serious"] is False


def test_another_patients_procedure_is_404(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    other = make_patient(db, clinic=world.clinic_a)
    # Patient A's procedure cannot carry an event of another patient of the same clinic ...
    assert_problem(post_event(client, world, event_body(procedure_id), patient=other), 404)
    # ... nor can another patient's procedure be named under patient A.
    theirs = make_procedure(client, world, other)
    assert_problem(post_event(client, world, event_body(theirs)), 404)
    # Nor a procedure in another clinic.
    clinic_b_procedure = make_procedure(client, world, world.patient_b)
    assert_problem(post_event(client, world, event_body(clinic_b_procedure)), 404)
    assert count_events(db) == 0


def test_unknown_procedure_is_404(client: TestClient, world: World, db: Session) -> None:
    assert_problem(post_event(client, world, event_body(str(uuid.uuid4()))), 404)
    assert count_events(db) == 0


def test_malformed_procedure_id_is_422(client: TestClient, world: World) -> None:
    assert pointers(post_event(client, world, event_body("not-a-uuid"))) == ["/procedure_id"]


def test_onset_before_the_procedure_is_422(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    body = event_body(procedure_id, onset_on=days_ago(PROCEDURE_DAYS_AGO + 1))
    response = post_event(client, world, body)
    assert pointers(response) == ["/onset_on"]
    assert "procedure" in response.json()["errors"][0]["message"]
    assert count_events(db) == 0


def test_onset_on_the_procedure_day_is_accepted(
    client: TestClient, world: World, procedure_id: str
) -> None:
    onset = days_ago(PROCEDURE_DAYS_AGO)
    created = create_event(client, world, event_body(procedure_id, onset_on=onset))
    assert created["onset_on"] == onset


def test_onset_in_the_future_is_422(client: TestClient, world: World, procedure_id: str) -> None:
    future = (today_berlin() + timedelta(days=2)).isoformat()
    body = event_body(procedure_id, onset_on=future, resolved_on=None)
    assert pointers(post_event(client, world, body)) == ["/onset_on"]


def test_resolved_before_onset_is_422(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    body = event_body(procedure_id, onset_on=days_ago(10), resolved_on=days_ago(11))
    assert pointers(post_event(client, world, body)) == ["/resolved_on"]
    assert count_events(db) == 0


def test_resolved_on_the_onset_day_is_accepted(
    client: TestClient, world: World, procedure_id: str
) -> None:
    body = event_body(procedure_id, onset_on=days_ago(10), resolved_on=days_ago(10))
    assert create_event(client, world, body)["resolved_on"] == days_ago(10)


def test_resolved_in_the_future_is_422(client: TestClient, world: World, procedure_id: str) -> None:
    body = event_body(procedure_id, resolved_on=(today_berlin() + timedelta(days=3)).isoformat())
    assert pointers(post_event(client, world, body)) == ["/resolved_on"]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        pytest.param({"grade": 0}, "/grade", id="grade 0"),
        pytest.param({"grade": 6}, "/grade", id="grade 6"),
        pytest.param({"grade": -1}, "/grade", id="grade -1"),
        pytest.param({"grade": 2.5}, "/grade", id="grade 2.5"),
        pytest.param({"grade": "severe"}, "/grade", id="grade text"),
        pytest.param({"grade": None}, "/grade", id="grade null"),
        pytest.param({"kind": "sneezing"}, "/kind", id="bad kind"),
        pytest.param({"kind": "Headache"}, "/kind", id="kind case"),
        pytest.param({"kind": None}, "/kind", id="kind null"),
        pytest.param({"serious": "maybe"}, "/serious", id="serious"),
        pytest.param({"onset_on": "2025-13-01"}, "/onset_on", id="bad onset"),
        pytest.param({"onset_on": None}, "/onset_on", id="onset null"),
        pytest.param({"resolved_on": "soon"}, "/resolved_on", id="bad resolved"),
        pytest.param({"description": "d" * 2001}, "/description", id="description 2001"),
        pytest.param({"description": "nul\x00"}, "/description", id="description NUL"),
        pytest.param({"description": "esc\x1b[31m"}, "/description", id="description ESC"),
        pytest.param({"id": str(uuid.uuid4())}, "/id", id="id"),
        pytest.param({"patient_id": str(uuid.uuid4())}, "/patient_id", id="patient_id"),
        pytest.param({"version": 3}, "/version", id="version"),
        pytest.param({"severity": "mild"}, "/severity", id="unknown field"),
    ],
)
def test_invalid_fields_are_422_at_their_pointer(
    client: TestClient,
    world: World,
    db: Session,
    procedure_id: str,
    overrides: dict[str, Any],
    pointer: str,
) -> None:
    response = post_event(client, world, event_body(procedure_id, **overrides))
    assert pointers(response) == [pointer]
    assert count_events(db) == 0


@pytest.mark.parametrize("field", ["procedure_id", "onset_on", "kind", "grade"])
def test_required_fields_are_required(
    client: TestClient, world: World, db: Session, procedure_id: str, field: str
) -> None:
    body = event_body(procedure_id)
    del body[field]
    assert pointers(post_event(client, world, body)) == [f"/{field}"]
    assert count_events(db) == 0


@pytest.mark.parametrize(
    "kind",
    [
        "injection_site_pain",
        "swelling",
        "redness",
        "fatigue",
        "headache",
        "infection",
        "nerve_damage",
        "cell_reaction",
        "other",
    ],
)
def test_every_kind_of_the_contract_is_accepted(
    client: TestClient, world: World, procedure_id: str, kind: str
) -> None:
    assert create_event(client, world, event_body(procedure_id, kind=kind))["kind"] == kind


@pytest.mark.parametrize("grade", [1, 5])
def test_grades_one_and_five_are_accepted(
    client: TestClient, world: World, procedure_id: str, grade: int
) -> None:
    assert create_event(client, world, event_body(procedure_id, grade=grade))["grade"] == grade


def test_description_of_2000_characters_is_accepted(
    client: TestClient, world: World, procedure_id: str
) -> None:
    text = "Zeile\n" * 333 + "xy"
    assert len(text) == 2000
    assert (
        create_event(client, world, event_body(procedure_id, description=text))["description"]
        == text
    )


def test_unknown_patient_is_404(client: TestClient, world: World, procedure_id: str) -> None:
    response = client.post(
        f"/v1/patients/{uuid.uuid4()}/adverse-events",
        headers=world.headers("clinician_a"),
        json=event_body(procedure_id),
    )
    assert_problem(response, 404)


# --- listing and reading ---------------------------------------------------------------------


def test_list_is_ordered_by_onset(client: TestClient, world: World, procedure_id: str) -> None:
    onsets = [days_ago(3), days_ago(18), days_ago(9), days_ago(12)]
    for onset in onsets:
        create_event(client, world, event_body(procedure_id, onset_on=onset, resolved_on=None))
    response = client.get(events_url(world.patient_a), headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["onset_on"] for item in page["items"]] == sorted(onsets)
    assert page["next_cursor"] is None


def test_list_shows_only_this_patients_events(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    other = make_patient(db, clinic=world.clinic_a)
    theirs = make_procedure(client, world, other)
    mine = create_event(client, world, event_body(procedure_id))
    create_event(client, world, event_body(theirs), patient=other)
    response = client.get(events_url(world.patient_a), headers=world.headers("clinician_a"))
    assert [item["id"] for item in response.json()["items"]] == [mine["id"]]


def test_list_paginates_stably_with_limit_one(
    client: TestClient, world: World, procedure_id: str
) -> None:
    onsets = [days_ago(5), days_ago(15), days_ago(5), days_ago(10), days_ago(5)]
    for onset in onsets:
        create_event(client, world, event_body(procedure_id, onset_on=onset, resolved_on=None))
    headers = world.headers("clinician_a")
    everything = client.get(events_url(world.patient_a), headers=headers).json()["items"]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get(events_url(world.patient_a), headers=headers, params=params).json()
        assert len(page["items"]) <= 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in everything]
    assert len({e["id"] for e in seen}) == len(onsets)
    assert [e["onset_on"] for e in seen] == sorted(onsets)


def test_get_one_returns_it_with_an_etag(
    client: TestClient, world: World, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id))
    response = client.get(
        events_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == created


def test_another_patients_event_is_404(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id))
    other = make_patient(db, clinic=world.clinic_a)
    url = events_url(other, created["id"])
    headers = world.headers("clinician_a")
    assert_problem(client.get(url, headers=headers), 404)
    patch = client.patch(
        url, headers=headers | {"If-Match": '"1"'}, json={"resolved_on": days_ago(1)}
    )
    assert_problem(patch, 404)
    assert_problem(client.get(events_url(world.patient_a, uuid.uuid4()), headers=headers), 404)
    [row] = stored_events(db)
    assert row.version == 1


# --- updating --------------------------------------------------------------------------------


def patch_event(
    client: TestClient, world: World, event_id: str, body: Any, if_match: str | None = '"1"'
) -> httpx2.Response:
    headers = world.headers("clinician_a") | ({"If-Match": if_match} if if_match else {})
    return client.patch(events_url(world.patient_a, event_id), headers=headers, json=body)


def test_resolving_an_event_with_if_match(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id, resolved_on=None))
    read = client.get(
        events_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    etag = read.headers["ETag"]
    resolved = days_ago(2)
    response = patch_event(client, world, created["id"], {"resolved_on": resolved}, etag)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    updated = response.json()
    assert updated["resolved_on"] == resolved
    assert updated["version"] == 2
    for key in ("procedure_id", "onset_on", "kind", "grade", "serious", "description"):
        assert updated[key] == created[key], key
    [row] = stored_events(db)
    assert row.resolved_on is not None
    assert row.resolved_on.isoformat() == resolved
    assert row.version == 2
    # The old ETag is stale now.
    assert_problem(patch_event(client, world, created["id"], {"grade": 3}, etag), 412)


def test_concurrent_resolutions_with_one_etag_let_exactly_one_through(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id, resolved_on=None))
    writers = 4
    barrier = threading.Barrier(writers)
    statuses: dict[int, int] = {}

    def write(i: int) -> None:
        barrier.wait()
        body = {"resolved_on": days_ago(i + 1)}
        statuses[i] = patch_event(client, world, created["id"], body).status_code

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses.values()) == [200] + [412] * (writers - 1), statuses
    winner = next(i for i, status in statuses.items() if status == 200)
    [row] = stored_events(db)
    assert row.resolved_on is not None
    assert row.resolved_on.isoformat() == days_ago(winner + 1)
    assert row.version == 2


def test_patch_without_if_match_is_428(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id, resolved_on=None))
    response = patch_event(client, world, created["id"], {"resolved_on": days_ago(1)}, None)
    assert_problem(response, 428)
    [row] = stored_events(db)
    assert row.resolved_on is None
    assert row.version == 1


def test_patch_with_a_stale_if_match_is_412(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id, resolved_on=None))
    response = patch_event(client, world, created["id"], {"resolved_on": days_ago(1)}, '"0"')
    assert_problem(response, 412)
    [row] = stored_events(db)
    assert row.resolved_on is None
    assert row.version == 1


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        pytest.param({"resolved_on": days_ago(PROCEDURE_DAYS_AGO)}, "/resolved_on", id="resolved"),
        pytest.param({"onset_on": days_ago(PROCEDURE_DAYS_AGO + 5)}, "/onset_on", id="onset"),
        pytest.param({"onset_on": days_ago(1)}, "/resolved_on", id="onset after resolved"),
        pytest.param({"grade": 6}, "/grade", id="grade"),
        pytest.param({"grade": None}, "/grade", id="grade null"),
        pytest.param({"kind": None}, "/kind", id="kind null"),
        pytest.param({"serious": None}, "/serious", id="serious null"),
        pytest.param({"onset_on": None}, "/onset_on", id="onset null"),
        pytest.param({"kind": "sneezing"}, "/kind", id="kind"),
        pytest.param({"procedure_id": str(uuid.uuid4())}, "/procedure_id", id="procedure_id"),
        pytest.param({"patient_id": str(uuid.uuid4())}, "/patient_id", id="patient_id"),
        pytest.param({"id": str(uuid.uuid4())}, "/id", id="id"),
        pytest.param({"version": 9}, "/version", id="version"),
    ],
)
def test_invalid_patch_is_422_and_changes_nothing(
    client: TestClient,
    world: World,
    db: Session,
    procedure_id: str,
    changes: dict[str, Any],
    pointer: str,
) -> None:
    created = create_event(client, world, event_body(procedure_id))
    assert pointer in pointers(patch_event(client, world, created["id"], changes))
    read = client.get(
        events_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert read.headers["ETag"] == '"1"'
    assert read.json() == created
    [row] = stored_events(db)
    assert row.version == 1
    assert str(row.procedure_id) == procedure_id
    assert row.patient_id == world.patient_a.id


def test_patch_can_clear_the_resolution(
    client: TestClient, world: World, procedure_id: str
) -> None:
    created = create_event(client, world, event_body(procedure_id))
    response = patch_event(client, world, created["id"], {"resolved_on": None})
    assert response.status_code == 200, response.text
    assert response.json()["resolved_on"] is None


# --- the procedure date and its adverse events -----------------------------------------------


def test_the_procedure_cannot_be_moved_after_its_adverse_events(
    client: TestClient, world: World, db: Session, procedure_id: str
) -> None:
    onset = days_ago(PROCEDURE_DAYS_AGO - 2)
    create_event(client, world, event_body(procedure_id, onset_on=onset, resolved_on=None))
    url = f"/v1/patients/{world.patient_a.id}/procedures/{procedure_id}"
    headers = world.headers("clinician_a") | {"If-Match": '"1"'}
    later = client.patch(url, headers=headers, json={"performed_on": days_ago(5)})
    assert "/performed_on" in pointers(later)
    assert onset in later.json()["detail"] + " ".join(e["message"] for e in later.json()["errors"])
    # Moving it to the onset day itself, or earlier, keeps every event after the procedure.
    same_day = client.patch(url, headers=headers, json={"performed_on": onset})
    assert same_day.status_code == 200, same_day.text
    [row] = stored_events(db)
    assert row.onset_on.isoformat() == onset
