"""Crafted list cursors: every list takes back only a cursor it could have issued. One that
names an instant that cannot be converted to UTC and stored, a day outside 1900-2999, a key
that is not a canonical UUID, or control characters and lone surrogates in either part, is a 422
naming `cursor` on every list, never a 500 (e.g. an overflow when the instant is converted)."""

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import World

PROBLEM_JSON = "application/problem+json"
ZERO = "00000000-0000-0000-0000-000000000000"
ONES = "ffffffff-ffff-ffff-ffff-ffffffffffff"
KEY = "6f1c2b9e-8d5a-4e3b-9a7c-1d2e3f4a5b6c"

# Each list sorted by an instant: how to reach it, and as whom.
INSTANT_LISTS: dict[str, tuple[Callable[[World], str], str]] = {
    "patients": (lambda _: "/v1/patients", "clinician_a"),
    "alerts": (lambda _: "/v1/alerts", "clinician_a"),
    "audit-events": (lambda _: "/v1/audit-events", "admin"),
    "symptom-logs": (lambda w: f"/v1/patients/{w.patient_a.id}/symptom-logs", "clinician_a"),
    "me-symptom-logs": (lambda _: "/v1/me/symptom-logs", "patient_a"),
}
# Each list sorted by a calendar day.
DAY_LISTS: dict[str, tuple[Callable[[World], str], str]] = {
    "procedures": (lambda w: f"/v1/patients/{w.patient_a.id}/procedures", "clinician_a"),
    "adverse-events": (lambda w: f"/v1/patients/{w.patient_a.id}/adverse-events", "clinician_a"),
}


def encode(value: Any) -> str:
    """A cursor as the attacker builds it: base64url of any JSON (`ensure_ascii` keeps a lone
    surrogate encodable, as its `\\ud800` escape)."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def get_list(
    client: TestClient, world: World, lists: dict[str, Any], name: str, cursor: str
) -> Any:
    url, actor = lists[name]
    return client.get(url(world), headers=world.headers(actor), params={"cursor": cursor})


def assert_cursor_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert [error["pointer"] for error in response.json()["errors"]] == ["cursor"]


BAD_INSTANT_CURSORS = {
    # Overflow once converted to UTC: before datetime.min / after datetime.max.
    "year-1-east": ["0001-01-01T00:00:00+14:00", ZERO],
    "year-9999-west": ["9999-12-31T23:59:59-14:00", ONES],
    # Convertible, but no instant the API stores lies there (1900-2999, at any offset).
    "year-1-utc": ["0001-01-01T00:00:00+00:00", ZERO],
    "year-9999-utc": ["9999-12-31T23:59:59+00:00", ONES],
    "before-1900": ["1899-12-30T00:00:00+00:00", KEY],
    "after-2999": ["3000-01-02T00:00:00+00:00", KEY],
    # NUL, a newline or a lone surrogate in either part (Python takes any separator character).
    "nul-separator": ["2026-01-01\x0000:00:00+00:00", KEY],
    "newline-separator": ["2026-01-01\n00:00:00+00:00", KEY],
    "surrogate-in-value": ["2026-01-01T00:00:00+00:00\ud800", KEY],
    "surrogate-key": ["2026-01-01T00:00:00+00:00", "\ud800"],
    "nul-in-key": ["2026-01-01T00:00:00+00:00", KEY[:-1] + "\x00"],
    # A UUID in a form this service never writes.
    "braced-key": ["2026-01-01T00:00:00+00:00", "{" + KEY + "}"],
    "upper-key": ["2026-01-01T00:00:00+00:00", KEY.upper()],
    "hex-key": ["2026-01-01T00:00:00+00:00", KEY.replace("-", "")],
}


@pytest.mark.parametrize("name", list(INSTANT_LISTS))
@pytest.mark.parametrize("value", list(BAD_INSTANT_CURSORS.values()), ids=list(BAD_INSTANT_CURSORS))
def test_an_impossible_instant_cursor_is_422_naming_it(
    client: TestClient, world: World, name: str, value: list[str]
) -> None:
    assert_cursor_422(get_list(client, world, INSTANT_LISTS, name, encode(value)))


def test_the_reported_cursors_are_422_not_500(client: TestClient, world: World) -> None:
    """The attacker's own strings, byte for byte."""
    first = "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwgIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJd"
    last = encode(["9999-12-31T23:59:59-14:00", ONES])
    for cursor in (first, last):
        assert_cursor_422(get_list(client, world, INSTANT_LISTS, "patients", cursor))


# The far ends of what an instant the API stores can be: a day in 1900-2999 at any offset.
EDGE_INSTANTS = [
    "1899-12-31T10:00:00+00:00",
    "1900-01-01T00:00:00+14:00",
    "2999-12-31T23:59:59-12:00",
]


@pytest.mark.parametrize("name", list(INSTANT_LISTS))
@pytest.mark.parametrize("at", EDGE_INSTANTS)
def test_a_cursor_at_the_edge_of_the_stored_range_is_taken(
    client: TestClient, world: World, name: str, at: str
) -> None:
    response = get_list(client, world, INSTANT_LISTS, name, encode([at, KEY]))
    assert response.status_code == 200, response.text


BAD_DAY_CURSORS = {
    "year-1": ["0001-01-01", ZERO],
    "year-9999": ["9999-12-31", ONES],
    "before-1900": ["1899-12-31", KEY],
    "after-2999": ["3000-01-01", KEY],
    "surrogate-in-value": ["2026-01-01\ud800", KEY],
    "nul-in-key": ["2026-01-01", KEY[:-1] + "\x00"],
    "surrogate-key": ["2026-01-01", "\ud800"],
}


@pytest.mark.parametrize("name", list(DAY_LISTS))
@pytest.mark.parametrize("value", list(BAD_DAY_CURSORS.values()), ids=list(BAD_DAY_CURSORS))
def test_an_impossible_day_cursor_is_422_naming_it(
    client: TestClient, world: World, name: str, value: list[str]
) -> None:
    assert_cursor_422(get_list(client, world, DAY_LISTS, name, encode(value)))


@pytest.mark.parametrize("name", list(DAY_LISTS))
@pytest.mark.parametrize("day", ["1900-01-01", "2999-12-31"])
def test_a_day_cursor_inside_1900_to_2999_is_taken(
    client: TestClient, world: World, name: str, day: str
) -> None:
    response = get_list(client, world, DAY_LISTS, name, encode([day, KEY]))
    assert response.status_code == 200, response.text
