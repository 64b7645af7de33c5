"""Patients over HTTP: registration, search, If-Match updates, candidacy, access and privacy."""

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from api.logs import FORMAT, SafeFormatter
from models.audit import AuditEvent
from models.patient import Patient
from tests.factories import World, make_patient

PROBLEM_JSON = "application/problem+json"

GOOD_SCREENING: dict[str, Any] = {
    "conservative_care_tried": ["physical_therapy", "pain_medication", "steroid_injection"],
    "conservative_care_failed": True,
    "severe_neurological_deficit": False,
    "active_cancer": False,
    "cancer_within_5_years": False,
    "active_infection": False,
    "significant_organ_dysfunction": False,
    "evaluation": {
        "medical_history_reviewed": True,
        "physical_exam_done": True,
        "imaging": ["mri", "xray"],
        "labs_done": True,
    },
}


# --- helpers -----------------------------------------------------------------------------------


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
    return [error["pointer"] for error in body.get("errors") or []]


def patient_body(**overrides: Any) -> dict[str, Any]:
    """Every field API.md names for a new patient."""
    return {
        "mrn": f"MRN-{uuid.uuid4().hex[:10]}",
        "given_name": "Grace",
        "family_name": "Hopper",
        "birth_date": "1956-12-09",
        "sex": "female",
        "postal_code": "20500",
        "timezone": "America/New_York",
        "stenosis": {"region": "lumbar", "cause": "degenerative"},
        "comorbidities": ["diabetes", "osteoporosis"],
        "smoker": True,
        "research_consent": True,
        "screening": GOOD_SCREENING,
    } | overrides


def create(
    client: TestClient, world: World, actor: str | None = "clinician_a", **overrides: Any
) -> httpx2.Response:
    return client.post("/v1/patients", headers=world.headers(actor), json=patient_body(**overrides))


def created(
    client: TestClient, world: World, actor: str = "clinician_a", **overrides: Any
) -> dict[str, Any]:
    response = create(client, world, actor, **overrides)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def read(
    client: TestClient, world: World, patient_id: Any, actor: str = "clinician_a"
) -> httpx2.Response:
    return client.get(f"/v1/patients/{patient_id}", headers=world.headers(actor))


def patch(
    client: TestClient,
    world: World,
    patient_id: Any,
    body: dict[str, Any],
    if_match: str | None,
    actor: str = "clinician_a",
) -> httpx2.Response:
    headers = world.headers(actor) | ({"If-Match": if_match} if if_match is not None else {})
    return client.patch(f"/v1/patients/{patient_id}", headers=headers, json=body)


def etag_of(client: TestClient, world: World, patient_id: Any, actor: str = "clinician_a") -> str:
    response = read(client, world, patient_id, actor)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def list_ids(
    client: TestClient, world: World, actor: str = "clinician_a", **params: Any
) -> list[str]:
    """Every patient id the list returns, walking all pages."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(1000):
        query = params | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/patients", headers=world.headers(actor), params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        if "limit" in params:
            assert len(page["items"]) <= int(params["limit"])
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursor never ran out")


@contextmanager
def fresh(db: Session) -> Iterator[Session]:
    """A short session of its own, so reading never expires the world's objects nor holds
    SQLite's write lock while the app works."""
    with Session(db.get_bind(), expire_on_commit=False) as session:
        yield session


def stored(db: Session, patient_id: Any) -> Patient:
    with fresh(db) as session:
        patient = session.get(Patient, uuid.UUID(str(patient_id)))
    assert patient is not None
    return patient


def patient_count(db: Session, **where: Any) -> int:
    query = select(func.count()).select_from(Patient)
    for name, value in where.items():
        query = query.where(getattr(Patient, name) == value)
    with fresh(db) as session:
        total: int = session.exec(query).one()
    return total


def audit_rows(db: Session) -> list[AuditEvent]:
    with fresh(db) as session:
        return list(session.exec(select(AuditEvent)))


# --- POST /v1/patients -------------------------------------------------------------------------


def test_clinician_registers_a_patient_with_every_field(
    client: TestClient, world: World, db: Session
) -> None:
    body = patient_body()
    response = client.post("/v1/patients", headers=world.headers("clinician_a"), json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    for name, value in body.items():
        assert answer[name] == value, name
    assert answer["clinic_id"] == str(world.clinic_a.id)
    uuid.UUID(answer["id"])
    assert response.headers["ETag"]
    assert response.headers["Location"] == f"/v1/patients/{answer['id']}"
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(answer[stamp]).tzinfo is not None

    patient = stored(db, answer["id"])
    assert patient.clinic_id == world.clinic_a.id
    assert patient.mrn == body["mrn"]
    assert patient.stenosis_region == "lumbar"
    assert patient.smoker is True


def test_the_location_and_etag_of_a_new_patient_can_be_used(
    client: TestClient, world: World
) -> None:
    response = create(client, world)
    assert response.status_code == 201
    fetched = client.get(response.headers["Location"], headers=world.headers("clinician_a"))
    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    assert fetched.headers["ETag"] == response.headers["ETag"]
    changed = patch(
        client, world, response.json()["id"], {"smoker": False}, response.headers["ETag"]
    )
    assert changed.status_code == 200, changed.text


def test_optional_fields_may_be_left_out(client: TestClient, world: World) -> None:
    body = patient_body()
    for name in ("postal_code", "comorbidities", "smoker", "research_consent", "screening"):
        del body[name]
    response = client.post("/v1/patients", headers=world.headers("clinician_a"), json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["postal_code"] is None
    assert answer["comorbidities"] == []
    assert answer["smoker"] is False
    assert answer["research_consent"] is False


def test_admin_registers_a_patient_in_the_named_clinic(client: TestClient, world: World) -> None:
    answer = created(client, world, "admin", clinic_id=str(world.clinic_b.id))
    assert answer["clinic_id"] == str(world.clinic_b.id)
    assert read(client, world, answer["id"], "clinician_b").status_code == 200
    assert read(client, world, answer["id"], "clinician_a").status_code == 404


def test_admin_must_name_the_clinic(client: TestClient, world: World, db: Session) -> None:
    before = patient_count(db)
    assert "/clinic_id" in pointers(create(client, world, "admin"))
    assert patient_count(db) == before


def test_admin_naming_an_unknown_clinic_is_422(
    client: TestClient, world: World, db: Session
) -> None:
    before = patient_count(db)
    response = create(client, world, "admin", clinic_id=str(uuid.uuid4()))
    assert "/clinic_id" in pointers(response)
    assert patient_count(db) == before


def test_clinician_may_not_register_in_another_clinic(
    client: TestClient, world: World, db: Session
) -> None:
    before = patient_count(db)
    response = create(client, world, "clinician_a", clinic_id=str(world.clinic_b.id))
    assert "/clinic_id" in pointers(response)
    assert patient_count(db) == before


def test_clinician_may_name_their_own_clinic(client: TestClient, world: World) -> None:
    answer = created(client, world, "clinician_a", clinic_id=str(world.clinic_a.id))
    assert answer["clinic_id"] == str(world.clinic_a.id)


def test_duplicate_mrn_in_the_same_clinic_is_409(
    client: TestClient, world: World, db: Session
) -> None:
    first = created(client, world, mrn="MRN-DUP-1")
    second = create(client, world, mrn="MRN-DUP-1", given_name="Someone", family_name="Else")
    assert_problem(second, 409)
    assert patient_count(db, mrn="MRN-DUP-1") == 1
    assert stored(db, first["id"]).given_name == "Grace"
    # The world's own patient's MRN is taken too.
    assert_problem(create(client, world, mrn=world.patient_a.mrn), 409)


def test_the_same_mrn_in_another_clinic_is_allowed(client: TestClient, world: World) -> None:
    created(client, world, "clinician_a", mrn="MRN-SHARED")
    other = created(client, world, "clinician_b", mrn="MRN-SHARED")
    assert other["clinic_id"] == str(world.clinic_b.id)
    created(client, world, "admin", mrn=world.patient_b.mrn, clinic_id=str(world.clinic_a.id))


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "Berlin", "", "UTC+25"])
def test_invalid_timezone_is_422(client: TestClient, world: World, timezone: str) -> None:
    assert "/timezone" in pointers(create(client, world, timezone=timezone))


@pytest.mark.parametrize(
    "name",
    ["Ada\x00", "Ada\x07", "A\x1bda", "Ada\nLovelace", "Ada\tLovelace", "Ada\x7f", "Ada\x9f"],
    ids=["nul", "bell", "escape", "newline", "tab", "del", "c1"],
)
def test_control_characters_in_given_name_are_422(
    client: TestClient, world: World, db: Session, name: str
) -> None:
    before = patient_count(db)
    assert "/given_name" in pointers(create(client, world, given_name=name))
    assert patient_count(db) == before


@pytest.mark.parametrize(
    ("field", "value", "pointer"),
    [
        ("family_name", "Hop\x00per", "/family_name"),
        ("mrn", "MRN\x00", "/mrn"),
        ("postal_code", "205\n00", "/postal_code"),
        ("comorbidities", ["diabetes", "obe\x00sity"], "/comorbidities/1"),
    ],
)
def test_control_characters_in_other_strings_are_422(
    client: TestClient, world: World, field: str, value: Any, pointer: str
) -> None:
    assert pointer in pointers(create(client, world, **{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("given_name", ""), ("given_name", "x" * 201), ("family_name", "x" * 201), ("mrn", "")],
)
def test_string_lengths_are_checked(
    client: TestClient, world: World, field: str, value: str
) -> None:
    assert f"/{field}" in pointers(create(client, world, **{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", str(uuid.uuid4())),
        ("created_at", "2024-01-01T00:00:00Z"),
        ("clinic", "Clinic A"),
        ("version", 7),
        ("progress_status", "on_track"),
    ],
)
def test_unknown_fields_are_422(
    client: TestClient, world: World, db: Session, field: str, value: Any
) -> None:
    before = patient_count(db)
    assert f"/{field}" in pointers(create(client, world, **{field: value}))
    assert patient_count(db) == before


def test_unknown_nested_fields_are_422(client: TestClient, world: World) -> None:
    stenosis = {"region": "lumbar", "cause": "degenerative", "grade": 3}
    assert "/stenosis/grade" in pointers(create(client, world, stenosis=stenosis))
    screening = GOOD_SCREENING | {"evaluation": GOOD_SCREENING["evaluation"] | {"eeg": True}}
    assert "/screening/evaluation/eeg" in pointers(create(client, world, screening=screening))


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"sex": "x"}, "/sex"),
        ({"stenosis": {"region": "sacral", "cause": "degenerative"}}, "/stenosis/region"),
        ({"stenosis": {"region": "lumbar", "cause": "trauma"}}, "/stenosis/cause"),
        ({"stenosis": {"region": "lumbar"}}, "/stenosis/cause"),
        (
            {"screening": {"conservative_care_tried": ["acupuncture"]}},
            "/screening/conservative_care_tried/0",
        ),
        (
            {"screening": {"evaluation": {"imaging": ["mri", "pet"]}}},
            "/screening/evaluation/imaging/1",
        ),
        ({"screening": {"active_cancer": "maybe"}}, "/screening/active_cancer"),
        ({"birth_date": "1956-13-09"}, "/birth_date"),
        ({"smoker": "sometimes"}, "/smoker"),
    ],
)
def test_invalid_values_name_their_field(
    client: TestClient, world: World, overrides: dict[str, Any], pointer: str
) -> None:
    assert pointer in pointers(create(client, world, **overrides))


@pytest.mark.parametrize(
    "field", ["mrn", "given_name", "family_name", "birth_date", "sex", "timezone", "stenosis"]
)
def test_required_fields_are_required(client: TestClient, world: World, field: str) -> None:
    body = patient_body()
    del body[field]
    response = client.post("/v1/patients", headers=world.headers("clinician_a"), json=body)
    assert f"/{field}" in pointers(response)


# --- GET /v1/patients ----------------------------------------------------------------------------


def test_clinician_lists_only_their_own_clinic(
    client: TestClient, world: World, db: Session
) -> None:
    extra_a = make_patient(db, clinic=world.clinic_a)
    extra_b = make_patient(db, clinic=world.clinic_b)
    own = {str(world.patient_a.id), str(extra_a.id)}
    other = {str(world.patient_b.id), str(extra_b.id)}
    assert set(list_ids(client, world, "clinician_a")) == own
    assert set(list_ids(client, world, "clinician_b")) == other
    assert set(list_ids(client, world, "admin")) == own | other


def test_list_items_are_full_patient_records(client: TestClient, world: World) -> None:
    answer = created(client, world)
    response = client.get("/v1/patients", headers=world.headers("clinician_a"))
    assert response.status_code == 200
    items = {item["id"]: item for item in response.json()["items"]}
    assert items[answer["id"]] == answer
    assert items[answer["id"]]["progress_status"] == "pending"  # no procedure yet
    assert items[answer["id"]]["open_alerts"] == 0


def test_cursor_pagination_returns_every_patient_once_in_a_stable_order(
    client: TestClient, world: World, db: Session
) -> None:
    tie = datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
    for i in range(5):
        make_patient(
            db, clinic=world.clinic_a, created_at=tie, updated_at=tie, given_name=f"Tie{i}"
        )
    make_patient(db, clinic=world.clinic_a, created_at=datetime(2023, 1, 1, tzinfo=UTC))
    make_patient(db, clinic=world.clinic_a, created_at=datetime(2024, 5, 1, 8, 30, 1, tzinfo=UTC))
    make_patient(db, clinic=world.clinic_b, created_at=tie)  # another clinic, same instant
    expected = {
        str(p.id) for p in db.exec(select(Patient).where(Patient.clinic_id == world.clinic_a.id))
    }
    db.commit()
    assert len(expected) == 8

    walked = list_ids(client, world, "clinician_a", limit=2)
    assert len(walked) == len(set(walked)) == len(expected)
    assert set(walked) == expected
    assert list_ids(client, world, "clinician_a", limit=2) == walked
    assert list_ids(client, world, "clinician_a", limit=3) == walked
    assert list_ids(client, world, "clinician_a", limit=500) == walked

    every = list_ids(client, world, "admin", limit=2)
    assert len(every) == len(set(every)) == 10


def test_pagination_when_every_patient_shares_one_instant(
    client: TestClient, world: World, db: Session
) -> None:
    tie = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    for patient in db.exec(select(Patient)):
        patient.created_at = tie
        db.add(patient)
    db.commit()
    for _ in range(6):
        make_patient(db, clinic=world.clinic_a, created_at=tie)
    walked = list_ids(client, world, "admin", limit=1)
    assert len(walked) == len(set(walked)) == 8
    assert list_ids(client, world, "admin", limit=3) == walked


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"q": ""}, "q"),
    ],
)
def test_bad_list_parameters_are_422(
    client: TestClient, world: World, params: dict[str, Any], pointer: str
) -> None:
    response = client.get("/v1/patients", headers=world.headers("clinician_a"), params=params)
    assert pointer in pointers(response)


def test_q_matches_given_name_family_name_and_mrn_case_insensitively(
    client: TestClient, world: World
) -> None:
    grace = created(client, world, given_name="Grace", family_name="Hopper", mrn="XQ-77")
    alan = created(client, world, given_name="Alan", family_name="Turing", mrn="T-100")
    created(client, world, "clinician_b", given_name="Grace", family_name="Hopper", mrn="XQ-78")
    searches = {
        "grace": {grace["id"]},
        "GRACE": {grace["id"]},
        "hOpP": {grace["id"]},
        "xq-77": {grace["id"]},
        "uRiN": {alan["id"]},
        "t-1": {alan["id"]},
        "lovelace": {str(world.patient_a.id)},
        "nobody": set(),
    }
    for q, expected in searches.items():
        assert set(list_ids(client, world, "clinician_a", q=q)) == expected, q
    assert len(list_ids(client, world, "admin", q="hopper")) == 2


def test_percent_and_underscore_in_q_are_literal(client: TestClient, world: World) -> None:
    percent = created(client, world, given_name="Per", family_name="Per%cent", mrn="PC-1")
    pierce = created(client, world, given_name="Pierce", family_name="Brosnan", mrn="PB-1")
    under = created(client, world, given_name="Una", family_name="Score", mrn="A_1")
    lookalike = created(client, world, given_name="Ab", family_name="One", mrn="AB1")
    backslash = created(client, world, given_name="Back", family_name="Sl\\ash", mrn="BS-1")
    assert set(list_ids(client, world, q="%")) == {percent["id"]}
    assert set(list_ids(client, world, q="r%c")) == {percent["id"]}
    assert set(list_ids(client, world, q="_")) == {under["id"]}
    assert set(list_ids(client, world, q="a_1")) == {under["id"]}
    assert set(list_ids(client, world, q="\\")) == {backslash["id"]}
    assert set(list_ids(client, world, q="ab1")) == {lookalike["id"]}
    assert set(list_ids(client, world, q="rc")) == {pierce["id"]}


def test_q_combines_with_pagination(client: TestClient, world: World) -> None:
    ids = {created(client, world, family_name="Curie", given_name=f"M{i}")["id"] for i in range(5)}
    created(client, world, family_name="Noether", given_name="Emmy")
    walked = list_ids(client, world, q="curie", limit=2)
    assert len(walked) == 5
    assert set(walked) == ids


# --- GET /v1/patients/{id} ---------------------------------------------------------------------


def test_read_returns_the_patient_with_an_etag(client: TestClient, world: World) -> None:
    answer = created(client, world)
    response = read(client, world, answer["id"])
    assert response.status_code == 200
    assert response.json() == answer
    assert response.headers["ETag"]


def test_read_of_a_missing_patient_is_404(client: TestClient, world: World) -> None:
    assert_problem(read(client, world, uuid.uuid4()), 404)
    assert_problem(read(client, world, uuid.uuid4(), "admin"), 404)


def test_read_with_a_malformed_id_is_422(client: TestClient, world: World) -> None:
    assert "patient_id" in pointers(read(client, world, "not-a-uuid"))


def test_admin_reads_any_clinic(client: TestClient, world: World) -> None:
    assert read(client, world, world.patient_a.id, "admin").status_code == 200
    assert read(client, world, world.patient_b.id, "admin").status_code == 200


# --- PATCH /v1/patients/{id} -------------------------------------------------------------------


def test_patch_without_if_match_is_428(client: TestClient, world: World, db: Session) -> None:
    answer = created(client, world)
    assert_problem(patch(client, world, answer["id"], {"given_name": "Amazing"}, None), 428)
    assert stored(db, answer["id"]).given_name == "Grace"


def test_patch_with_a_stale_etag_is_412(client: TestClient, world: World, db: Session) -> None:
    answer = created(client, world)
    assert_problem(patch(client, world, answer["id"], {"given_name": "Amazing"}, '"999"'), 412)
    assert_problem(patch(client, world, answer["id"], {"given_name": "Amazing"}, "garbage"), 412)
    patient = stored(db, answer["id"])
    assert patient.given_name == "Grace"
    assert patient.version == answer["version"]


def test_patch_with_the_current_etag_changes_the_patient(
    client: TestClient, world: World, db: Session
) -> None:
    answer = created(client, world)
    before = etag_of(client, world, answer["id"])
    response = patch(
        client,
        world,
        answer["id"],
        {"given_name": "Amazing", "stenosis": {"region": "cervical", "cause": "injury"}},
        before,
    )
    assert response.status_code == 200, response.text
    after = response.headers["ETag"]
    assert after
    assert after != before
    changed = response.json()
    assert changed["given_name"] == "Amazing"
    assert changed["stenosis"] == {"region": "cervical", "cause": "injury"}
    assert changed["family_name"] == "Hopper"
    assert changed["mrn"] == answer["mrn"]
    assert changed["screening"] == GOOD_SCREENING

    reread = read(client, world, answer["id"])
    assert reread.headers["ETag"] == after
    assert reread.json() == changed
    patient = stored(db, answer["id"])
    assert patient.given_name == "Amazing"
    assert patient.stenosis_region == "cervical"
    # The old tag no longer works.
    assert_problem(patch(client, world, answer["id"], {"smoker": False}, before), 412)


@pytest.mark.parametrize(
    "field",
    [
        "mrn",
        "given_name",
        "family_name",
        "birth_date",
        "sex",
        "timezone",
        "stenosis",
        "comorbidities",
        "smoker",
        "research_consent",
        "screening",
    ],
)
def test_patch_may_not_null_a_required_field(
    client: TestClient, world: World, db: Session, field: str
) -> None:
    answer = created(client, world)
    etag = etag_of(client, world, answer["id"])
    assert f"/{field}" in pointers(patch(client, world, answer["id"], {field: None}, etag))
    assert stored(db, answer["id"]).version == answer["version"]


def test_patch_may_clear_the_postal_code(client: TestClient, world: World) -> None:
    answer = created(client, world)
    response = patch(
        client, world, answer["id"], {"postal_code": None}, etag_of(client, world, answer["id"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["postal_code"] is None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"id": str(uuid.uuid4())}, "/id"),
        ({"clinic_id": str(uuid.uuid4())}, "/clinic_id"),
        ({"version": 9}, "/version"),
        ({"timezone": "Mars/Olympus_Mons"}, "/timezone"),
        ({"given_name": "Ada\x00"}, "/given_name"),
        ({"stenosis": {"region": "sacral", "cause": "injury"}}, "/stenosis/region"),
    ],
)
def test_patch_validates_its_body(
    client: TestClient, world: World, db: Session, body: dict[str, Any], pointer: str
) -> None:
    answer = created(client, world)
    etag = etag_of(client, world, answer["id"])
    assert pointer in pointers(patch(client, world, answer["id"], body, etag))
    patient = stored(db, answer["id"])
    assert patient.version == answer["version"]
    assert patient.clinic_id == world.clinic_a.id


def test_patch_screening_merges_with_the_stored_screening(
    client: TestClient, world: World, db: Session
) -> None:
    answer = created(
        client,
        world,
        screening={
            "conservative_care_tried": ["physical_therapy"],
            "active_infection": False,
            "evaluation": {"medical_history_reviewed": True, "imaging": ["ct"]},
        },
    )
    response = patch(
        client,
        world,
        answer["id"],
        {"screening": {"conservative_care_failed": True}},
        etag_of(client, world, answer["id"]),
    )
    assert response.status_code == 200, response.text
    screening = response.json()["screening"]
    assert screening["conservative_care_failed"] is True
    assert screening["conservative_care_tried"] == ["physical_therapy"]
    assert screening["active_infection"] is False
    assert screening["evaluation"]["medical_history_reviewed"] is True
    assert screening["evaluation"]["imaging"] == ["ct"]
    assert read(client, world, answer["id"]).json()["screening"] == screening
    assert stored(db, answer["id"]).screening["conservative_care_tried"] == ["physical_therapy"]


def test_patch_evaluation_keeps_the_evaluation_steps_not_sent(
    client: TestClient, world: World
) -> None:
    answer = created(
        client,
        world,
        screening={"evaluation": {"medical_history_reviewed": True, "imaging": ["mri"]}},
    )
    response = patch(
        client,
        world,
        answer["id"],
        {"screening": {"evaluation": {"physical_exam_done": True, "labs_done": True}}},
        etag_of(client, world, answer["id"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["screening"]["evaluation"] == {
        "medical_history_reviewed": True,
        "physical_exam_done": True,
        "imaging": ["mri"],
        "labs_done": True,
    }


def test_patch_to_another_patients_mrn_is_409(
    client: TestClient, world: World, db: Session
) -> None:
    answer = created(client, world)
    etag = etag_of(client, world, answer["id"])
    assert_problem(patch(client, world, answer["id"], {"mrn": world.patient_a.mrn}, etag), 409)
    patient = stored(db, answer["id"])
    assert patient.mrn == answer["mrn"]
    assert patient.version == answer["version"]
    # The refused change left the record usable with the same tag.
    response = patch(client, world, answer["id"], {"mrn": world.patient_b.mrn}, etag)
    assert response.status_code == 200, response.text  # patient_b's MRN is in another clinic
    assert response.json()["mrn"] == world.patient_b.mrn


def test_patch_keeping_the_own_mrn_is_allowed(client: TestClient, world: World) -> None:
    answer = created(client, world)
    response = patch(
        client, world, answer["id"], {"mrn": answer["mrn"]}, etag_of(client, world, answer["id"])
    )
    assert response.status_code == 200, response.text


def test_a_lost_update_is_refused(client: TestClient, world: World, db: Session) -> None:
    answer = created(client, world)
    first_read = etag_of(client, world, answer["id"], "clinician_a")
    second_read = etag_of(client, world, answer["id"], "admin")
    assert first_read == second_read

    won = patch(client, world, answer["id"], {"given_name": "Alice"}, first_read, "clinician_a")
    assert won.status_code == 200, won.text
    lost = patch(client, world, answer["id"], {"family_name": "Bob"}, second_read, "admin")
    assert_problem(lost, 412)

    current = read(client, world, answer["id"]).json()
    assert current["given_name"] == "Alice"
    assert current["family_name"] == "Hopper"
    assert current["version"] == won.json()["version"]
    patient = stored(db, answer["id"])
    assert (patient.given_name, patient.family_name) == ("Alice", "Hopper")


def test_concurrent_patches_with_one_etag_let_exactly_one_through(
    client: TestClient, world: World, db: Session
) -> None:
    answer = created(client, world)
    etag = etag_of(client, world, answer["id"])
    writers = 4
    barrier = threading.Barrier(writers)
    statuses: dict[int, int] = {}

    def write(i: int) -> None:
        barrier.wait()
        response = patch(client, world, answer["id"], {"given_name": f"Writer{i}"}, etag)
        statuses[i] = response.status_code

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses.values()) == [200] + [412] * (writers - 1), statuses
    winner = next(i for i, status in statuses.items() if status == 200)
    patient = stored(db, answer["id"])
    assert patient.given_name == f"Writer{winner}"
    assert patient.version == answer["version"] + 1


# --- GET /v1/patients/{id}/candidacy -----------------------------------------------------------


def candidacy(
    client: TestClient, world: World, patient_id: Any, actor: str = "clinician_a"
) -> httpx2.Response:
    return client.get(f"/v1/patients/{patient_id}/candidacy", headers=world.headers(actor))


def test_candidacy_of_a_good_candidate(client: TestClient, world: World) -> None:
    answer = created(client, world)
    response = candidacy(client, world, answer["id"])
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "good_candidate", "reasons": [], "missing_evaluation": []}


def test_candidacy_of_a_contraindicated_patient(client: TestClient, world: World) -> None:
    screening = GOOD_SCREENING | {"active_infection": True, "severe_neurological_deficit": True}
    answer = created(client, world, screening=screening)
    body = candidacy(client, world, answer["id"]).json()
    assert body["status"] == "contraindicated"
    assert sorted(r["message"] for r in body["reasons"]) == [
        "active infection",
        "severe neurological deficits",
    ]
    for reason in body["reasons"]:
        assert set(reason) == {"code", "message"}


def test_candidacy_of_an_incompletely_evaluated_patient(client: TestClient, world: World) -> None:
    screening = GOOD_SCREENING | {"evaluation": {"medical_history_reviewed": True, "imaging": []}}
    answer = created(client, world, screening=screening)
    body = candidacy(client, world, answer["id"]).json()
    assert body["status"] == "incomplete_evaluation"
    assert sorted(body["missing_evaluation"]) == ["imaging", "lab_tests", "physical_exam"]


def test_candidacy_of_a_patient_registered_without_screening(
    client: TestClient, world: World
) -> None:
    body = candidacy(client, world, world.patient_a.id).json()
    assert body["status"] == "incomplete_evaluation"
    assert sorted(body["missing_evaluation"]) == [
        "imaging",
        "lab_tests",
        "medical_history_review",
        "physical_exam",
    ]


def test_candidacy_of_a_non_degenerative_stenosis(client: TestClient, world: World) -> None:
    answer = created(client, world, stenosis={"region": "cervical", "cause": "congenital"})
    body = candidacy(client, world, answer["id"]).json()
    assert body["status"] == "not_recommended"
    assert body["reasons"]


def test_candidacy_follows_screening_updates(client: TestClient, world: World) -> None:
    screening = GOOD_SCREENING | {"evaluation": GOOD_SCREENING["evaluation"] | {"labs_done": False}}
    answer = created(client, world, screening=screening)
    assert candidacy(client, world, answer["id"]).json()["missing_evaluation"] == ["lab_tests"]
    response = patch(
        client,
        world,
        answer["id"],
        {"screening": {"evaluation": GOOD_SCREENING["evaluation"]}},
        etag_of(client, world, answer["id"]),
    )
    assert response.status_code == 200, response.text
    assert candidacy(client, world, answer["id"]).json()["status"] == "good_candidate"


# --- privacy: audit rows and logs --------------------------------------------------------------

SECRET = {
    "given_name": "Zebulonia",
    "family_name": "Quillfeatherstone",
    "mrn": "MRN-SECRET-4242",
    "birth_date": "1961-03-07",
    "postal_code": "80331",
}


def test_patient_reads_and_writes_are_audited_without_identifying_fields(
    client: TestClient, world: World, db: Session
) -> None:
    answer = created(client, world, **SECRET)
    patient_id = answer["id"]
    etag = etag_of(client, world, patient_id)
    assert patch(client, world, patient_id, {"smoker": False}, etag).status_code == 200
    assert candidacy(client, world, patient_id).status_code == 200
    list_ids(client, world, q=SECRET["family_name"])
    assert_problem(create(client, world, **SECRET), 409)
    assert_problem(read(client, world, patient_id, "clinician_b"), 404)

    rows = audit_rows(db)
    actions = {(row.action, str(row.patient_id)) for row in rows}
    for action in ("patient.create", "patient.read", "patient.update", "patient.candidacy"):
        assert (action, patient_id) in actions, action
    assert any(row.action == "patient.list" for row in rows)
    denied = [r for r in rows if r.actor_id == world.clinician_b.id and r.action == "patient.read"]
    assert [r.outcome for r in denied] == ["denied"]

    for row in rows:
        text = " ".join(str(value) for value in row.model_dump().values())
        for name, secret in SECRET.items():
            assert secret.lower() not in text.lower(), (name, row.action)


def test_logs_carry_no_identifying_fields_or_search_terms(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer = created(client, world, **SECRET)
    assert_problem(create(client, world, **SECRET), 409)
    found = list_ids(client, world, q=SECRET["family_name"])
    assert found == [answer["id"]]
    assert set(list_ids(client, world, q=SECRET["mrn"].lower())) == {answer["id"]}

    # The test client (httpx) logs its own request URLs; only the service's records count.
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert any(r.name.startswith("recovery_tracker") for r in records), "requests were logged"
    formatter = SafeFormatter(FORMAT)
    for record in records:
        lines = (record.getMessage(), formatter.format(record))
        for line in lines:
            for name, secret in SECRET.items():
                assert secret.lower() not in line.lower(), (name, record.name)


# --- access ------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/v1/patients"),
    ("GET", "/v1/patients"),
    ("GET", "/v1/patients/{id}"),
    ("PATCH", "/v1/patients/{id}"),
    ("GET", "/v1/patients/{id}/candidacy"),
]


def call(
    client: TestClient, world: World, method: str, path: str, actor: str | None, patient_id: Any
) -> httpx2.Response:
    headers = world.headers(actor) | {"If-Match": '"1"'}
    body: dict[str, Any] | None = None
    if method == "POST":
        body = patient_body(clinic_id=str(world.clinic_a.id))
    elif method == "PATCH":
        body = {"given_name": "Intruder"}
    return client.request(method, path.format(id=patient_id), headers=headers, json=body)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("actor", ["researcher_a", "patient_a"])
def test_researchers_and_patients_may_not_use_patient_routes(
    client: TestClient, world: World, db: Session, method: str, path: str, actor: str
) -> None:
    before = patient_count(db)
    response = call(client, world, method, path, actor, world.patient_a.id)
    assert_problem(response, 403)
    assert patient_count(db) == before
    patient = stored(db, world.patient_a.id)
    assert patient.given_name == "Ada"
    assert patient.version == 1


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_patient_routes_need_a_token(
    client: TestClient, world: World, method: str, path: str
) -> None:
    assert_problem(call(client, world, method, path, None, world.patient_a.id), 401)


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if "{id}" in r[1]])
def test_another_clinics_patient_is_not_found(
    client: TestClient, world: World, db: Session, method: str, path: str
) -> None:
    response = call(client, world, method, path, "clinician_b", world.patient_a.id)
    body = assert_problem(response, 404)
    missing = assert_problem(call(client, world, method, path, "clinician_b", uuid.uuid4()), 404)
    assert body["detail"] == missing["detail"]
    assert body["title"] == missing["title"]
    patient = stored(db, world.patient_a.id)
    assert patient.given_name == "Ada"
    assert patient.version == 1
