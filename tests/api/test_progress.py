"""Progress against milestones over HTTP (API.md §Progress against milestones, CLINICAL.md):
the clinician's and the patient's reads, the procedure clock, baselines, factors, corrections,
access, and the patient list's progress_status filter and open_alerts."""

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.clinical import wording
from api.config import Settings
from models.patient import Patient
from tests.factories import World, auth, make_patient, patient_token

PROBLEM_JSON = "application/problem+json"
PERFORMED_ON = date(2026, 3, 2)
PROCEDURE_BODY: dict[str, Any] = {
    "performed_on": PERFORMED_ON.isoformat(),
    "treatment": "stem_cell",
    "cell_source": "umbilical_cord",
    "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "fluoroscopy"}],
}
STATUSES = ["pending", "on_track", "behind", "met", "not_met", "insufficient_data"]


# --- helpers -----------------------------------------------------------------------------------


def today_in(zone: str = "Europe/Berlin") -> date:
    return datetime.now(ZoneInfo(zone)).date()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def pointers(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422)
    return [error["pointer"] for error in body.get("errors") or []]


def add_procedure(
    client: TestClient,
    world: World,
    patient_id: uuid.UUID,
    performed_on: date = PERFORMED_ON,
    actor: str = "clinician_a",
    **overrides: Any,
) -> dict[str, Any]:
    body = PROCEDURE_BODY | {"performed_on": performed_on.isoformat()} | overrides
    response = client.post(
        f"/v1/patients/{patient_id}/procedures", json=body, headers=world.headers(actor)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def add_log(
    client: TestClient, headers: dict[str, str], on: date, pain: int, **fields: Any
) -> dict[str, Any]:
    body = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": f"{on.isoformat()}T09:00:00+01:00",
        "pain": pain,
    } | fields
    response = client.post("/v1/me/symptom-logs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def day(n: int, performed_on: date = PERFORMED_ON) -> date:
    return performed_on + timedelta(days=n)


def get_progress(
    client: TestClient,
    world: World,
    patient_id: uuid.UUID,
    actor: str | None = "clinician_a",
    **params: Any,
) -> httpx.Response:
    return client.get(
        f"/v1/patients/{patient_id}/progress", params=params, headers=world.headers(actor)
    )


def read_progress(
    client: TestClient, world: World, patient_id: uuid.UUID, **params: Any
) -> dict[str, Any]:
    response = get_progress(client, world, patient_id, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(progress: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in progress["milestones"]}


def factors(progress: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["factor"]: f for f in progress["factors"]}


def baseline_logs(client: TestClient, headers: dict[str, str]) -> None:
    """Three pre-procedure logs: median pain 7, mobility 3."""
    add_log(client, headers, date(2026, 2, 20), 7, mobility=3)
    add_log(client, headers, date(2026, 2, 25), 8, mobility=2)
    add_log(client, headers, date(2026, 2, 27), 6, mobility=4)


def example_history(client: TestClient, world: World) -> dict[str, Any]:
    """API.md's example: a baseline of 7, a quiet first fortnight, pain improving by day 79."""
    procedure = add_procedure(client, world, world.patient_a.id)
    headers = world.headers("patient_a")
    baseline_logs(client, headers)
    for n in (1, 5, 10):
        add_log(client, headers, day(n), 6, mobility=3)
    for n, pain in ((35, 4), (49, 5), (63, 4)):
        add_log(client, headers, day(n), pain, mobility=4)
    return procedure


def fresh_patient(
    db: Session, settings: Settings, world: World, **overrides: Any
) -> tuple[Patient, dict[str, str]]:
    patient = make_patient(db, clinic=world.clinic_a, **overrides)
    return patient, auth(patient_token(db, settings, patient))


# --- the clinician's read: the API.md example ----------------------------------------------------


def test_progress_reproduces_the_api_example(client: TestClient, world: World) -> None:
    procedure = example_history(client, world)
    body = read_progress(client, world, world.patient_a.id, as_of="2026-05-20")

    assert body["patient_id"] == str(world.patient_a.id)
    assert body["procedure"] == {
        "id": procedure["id"],
        "performed_on": "2026-03-02",
        "treatment": "stem_cell",
    }
    assert body["as_of"] == "2026-05-20"
    assert body["day"] == 79
    assert body["protocol"] == {"id": "default", "version": 1}
    assert body["baseline"] == {
        "pain": 7.0,
        "leg_pain": None,
        "mobility": 3.0,
        "odi": None,
        "n_logs": 3,
        "source": "logs",
    }
    assert [m["key"] for m in body["milestones"]] == ["immediate", "short_term", "long_term"]
    assert body["current_milestone"] == "short_term"
    # A live count: since the example's day, the clock has raised one missed_check_in (no log
    # after day 63, today is long after).
    assert body["open_alerts"] == 1
    assert body["caveat"]


def test_example_immediate_milestone_is_closed_and_met(client: TestClient, world: World) -> None:
    example_history(client, world)
    immediate = by_key(read_progress(client, world, world.patient_a.id, as_of="2026-05-20"))[
        "immediate"
    ]
    assert immediate["label"]
    assert immediate["expected"]
    assert (immediate["start_day"], immediate["end_day"]) == (0, 14)
    assert (immediate["state"], immediate["status"]) == ("closed", "met")
    assert immediate["observed"] == {
        "n_logs": 3,
        "pain": 6.0,
        "pain_change": -1.0,
        "pain_change_pct": -14.3,
        "mobility": 3.0,
        "mobility_change": 0.0,
        "odi": None,
        "odi_change": None,
    }
    assert immediate["substantial"] is None
    assert immediate["findings"] == []


def test_example_short_term_is_open_and_on_track(client: TestClient, world: World) -> None:
    example_history(client, world)
    short = by_key(read_progress(client, world, world.patient_a.id, as_of="2026-05-20"))[
        "short_term"
    ]
    assert (short["start_day"], short["end_day"]) == (30, 90)
    assert (short["state"], short["status"]) == ("open", "on_track")
    assert short["observed"]["n_logs"] == 3
    assert short["observed"]["pain"] == 4.0
    assert short["observed"]["pain_change"] == -3.0
    assert short["observed"]["pain_change_pct"] == -42.9
    assert short["observed"]["mobility_change"] == 1.0
    assert short["substantial"] is None


def test_example_long_term_is_upcoming_and_pending(client: TestClient, world: World) -> None:
    example_history(client, world)
    long = by_key(read_progress(client, world, world.patient_a.id, as_of="2026-05-20"))["long_term"]
    assert (long["start_day"], long["end_day"]) == (180, 365)
    assert (long["state"], long["status"]) == ("upcoming", "pending")
    assert long["observed"]["n_logs"] == 0
    assert long["substantial"] is None


def test_example_factors_are_age_and_treatment_protocol(client: TestClient, world: World) -> None:
    example_history(client, world)
    found = factors(read_progress(client, world, world.patient_a.id, as_of="2026-05-20"))
    # Born 1958-04-12: 67 on 2026-03-02, the birthday not yet reached that year.
    assert set(found) == {"age", "treatment_protocol"}
    assert found["age"]["impact"] == "moderate"
    assert "67" in found["age"]["message"]
    assert found["treatment_protocol"]["impact"] == "significant"
    message = found["treatment_protocol"]["message"]
    assert "stem_cell" in message
    assert "umbilical_cord" in message
    assert "default" in message


def test_example_next_check_in_follows_the_schedule(client: TestClient, world: World) -> None:
    example_history(client, world)
    body = read_progress(client, world, world.patient_a.id, as_of="2026-05-20")
    # Day 79 is in the weekly phase (21, 28, ..., 77, 84, 91): the next scheduled day is 84.
    assert body["next_check_in"] == {"due_on": "2026-05-25", "day": 84}


def test_next_check_in_skips_a_day_already_logged(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    add_log(client, world.headers("patient_a"), day(3), 5)
    body = read_progress(client, world, world.patient_a.id, as_of=day(3).isoformat())
    assert body["next_check_in"] == {"due_on": day(4).isoformat(), "day": 4}


# --- baseline, the clock, as_of, corrections ---------------------------------------------------


def test_an_explicit_procedure_baseline_wins_over_logs(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id, baseline={"pain": 5, "mobility": 4})
    headers = world.headers("patient_a")
    baseline_logs(client, headers)
    add_log(client, headers, day(35), 4, mobility=4)
    body = read_progress(client, world, world.patient_a.id, as_of=day(40).isoformat())
    assert body["baseline"]["source"] == "procedure"
    assert (body["baseline"]["pain"], body["baseline"]["mobility"]) == (5.0, 4.0)
    assert body["baseline"]["odi"] is None
    short = by_key(body)["short_term"]
    # 5 -> 4 is 1 point and 20 %: behind (the log baseline of 7 would have made it on track).
    assert short["observed"]["pain_change"] == -1.0
    assert short["status"] == "behind"


def test_no_pre_procedure_logs_means_no_baseline(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    headers = world.headers("patient_a")
    add_log(client, headers, day(-90), 7)  # outside the 60-day window
    add_log(client, headers, day(35), 2)
    add_log(client, headers, day(42), 2)
    body = read_progress(client, world, world.patient_a.id, as_of=day(100).isoformat())
    assert body["baseline"] is None
    short = by_key(body)["short_term"]
    assert short["status"] == "insufficient_data"
    assert short["observed"]["pain"] == 2.0
    assert short["observed"]["pain_change"] is None


def test_logs_after_as_of_are_ignored(client: TestClient, world: World) -> None:
    example_history(client, world)
    before = read_progress(client, world, world.patient_a.id, as_of="2026-05-20")
    headers = world.headers("patient_a")
    add_log(client, headers, date(2026, 5, 21), 10, mobility=0)
    add_log(client, headers, date(2026, 5, 25), 10, mobility=0)
    add_log(client, headers, date(2026, 5, 28), 10, mobility=0)
    after = read_progress(client, world, world.patient_a.id, as_of="2026-05-20")
    assert after["milestones"] == before["milestones"]
    assert after["next_check_in"] == before["next_check_in"]
    later = by_key(read_progress(client, world, world.patient_a.id, as_of="2026-05-28"))
    assert later["short_term"]["observed"]["n_logs"] == 6
    assert later["short_term"]["observed"]["pain"] == 7.5  # 4, 4, 5, 10, 10, 10
    assert later["short_term"]["status"] == "behind"


def test_as_of_before_the_procedure_limits_the_baseline_too(
    client: TestClient, world: World
) -> None:
    example_history(client, world)
    body = read_progress(client, world, world.patient_a.id, as_of="2026-02-26")
    assert body["day"] == -4
    assert body["current_milestone"] is None
    assert body["baseline"]["n_logs"] == 2
    assert body["baseline"]["pain"] == 7.5
    assert [(m["state"], m["status"]) for m in body["milestones"]] == [("upcoming", "pending")] * 3
    assert body["next_check_in"] == {"due_on": "2026-03-02", "day": 0}


def test_as_of_defaults_to_today_in_the_patients_time_zone(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, world.patient_a.id)
    body = read_progress(client, world, world.patient_a.id)
    today = today_in("Europe/Berlin")
    assert body["as_of"] == today.isoformat()
    assert body["day"] == (today - PERFORMED_ON).days


def test_a_correction_replaces_the_corrected_log(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    headers = world.headers("patient_a")
    baseline_logs(client, headers)
    first = add_log(client, headers, day(35), 4)
    add_log(client, headers, day(42), 5)
    add_log(client, headers, day(49), 6)
    before = by_key(read_progress(client, world, world.patient_a.id, as_of=day(60).isoformat()))
    assert before["short_term"]["observed"]["pain"] == 5.0
    assert before["short_term"]["status"] == "on_track"

    response = client.post(
        f"/v1/me/symptom-logs/{first['id']}/corrections",
        json={"client_id": str(uuid.uuid4()), "pain": 8},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    after = by_key(read_progress(client, world, world.patient_a.id, as_of=day(60).isoformat()))
    # 4 -> 8: pains 8, 5, 6 have the median 6; the corrected log is not counted twice.
    assert after["short_term"]["observed"]["n_logs"] == 3
    assert after["short_term"]["observed"]["pain"] == 6.0
    assert after["short_term"]["status"] == "behind"


def test_a_correction_of_a_baseline_log_changes_the_baseline(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, world.patient_a.id)
    headers = world.headers("patient_a")
    first = add_log(client, headers, day(-10), 7)
    add_log(client, headers, day(-5), 7)
    response = client.post(
        f"/v1/me/symptom-logs/{first['id']}/corrections",
        json={"client_id": str(uuid.uuid4()), "pain": 9},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body = read_progress(client, world, world.patient_a.id, as_of=day(1).isoformat())
    assert body["baseline"]["n_logs"] == 2
    assert body["baseline"]["pain"] == 8.0


# --- choosing a procedure ----------------------------------------------------------------------


def _repeat_injection(client: TestClient, world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A first procedure on 2026-03-02 and a repeat on 2026-04-20 (the first's day 49)."""
    first = add_procedure(client, world, world.patient_a.id)
    second = add_procedure(client, world, world.patient_a.id, date(2026, 4, 20))
    headers = world.headers("patient_a")
    baseline_logs(client, headers)
    add_log(client, headers, date(2026, 4, 6), 4)  # first's day 35
    add_log(client, headers, date(2026, 4, 13), 4)  # first's day 42
    add_log(client, headers, date(2026, 5, 4), 9)  # second's day 14 (first's 63)
    add_log(client, headers, date(2026, 5, 25), 9)  # second's day 35 (first's 84)
    return first, second


def test_procedure_id_selects_an_older_procedure(client: TestClient, world: World) -> None:
    first, _ = _repeat_injection(client, world)
    body = read_progress(
        client, world, world.patient_a.id, procedure_id=first["id"], as_of="2026-06-01"
    )
    assert body["procedure"]["id"] == first["id"]
    assert body["day"] == 91
    assert body["baseline"]["pain"] == 7.0
    short = by_key(body)["short_term"]
    # The logs after the repeat injection are on the second procedure's clock, not this one's.
    assert short["state"] == "closed"
    assert short["observed"]["n_logs"] == 2
    assert short["observed"]["pain"] == 4.0
    assert short["status"] == "met"
    assert body["current_milestone"] == "short_term"


def test_the_latest_procedure_is_the_default(client: TestClient, world: World) -> None:
    _, second = _repeat_injection(client, world)
    body = read_progress(client, world, world.patient_a.id, as_of="2026-06-01")
    assert body["procedure"]["id"] == second["id"]
    assert body["procedure"]["performed_on"] == "2026-04-20"
    assert body["day"] == 42
    milestones = by_key(body)
    assert milestones["immediate"]["observed"]["n_logs"] == 1
    assert milestones["short_term"]["observed"]["n_logs"] == 1
    assert milestones["short_term"]["observed"]["pain"] == 9.0
    # Its baseline: every log in the 60 days before the repeat, the first procedure's included.
    assert body["baseline"]["n_logs"] == 5
    assert body["baseline"]["pain"] == 6.0


def test_another_patients_procedure_id_is_404(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    other = add_procedure(client, world, world.patient_b.id, actor="clinician_b")
    response = get_progress(client, world, world.patient_a.id, procedure_id=other["id"])
    assert_problem(response, 404)


def test_an_unknown_procedure_id_is_404(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    response = get_progress(client, world, world.patient_a.id, procedure_id=str(uuid.uuid4()))
    assert_problem(response, 404)


@pytest.mark.parametrize("as_of", ["yesterday", "2026-02-30", "2026-13-01", "20.05.2026"])
def test_a_bad_as_of_is_422(client: TestClient, world: World, as_of: str) -> None:
    add_procedure(client, world, world.patient_a.id)
    response = get_progress(client, world, world.patient_a.id, as_of=as_of)
    assert "as_of" in pointers(response)


def test_a_malformed_procedure_id_is_422(client: TestClient, world: World) -> None:
    response = get_progress(client, world, world.patient_a.id, procedure_id="not-a-uuid")
    assert "procedure_id" in pointers(response)


def test_no_procedure_is_200_with_no_milestones(client: TestClient, world: World) -> None:
    add_log(client, world.headers("patient_a"), date(2026, 2, 20), 7)
    body = read_progress(client, world, world.patient_a.id)
    assert body["patient_id"] == str(world.patient_a.id)
    assert body["procedure"] is None
    assert body["milestones"] == []
    assert body["as_of"] == today_in("Europe/Berlin").isoformat()
    for field in ("day", "protocol", "baseline", "current_milestone", "next_check_in"):
        assert body[field] is None, field
    assert body["factors"] == []
    assert body["open_alerts"] == 0


# --- factors -----------------------------------------------------------------------------------


def test_comorbidities_add_the_overall_health_factor(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    patient, _ = fresh_patient(db, settings, world, comorbidities=["diabetes"])
    add_procedure(client, world, patient.id)
    found = factors(read_progress(client, world, patient.id, as_of="2026-05-20"))
    assert found["overall_health"]["impact"] == "significant"
    assert "diabetes" in found["overall_health"]["message"]


def test_smoking_adds_the_overall_health_factor(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    patient, _ = fresh_patient(db, settings, world, smoker=True)
    add_procedure(client, world, patient.id)
    found = factors(read_progress(client, world, patient.id, as_of="2026-05-20"))
    assert found["overall_health"]["impact"] == "significant"
    assert "smok" in found["overall_health"]["message"]


def test_no_comorbidities_and_no_smoking_means_no_overall_health_factor(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, world.patient_a.id)
    assert "overall_health" not in factors(read_progress(client, world, world.patient_a.id))


@pytest.mark.parametrize(
    ("birth_date", "has_age_factor"),
    [
        (date(1961, 3, 2), True),  # 65 on the procedure date
        (date(1961, 3, 3), False),  # 64, turning 65 the next day
        (date(1990, 1, 1), False),
    ],
)
def test_age_factor_from_65_on_the_procedure_date(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    birth_date: date,
    has_age_factor: bool,
) -> None:
    patient, _ = fresh_patient(db, settings, world, birth_date=birth_date)
    add_procedure(client, world, patient.id)
    found = factors(read_progress(client, world, patient.id, as_of="2026-05-20"))
    assert ("age" in found) is has_age_factor
    assert "treatment_protocol" in found


def test_treatment_protocol_factor_names_a_treatment_without_cell_source(
    client: TestClient, world: World
) -> None:
    add_procedure(
        client,
        world,
        world.patient_a.id,
        treatment="prp",
        cell_source=None,
        harvest={"method": "blood_draw"},
    )
    found = factors(read_progress(client, world, world.patient_a.id))
    assert "prp" in found["treatment_protocol"]["message"]


# --- the patient's own read and access ---------------------------------------------------------


def test_patient_reads_own_progress_for_the_latest_procedure(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, world.patient_a.id, date(2025, 12, 1))
    latest = example_history(client, world)
    headers = world.headers("patient_a")
    add_log(client, headers, date(2026, 9, 1), 3, mobility=5)
    add_log(client, headers, date(2026, 10, 1), 3, mobility=5)

    response = client.get("/v1/me/progress", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    today = today_in("Europe/Berlin")
    assert body["patient_id"] == str(world.patient_a.id)
    assert body["procedure"]["id"] == latest["id"]
    assert body["as_of"] == today.isoformat()
    assert body["day"] == (today - PERFORMED_ON).days
    assert body["current_milestone"] == "long_term"
    long = by_key(body)["long_term"]
    assert (long["state"], long["status"], long["substantial"]) == ("open", "on_track", True)
    # The clinician's report, worded for the patient: what to expect now, the caveat in plain
    # words (no milestone here has a finding to word).
    clinician = read_progress(client, world, world.patient_a.id)
    assert clinician["expect_now"] is None
    assert body["expect_now"] == "6-12+ months: lasting pain relief and better quality of life."
    assert body == clinician | {"expect_now": body["expect_now"], "caveat": wording.CAVEAT}


def test_patient_without_a_procedure_reads_empty_progress(client: TestClient, world: World) -> None:
    response = client.get("/v1/me/progress", headers=world.headers("patient_a"))
    assert response.status_code == 200, response.text
    assert response.json()["procedure"] is None
    assert response.json()["milestones"] == []


def test_each_patient_reads_only_their_own_progress(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    response = client.get("/v1/me/progress", headers=world.headers("patient_b"))
    assert response.status_code == 200, response.text
    assert response.json()["patient_id"] == str(world.patient_b.id)
    assert response.json()["procedure"] is None


def _pain_unchanged_for_100_days(client: TestClient, world: World) -> None:
    """A baseline of 6 from three logs, a quiet first fortnight, and pain still 6 on days 35, 49
    and 63: 100 days after the procedure, short_term has closed not met."""
    performed_on = today_in() - timedelta(days=100)
    add_procedure(client, world, world.patient_a.id, performed_on)
    headers = world.headers("patient_a")
    for n in (-20, -10, -5, 3, 35, 49, 63):
        add_log(client, headers, day(n, performed_on), 6)


def test_a_milestone_not_met_says_why_in_numbers(client: TestClient, world: World) -> None:
    _pain_unchanged_for_100_days(client, world)
    body = read_progress(client, world, world.patient_a.id)
    assert body["day"] == 100
    assert body["baseline"]["pain"] == 6.0
    short = by_key(body)["short_term"]
    assert (short["state"], short["status"]) == ("closed", "not_met")
    assert short["findings"] == [
        {
            "code": "pain_not_improved",
            "message": "pain 6.0 vs baseline 6.0; improved means a drop of 2 points or 30 % "
            "(to 4.2 or less)",
        }
    ]
    assert body["expect_now"] is None


def test_the_patient_reads_the_same_finding_in_plain_words(
    client: TestClient, world: World
) -> None:
    _pain_unchanged_for_100_days(client, world)
    response = client.get("/v1/me/progress", headers=world.headers("patient_a"))
    assert response.status_code == 200, response.text
    body = response.json()
    short = by_key(body)["short_term"]
    assert (short["state"], short["status"]) == ("closed", "not_met")
    assert short["findings"] == [
        {
            "code": "pain_not_improved",
            "message": "Your pain is about the same as before the procedure (6 out of 10). "
            "By this stage many people notice it drop to 4 or lower. "
            "Keep checking in; your care team can talk it through with you.",
        }
    ]
    assert body["current_milestone"] == "short_term"
    assert body["expect_now"] == (
        "1-3 months: pain getting better, improved mobility, better function."
    )
    assert body["caveat"] == wording.CAVEAT
    assert "baseline" not in short["findings"][0]["message"]


@pytest.mark.parametrize("actor", ["clinician_a", "researcher_a", "admin"])
def test_staff_may_not_use_the_patients_own_progress_route(
    client: TestClient, world: World, actor: str
) -> None:
    assert_problem(client.get("/v1/me/progress", headers=world.headers(actor)), 403)


def test_own_progress_needs_a_token(client: TestClient) -> None:
    assert_problem(client.get("/v1/me/progress"), 401)


def test_patient_progress_needs_a_token(client: TestClient, world: World) -> None:
    assert_problem(get_progress(client, world, world.patient_a.id, actor=None), 401)


@pytest.mark.parametrize("actor", ["researcher_a", "patient_a"])
def test_researchers_and_patients_may_not_read_a_patients_progress(
    client: TestClient, world: World, actor: str
) -> None:
    assert_problem(get_progress(client, world, world.patient_a.id, actor=actor), 403)


def test_another_clinics_patient_progress_is_404(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    assert_problem(get_progress(client, world, world.patient_a.id, actor="clinician_b"), 404)


def test_an_unknown_patient_progress_is_404(client: TestClient, world: World) -> None:
    assert_problem(get_progress(client, world, uuid.uuid4()), 404)


def test_admin_reads_any_clinics_progress(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_b.id, actor="clinician_b")
    response = get_progress(client, world, world.patient_b.id, actor="admin")
    assert response.status_code == 200, response.text
    assert response.json()["procedure"] is not None


# --- alerts in progress ------------------------------------------------------------------------


def test_a_red_flag_log_counts_as_an_open_alert_and_a_finding(
    client: TestClient, world: World
) -> None:
    add_procedure(client, world, world.patient_a.id)
    add_log(client, world.headers("patient_a"), day(3), 5, red_flags=["fever"])
    body = read_progress(client, world, world.patient_a.id, as_of=day(5).isoformat())
    # The red flag, and the check-ins missed since day 3 (today is months later).
    assert body["open_alerts"] == 2
    immediate = by_key(body)["immediate"]
    assert [f["code"] for f in immediate["findings"]] == ["red_flag"]
    assert immediate["status"] == "behind"


def test_an_acknowledged_alert_is_no_longer_open(client: TestClient, world: World) -> None:
    add_procedure(client, world, world.patient_a.id)
    add_log(client, world.headers("patient_a"), day(3), 5, red_flags=["fever"])
    alerts = client.get(
        "/v1/alerts",
        params={"patient_id": str(world.patient_a.id), "kind": "red_flag"},
        headers=world.headers("clinician_a"),
    ).json()["items"]
    [alert] = alerts
    before = read_progress(client, world, world.patient_a.id)["open_alerts"]
    response = client.post(
        f"/v1/alerts/{alert['id']}/acknowledge", headers=world.headers("clinician_a")
    )
    assert response.status_code == 200, response.text
    assert read_progress(client, world, world.patient_a.id)["open_alerts"] == before - 1


# --- the patient list: progress_status and open_alerts -----------------------------------------


def _list(client: TestClient, world: World, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/patients", params=params, headers=world.headers("clinician_a"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _clinic_in_every_state(
    client: TestClient, world: World, db: Session, settings: Settings
) -> dict[str, uuid.UUID]:
    """Patients of clinic A in different states as of today; patient_a has no procedure."""
    today = today_in("Europe/Berlin")
    made: dict[str, uuid.UUID] = {"no_procedure": world.patient_a.id}

    def patient_with(name: str, days_ago: int, **procedure: Any) -> dict[str, str]:
        patient, headers = fresh_patient(db, settings, world, family_name=name)
        add_procedure(client, world, patient.id, today - timedelta(days=days_ago), **procedure)
        made[name] = patient.id
        return headers

    headers = patient_with("immediate_on_track", 5)
    add_log(client, headers, today - timedelta(days=2), 4)
    patient_with("immediate_pending", 5)
    headers = patient_with("immediate_behind", 5)
    add_log(client, headers, today - timedelta(days=2), 4, red_flags=["fever"])
    headers = patient_with("immediate_met", 20)
    add_log(client, headers, today - timedelta(days=17), 4)
    patient_with("immediate_insufficient", 20)
    headers = patient_with("short_term_on_track", 40, baseline={"pain": 7})
    add_log(client, headers, today - timedelta(days=5), 3)
    headers = patient_with("short_term_behind", 40, baseline={"pain": 7})
    add_log(client, headers, today - timedelta(days=5), 7)
    return made


EXPECTED = {
    "no_procedure": "pending",
    "immediate_on_track": "on_track",
    "immediate_pending": "pending",
    "immediate_behind": "behind",
    "immediate_met": "met",
    "immediate_insufficient": "insufficient_data",
    "short_term_on_track": "on_track",
    "short_term_behind": "behind",
}


# The red flag, and check-ins missed by today: no log since day 0, or since day 3 of a
# procedure 20 days ago (each scheduled day has 2 days' grace). The list's read sweeps them.
OPEN_ALERTS = {
    "immediate_pending": 1,
    "immediate_behind": 1,
    "immediate_met": 1,
    "immediate_insufficient": 1,
}


def test_every_listed_patient_carries_progress_status_and_open_alerts(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    items = {item["id"]: item for item in _list(client, world)}
    assert set(items) == {str(i) for i in made.values()}
    for name, patient_id in made.items():
        item = items[str(patient_id)]
        assert item["progress_status"] == EXPECTED[name], name
        assert item["open_alerts"] == OPEN_ALERTS.get(name, 0), name


@pytest.mark.parametrize("status", STATUSES)
def test_progress_status_filters_the_patient_list(
    client: TestClient, world: World, db: Session, settings: Settings, status: str
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    expected = {str(made[name]) for name, value in EXPECTED.items() if value == status}
    items = _list(client, world, progress_status=status)
    assert {item["id"] for item in items} == expected
    assert all(item["progress_status"] == status for item in items)


def test_the_list_status_matches_the_progress_read(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    for item in _list(client, world):
        progress = read_progress(client, world, uuid.UUID(item["id"]))
        current = by_key(progress).get(progress["current_milestone"] or "")
        assert item["progress_status"] == (current["status"] if current else "pending")
        assert item["open_alerts"] == progress["open_alerts"]
    assert made


def test_the_filter_paginates_with_a_cursor(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    made = _clinic_in_every_state(client, world, db, settings)
    on_track = {str(made["immediate_on_track"]), str(made["short_term_on_track"])}
    response = client.get(
        "/v1/patients",
        params={"progress_status": "on_track", "limit": 1},
        headers=world.headers("clinician_a"),
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    response = client.get(
        "/v1/patients",
        params={"progress_status": "on_track", "limit": 1, "cursor": page["next_cursor"]},
        headers=world.headers("clinician_a"),
    )
    assert response.status_code == 200, response.text
    second = response.json()
    assert {page["items"][0]["id"], second["items"][0]["id"]} == on_track
    assert second["next_cursor"] is None


def test_the_filter_keeps_to_the_clinicians_clinic(client: TestClient, world: World) -> None:
    items = _list(client, world, progress_status="pending")
    assert [item["id"] for item in items] == [str(world.patient_a.id)]


@pytest.mark.parametrize("value", ["done", "ON_TRACK", ""])
def test_an_invalid_progress_status_is_422(client: TestClient, world: World, value: str) -> None:
    response = client.get(
        "/v1/patients", params={"progress_status": value}, headers=world.headers("clinician_a")
    )
    assert "progress_status" in pointers(response)
