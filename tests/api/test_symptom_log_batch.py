"""Offline batches of check-ins: each item is created, a duplicate or rejected, in request order;
good items survive bad neighbours; a replayed batch stores nothing twice."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from api.services import symptom_logs
from api.services.audit import Audit
from api.services.records import LogRecord, PatientRef
from models.symptom_log import Alert, LogSource, SymptomLog, SymptomLogIn
from tests.factories import World

PROBLEM_JSON = "application/problem+json"
BATCH = "/v1/me/symptom-logs/batch"
ME_LOGS = "/v1/me/symptom-logs"
MIB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------


def log_body(n: int = 0, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": f"2026-09-{1 + n % 28:02d}T{8 + n % 12:02d}:{n % 60:02d}:00+02:00",
        "pain": n % 11,
    }
    return body | overrides


def post_batch(client: TestClient, world: World, body: Any, **kwargs: Any) -> httpx2.Response:
    return client.post(BATCH, json=body, headers=world.headers("patient_a"), **kwargs)


def results_of(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results"}
    results: list[dict[str, Any]] = body["results"]
    return results


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def pointers(response: httpx2.Response) -> list[str]:
    errors: list[dict[str, str]] = assert_problem(response, 422).get("errors") or []
    assert errors, "a 422 names the offending fields"
    return [error["pointer"] for error in errors]


def count_logs(db: Session) -> int:
    total: int = db.exec(select(func.count()).select_from(SymptomLog)).one()
    db.commit()  # end the read: on SQLite an open transaction holds the write lock
    return total


def stored_by_client_id(db: Session) -> dict[str, SymptomLog]:
    rows = list(db.exec(select(SymptomLog).execution_options(populate_existing=True)))
    db.commit()
    return {str(row.client_id): row for row in rows}


def item_pointers(result: dict[str, Any]) -> list[str]:
    return [error["pointer"] for error in result["errors"] or []]


# --- a mixed batch ---------------------------------------------------------------------------


def mixed_batch(client: TestClient, world: World) -> tuple[list[Any], dict[str, Any]]:
    """A batch with every kind of item, and the log already stored before it was sent."""
    in_db = log_body(50, pain=3)
    stored = client.post(ME_LOGS, json=in_db, headers=world.headers("patient_a"))
    assert stored.status_code == 201, stored.text
    in_db_changed = log_body(51, pain=2)
    created = client.post(ME_LOGS, json=in_db_changed, headers=world.headers("patient_a"))
    assert created.status_code == 201, created.text

    first = log_body(1, red_flags=["fever"])
    seventh = log_body(7, note="walked to the shop")
    no_recorded_at = log_body(2)
    del no_recorded_at["recorded_at"]
    items: list[Any] = [
        first,  # 0 created
        log_body(3, pain=11),  # 1 rejected /logs/1/pain
        no_recorded_at,  # 2 rejected /logs/2/recorded_at
        log_body(4, mood="fine"),  # 3 rejected /logs/3/mood
        log_body(5, note="bad\x00byte"),  # 4 rejected /logs/4/note
        in_db,  # 5 duplicate of a stored log
        in_db_changed | {"pain": 9},  # 6 rejected: client_id used for other content
        seventh,  # 7 created
        dict(seventh),  # 8 duplicate within the batch
        first | {"pain": 10},  # 9 rejected: same client_id as item 0, other content
        "not an object",  # 10 rejected
        log_body(11, odi_answers=[1, None, None, 1, 1, 1, 1, 1, 1, 1]),  # 11 rejected /odi
        log_body(12, recorded_at="2099-01-01T00:00:00+00:00"),  # 12 rejected: future
        log_body(13, side_effects=["swelling"], symptoms={"numbness": 2}),  # 13 created
    ]
    return items, {"in_db": stored.json(), "in_db_changed": created.json()}


def test_a_mixed_batch_stores_the_valid_items(
    client: TestClient, world: World, db: Session
) -> None:
    items, before = mixed_batch(client, world)
    results = results_of(post_batch(client, world, {"logs": items}))
    assert len(results) == len(items)
    statuses = [r["status"] for r in results]
    assert statuses == [
        "created",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
        "created",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    # Results name the items they answer, in request order.
    for item, result in zip(items, results, strict=True):
        if isinstance(item, dict) and "client_id" in item:
            assert result["client_id"] == item["client_id"]
    assert results[10]["client_id"] is None

    for index in (0, 7, 13):
        assert results[index]["errors"] in (None, [])
        uuid.UUID(results[index]["id"])
    assert results[5]["id"] == before["in_db"]["id"]
    assert results[8]["id"] == results[7]["id"]
    for index in (1, 2, 3, 4, 6, 9, 10, 11, 12):
        assert results[index]["id"] is None, index
        assert results[index]["errors"], index
        for error in results[index]["errors"]:
            assert set(error) == {"pointer", "message"}
            assert error["message"]

    assert item_pointers(results[1]) == ["/logs/1/pain"]
    assert item_pointers(results[2]) == ["/logs/2/recorded_at"]
    assert item_pointers(results[3]) == ["/logs/3/mood"]
    assert item_pointers(results[4]) == ["/logs/4/note"]
    assert item_pointers(results[6]) == ["/logs/6/client_id"]
    assert item_pointers(results[9]) == ["/logs/9/client_id"]
    assert item_pointers(results[10]) == ["/logs/10"]
    assert item_pointers(results[11]) == ["/logs/11/odi_answers"]
    assert item_pointers(results[12]) == ["/logs/12/recorded_at"]

    # Red-flag items get the same urgent advice as single logs.
    assert results[0]["advice"]["urgent"] is True
    assert results[7]["advice"] is None

    stored = stored_by_client_id(db)
    assert set(stored) == {
        before["in_db"]["client_id"],
        before["in_db_changed"]["client_id"],
        items[0]["client_id"],
        items[7]["client_id"],
        items[13]["client_id"],
    }
    assert str(stored[items[0]["client_id"]].id) == results[0]["id"]
    assert stored[items[0]["client_id"]].pain == items[0]["pain"]  # not item 9's
    assert stored[items[7]["client_id"]].note == "walked to the shop"
    symptoms = stored[items[13]["client_id"]].symptoms or {}
    assert {k: v for k, v in symptoms.items() if v is not None} == {"numbness": 2}
    assert stored[before["in_db_changed"]["client_id"]].pain == 2
    assert all(row.source == "app" for row in stored.values())


def test_a_replayed_batch_stores_nothing_twice(
    client: TestClient, world: World, db: Session
) -> None:
    items, _ = mixed_batch(client, world)
    first = results_of(post_batch(client, world, {"logs": items}))
    count = count_logs(db)
    assert count == 5

    again = results_of(post_batch(client, world, {"logs": items}))
    assert count_logs(db) == count
    for index, (before, after) in enumerate(zip(first, again, strict=True)):
        if before["status"] in ("created", "duplicate"):
            assert after["status"] == "duplicate", index
            assert after["id"] == before["id"], index
        else:
            assert after["status"] == "rejected", index
            assert after["id"] is None
    # The replay raised no second red-flag alert occurrence.
    response = client.get(
        "/v1/alerts", params={"kind": "red_flag"}, headers=world.headers("clinician_a")
    )
    [alert] = response.json()["items"]
    assert alert["occurrences"] == 1


def test_batch_logs_are_readable_and_on_the_clock(client: TestClient, world: World) -> None:
    logs = [log_body(n) for n in range(3)]
    results = results_of(post_batch(client, world, {"logs": logs}))
    assert [r["status"] for r in results] == ["created"] * 3
    response = client.get(ME_LOGS, headers=world.headers("patient_a"))
    items = {item["id"]: item for item in response.json()["items"]}
    for log, result in zip(logs, results, strict=True):
        stored = items[result["id"]]
        assert stored["client_id"] == log["client_id"]
        assert stored["local_date"] == log["recorded_at"][:10]
        assert stored["source"] == "app"


def test_several_red_flag_items_raise_one_alert(client: TestClient, world: World) -> None:
    logs = [log_body(1, red_flags=["fever"]), log_body(2, red_flags=["new_weakness"])]
    results = results_of(post_batch(client, world, {"logs": logs}))
    assert [r["status"] for r in results] == ["created", "created"]
    response = client.get(
        "/v1/alerts",
        params={"kind": "red_flag", "status": "open"},
        headers=world.headers("clinician_a"),
    )
    [alert] = response.json()["items"]
    assert set(alert["details"]["red_flags"]) >= {"fever", "new_weakness"}


def test_same_client_id_twice_with_different_content(
    client: TestClient, world: World, db: Session
) -> None:
    log = log_body(1, pain=4)
    results = results_of(post_batch(client, world, {"logs": [log, log | {"pain": 5}]}))
    assert [r["status"] for r in results] == ["created", "rejected"]
    assert results[1]["client_id"] == log["client_id"]
    assert results[1]["id"] is None
    assert item_pointers(results[1]) == ["/logs/1/client_id"]
    assert "client_id" in results[1]["errors"][0]["pointer"]
    [row] = stored_by_client_id(db).values()
    assert row.pain == 4


@pytest.mark.parametrize("item", [42, "text", None, [1, 2], True])
def test_an_item_that_is_not_an_object_is_rejected(
    client: TestClient, world: World, db: Session, item: Any
) -> None:
    good = log_body(1)
    results = results_of(post_batch(client, world, {"logs": [good, item]}))
    assert [r["status"] for r in results] == ["created", "rejected"]
    assert results[1]["client_id"] is None
    assert results[1]["errors"]
    assert all(p == "/logs/1" or p.startswith("/logs/1/") for p in item_pointers(results[1]))
    assert count_logs(db) == 1


def test_an_item_without_a_usable_client_id_is_rejected(
    client: TestClient, world: World, db: Session
) -> None:
    missing = log_body(1)
    del missing["client_id"]
    results = results_of(
        post_batch(client, world, {"logs": [missing, log_body(2, client_id="nope")]})
    )
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    assert [r["client_id"] for r in results] == [None, None]
    assert item_pointers(results[0]) == ["/logs/0/client_id"]
    assert item_pointers(results[1]) == ["/logs/1/client_id"]
    assert count_logs(db) == 0


def test_an_item_with_several_errors_names_each(client: TestClient, world: World) -> None:
    item = log_body(1, pain=12, mobility=-1, walking_minutes="long")
    [result] = results_of(post_batch(client, world, {"logs": [item]}))
    assert result["status"] == "rejected"
    assert sorted(item_pointers(result)) == [
        "/logs/0/mobility",
        "/logs/0/pain",
        "/logs/0/walking_minutes",
    ]


# --- sizes -----------------------------------------------------------------------------------


def test_five_hundred_items_are_accepted(client: TestClient, world: World, db: Session) -> None:
    logs = [log_body(n) for n in range(500)]
    results = results_of(post_batch(client, world, {"logs": logs}))
    assert len(results) == 500
    assert [r["status"] for r in results] == ["created"] * 500
    assert [r["client_id"] for r in results] == [log["client_id"] for log in logs]
    assert len({r["id"] for r in results}) == 500
    assert count_logs(db) == 500


def test_five_hundred_and_one_items_are_422_and_nothing_is_stored(
    client: TestClient, world: World, db: Session
) -> None:
    logs = [log_body(n) for n in range(501)]
    response = post_batch(client, world, {"logs": logs})
    assert pointers(response) == ["/logs"]
    assert count_logs(db) == 0


def test_an_empty_batch_is_422(client: TestClient, world: World) -> None:
    assert pointers(post_batch(client, world, {"logs": []})) == ["/logs"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"logs": {"0": {"pain": 1}}}, "/logs"),
        ({"logs": "x"}, "/logs"),
        ({"logs": None}, "/logs"),
        ({"logs": 3}, "/logs"),
        ({}, "/logs"),
        ({"logs": [{"pain": 1}], "device": "phone"}, "/device"),
    ],
)
def test_a_malformed_batch_is_422(
    client: TestClient, world: World, db: Session, body: dict[str, Any], pointer: str
) -> None:
    assert pointer in pointers(post_batch(client, world, body))
    assert count_logs(db) == 0


def test_a_batch_that_is_a_bare_list_is_422(client: TestClient, world: World) -> None:
    assert_problem(post_batch(client, world, [log_body(1)]), 422)


def big_batch() -> dict[str, Any]:
    """500 valid logs with maximal notes: over 1 MiB, and valid in every other way."""
    body = {"logs": [log_body(n, note="n" * 2000) for n in range(500)]}
    assert len(json.dumps(body).encode()) > MIB
    return body


def test_a_body_over_one_mebibyte_is_413(client: TestClient, world: World, db: Session) -> None:
    assert_problem(post_batch(client, world, big_batch()), 413)
    assert count_logs(db) == 0


def test_a_streamed_body_over_one_mebibyte_is_413(
    client: TestClient, world: World, db: Session
) -> None:
    raw = json.dumps(big_batch()).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    response = client.post(
        BATCH,
        content=chunks(),
        headers=world.headers("patient_a") | {"Content-Type": "application/json"},
    )
    assert_problem(response, 413)
    assert count_logs(db) == 0


def test_a_batch_just_under_the_limit_is_accepted(
    client: TestClient, world: World, db: Session
) -> None:
    logs = [log_body(n, note="n" * 1800) for n in range(500)]
    assert len(json.dumps({"logs": logs}).encode()) < MIB
    results = results_of(post_batch(client, world, {"logs": logs}))
    assert {r["status"] for r in results} == {"created"}
    assert count_logs(db) == 500


def test_no_alert_rows_for_rejected_red_flags(
    client: TestClient, world: World, db: Session
) -> None:
    bad = log_body(1, red_flags=["fever"], pain=11)
    [result] = results_of(post_batch(client, world, {"logs": [bad]}))
    assert result["status"] == "rejected"
    assert result["advice"] is None
    rows = list(db.exec(select(Alert)))
    db.commit()
    assert rows == []


def test_received_at_is_when_the_log_was_stored_not_drafted(
    engine: Engine, world: World, db: Session
) -> None:
    """Drafts are made before the write turn; a draft that waited behind other writes must not
    carry its earlier time, or the app's sync (received_at > watermark) could skip it."""
    patient = world.patient_a
    ref = PatientRef(patient.id, patient.clinic_id, patient.timezone)
    items = [SymptomLogIn.model_validate(log_body(n)) for n in range(3)]
    drafted = symptom_logs.draft_logs(
        items, patient=ref, source=LogSource.app, by=world.admin.id, batch=True
    )
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    waited = [d.received(long_ago) if isinstance(d, LogRecord) else d for d in drafted]
    before = datetime.now(UTC)
    with engine.connect() as connection:
        symptom_logs.ingest(
            connection,
            patient=ref,
            drafts=waited,
            audit=Audit(action="symptom_log.batch_own", request_id="test", ip=None),
            batch=True,
        )
    stored = db.exec(select(SymptomLog).where(SymptomLog.patient_id == patient.id)).all()
    assert len(stored) == 3
    assert {log.received_at >= before for log in stored} == {True}
