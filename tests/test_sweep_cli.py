"""`recovery-tracker sweep`, `reevaluate` and `migrate`'s catch-up sweep, run as real subprocesses
on a SQLite file (issue 9, point 3).

The data is made the way the service makes it: through the API, in-process, on a database of
its own (`populate`). A database "at the previous revision" is that data copied into a file
migrated only to 2a27321a5c77, the revision before stored progress: patients, procedures and
logs, and neither stored progress nor the clock's alerts.
"""

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api import migrations
from api.config import Environment, Settings
from api.db import make_engine
from api.main import create_app
from api.services import sweep
from models.patient import Patient
from tests.factories import World, auth, build_world, make_patient, patient_token
from tests.test_cli import Cli

PREVIOUS_REVISION = "2a27321a5c77"  # the revision before stored progress
SECRET = "test-secret-key-that-is-long-enough-0123456789"
BERLIN = "Europe/Berlin"
STORE = {
    "patient_progress": ("patient_id",),
    "procedure_evaluation": ("procedure_id",),
    "milestone_evaluation": ("procedure_id", "key"),
}
# What the store rows hold besides the engine's results: when they were written.
WRITTEN_AT = {"evaluated_at"}
SUMMARY = re.compile(
    r"Re-evaluated (\d+) of (\d+) (?:patients|whose next change may be today in their time zone); alerts raised: (.+)\."
)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Cli(workdir=workdir, database=tmp_path / "cli.db")


# --- the data --------------------------------------------------------------------------------


@dataclass
class Population:
    """A clinic made through the API: who is who, and what must never reach a log."""

    path: Path
    patients: dict[str, uuid.UUID] = field(default_factory=dict)
    performed_on: dict[str, date] = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)


def settings_for(path: Path) -> Settings:
    return Settings(
        environment=Environment.test, database_url=f"sqlite:///{path}", secret_key=SECRET
    )


def today_in(zone: str = BERLIN) -> date:
    return datetime.now(ZoneInfo(zone)).date()


def recorded_at(on: date, zone: str) -> str:
    noon = datetime.combine(on, clock_time(12), tzinfo=ZoneInfo(zone))
    return min(noon, datetime.now(ZoneInfo(zone)) - timedelta(minutes=1)).isoformat()


def _procedure(
    client: TestClient, world: World, patient: Patient, performed_on: date, **extra: Any
) -> None:
    body = {
        "performed_on": performed_on.isoformat(),
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
    } | extra
    response = client.post(
        f"/v1/patients/{patient.id}/procedures", headers=world.headers("clinician_a"), json=body
    )
    assert response.status_code == 201, response.text


def _logs(
    client: TestClient,
    headers: dict[str, str],
    performed_on: date,
    pains: dict[int, int],
    zone: str,
) -> None:
    logs = [
        {
            "client_id": str(uuid.uuid4()),
            "recorded_at": recorded_at(performed_on + timedelta(days=day), zone),
            "pain": pain,
        }
        for day, pain in pains.items()
    ]
    response = client.post("/v1/me/symptom-logs/batch", headers=headers, json={"logs": logs})
    assert response.status_code == 200, response.text
    assert {r["status"] for r in response.json()["results"]} == {"created"}


def populate(path: Path, *, zone: str = BERLIN, swept: bool = True) -> Population:
    """Clinic A of the test world (two patients without a procedure, one in clinic B) and:

    - `not_met`: 100 days after the procedure, pain 6 against a baseline of 6 on days 35, 50
      and 70 (short_term closed not_met; check-ins of days 77-91 missed);
    - `silent`: 40 days after the procedure, no log (check-ins of days 0-35 missed);
    - `fresh`: the procedure today, no log (nothing due).

    The logs come first and the procedure after them, so its write evaluates them once. With
    `swept`, a sweep then brings everything up to today, as the clock leaves it.
    """
    population = Population(path)
    settings = settings_for(path)
    migrations.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    today = today_in(zone)
    plan = {"not_met": (100, {35: 6, 50: 6, 70: 6}), "silent": (40, {}), "fresh": (0, {})}
    try:
        with Session(engine, expire_on_commit=False) as db:
            world = build_world(db, settings)
            made = {}
            for name in plan:
                marker = uuid.uuid4().hex[:8]
                patient = make_patient(
                    db,
                    clinic=world.clinic_a,
                    given_name=f"Given{marker}",
                    family_name=f"Family{marker}",
                    mrn=f"MRN-{marker}",
                    timezone=zone,
                )
                made[name] = (patient, auth(patient_token(db, settings, patient)))
                population.identifiers += [patient.given_name, patient.family_name, patient.mrn]
            population.identifiers += [world.patient_a.mrn, world.patient_b.mrn]
        with TestClient(create_app(settings)) as client:
            for name, (days_ago, pains) in plan.items():
                patient, headers = made[name]
                performed_on = today - timedelta(days=days_ago)
                if pains:
                    _logs(client, headers, performed_on, pains, zone)
                _procedure(client, world, patient, performed_on, baseline={"pain": 6})
                population.patients[name] = patient.id
                population.performed_on[name] = performed_on
        population.patients |= {"world_a": world.patient_a.id, "world_b": world.patient_b.id}
        if swept:
            assert sweep.run(engine) is not None
    finally:
        engine.dispose()
    population.identifiers += [str(i) for i in population.patients.values()]
    population.identifiers += [i.hex for i in population.patients.values()]
    return population


def at_previous_revision(source: Path, target: Path) -> None:
    """`target` at the revision before stored progress, holding `source`'s records (every table
    that revision has, but alerts: none of the clock's existed then)."""
    migrations.upgrade(f"sqlite:///{target}", PREVIOUS_REVISION)
    with closing(sqlite3.connect(target)) as connection:
        connection.execute("ATTACH DATABASE ? AS source", (str(source),))
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table'"
            )
            if name not in {"alembic_version", "protocol", "alert"}  # protocol: seeded
        ]
        assert {"patient", "procedure", "symptom_log"} <= set(tables)
        assert not set(STORE) & set(tables)
        for table in tables:
            columns = [row[1] for row in connection.execute(f'PRAGMA main.table_info("{table}")')]
            names = ", ".join(f'"{c}"' for c in columns)
            connection.execute(
                f'INSERT INTO main."{table}" ({names}) SELECT {names} FROM source."{table}"'
            )
        connection.commit()


# --- reading the files -----------------------------------------------------------------------


@contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
    finally:
        connection.close()


def store(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The stored progress, row by row, without the time each row was written."""
    with _read(path) as connection:
        return {
            table: [
                {k: row[k] for k in row.keys() if k not in WRITTEN_AT}  # noqa: SIM118
                for row in connection.execute(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")
            ]
            for table, key in STORE.items()
        }


def alerts(path: Path) -> list[tuple[str, str, str, int, Any]]:
    """Every alert as (patient_id, kind, status, occurrences, details)."""
    with _read(path) as connection:
        rows = connection.execute(
            "SELECT patient_id, kind, status, occurrences, details FROM alert"
        ).fetchall()
    return sorted(
        (r["patient_id"], r["kind"], r["status"], r["occurrences"], json.loads(r["details"]))
        for r in rows
    )


def alert_kinds(path: Path, patient_id: uuid.UUID) -> list[str]:
    return sorted(kind for pid, kind, *_ in alerts(path) if pid == patient_id.hex)


def execute(path: Path, statement: str, *params: Any) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(statement, params)
        connection.commit()


def summary(stdout: str) -> tuple[int, int, str]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return int(match[1]), int(match[2]), match[3]


def assert_no_identifiers(output: str, population: Population) -> None:
    for identifier in population.identifiers:
        assert identifier not in output


def on(cli: Cli, path: Path) -> Cli:
    return Cli(workdir=cli.workdir, database=path)


# --- migrate -------------------------------------------------------------------------------------


def test_migrate_from_the_previous_revision_evaluates_everyone_and_raises_the_due_alerts_once(
    cli: Cli, tmp_path: Path
) -> None:
    source = populate(tmp_path / "source.db")
    at_previous_revision(source.path, cli.database)

    result = cli.run("migrate")

    assert result.returncode == 0, result.stderr
    assert "Database is at the latest schema." in result.stdout
    # Five patients in all (two of the world's without a procedure).
    assert summary(result.stdout) == (5, 5, "1 milestone_not_met, 2 missed_check_in")
    # Exactly what the write paths and the clock made of the same records.
    assert store(cli.database) == store(source.path)
    assert alerts(cli.database) == alerts(source.path)
    patients = source.patients
    assert alert_kinds(cli.database, patients["not_met"]) == [
        "milestone_not_met",
        "missed_check_in",
    ]
    assert alert_kinds(cli.database, patients["silent"]) == ["missed_check_in"]
    assert alert_kinds(cli.database, patients["fresh"]) == []
    details = {
        (pid, kind): d for pid, kind, _, occurrences, d in alerts(cli.database) if occurrences == 1
    }
    not_met = details[(patients["not_met"].hex, "milestone_not_met")]
    assert (not_met["milestones"], not_met["findings"]) == (["short_term"], ["pain_not_improved"])
    missed = details[(patients["not_met"].hex, "missed_check_in")]
    assert (missed["missed_from_day"], missed["missed_through_day"]) == (77, 91)
    silent = details[(patients["silent"].hex, "missed_check_in")]
    assert (silent["missed_from_day"], silent["missed_through_day"]) == (0, 35)
    progress = {r["patient_id"]: r for r in store(cli.database)["patient_progress"]}
    assert progress[patients["not_met"].hex]["progress_status"] == "not_met"
    assert progress[patients["world_a"].hex]["progress_status"] == "pending"
    # The sweep's log: progress and counts, never who.
    assert "sweep started: 5 patient(s) to look at" in result.stderr
    assert "sweep done in" in result.stderr
    assert_no_identifiers(result.stdout + result.stderr, source)

    before = alerts(cli.database), store(cli.database)
    again = cli.run("migrate")

    assert again.returncode == 0, again.stderr
    evaluated, _, raised = summary(again.stdout)
    assert (evaluated, raised) == (0, "none")
    assert (alerts(cli.database), store(cli.database)) == before


def test_the_first_sweep_after_the_upgrade_evaluates_patients_west_of_utc(
    tmp_path: Path,
) -> None:
    """The upgrade marks every patient due on the database's CURRENT_DATE (UTC on SQLite). At
    03:00 UTC it is still yesterday evening in Los Angeles: `migrate`'s sweep must evaluate
    the clinic's patients all the same, not leave them pending until their own midnight."""
    zone = "America/Los_Angeles"
    source = populate(tmp_path / "source.db", zone=zone, swept=False)
    target = tmp_path / "target.db"
    at_previous_revision(source.path, target)
    url = f"sqlite:///{target}"
    migrations.upgrade(url)
    utc_today = datetime.now(UTC).date()
    three_am_utc = datetime.combine(utc_today, clock_time(3), tzinfo=UTC)
    assert three_am_utc.astimezone(ZoneInfo(zone)).date() < utc_today  # the premise

    engine = make_engine(url)
    try:
        counts = sweep.run(engine, now=three_am_utc)  # what `migrate` does, at 03:00 UTC
    finally:
        engine.dispose()

    assert counts is not None
    assert counts.evaluated == 5
    evaluations = store(target)["procedure_evaluation"]
    assert len(evaluations) == 3
    assert alert_kinds(target, source.patients["silent"]) == ["missed_check_in"]


# --- sweep ---------------------------------------------------------------------------------------


def test_migrate_on_an_empty_database_says_it_evaluated_no_one(cli: Cli) -> None:
    result = cli.run("migrate")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout) == (0, 0, "none")
    assert "sweep done in" in result.stderr


def test_sweep_evaluates_what_is_due_prints_counts_and_raises_nothing_the_second_time(
    cli: Cli, tmp_path: Path
) -> None:
    """After a bare `alembic upgrade` (no catch-up sweep), cron's `sweep` does the work once."""
    source = populate(tmp_path / "source.db")
    at_previous_revision(source.path, cli.database)
    migrations.upgrade(f"sqlite:///{cli.database}")
    assert alerts(cli.database) == []

    first = cli.run("sweep")

    assert first.returncode == 0, first.stderr
    assert summary(first.stdout) == (5, 5, "1 milestone_not_met, 2 missed_check_in")
    assert store(cli.database) == store(source.path)
    assert alerts(cli.database) == alerts(source.path)
    assert "sweep started: 5 patient(s) to look at" in first.stderr
    assert "sweep progress: 5/5 patient(s)" in first.stderr
    assert_no_identifiers(first.stdout + first.stderr, source)

    before = store(cli.database)
    second = cli.run("sweep")

    assert second.returncode == 0, second.stderr
    evaluated, _, raised = summary(second.stdout)
    assert (evaluated, raised) == (0, "none")
    assert alerts(cli.database) == alerts(source.path)
    assert store(cli.database) == before
    assert_no_identifiers(second.stdout + second.stderr, source)


# --- reevaluate ----------------------------------------------------------------------------------


def test_reevaluate_rebuilds_every_deleted_row_exactly(cli: Cli, tmp_path: Path) -> None:
    source = populate(tmp_path / "source.db")
    cli = on(cli, source.path)
    before = store(source.path)
    for table in STORE:
        execute(source.path, f"DELETE FROM {table}")
    assert store(source.path) == {table: [] for table in STORE}

    result = cli.run("reevaluate")

    assert result.returncode == 0, result.stderr
    evaluated, candidates, _ = summary(result.stdout)
    assert (evaluated, candidates) == (5, 5)
    assert store(source.path) == before
    assert_no_identifiers(result.stdout + result.stderr, source)


def test_reevaluate_one_patient_rebuilds_only_theirs(cli: Cli, tmp_path: Path) -> None:
    source = populate(tmp_path / "source.db")
    cli = on(cli, source.path)
    before = store(source.path)
    not_met, silent = source.patients["not_met"], source.patients["silent"]
    for patient_id in (not_met, silent):
        execute(
            source.path, "DELETE FROM milestone_evaluation WHERE patient_id = ?", patient_id.hex
        )

    result = cli.run("reevaluate", "--patient", str(not_met))

    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[:2] == (1, 1)
    milestones = store(source.path)["milestone_evaluation"]
    assert [m for m in milestones if m["patient_id"] == not_met.hex] == [
        m for m in before["milestone_evaluation"] if m["patient_id"] == not_met.hex
    ]
    assert [m for m in milestones if m["patient_id"] == silent.hex] == []
    assert store(source.path)["procedure_evaluation"] == before["procedure_evaluation"]


def test_reevaluate_raises_nothing_that_was_raised_before(cli: Cli, tmp_path: Path) -> None:
    source = populate(tmp_path / "source.db")
    cli = on(cli, source.path)
    raised = alerts(source.path)
    assert len(raised) == 3

    result = cli.run("reevaluate")

    assert result.returncode == 0, result.stderr
    assert summary(result.stdout) == (5, 5, "none")
    assert alerts(source.path) == raised


def test_reevaluate_after_the_rows_were_lost_does_not_raise_their_alerts_again(
    cli: Cli, tmp_path: Path
) -> None:
    """The alerts are the record of what was raised: rebuilding the store from the engine
    (rows deleted by hand, a restore without them) must not raise the same closing or the same
    missed check-ins again, nor reopen alerts a clinician resolved."""
    source = populate(tmp_path / "source.db")
    cli = on(cli, source.path)
    execute(source.path, "UPDATE alert SET status = 'resolved'")
    raised = alerts(source.path)
    before = store(source.path)
    for table in STORE:
        execute(source.path, f"DELETE FROM {table}")

    result = cli.run("reevaluate")

    assert result.returncode == 0, result.stderr
    assert store(source.path) == before
    assert alerts(source.path) == raised
    assert summary(result.stdout)[2] == "none"


def test_reevaluate_an_unknown_patient_says_so_and_fails(cli: Cli) -> None:
    assert cli.run("migrate").returncode == 0
    result = cli.run("reevaluate", "--patient", "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 1
    assert "No patient with the id 00000000-0000-0000-0000-000000000000." in result.stderr
