"""Property tests: no request body, however odd, makes the create endpoints fail with a 5xx.

Every answer is either 201 or a 4xx problem+json whose `status` matches the response status.
Bodies are arbitrary JSON, or valid bodies with a few mutations (a key dropped, a value replaced
by arbitrary JSON, a key added), anywhere in the nested structure.
"""

import copy
import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from models.procedure import Procedure, Treatment
from tests.factories import World

PROBLEM_JSON = "application/problem+json"
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def today_berlin() -> date:
    return datetime.now(ZoneInfo("Europe/Berlin")).date()


# --- strategies ------------------------------------------------------------------------------

# Values a validator might treat specially: boundaries, enum members, dates, ids, control chars.
INTERESTING_STRINGS = [
    "",
    " ",
    "x" * 201,
    "x" * 2001,
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "line\nbreak",
    "\u2028",
    "\ufeff",
    "🦴" * 50,
    "L4-L5",
    "l5-s1",
    "C7-T1",
    "L5-L6",
    "2024-02-29",
    "2024-02-30",
    "0001-01-01",
    "9999-12-31",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00",
    "00000000-0000-0000-0000-000000000000",
    str(uuid.UUID(int=2**128 - 1)),
    "default",
    "Europe/Berlin",
    "Not/AZone",
    "stem_cell",
    "prp",
    "red_light",
    "bone_marrow",
    "umbilical_cord",
    "none",
    "blood_draw",
    "lumbar",
    "cervical",
    "injection_site_pain",
    "nerve_damage",
    "true",
    "null",
    "NaN",
    "1e309",
    "%",
    "_",
    "\\",
    "'; DROP TABLE patient; --",
]
INTERESTING_INTS = [0, -1, 1, 5, 6, 10, 11, 100, 101, 1440, 2**31, 2**53 + 1, 2**63, 2**64, 10**30]

text = st.text(max_size=40) | st.sampled_from(INTERESTING_STRINGS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(INTERESTING_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(max_size=20) | st.sampled_from(INTERESTING_STRINGS), children, max_size=5
        )
    ),
    max_leaves=20,
)


def _containers(value: Any) -> list[Any]:
    """Every dict and list inside a body, the body itself first."""
    found = []
    if isinstance(value, dict | list):
        found.append(value)
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            found += _containers(child)
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """The base body with one to three drops, replacements or additions, at any depth."""
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(_containers(body)))
        operation = draw(st.sampled_from(["drop", "replace", "add"]))
        if isinstance(target, dict):
            if operation == "add" or not target:
                target[draw(st.text(max_size=20) | st.sampled_from(["id", "version"]))] = draw(
                    json_values
                )
                continue
            key = draw(st.sampled_from(sorted(target)))
            if operation == "drop":
                del target[key]
            else:
                target[key] = draw(json_values)
        else:
            if operation == "add" or not target:
                target.append(draw(json_values))
                continue
            index = draw(st.integers(min_value=0, max_value=len(target) - 1))
            if operation == "drop":
                del target[index]
            else:
                target[index] = draw(json_values)
    return body


# --- valid bodies ----------------------------------------------------------------------------


def patient_body(world: World, mrn: str) -> dict[str, Any]:
    return {
        "mrn": mrn,
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birth_date": "1958-04-12",
        "sex": "female",
        "postal_code": "10115",
        "timezone": "Europe/Berlin",
        "stenosis": {"region": "lumbar", "cause": "degenerative"},
        "comorbidities": ["diabetes", "obesity"],
        "smoker": False,
        "research_consent": True,
        "clinic_id": str(world.clinic_a.id),
        "screening": {
            "conservative_care_tried": ["physical_therapy", "pain_medication"],
            "conservative_care_failed": True,
            "severe_neurological_deficit": False,
            "active_cancer": False,
            "evaluation": {
                "medical_history_reviewed": True,
                "physical_exam_done": True,
                "imaging": ["mri"],
                "labs_done": True,
            },
        },
    }


def procedure_body() -> dict[str, Any]:
    return {
        "performed_on": (today_berlin() - timedelta(days=7)).isoformat(),
        "treatment": "stem_cell",
        "cell_source": "bone_marrow",
        "harvest": {"method": "bone_marrow_aspiration", "site": "iliac crest", "volume_ml": 60},
        "injections": [
            {
                "route": "intradiscal",
                "levels": ["L4-L5"],
                "guidance": "fluoroscopy",
                "volume_ml": 2,
                "cell_count": 1_000_000,
            },
            {"route": "epidural", "levels": ["L5-S1"], "guidance": "ct"},
        ],
        "adjuncts": ["prp"],
        "baseline": {"pain": 7, "leg_pain": 4, "mobility": 3, "odi": 40},
        "protocol_id": "default",
        "notes": "fuzz",
    }


def adverse_event_body(procedure_id: uuid.UUID) -> dict[str, Any]:
    return {
        "procedure_id": str(procedure_id),
        "onset_on": (today_berlin() - timedelta(days=5)).isoformat(),
        "kind": "swelling",
        "grade": 2,
        "serious": False,
        "description": "Swelling at the injection site",
        "resolved_on": (today_berlin() - timedelta(days=3)).isoformat(),
    }


@pytest.fixture
def procedure_id(db: Session, world: World) -> uuid.UUID:
    procedure = Procedure(
        patient_id=world.patient_a.id,
        performed_on=today_berlin() - timedelta(days=10),
        treatment=Treatment.prp,
        harvest={"method": "blood_draw"},
        injections=[{"route": "epidural", "levels": ["L4-L5"], "guidance": "none"}],
        adjuncts=[],
        protocol_id="default",
        protocol_version=1,
    )
    db.add(procedure)
    db.commit()
    return procedure.id


# --- the property ----------------------------------------------------------------------------


def assert_well_answered(response: httpx2.Response) -> None:
    status = response.status_code
    assert status < 500, response.text
    if status == 201:
        assert isinstance(response.json(), dict)
        return
    assert 400 <= status < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    for key in ("type", "title", "detail"):
        assert isinstance(body.get(key), str), key
    for error in body.get("errors") or []:
        assert isinstance(error["pointer"], str)
        assert isinstance(error["message"], str)


def fuzzed(response: httpx2.Response) -> None:
    """Within a Hypothesis test: also tally the statuses (see --hypothesis-show-statistics)."""
    event(f"status {response.status_code}")
    assert_well_answered(response)


def patients_url(_world: World) -> str:
    return "/v1/patients"


def procedures_url(world: World) -> str:
    return f"/v1/patients/{world.patient_a.id}/procedures"


def adverse_events_url(world: World) -> str:
    return f"/v1/patients/{world.patient_a.id}/adverse-events"


@FUZZ
@given(body=json_values, admin=st.booleans())
def test_patient_create_survives_arbitrary_json(
    client: TestClient, world: World, body: Any, admin: bool
) -> None:
    actor = "admin" if admin else "clinician_a"
    fuzzed(client.post("/v1/patients", headers=world.headers(actor), json=body))


@FUZZ
@given(data=st.data(), admin=st.booleans())
def test_patient_create_survives_mutated_bodies(
    client: TestClient, world: World, data: st.DataObject, admin: bool
) -> None:
    mrn = f"FZ-{data.draw(st.uuids()).hex[:12]}"
    body = data.draw(mutated(patient_body(world, mrn)))
    actor = "admin" if admin else "clinician_a"
    fuzzed(client.post("/v1/patients", headers=world.headers(actor), json=body))


@FUZZ
@given(body=json_values)
def test_procedure_create_survives_arbitrary_json(
    client: TestClient, world: World, body: Any
) -> None:
    response = client.post(procedures_url(world), headers=world.headers("clinician_a"), json=body)
    fuzzed(response)


@FUZZ
@given(data=st.data())
def test_procedure_create_survives_mutated_bodies(
    client: TestClient, world: World, data: st.DataObject
) -> None:
    body = data.draw(mutated(procedure_body()))
    response = client.post(procedures_url(world), headers=world.headers("clinician_a"), json=body)
    fuzzed(response)


@FUZZ
@given(body=json_values)
def test_adverse_event_create_survives_arbitrary_json(
    client: TestClient, world: World, procedure_id: uuid.UUID, body: Any
) -> None:
    del procedure_id  # present so a body naming it could reach the date rules
    response = client.post(
        adverse_events_url(world), headers=world.headers("clinician_a"), json=body
    )
    fuzzed(response)


@FUZZ
@given(data=st.data())
def test_adverse_event_create_survives_mutated_bodies(
    client: TestClient, world: World, procedure_id: uuid.UUID, data: st.DataObject
) -> None:
    body = data.draw(mutated(adverse_event_body(procedure_id)))
    response = client.post(
        adverse_events_url(world), headers=world.headers("clinician_a"), json=body
    )
    fuzzed(response)


def test_the_valid_bodies_are_valid(
    client: TestClient, world: World, procedure_id: uuid.UUID
) -> None:
    """The mutations start from bodies the endpoints accept."""
    headers = world.headers("clinician_a")
    cases = [
        (patients_url(world), patient_body(world, "FZ-valid")),
        (procedures_url(world), procedure_body()),
        (adverse_events_url(world), adverse_event_body(procedure_id)),
    ]
    for url, body in cases:
        response = client.post(url, headers=headers, json=body)
        assert response.status_code == 201, response.text


# --- raw bodies, once each -------------------------------------------------------------------

RAW_BODIES = {
    "not json": b"this is not JSON {",
    "binary": bytes(range(256)),
    "invalid utf-8": b'{"mrn": "\xff\xfe"}',
    "empty": b"",
    "truncated": b'{"performed_on": "2026-01-0',
    "array": b"[1, 2, 3]",
    "number": b"42",
    "string": b'"a string"',
    "null": b"null",
    "true": b"true",
    "NaN": b'{"baseline": {"pain": NaN}, "grade": NaN, "birth_date": NaN}',
    "Infinity": b'{"grade": Infinity, "harvest": {"volume_ml": -Infinity}}',
    "huge number": b'{"grade": 1e999999, "performed_on": 123456789012345678901234567890}',
    "duplicate keys": b'{"kind": "swelling", "kind": "nope"}',
    "deep nesting": b"[" * 50_000 + b"]" * 50_000,
    "deep objects": b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    "utf-16": json.dumps({"mrn": "x"}).encode("utf-16"),
}
ENDPOINTS = {
    "patients": patients_url,
    "procedures": procedures_url,
    "adverse-events": adverse_events_url,
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("raw", list(RAW_BODIES))
def test_raw_bodies_are_answered_with_a_4xx_problem(
    client: TestClient, world: World, endpoint: str, raw: str
) -> None:
    response = client.post(
        ENDPOINTS[endpoint](world),
        headers=world.headers("clinician_a") | {"Content-Type": "application/json"},
        content=RAW_BODIES[raw],
    )
    assert_well_answered(response)
    assert response.status_code != 201


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_a_body_that_is_not_declared_json_is_a_4xx_problem(
    client: TestClient, world: World, endpoint: str, content_type: str | None
) -> None:
    headers = world.headers("clinician_a")
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(ENDPOINTS[endpoint](world), headers=headers, content=b"a=1&b=2")
    assert_well_answered(response)
    assert response.status_code != 201
