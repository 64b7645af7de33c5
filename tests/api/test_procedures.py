"""Procedures: recording them with the consistency rules of CLINICAL.md, listing, reading and
correcting them (If-Match), and the contraindication override."""

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
from models.procedure import Procedure
from tests.factories import World, make_patient

PROBLEM_JSON = "application/problem+json"
CONTRAINDICATED = {"active_cancer": True}


# --- helpers ---------------------------------------------------------------------------------


def today_berlin() -> date:
    """Today in the world's patients' time zone (Europe/Berlin)."""
    return datetime.now(ZoneInfo("Europe/Berlin")).date()


def days_ago(n: int) -> str:
    return (today_berlin() - timedelta(days=n)).isoformat()


def full_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": days_ago(10),
        "treatment": "stem_cell",
        "cell_source": "bone_marrow",
        "harvest": {
            "method": "bone_marrow_aspiration",
            "site": "right posterior iliac crest",
            "volume_ml": 60.0,
        },
        "injections": [
            {
                "route": "intradiscal",
                "levels": ["L4-L5"],
                "guidance": "fluoroscopy",
                "volume_ml": 2.0,
                "cell_count": 10_000_000,
            },
            {
                "route": "epidural",
                "levels": ["L4-L5", "L5-S1"],
                "guidance": "fluoroscopy",
                "volume_ml": 3.5,
                "cell_count": 5_000_000,
            },
        ],
        "adjuncts": ["prp", "physical_therapy"],
        "baseline": {"pain": 7.0, "leg_pain": 5.0, "mobility": 3.0, "odi": 42.0},
        "notes": "Uneventful aspiration and injection; patient advised to rest 48 h.",
    }
    return body | overrides


def prp_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "performed_on": days_ago(3),
        "treatment": "prp",
        "harvest": {"method": "blood_draw", "volume_ml": 30.0},
        "injections": [{"route": "epidural", "levels": ["L3-L4"], "guidance": "ultrasound"}],
    }
    return body | overrides


def post_procedure(
    client: TestClient,
    world: World,
    body: dict[str, Any],
    patient: Patient | None = None,
    actor: str = "clinician_a",
) -> httpx2.Response:
    target = patient or world.patient_a
    return client.post(
        f"/v1/patients/{target.id}/procedures", headers=world.headers(actor), json=body
    )


def create_procedure(
    client: TestClient, world: World, body: dict[str, Any], patient: Patient | None = None
) -> dict[str, Any]:
    response = post_procedure(client, world, body, patient)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def procedure_url(patient: Patient, procedure_id: Any = None) -> str:
    base = f"/v1/patients/{patient.id}/procedures"
    return base if procedure_id is None else f"{base}/{procedure_id}"


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def errors_of(response: httpx2.Response) -> list[dict[str, str]]:
    body = assert_problem(response, 422)
    errors: list[dict[str, str]] = body.get("errors") or []
    assert errors, "a 422 names the offending fields"
    return errors


def pointers(response: httpx2.Response) -> list[str]:
    return [error["pointer"] for error in errors_of(response)]


def message_at(response: httpx2.Response, pointer: str) -> str:
    messages = [e["message"] for e in errors_of(response) if e["pointer"] == pointer]
    assert messages, f"no error at {pointer}: {response.text}"
    return " ".join(messages)


def stored_procedures(db: Session, patient: Patient | None = None) -> list[Procedure]:
    query = select(Procedure)
    if patient is not None:
        query = query.where(Procedure.patient_id == patient.id)
    rows = list(db.exec(query.execution_options(populate_existing=True)))
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return rows


def count_procedures(db: Session) -> int:
    total: int = db.exec(select(func.count()).select_from(Procedure)).one()
    db.commit()
    return total


# --- creating --------------------------------------------------------------------------------


def test_create_with_the_full_body_echoes_it(client: TestClient, world: World, db: Session) -> None:
    body = full_body()
    response = post_procedure(client, world, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == procedure_url(world.patient_a, created["id"])
    uuid.UUID(created["id"])
    assert created["patient_id"] == str(world.patient_a.id)
    for key, value in body.items():
        assert created[key] == value, key
    assert created["protocol"] == {"id": "default", "version": 1}
    assert created["override_reason"] is None
    assert created["version"] == 1
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(created[stamp]).tzinfo is not None

    read = client.get(response.headers["Location"], headers=world.headers("clinician_a"))
    assert read.status_code == 200, read.text
    assert read.json() == created

    [row] = stored_procedures(db, world.patient_a)
    assert str(row.id) == created["id"]
    assert row.baseline_pain == 7.0
    assert row.baseline_odi == 42.0
    assert row.protocol_id == "default"
    assert row.protocol_version == 1
    assert row.created_by_id == world.clinician_a.id


def test_admin_records_a_procedure_too(client: TestClient, world: World) -> None:
    response = post_procedure(client, world, prp_body(), actor="admin")
    assert response.status_code == 201, response.text


def test_minimal_red_light_session_needs_no_harvest_or_injections(
    client: TestClient, world: World
) -> None:
    created = create_procedure(
        client, world, {"performed_on": days_ago(1), "treatment": "red_light"}
    )
    assert created["injections"] == []
    assert created["cell_source"] is None
    assert created["baseline"] is None
    assert created["protocol"] == {"id": "default", "version": 1}


def test_explicit_default_protocol_is_accepted(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, prp_body(protocol_id="default"))
    assert created["protocol"] == {"id": "default", "version": 1}


def test_future_is_judged_in_the_patients_time_zone(
    client: TestClient, world: World, db: Session
) -> None:
    # Kiritimati (UTC+14) is always one or two calendar days ahead of Pago Pago (UTC-11).
    ahead = make_patient(db, clinic=world.clinic_a, timezone="Pacific/Kiritimati")
    behind = make_patient(db, clinic=world.clinic_a, timezone="Pacific/Pago_Pago")
    their_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    create_procedure(client, world, prp_body(performed_on=their_today), patient=ahead)
    response = post_procedure(client, world, prp_body(performed_on=their_today), patient=behind)
    assert pointers(response) == ["/performed_on"]


def test_unknown_protocol_is_422_at_protocol_id(
    client: TestClient, world: World, db: Session
) -> None:
    response = post_procedure(client, world, prp_body(protocol_id="no-such-protocol"))
    assert "/protocol_id" in pointers(response)
    assert count_procedures(db) == 0


def test_procedure_can_be_recorded_today(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, prp_body(performed_on=today_berlin().isoformat()))
    assert created["performed_on"] == today_berlin().isoformat()


# --- consistency rules (CLINICAL.md §Procedure consistency rules) ----------------------------

# (id, body, pointer, words the message must contain to name the rule)
RULES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    (
        "bone marrow cells with lipoaspiration",
        full_body(harvest={"method": "lipoaspiration", "site": "abdomen", "volume_ml": 100.0}),
        "/harvest/method",
        ("bone marrow", "bone_marrow_aspiration"),
    ),
    (
        "adipose cells with bone marrow aspiration",
        full_body(cell_source="adipose"),
        "/harvest/method",
        ("lipoaspiration",),
    ),
    (
        "umbilical cord cells with a bone marrow harvest",
        full_body(cell_source="umbilical_cord"),
        "/harvest/method",
        ("umbilical cord",),
    ),
    (
        "umbilical cord cells with a blood draw",
        full_body(cell_source="umbilical_cord", harvest={"method": "blood_draw"}),
        "/harvest/method",
        ("umbilical cord",),
    ),
    (
        "prp without blood draw",
        prp_body(harvest={"method": "none"}),
        "/harvest/method",
        ("PRP", "blood_draw"),
    ),
    (
        "prp without any harvest",
        prp_body(harvest=None),
        "/harvest/method",
        ("PRP", "blood_draw"),
    ),
    (
        "prolotherapy with a harvest",
        prp_body(treatment="prolotherapy"),
        "/harvest/method",
        ("prolotherapy", "no harvest"),
    ),
    (
        "stem cells without a cell source",
        full_body(cell_source=None),
        "/cell_source",
        ("stem cell", "cell_source"),
    ),
    (
        "prp with a cell source",
        prp_body(cell_source="bone_marrow"),
        "/cell_source",
        ("only stem cell",),
    ),
    (
        "red light with injections",
        prp_body(treatment="red_light", harvest=None),
        "/injections",
        ("red light", "no injections"),
    ),
    (
        "prp without injections",
        prp_body(injections=[]),
        "/injections",
        ("at least one injection",),
    ),
    (
        "level that skips a vertebra",
        prp_body(injections=[{"route": "facet", "levels": ["L3-L5"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("L3-L5", "adjacent"),
    ),
    (
        "level upside down",
        prp_body(injections=[{"route": "facet", "levels": ["L5-L4"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("adjacent",),
    ),
    (
        "level that does not exist",
        prp_body(injections=[{"route": "facet", "levels": ["L5-L6"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("adjacent",),
    ),
    (
        "level below the sacrum",
        prp_body(injections=[{"route": "facet", "levels": ["S1-S2"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("adjacent",),
    ),
    (
        "level that is not a level at all",
        prp_body(injections=[{"route": "facet", "levels": ["lower back"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("adjacent",),
    ),
    (
        "bad level in the second injection",
        full_body(
            injections=[
                full_body()["injections"][0],
                {"route": "epidural", "levels": ["L5-S1", "L2-L4"], "guidance": "none"},
            ]
        ),
        "/injections/1/levels/1",
        ("L2-L4", "adjacent"),
    ),
    (
        "future date",
        prp_body(performed_on=(today_berlin() + timedelta(days=2)).isoformat()),
        "/performed_on",
        ("future",),
    ),
    (
        "cervical level for lumbar stenosis",
        prp_body(injections=[{"route": "epidural", "levels": ["C5-C6"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("C5-C6", "lumbar", "override_reason"),
    ),
    (
        "cervicothoracic junction for lumbar stenosis",
        prp_body(injections=[{"route": "epidural", "levels": ["C7-T1"], "guidance": "ct"}]),
        "/injections/0/levels/0",
        ("lumbar",),
    ),
]


@pytest.mark.parametrize(
    ("body", "pointer", "words"),
    [pytest.param(body, pointer, words, id=rule) for rule, body, pointer, words in RULES],
)
def test_each_consistency_rule_is_a_422_that_names_it(
    client: TestClient,
    world: World,
    db: Session,
    body: dict[str, Any],
    pointer: str,
    words: tuple[str, ...],
) -> None:
    response = post_procedure(client, world, body)
    assert pointers(response) == [pointer]
    message = message_at(response, pointer)
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    # The problem's detail names the rule too, not just "invalid".
    assert words[0].lower() in response.json()["detail"].lower()
    assert count_procedures(db) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(full_body(), id="bone marrow / aspiration"),
        pytest.param(
            full_body(cell_source="adipose", harvest={"method": "lipoaspiration"}),
            id="adipose / lipoaspiration",
        ),
        pytest.param(
            full_body(cell_source="umbilical_cord", harvest={"method": "none"}),
            id="umbilical cord / no harvest",
        ),
        pytest.param(
            full_body(cell_source="umbilical_cord", harvest=None), id="umbilical cord / omitted"
        ),
        pytest.param(prp_body(), id="prp / blood draw"),
        pytest.param(prp_body(treatment="prolotherapy", harvest=None), id="prolotherapy"),
        pytest.param(
            prp_body(treatment="prolotherapy", harvest={"method": "none"}), id="prolotherapy none"
        ),
        pytest.param(
            {"performed_on": days_ago(1), "treatment": "red_light", "harvest": {"method": "none"}},
            id="red light",
        ),
        pytest.param(
            prp_body(injections=[{"route": "facet", "levels": ["T12-L1"], "guidance": "ct"}]),
            id="thoracolumbar junction counts as lumbar",
        ),
    ],
)
def test_consistent_combinations_are_accepted(
    client: TestClient, world: World, body: dict[str, Any]
) -> None:
    create_procedure(client, world, body)


def test_cervical_patient_takes_cervical_levels_but_not_lumbar(
    client: TestClient, world: World, db: Session
) -> None:
    cervical = make_patient(db, clinic=world.clinic_a, stenosis_region="cervical")
    levels = {"route": "epidural", "levels": ["C5-C6", "C7-T1"], "guidance": "fluoroscopy"}
    create_procedure(client, world, prp_body(injections=[levels]), patient=cervical)
    lumbar = {"route": "epidural", "levels": ["L4-L5"], "guidance": "fluoroscopy"}
    response = post_procedure(client, world, prp_body(injections=[lumbar]), patient=cervical)
    assert pointers(response) == ["/injections/0/levels/0"]
    assert "cervical" in message_at(response, "/injections/0/levels/0")


def test_region_mismatch_is_accepted_with_override_reason(
    client: TestClient, world: World, db: Session
) -> None:
    body = prp_body(injections=[{"route": "epidural", "levels": ["C5-C6"], "guidance": "ct"}])
    assert_problem(post_procedure(client, world, body), 422)
    reason = "Tandem stenosis: cervical segment treated in the same session"
    created = create_procedure(client, world, body | {"override_reason": reason})
    assert created["override_reason"] == reason
    assert created["injections"][0]["levels"] == ["C5-C6"]
    [row] = stored_procedures(db, world.patient_a)
    assert row.override_reason == reason


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        pytest.param(
            full_body(harvest={"method": "lipoaspiration"}), "/harvest/method", id="harvest"
        ),
        pytest.param(
            prp_body(injections=[{"route": "facet", "levels": ["L1-L3"], "guidance": "ct"}]),
            "/injections/0/levels/0",
            id="level",
        ),
        pytest.param(
            prp_body(performed_on=(today_berlin() + timedelta(days=3)).isoformat()),
            "/performed_on",
            id="date",
        ),
    ],
)
def test_override_reason_does_not_waive_the_other_rules(
    client: TestClient, world: World, body: dict[str, Any], pointer: str
) -> None:
    response = post_procedure(client, world, body | {"override_reason": "clinician's choice"})
    assert pointer in pointers(response)


def test_several_broken_rules_are_all_reported(
    client: TestClient, world: World, db: Session
) -> None:
    body = full_body(
        performed_on=(today_berlin() + timedelta(days=5)).isoformat(),
        harvest={"method": "lipoaspiration"},
        injections=[
            {"route": "intradiscal", "levels": ["L4-L6"], "guidance": "fluoroscopy"},
            {"route": "epidural", "levels": ["C3-C4"], "guidance": "fluoroscopy"},
        ],
    )
    response = post_procedure(client, world, body)
    assert set(pointers(response)) == {
        "/performed_on",
        "/harvest/method",
        "/injections/0/levels/0",
        "/injections/1/levels/0",
    }
    assert "future" in message_at(response, "/performed_on")
    assert "bone marrow" in message_at(response, "/harvest/method")
    assert "adjacent" in message_at(response, "/injections/0/levels/0")
    assert "lumbar" in message_at(response, "/injections/1/levels/0")
    assert count_procedures(db) == 0


def test_a_cell_source_on_prp_does_not_hide_the_harvest_rule(
    client: TestClient, world: World
) -> None:
    body = prp_body(cell_source="bone_marrow", harvest={"method": "bone_marrow_aspiration"})
    response = post_procedure(client, world, body)
    assert set(pointers(response)) == {"/cell_source", "/harvest/method"}


def test_lowercase_levels_are_stored_uppercase(
    client: TestClient, world: World, db: Session
) -> None:
    injections = [
        {"route": "facet", "levels": ["l4-l5", " l5-s1 ", "L3\u2013L4"], "guidance": "ct"}
    ]
    created = create_procedure(client, world, prp_body(injections=injections))
    assert created["injections"][0]["levels"] == ["L4-L5", "L5-S1", "L3-L4"]
    read = client.get(
        procedure_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert read.json()["injections"][0]["levels"] == ["L4-L5", "L5-S1", "L3-L4"]
    [row] = stored_procedures(db, world.patient_a)
    assert row.injections[0]["levels"] == ["L4-L5", "L5-S1", "L3-L4"]


# --- contraindicated patients ----------------------------------------------------------------


def audit_rows(db: Session, action: str) -> list[AuditEvent]:
    rows = list(
        db.exec(
            select(AuditEvent)
            .where(AuditEvent.action == action)
            .execution_options(populate_existing=True)
        )
    )
    db.commit()
    return rows


def test_contraindicated_patient_is_409_without_override(
    client: TestClient, world: World, db: Session
) -> None:
    patient = make_patient(db, clinic=world.clinic_a, screening=CONTRAINDICATED)
    response = post_procedure(client, world, full_body(), patient=patient)
    body = assert_problem(response, 409)
    assert "contraindicated" in body["detail"]
    assert "override_reason" in body["detail"]
    assert stored_procedures(db, patient) == []


def test_contraindication_override_is_recorded_and_audited(
    client: TestClient, world: World, db: Session
) -> None:
    patient = make_patient(
        db,
        clinic=world.clinic_a,
        screening={"severe_neurological_deficit": True, "active_infection": True},
    )
    reason = "Multidisciplinary board approved despite deficit; infection treated"
    response = post_procedure(client, world, full_body(override_reason=reason), patient=patient)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["override_reason"] == reason

    rows = [r for r in audit_rows(db, "procedure.create") if r.patient_id == patient.id]
    [row] = rows
    assert row.reason == "contraindication_override"
    assert row.outcome == "allowed"
    assert row.status_code == 201
    assert row.resource_id == created["id"]
    assert row.actor_id == world.clinician_a.id
    # The audit row carries a code, never the clinician's free text.
    assert row.reason != reason


def test_an_ordinary_create_is_audited_without_an_override_reason(
    client: TestClient, world: World, db: Session
) -> None:
    created = create_procedure(client, world, full_body())
    [row] = audit_rows(db, "procedure.create")
    assert row.reason is None
    assert row.resource_id == created["id"]
    assert row.patient_id == world.patient_a.id


def test_region_override_is_not_audited_as_a_contraindication_override(
    client: TestClient, world: World, db: Session
) -> None:
    injections = [{"route": "epidural", "levels": ["C5-C6"], "guidance": "ct"}]
    create_procedure(client, world, prp_body(injections=injections, override_reason="tandem"))
    [row] = audit_rows(db, "procedure.create")
    assert row.reason is None


def test_contraindicated_patient_still_gets_rule_errors_with_override(
    client: TestClient, world: World, db: Session
) -> None:
    patient = make_patient(db, clinic=world.clinic_a, screening=CONTRAINDICATED)
    body = full_body(harvest={"method": "blood_draw"}, override_reason="board approved")
    response = post_procedure(client, world, body, patient=patient)
    assert "/harvest/method" in pointers(response)
    assert stored_procedures(db, patient) == []


# --- listing ---------------------------------------------------------------------------------


def test_repeat_procedures_are_listed_by_date(client: TestClient, world: World) -> None:
    dates = [days_ago(5), days_ago(90), days_ago(30), days_ago(60)]
    ids = {create_procedure(client, world, prp_body(performed_on=d))["id"]: d for d in dates}
    response = client.get(procedure_url(world.patient_a), headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    listed = [item["performed_on"] for item in page["items"]]
    assert listed == sorted(dates)
    assert {item["id"] for item in page["items"]} == set(ids)
    assert all(item["patient_id"] == str(world.patient_a.id) for item in page["items"])


def test_list_shows_only_this_patients_procedures(
    client: TestClient, world: World, db: Session
) -> None:
    other = make_patient(db, clinic=world.clinic_a)
    mine = create_procedure(client, world, prp_body())
    create_procedure(client, world, prp_body(), patient=other)
    response = client.get(procedure_url(world.patient_a), headers=world.headers("clinician_a"))
    assert [item["id"] for item in response.json()["items"]] == [mine["id"]]


def test_list_paginates_with_limit_one(client: TestClient, world: World) -> None:
    # Two on the same day: the order must be stable under ties.
    dates = [days_ago(20), days_ago(40), days_ago(20), days_ago(1)]
    for d in dates:
        create_procedure(client, world, prp_body(performed_on=d))
    headers = world.headers("clinician_a")
    everything = client.get(procedure_url(world.patient_a), headers=headers).json()["items"]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = client.get(procedure_url(world.patient_a), headers=headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [p["id"] for p in seen] == [p["id"] for p in everything]
    assert len(seen) == 4
    assert [p["performed_on"] for p in seen] == sorted(dates)


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_page_parameters_are_422(
    client: TestClient, world: World, params: dict[str, Any], pointer: str
) -> None:
    response = client.get(
        procedure_url(world.patient_a), headers=world.headers("clinician_a"), params=params
    )
    assert pointer in pointers(response)


# --- reading one -----------------------------------------------------------------------------


def test_get_one_returns_it_with_an_etag(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, full_body())
    response = client.get(
        procedure_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == created


def test_another_patients_procedure_under_this_patient_is_404(
    client: TestClient, world: World, db: Session
) -> None:
    other = make_patient(db, clinic=world.clinic_a)
    theirs = create_procedure(client, world, prp_body(), patient=other)
    headers = world.headers("clinician_a")
    wrong = procedure_url(world.patient_a, theirs["id"])
    assert_problem(client.get(wrong, headers=headers), 404)
    patch = client.patch(wrong, headers=headers | {"If-Match": '"1"'}, json={"notes": "x"})
    assert_problem(patch, 404)
    [row] = stored_procedures(db, other)
    assert row.notes is None
    assert row.version == 1


def test_unknown_procedure_is_404_and_a_malformed_id_422(client: TestClient, world: World) -> None:
    headers = world.headers("clinician_a")
    assert_problem(client.get(procedure_url(world.patient_a, uuid.uuid4()), headers=headers), 404)
    response = client.get(procedure_url(world.patient_a, "not-a-uuid"), headers=headers)
    assert_problem(response, 422)


# --- correcting ------------------------------------------------------------------------------


def patch(
    client: TestClient,
    world: World,
    procedure_id: str,
    body: Any,
    if_match: str | None = '"1"',
    patient: Patient | None = None,
) -> httpx2.Response:
    headers = world.headers("clinician_a") | ({"If-Match": if_match} if if_match else {})
    return client.patch(
        procedure_url(patient or world.patient_a, procedure_id), headers=headers, json=body
    )


def test_patch_needs_if_match(client: TestClient, world: World, db: Session) -> None:
    created = create_procedure(client, world, full_body())
    assert_problem(patch(client, world, created["id"], {"notes": "late"}, if_match=None), 428)
    assert_problem(patch(client, world, created["id"], {"notes": "late"}, if_match='"7"'), 412)
    [row] = stored_procedures(db, world.patient_a)
    assert row.version == 1
    assert row.notes == full_body()["notes"]


def test_patch_with_the_current_etag_applies_and_bumps_it(
    client: TestClient, world: World, db: Session
) -> None:
    created = create_procedure(client, world, full_body())
    read = client.get(
        procedure_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    etag = read.headers["ETag"]
    changes = {
        "notes": "Corrected: 3 ml intradiscal",
        "baseline": {"pain": 8, "mobility": 2},
        "adjuncts": ["growth_factors"],
    }
    response = patch(client, world, created["id"], changes, if_match=etag)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    updated = response.json()
    assert updated["version"] == 2
    assert updated["notes"] == changes["notes"]
    assert updated["baseline"] == {"pain": 8.0, "leg_pain": None, "mobility": 2.0, "odi": None}
    assert updated["adjuncts"] == ["growth_factors"]
    # Untouched fields stay.
    for key in ("performed_on", "treatment", "cell_source", "harvest", "injections"):
        assert updated[key] == created[key], key
    assert updated["created_at"] == created["created_at"]

    again = client.get(
        procedure_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert again.headers["ETag"] == '"2"'
    assert again.json() == updated
    # The ETag read before the change is now stale.
    assert_problem(patch(client, world, created["id"], {"notes": "x"}, if_match=etag), 412)
    [row] = stored_procedures(db, world.patient_a)
    assert row.version == 2
    assert row.notes == changes["notes"]


def test_concurrent_patches_with_one_etag_let_exactly_one_through(
    client: TestClient, world: World, db: Session
) -> None:
    created = create_procedure(client, world, full_body())
    writers = 4
    barrier = threading.Barrier(writers)
    statuses: dict[int, int] = {}

    def write(i: int) -> None:
        barrier.wait()
        statuses[i] = patch(client, world, created["id"], {"notes": f"writer {i}"}).status_code

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses.values()) == [200] + [412] * (writers - 1), statuses
    winner = next(i for i, status in statuses.items() if status == 200)
    [row] = stored_procedures(db, world.patient_a)
    assert row.notes == f"writer {winner}"
    assert row.version == 2


def test_patch_accepts_an_if_match_list_or_star(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, prp_body())
    response = patch(client, world, created["id"], {"notes": "a"}, if_match='"9", "1"')
    assert response.status_code == 200, response.text
    response = patch(client, world, created["id"], {"notes": "b"}, if_match="*")
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"3"'


def test_patch_that_switches_treatment_consistently_is_accepted(
    client: TestClient, world: World
) -> None:
    created = create_procedure(client, world, full_body())
    changes = {
        "treatment": "prp",
        "cell_source": None,
        "harvest": {"method": "blood_draw", "volume_ml": 20},
        "injections": [{"route": "facet", "levels": ["l2-l3"], "guidance": "none"}],
    }
    response = patch(client, world, created["id"], changes)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["treatment"] == "prp"
    assert updated["cell_source"] is None
    assert updated["harvest"] == {"method": "blood_draw", "site": None, "volume_ml": 20.0}
    assert updated["injections"][0]["levels"] == ["L2-L3"]


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        pytest.param({"treatment": "prp"}, "/cell_source", id="prp keeps bone marrow source"),
        pytest.param(
            {"treatment": "prp", "cell_source": None},
            "/harvest/method",
            id="prp keeps bone marrow harvest",
        ),
        pytest.param({"harvest": {"method": "lipoaspiration"}}, "/harvest/method", id="harvest"),
        pytest.param({"harvest": None}, "/harvest/method", id="harvest removed"),
        pytest.param({"cell_source": None}, "/cell_source", id="cell source removed"),
        pytest.param({"injections": []}, "/injections", id="no injections"),
        pytest.param(
            {"injections": [{"route": "facet", "levels": ["L2-L4"], "guidance": "ct"}]},
            "/injections/0/levels/0",
            id="bad level",
        ),
        pytest.param(
            {"injections": [{"route": "facet", "levels": ["C2-C3"], "guidance": "ct"}]},
            "/injections/0/levels/0",
            id="region",
        ),
        pytest.param(
            {"performed_on": (today_berlin() + timedelta(days=4)).isoformat()},
            "/performed_on",
            id="future date",
        ),
    ],
)
def test_patch_that_breaks_a_rule_is_422_and_changes_nothing(
    client: TestClient, world: World, db: Session, changes: dict[str, Any], pointer: str
) -> None:
    created = create_procedure(client, world, full_body())
    response = patch(client, world, created["id"], changes | {"notes": "should not stick"})
    assert pointer in pointers(response)
    read = client.get(
        procedure_url(world.patient_a, created["id"]), headers=world.headers("clinician_a")
    )
    assert read.headers["ETag"] == '"1"'
    assert read.json() == created
    [row] = stored_procedures(db, world.patient_a)
    assert row.version == 1
    assert row.treatment == "stem_cell"
    assert row.notes == full_body()["notes"]


def test_patch_that_removes_the_region_override_is_422(client: TestClient, world: World) -> None:
    body = prp_body(
        injections=[{"route": "epidural", "levels": ["C5-C6"], "guidance": "ct"}],
        override_reason="tandem stenosis",
    )
    created = create_procedure(client, world, body)
    response = patch(client, world, created["id"], {"override_reason": None})
    # A recorded justification stays: removing it is refused before the region rule is reached.
    assert pointers(response) == ["/override_reason"]
    # Another correction that keeps the override is fine.
    response = patch(client, world, created["id"], {"notes": "checked"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("field", ["performed_on", "treatment", "injections", "adjuncts"])
def test_patch_null_for_a_required_field_is_422(
    client: TestClient, world: World, field: str
) -> None:
    created = create_procedure(client, world, full_body())
    response = patch(client, world, created["id"], {field: None})
    assert pointers(response) == [f"/{field}"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"id": str(uuid.uuid4())}, id="id"),
        pytest.param({"patient_id": str(uuid.uuid4())}, id="patient_id"),
        pytest.param({"version": 7}, id="version"),
        pytest.param({"created_at": "2020-01-01T00:00:00Z"}, id="created_at"),
        pytest.param({"protocol": {"id": "default", "version": 1, "rules": {}}}, id="protocol"),
        pytest.param({"harvest": {"method": "bone_marrow_aspiration", "colour": "red"}}, id="deep"),
    ],
)
def test_patch_with_unknown_or_server_owned_fields_is_422(
    client: TestClient, world: World, db: Session, body: dict[str, Any]
) -> None:
    created = create_procedure(client, world, full_body())
    response = patch(client, world, created["id"], body)
    [pointer] = pointers(response)
    key = next(iter(body))
    assert pointer.startswith(f"/{key}")
    [row] = stored_procedures(db, world.patient_a)
    assert row.version == 1
    assert str(row.patient_id) == str(world.patient_a.id)


@pytest.mark.parametrize("field", ["id", "patient_id", "version", "created_at", "protocol"])
def test_create_with_server_owned_fields_is_422(
    client: TestClient, world: World, db: Session, field: str
) -> None:
    value: Any = {"id": "default", "version": 1} if field == "protocol" else str(uuid.uuid4())
    if field == "version":
        value = 3
    if field == "created_at":
        value = "2020-01-01T00:00:00Z"
    response = post_procedure(client, world, full_body(**{field: value}))
    assert pointers(response) == [f"/{field}"]
    assert count_procedures(db) == 0


# --- field validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        pytest.param(full_body(baseline={"pain": 11}), "/baseline/pain", id="pain 11"),
        pytest.param(full_body(baseline={"pain": -1}), "/baseline/pain", id="pain -1"),
        pytest.param(full_body(baseline={"mobility": 10.5}), "/baseline/mobility", id="mobility"),
        pytest.param(full_body(baseline={"odi": 101}), "/baseline/odi", id="odi"),
        pytest.param(full_body(baseline={"pain": "high"}), "/baseline/pain", id="pain text"),
        pytest.param(full_body(notes="x" * 2001), "/notes", id="notes 2001"),
        pytest.param(full_body(notes="bad\x00byte"), "/notes", id="notes NUL"),
        pytest.param(full_body(notes="bell\x07"), "/notes", id="notes control"),
        pytest.param(full_body(treatment="ozone"), "/treatment", id="treatment"),
        pytest.param(full_body(cell_source="placenta"), "/cell_source", id="cell source"),
        pytest.param(full_body(performed_on="2024-02-30"), "/performed_on", id="bad date"),
        pytest.param(full_body(performed_on="yesterday"), "/performed_on", id="text date"),
        pytest.param(full_body(adjuncts=["massage"]), "/adjuncts/0", id="adjunct"),
        pytest.param(
            full_body(harvest={"method": "bone_marrow_aspiration", "volume_ml": 0}),
            "/harvest/volume_ml",
            id="harvest volume 0",
        ),
        pytest.param(
            full_body(harvest={"method": "bone_marrow_aspiration", "site": "hip\nbone"}),
            "/harvest/site",
            id="site newline",
        ),
        pytest.param(
            prp_body(injections=[{"route": "nasal", "levels": ["L4-L5"], "guidance": "ct"}]),
            "/injections/0/route",
            id="route",
        ),
        pytest.param(
            prp_body(injections=[{"route": "facet", "levels": [], "guidance": "ct"}]),
            "/injections/0/levels",
            id="no levels",
        ),
        pytest.param(
            prp_body(injections=[{"route": "facet", "levels": ["L4-L5"], "guidance": "mri"}]),
            "/injections/0/guidance",
            id="guidance",
        ),
        pytest.param(
            prp_body(
                injections=[
                    {"route": "facet", "levels": ["L4-L5"], "guidance": "ct", "cell_count": -1}
                ]
            ),
            "/injections/0/cell_count",
            id="negative cell count",
        ),
        pytest.param(
            prp_body(
                injections=[
                    {"route": "facet", "levels": ["L4-L5"], "guidance": "ct", "volume_ml": 1e9}
                ]
            ),
            "/injections/0/volume_ml",
            id="huge volume",
        ),
        pytest.param(prp_body(protocol_id=""), "/protocol_id", id="empty protocol"),
        pytest.param(prp_body(override_reason=""), "/override_reason", id="empty override"),
    ],
)
def test_invalid_fields_are_422_at_their_pointer(
    client: TestClient, world: World, db: Session, body: dict[str, Any], pointer: str
) -> None:
    response = post_procedure(client, world, body)
    assert pointer in pointers(response)
    assert count_procedures(db) == 0


@pytest.mark.parametrize("field", ["performed_on", "treatment"])
def test_required_fields_are_required(
    client: TestClient, world: World, db: Session, field: str
) -> None:
    body = full_body()
    del body[field]
    assert pointers(post_procedure(client, world, body)) == [f"/{field}"]
    assert count_procedures(db) == 0


def test_notes_of_exactly_2000_characters_are_accepted(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, full_body(notes="é" * 2000))
    assert created["notes"] == "é" * 2000


def test_patch_baseline_pain_11_is_422(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, full_body())
    response = patch(client, world, created["id"], {"baseline": {"pain": 11}})
    assert pointers(response) == ["/baseline/pain"]


def test_patch_notes_over_2000_is_422(client: TestClient, world: World) -> None:
    created = create_procedure(client, world, full_body())
    response = patch(client, world, created["id"], {"notes": "n" * 2001})
    assert pointers(response) == ["/notes"]


def test_create_on_unknown_patient_is_404(client: TestClient, world: World, db: Session) -> None:
    response = client.post(
        f"/v1/patients/{uuid.uuid4()}/procedures",
        headers=world.headers("clinician_a"),
        json=full_body(),
    )
    assert_problem(response, 404)
    assert count_procedures(db) == 0
