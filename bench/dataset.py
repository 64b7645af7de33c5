"""The seeded clinic for the scale scenarios: N patients with months of check-ins, written straight
into a SQLite database (through the API, two million check-ins would take hours).

The schema comes from Alembic only (`recovery-tracker migrate`); the rows go into the real tables
(the models' own `Table`s, SQLAlchemy Core `executemany`, one transaction per chunk of patients,
`synchronous=OFF` on the seeding connection only), with the columns computed as the service
computes them for a stored check-in (api/services/symptom_logs.py `_new_log`): a UUIDv7 key
(`ordered_id`), the content hash of what the phone sent, the local date and UTC offset in the
patient's time zone, the receipt time, the Oswestry score. Then `recovery-tracker reevaluate`
fills the stored progress (procedure_evaluation, milestone_evaluation, patient_progress) with
the engine, as a deployment would.

Deterministic: the same seed and patient count give the same clinic, patients, procedures and
check-ins (row keys made at insert time, UUIDv7, differ from run to run). Realistic on purpose:

* procedures spread over the clock: in the immediate window, between windows, in short_term,
  in long_term and past day 365;
* pre-procedure check-ins for most patients (their baseline, CLINICAL.md), an explicit baseline
  on the procedure for some, neither for a few;
* pain that improves for about 70% of the patients and not (or gets worse) for the rest, a flare
  after the injection, noise; mobility, leg pain, walking minutes, a weekly Oswestry, symptoms;
* gaps in logging, patients who stopped logging weeks ago, late (offline) syncs, a few
  corrections and clinic-entered check-ins, a rare red flag;
* `HEAVY_PATIENTS` patients with two years of daily check-ins (730 logs): the heaviest reads.

Variant `windows` (the sweep's worst day): every procedure sits on a window edge, so that every
patient's stored evaluation changes today: short_term opens (day 30) or closes (day 91),
long_term opens (day 180) or closes (day 366). `reevaluate` only evaluates as of today, so the
data is seeded one day later on the clock (procedures on day 29, 90, 179, 365), evaluated, and
then moved one day back: procedure dates, `as_of` and `next_change_on` minus one day. The stored
rows are then those of yesterday's evaluation, due today.
"""

import hashlib
import heapq
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time as clock
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from servers import VENV_BIN, service_env

SEED = 20_261_201
CHUNK_PATIENTS = 50  # patients per transaction (about 10,000 check-ins)
HEAVY_PATIENTS = 20  # patients with HEAVY_LOGS check-ins (the 730-log progress reads)
HEAVY_LOGS = 730
MIN_LOGS, MAX_LOGS = 50, 365
CLINIC_TIMEZONE = "Europe/Berlin"
# (time zone, share of patients): most live where the clinic is, some elsewhere.
TIMEZONES = [
    ("Europe/Berlin", 0.82),
    ("Europe/London", 0.06),
    ("Europe/Athens", 0.04),
    ("America/New_York", 0.05),
    ("Asia/Dubai", 0.03),
]
# (first day, last day, share): days since the procedure, today.
CLOCK_SPREAD = [
    (0, 14, 0.07),  # immediate window open
    (15, 29, 0.05),  # between immediate and short_term
    (30, 90, 0.22),  # short_term open
    (91, 179, 0.18),  # short_term closed, long_term upcoming
    (180, 365, 0.30),  # long_term open
    (366, 560, 0.18),  # past the last window
]
WINDOW_EDGE_DAYS = (29, 90, 179, 365)  # `windows`: the day before an edge (moved back after)
CLI_TIMEOUT_S = 3600
TREATMENTS = [
    # treatment, cell source, harvest, share
    ("stem_cell", "bone_marrow", "bone_marrow_aspiration", 0.30),
    ("stem_cell", "adipose", "lipoaspiration", 0.15),
    ("stem_cell", "umbilical_cord", "none", 0.10),
    ("prp", None, "blood_draw", 0.25),
    ("prolotherapy", None, "none", 0.12),
    ("red_light", None, "none", 0.08),
]
LEVELS = {
    "lumbar": ["L3-L4", "L4-L5", "L5-S1"],
    "cervical": ["C4-C5", "C5-C6", "C6-C7"],
    "thoracic": ["T10-T11", "T11-T12"],
}
REGIONS = [("lumbar", 0.85), ("cervical", 0.12), ("thoracic", 0.03)]
CAUSES = [("degenerative", 0.8), ("congenital", 0.05), ("injury", 0.1), ("other", 0.05)]
COMORBIDITIES = ["diabetes", "obesity", "osteoporosis", "heart_disease", "hypertension"]
GIVEN = ["Maria", "James", "Linda", "Robert", "Anna", "Michael", "Sabine", "Thomas", "Eva", "Jan"]
FAMILY = ["Schmidt", "Smith", "Nguyen", "Müller", "Brown", "Weber", "Davis", "Kowalski", "Rossi"]
NOTES = ["slept badly", "long walk today", "worked in the garden", "busy day at work", "travel"]


@dataclass
class Dataset:
    """A seeded database, ready to copy for a scenario."""

    path: Path
    patients: int
    variant: str  # "main" | "windows"
    logs: int
    clinician_email: str
    clinician_password: str
    heavy_patients: list[str]  # ids of the 730-log patients
    app_patients: list[str]  # ids of ordinary patients whose phones the check-in load uses
    statuses: dict[str, int] = field(default_factory=dict)  # progress_status -> patients
    seed_s: float = 0.0  # rows written
    reevaluate_s: float = 0.0  # `recovery-tracker reevaluate`
    reevaluate_output: str = ""
    size_mb: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.patients} patients, {self.logs} check-ins ({self.variant}), {self.size_mb:.0f}"
            f" MB: rows {self.seed_s:.1f} s, reevaluate {self.reevaluate_s:.1f} s;"
            f" statuses: {statuses}"
        )


def cli(env: dict[str, str], workdir: Path, *args: str, cpu: int | None = None) -> str:
    """Run `recovery-tracker ARGS` on the dataset's database; its output (raises on failure)."""
    argv = [str(VENV_BIN / "recovery-tracker"), *args]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    done = subprocess.run(
        argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"recovery-tracker {' '.join(args)} failed ({done.returncode}):"
            f" {(done.stdout + done.stderr)[-2000:]}"
        )
    return done.stdout + done.stderr


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One entry of a list whose last field is its share."""
    point, total = rng.random() * sum(w[-1] for w in weighted), 0.0
    for entry in weighted:
        total += entry[-1]
        if point < total:
            return entry
    return weighted[-1]


def _uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


# What `json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)` makes: the
# service's canonical text for a log's content hash (api/services/symptom_logs.py).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _sent_instant(at: datetime) -> str:
    """`recorded_at` as the phone sends it and pydantic dumps it back (offset 0 as `Z`)."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@dataclass
class _Trajectory:
    """How one patient's pain goes: a baseline, a change reached over `reach_days`, noise."""

    pain: float
    gain: float  # points of pain gone once reached (negative: worse)
    reach_days: float
    noise: float
    flare: float  # extra pain just after the injection
    sciatica: bool
    late_soreness: bool  # injection-site soreness still on days 8-12 (an immediate finding)

    def pain_on(self, rng: random.Random, day: int) -> int:
        trend = 0.0 if day < 0 else self.gain * min(1.0, day / self.reach_days)
        flare = self.flare * max(0.0, 1 - day / 5) if 0 <= day <= 4 else 0.0
        return round(_clamp(self.pain - trend + flare + rng.gauss(0, self.noise), 0, 10))


def _trajectory(rng: random.Random) -> _Trajectory:
    responder = rng.random() < 0.7
    return _Trajectory(
        pain=rng.uniform(4.5, 8.5),
        gain=rng.uniform(2.2, 5.0) if responder else rng.uniform(-1.8, 1.2),
        reach_days=rng.uniform(20, 100),
        noise=rng.uniform(0.5, 1.2),
        flare=rng.uniform(0, 2.5),
        sciatica=rng.random() < 0.6,
        late_soreness=rng.random() < 0.05,
    )


def _log_days(
    rng: random.Random, *, performed_on: date, today: date, heavy: bool
) -> tuple[list[date], bool]:
    """The local dates a patient logged on (ascending), and whether some are pre-procedure."""
    day_now = (today - performed_on).days
    if heavy:
        return [today - timedelta(days=n) for n in range(HEAVY_LOGS - 1, -1, -1)], True
    density = rng.uniform(0.3, 1.0)  # share of days with a check-in
    end = today - timedelta(days=rng.choice((0, 0, 0, 1, 2)))
    if rng.random() < 0.12 and day_now > 10:  # stopped logging a while ago
        end = today - timedelta(days=rng.randint(7, min(150, day_now - 3)))
    no_pre = rng.random() < 0.08  # started logging on the day of the procedure
    pre = 0 if no_pre else rng.randint(14, 60)
    gaps = [
        (rng.randint(-pre, max(-pre, day_now)), rng.randint(4, 25))
        for _ in range(rng.randint(0, 2))
    ]

    def candidates(first: int) -> list[date]:
        days = []
        for offset in range(first, (end - performed_on).days + 1):
            if any(start <= offset < start + length for start, length in gaps):
                continue
            days.append(performed_on + timedelta(days=offset))
        return days

    target = round((pre + (end - performed_on).days + 1) * density)
    target = int(_clamp(target, MIN_LOGS, MAX_LOGS))
    first = -pre
    days = candidates(first)
    while len(days) < target:  # too short a history for its count: logging began earlier
        first -= max(7, target - len(days))
        days = candidates(first)
    # Heavier logging in the daily phase (days 0-14), as the schedule asks.
    keyed = (
        (rng.random() ** (1 / (3.0 if 0 <= (d - performed_on).days <= 14 else 1.0)), d)
        for d in days
    )
    chosen = sorted(d for _, d in heapq.nlargest(target, keyed))
    return chosen, first < 0


@dataclass
class _Ids:
    clinic: uuid.UUID
    clinician: uuid.UUID


class _Writer:
    """Rows for one chunk of patients, then one transaction for all of them."""

    def __init__(self) -> None:
        self.patients: list[dict[str, Any]] = []
        self.accounts: list[dict[str, Any]] = []
        self.procedures: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []


@dataclass(frozen=True)
class _Person:
    """One patient, as the rows of their procedure and check-ins need them."""

    id: uuid.UUID
    account_id: uuid.UUID
    zone_name: str
    zone: ZoneInfo
    region: str


def _patient_rows(
    rng: random.Random,
    writer: _Writer,
    ids: _Ids,
    number: int,
    *,
    now: datetime,
    variant: str,
    heavy: bool,
) -> None:
    """One patient: the patient, their app account, one procedure and their check-ins. Their
    stored progress is `reevaluate`'s to write (as registering a patient evaluates them)."""
    zone_name = CLINIC_TIMEZONE if heavy else _pick(rng, TIMEZONES)[0]
    zone = ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    if heavy:
        day_now = rng.randint(200, 440)
    elif variant == "windows":
        day_now = rng.choice(WINDOW_EDGE_DAYS)
    else:
        low, high, _ = _pick(rng, CLOCK_SPREAD)
        day_now = rng.randint(low, high)
    performed_on = today - timedelta(days=day_now)
    days, has_pre = _log_days(rng, performed_on=performed_on, today=today, heavy=heavy)
    region = "lumbar" if heavy else _pick(rng, REGIONS)[0]
    person = _Person(_uuid4(rng), _uuid4(rng), zone_name, zone, region)
    created = datetime.combine(
        min(days[0], performed_on) - timedelta(days=rng.randint(1, 21)),
        time(rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59)),
        zone,
    ).astimezone(UTC)
    writer.patients.append(_patient_row(rng, person, ids, number, created))
    writer.accounts.append(
        {
            "id": person.account_id,
            "email": None,
            "password_hash": None,
            "role": "patient",
            "clinic_id": ids.clinic,
            "patient_id": person.id,
            "created_at": created + timedelta(minutes=rng.randint(5, 600)),
        }
    )
    trajectory = _trajectory(rng)
    # An explicit baseline on the procedure for some; a few patients have neither that nor
    # pre-procedure check-ins (their later milestones are insufficient_data).
    explicit = rng.random() < (0.5 if not has_pre else 0.2)
    writer.procedures.append(
        _procedure_row(rng, person, ids, performed_on, trajectory.pain if explicit else None)
    )
    _check_ins(rng, writer, ids, person, trajectory, days, performed_on, now)


def _patient_row(
    rng: random.Random, person: _Person, ids: _Ids, number: int, created: datetime
) -> dict[str, Any]:
    return {
        "id": person.id,
        "clinic_id": ids.clinic,
        "mrn": f"SEED-{number:06d}",
        "given_name": rng.choice(GIVEN),
        "family_name": rng.choice(FAMILY),
        "birth_date": date(rng.randint(1938, 1992), rng.randint(1, 12), rng.randint(1, 28)),
        "sex": rng.choice(("female", "male")),
        "postal_code": f"{rng.randint(10000, 99999)}",
        "timezone": person.zone_name,
        "stenosis_region": person.region,
        "stenosis_cause": _pick(rng, CAUSES)[0],
        "comorbidities": rng.sample(COMORBIDITIES, rng.choice((0, 0, 0, 1, 1, 2))),
        "smoker": rng.random() < 0.18,
        "research_consent": rng.random() < 0.8,
        "screening": {
            "conservative_care_tried": ["physical_therapy", "pain_medication"],
            "conservative_care_failed": True,
            "evaluation": {
                "medical_history_reviewed": True,
                "physical_exam_done": True,
                "imaging": ["mri"],
                "labs_done": True,
            },
        },
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }


def _procedure_row(
    rng: random.Random,
    person: _Person,
    ids: _Ids,
    performed_on: date,
    baseline_pain: float | None,
) -> dict[str, Any]:
    """A procedure as the service stores one (harvest and injections as their models dump)."""
    from models.procedure import Harvest, Injection

    treatment, source, harvest, _ = _pick(rng, TREATMENTS)
    injections = []
    if treatment != "red_light":
        injection = {
            "route": rng.choice(("epidural", "facet", "intradiscal")),
            "levels": [rng.choice(LEVELS[person.region])],
            "guidance": rng.choice(("fluoroscopy", "ultrasound", "ct")),
            "volume_ml": rng.choice((2.0, 3.0, 5.0)),
        }
        injections.append(Injection.model_validate(injection).model_dump(mode="json"))
    recorded = datetime.combine(performed_on, time(rng.randint(8, 16)), person.zone)
    return {
        "id": _uuid4(rng),
        "patient_id": person.id,
        "performed_on": performed_on,
        "treatment": treatment,
        "cell_source": source,
        "harvest": Harvest.model_validate({"method": harvest}).model_dump(mode="json"),
        "injections": injections,
        "adjuncts": ["physical_therapy"] if rng.random() < 0.3 else [],
        "baseline_pain": None if baseline_pain is None else round(baseline_pain),
        "baseline_leg_pain": None,
        "baseline_mobility": None if baseline_pain is None else round(10 - baseline_pain * 0.8),
        "baseline_odi": None,
        "protocol_id": "default",
        "protocol_version": 1,
        "notes": None,
        "override_reason": None,
        "created_by_id": ids.clinician,
        "version": 1,
        "created_at": recorded.astimezone(UTC),
        "updated_at": recorded.astimezone(UTC),
    }


def _reported(rng: random.Random, pain: int, odi_day: bool) -> tuple[dict[str, Any], float | None]:
    """What a check-in reports beside its pain (the fields the phone sends), and its Oswestry
    score when it carries the weekly questionnaire."""
    from api.clinical import scoring

    fields: dict[str, Any] = {"pain": pain}
    if rng.random() < 0.9:
        fields["mobility"] = round(_clamp(10 - pain * 0.8 + rng.gauss(0, 1.0), 0, 10))
    if rng.random() < 0.6:
        fields["walking_minutes"] = int(_clamp(90 - pain * 8 + rng.gauss(0, 12), 0, 300))
    odi = None
    if odi_day and rng.random() < 0.8:
        answers: list[int | None] = [
            round(_clamp(pain / 2 + rng.gauss(0, 0.8), 0, 5)) for _ in range(10)
        ]
        if rng.random() < 0.2:
            answers[rng.randrange(10)] = None  # one section left unanswered
        fields["odi_answers"] = answers
        odi = scoring.oswestry(answers)
    if rng.random() < 0.3:
        fields["symptoms"] = {
            name: round(_clamp(pain / 2 + rng.gauss(0, 1.5), 0, 10))
            for name in ("numbness", "tingling", "weakness")
        }
    if rng.random() < 0.03:
        fields["note"] = rng.choice(NOTES)
    return fields, odi


def _side_effects(rng: random.Random, day: int, late_soreness: bool) -> list[str]:
    if 0 <= day <= 4 and rng.random() < 0.7:
        return ["injection_site_pain"] + (["swelling"] if rng.random() < 0.25 else [])
    return ["injection_site_pain"] if late_soreness and 8 <= day <= 12 else []


def _delay(rng: random.Random) -> timedelta:
    """From recording to receipt: seconds mostly, hours or days when the phone was offline."""
    if rng.random() < 0.9:
        return timedelta(seconds=rng.uniform(0.2, 60))
    if rng.random() < 0.8:
        return timedelta(seconds=rng.uniform(60, 6 * 3600))
    return timedelta(seconds=rng.uniform(6 * 3600, 3 * 86400))


def _check_ins(
    rng: random.Random,
    writer: _Writer,
    ids: _Ids,
    person: _Person,
    trajectory: _Trajectory,
    days: list[date],
    performed_on: date,
    now: datetime,
) -> None:
    """The patient's check-ins on `days`, and a few corrections of them."""
    from models.base import ordered_id

    odi_weekday = rng.randint(0, 6)
    for day in days:
        offset = (day - performed_on).days
        hour = rng.choice((7, 8, 8, 9, 12, 18, 19, 20, 21))
        at = datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=person.zone)
        pain = trajectory.pain_on(rng, offset)
        fields, odi = _reported(rng, pain, day.weekday() == odi_weekday)
        if trajectory.sciatica:
            fields["leg_pain"] = round(_clamp(pain + rng.gauss(-0.5, 1.0), 0, 10))
        side_effects = _side_effects(rng, offset, trajectory.late_soreness)
        red_flags = ["fever"] if rng.random() < 0.0003 else []
        clinic_entered = rng.random() < 0.02
        received = min(at.astimezone(UTC) + _delay(rng), now)
        row = _log_row(
            _uuid4(rng),
            at,
            fields,
            side_effects,
            red_flags,
            odi,
            patient_id=person.id,
            zone_name=person.zone_name,
            received=received,
            source="clinic" if clinic_entered else "app",
            by=ids.clinician if clinic_entered else person.account_id,
            ordered_id=ordered_id,
        )
        writer.logs.append(row)
        if rng.random() < 0.004:  # a correction: a new row naming the log it corrects
            corrected = {**fields, "pain": int(_clamp(pain + rng.choice((-2, -1, 1, 2)), 0, 10))}
            writer.logs.append(
                _log_row(
                    _uuid4(rng),
                    at,
                    corrected,
                    side_effects,
                    red_flags,
                    odi,
                    patient_id=person.id,
                    zone_name=person.zone_name,
                    received=min(received + timedelta(hours=rng.uniform(1, 48)), now),
                    source="app",
                    by=person.account_id,
                    ordered_id=ordered_id,
                    corrects_id=row["id"],
                )
            )


def _log_row(
    client_id: uuid.UUID,
    at: datetime,
    fields: dict[str, Any],
    side_effects: list[str],
    red_flags: list[str],
    odi: float | None,
    *,
    patient_id: uuid.UUID,
    zone_name: str,
    received: datetime,
    source: str,
    by: uuid.UUID,
    ordered_id: Any,
    corrects_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A stored check-in's columns, as `_new_log` computes them from what the phone sent."""
    sent = {
        **fields,
        "client_id": str(client_id),
        "recorded_at": _sent_instant(at),
        "side_effects": side_effects,
        "red_flags": red_flags,
    }
    offset = at.utcoffset()
    return {
        "id": ordered_id(),
        "patient_id": patient_id,
        "client_id": client_id,
        "content_hash": hashlib.sha256(_CANONICAL.encode(sent).encode()).hexdigest(),
        "recorded_at": at.astimezone(UTC),
        "utc_offset_minutes": int(offset.total_seconds() // 60) if offset is not None else 0,
        "timezone": zone_name,
        "local_date": at.date(),
        "received_at": received,
        "pain": fields["pain"],
        "leg_pain": fields.get("leg_pain"),
        "mobility": fields.get("mobility"),
        "walking_minutes": fields.get("walking_minutes"),
        "odi_answers": fields.get("odi_answers"),
        "odi": odi,
        "symptoms": fields.get("symptoms"),
        "side_effects": side_effects,
        "red_flags": red_flags,
        "note": fields.get("note"),
        "source": source,
        "created_by_id": by,
        "corrects_id": corrects_id,
    }


def _utc_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


def _json_column(value: Any) -> str:
    from api.db import json_text

    return json_text(value)  # None too: a JSON column stores null as the text 'null'


def _stored_log(row: dict[str, Any]) -> tuple[Any, ...]:
    """A check-in's row as SQLite stores it, in the INSERT's column order (`_LOG_ORDER`): what
    the columns' bind processors make, without their per-value overhead. `_make_chunk` checks
    it against the processors on the first rows of every chunk."""
    by, corrects = row["created_by_id"], row["corrects_id"]
    return (
        row["id"].hex,
        row["patient_id"].hex,
        row["client_id"].hex,
        row["content_hash"],
        _utc_text(row["recorded_at"]),
        row["utc_offset_minutes"],
        row["timezone"],
        row["local_date"].isoformat(),
        _utc_text(row["received_at"]),
        row["pain"],
        row["leg_pain"],
        row["mobility"],
        row["walking_minutes"],
        _json_column(row["odi_answers"]),
        row["odi"],
        _json_column(row["symptoms"]),
        _json_column(row["side_effects"]),
        _json_column(row["red_flags"]),
        row["note"],
        row["source"],
        None if by is None else by.hex,
        None if corrects is None else corrects.hex,
    )


_LOG_ORDER = [
    "id",
    "patient_id",
    "client_id",
    "content_hash",
    "recorded_at",
    "utc_offset_minutes",
    "timezone",
    "local_date",
    "received_at",
    "pain",
    "leg_pain",
    "mobility",
    "walking_minutes",
    "odi_answers",
    "odi",
    "symptoms",
    "side_effects",
    "red_flags",
    "note",
    "source",
    "created_by_id",
    "corrects_id",
]
CHECKED_LOGS = 40  # per chunk: the fast conversion checked against the columns' processors


@dataclass(frozen=True)
class _Plan:
    """An INSERT of one table compiled for SQLite from the columns the seed gives (a column it
    leaves out gets its default, as an INSERT through the model would), with the columns' own
    bind processors: the rows go to `executemany` converted as the service's writes convert
    them."""

    sql: str
    names: list[str]
    processors: list[Any]
    defaults: dict[str, Any]  # column -> its default (a callable is called per row)

    def encode(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        columns = list(zip(self.names, self.processors, strict=True))
        return [
            tuple(
                _value(row, name, self.defaults)
                if process is None
                else process(_value(row, name, self.defaults))
                for name, process in columns
            )
            for row in rows
        ]


def _value(row: dict[str, Any], name: str, defaults: dict[str, Any]) -> Any:
    if name in row:
        return row[name]
    default = defaults[name]
    return default.arg(None) if default.is_callable else default.arg


_plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}


def _plan(table_name: str, keys: Sequence[str]) -> _Plan:
    key = (table_name, tuple(keys))
    if key not in _plans:
        from sqlalchemy import insert
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        from api.db import json_text
        from models.identity import UserAccount
        from models.patient import Patient
        from models.procedure import Procedure
        from models.symptom_log import SymptomLog

        models = {m.__tablename__: m for m in (Patient, UserAccount, Procedure, SymptomLog)}
        table = models[table_name].__table__  # type: ignore[union-attr]
        dialect = SQLiteDialect_pysqlite(json_serializer=json_text)
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ())
        processors = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        ]
        defaults = {name: table.c[name].default for name in names if name not in keys}
        _plans[key] = _Plan(compiled.string, names, processors, defaults)
    return _plans[key]


@dataclass(frozen=True)
class _Chunk:
    """What one worker makes: a run of patients, with its own random generator."""

    seed: str
    numbers: range
    heavy: frozenset[int]
    ids: _Ids
    now: datetime
    variant: str


_Rows = list[tuple[str, list[tuple[Any, ...]]]]  # (INSERT, its rows) per table, in order


def _make_chunk(chunk: _Chunk) -> tuple[_Rows, list[tuple[str, bool]]]:
    """Each table's INSERT and rows, storage-ready, in the order to run them; and (patient id,
    heavy) for every patient of the chunk."""
    rng = random.Random(chunk.seed)
    writer = _Writer()
    patients = []
    for number in chunk.numbers:
        heavy = number in chunk.heavy
        _patient_rows(
            rng, writer, chunk.ids, number, now=chunk.now, variant=chunk.variant, heavy=heavy
        )
        patients.append((str(writer.patients[-1]["id"]), heavy))
    rows = {
        "patient": writer.patients,
        "user_account": writer.accounts,
        "procedure": writer.procedures,
    }
    encoded: _Rows = []
    for name, dicts in rows.items():
        table_plan = _plan(name, list(dicts[0]))
        encoded.append((table_plan.sql, table_plan.encode(dicts)))
    plan = _plan("symptom_log", _LOG_ORDER)
    if plan.names != _LOG_ORDER:
        raise RuntimeError(f"symptom_log columns changed: {plan.names}; update bench/dataset.py")
    logs = [_stored_log(row) for row in writer.logs]
    checked = plan.encode(writer.logs[:CHECKED_LOGS])
    if checked != logs[:CHECKED_LOGS]:
        raise RuntimeError(
            f"a check-in is stored differently now: {checked[0]} != {logs[0]};"
            " update _stored_log in bench/dataset.py"
        )
    encoded.append((plan.sql, logs))
    return encoded, patients


def _worker_signals() -> None:
    """A worker leaves Ctrl-C and SIGTERM to the runner, which stops the pool (it inherited the
    runner's SIGTERM handler, which raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write_rows(
    path: Path, patients: int, variant: str, seed_value: int
) -> tuple[int, list[str], list[str], str, str]:
    """The clinic, its clinician and `patients` patients with everything they logged."""
    import multiprocessing

    from sqlalchemy import create_engine, event, insert

    from api import security
    from api.db import json_text
    from models.identity import Clinic, UserAccount

    rng = random.Random(f"{seed_value}-{variant}-{patients}")
    now = datetime.now(UTC)
    ids = _Ids(clinic=_uuid4(rng), clinician=_uuid4(rng))
    password = f"scale-{rng.getrandbits(64):016x}-clinician"
    email = "scale-clinician@example.com"
    # The heavy patients are spread through the list rather than first in it.
    heavy = frozenset(rng.sample(range(patients), HEAVY_PATIENTS if variant == "main" else 0))
    engine = create_engine(f"sqlite:///{path}", json_serializer=json_text)

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        # This connection only: the service's own connections keep synchronous=FULL.
        for pragma in ("synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    with engine.begin() as connection:
        connection.execute(
            insert(Clinic.__table__),  # type: ignore[attr-defined]
            {"id": ids.clinic, "name": "Scale Spine Clinic", "timezone": CLINIC_TIMEZONE},
        )
        connection.execute(
            insert(UserAccount.__table__),  # type: ignore[attr-defined]
            {
                "id": ids.clinician,
                "email": email,
                "password_hash": security.hash_password(password),
                "role": "clinician",
                "clinic_id": ids.clinic,
                "created_at": now - timedelta(days=900),
            },
        )
    chunks = [
        _Chunk(f"{seed_value}-{variant}-{patients}-{n}", numbers, heavy, ids, now, variant)
        for n, numbers in enumerate(
            range(start, min(patients, start + CHUNK_PATIENTS))
            for start in range(0, patients, CHUNK_PATIENTS)
        )
    ]
    logs, heavy_ids, ordinary = 0, list[str](), list[str]()
    # Rows are made by worker processes (one a core) and written here, chunk after chunk in
    # order: the same database whatever the number of workers.
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_signals) as pool:
        for rows, made in pool.imap(_make_chunk, chunks):
            with engine.begin() as connection:
                for sql, table_rows in rows:
                    connection.exec_driver_sql(sql, table_rows)
            logs += len(rows[-1][1])
            for patient_id, is_heavy in made:
                (heavy_ids if is_heavy else ordinary).append(patient_id)
    engine.dispose()
    return logs, heavy_ids, ordinary, email, password


def seed(
    workdir: Path,
    patients: int,
    variant: str = "main",
    *,
    seed_value: int = SEED,
    evaluate: bool = True,
) -> Dataset:
    """Migrate a fresh database in workdir, write the clinic into it, run `reevaluate`."""
    if patients < HEAVY_PATIENTS + 50:
        raise ValueError(f"--patients must be at least {HEAVY_PATIENTS + 50}")
    name = f"seeded-{variant}-{patients}.db"
    path = workdir / name
    env = service_env(workdir, name)
    started = clock.monotonic()
    cli(env, workdir, "migrate")
    logs, heavy, ordinary, email, password = _write_rows(path, patients, variant, seed_value)
    _checkpoint(path)
    seeded_s = clock.monotonic() - started
    reevaluate_s, output = 0.0, "(not run)"
    if evaluate:
        started = clock.monotonic()
        output = cli(env, workdir, "reevaluate")
        reevaluate_s = clock.monotonic() - started
        if variant == "windows":
            # Evaluated as of today, every procedure a day short of a window edge; moved back
            # a day: yesterday's evaluation, due today.
            _one_day_back(path)
        _checkpoint(path)
    return Dataset(
        path=path,
        patients=patients,
        variant=variant,
        logs=logs,
        clinician_email=email,
        clinician_password=password,
        heavy_patients=heavy,
        app_patients=random.Random(seed_value).sample(ordinary, min(20, len(ordinary))),
        statuses=status_counts(path),
        seed_s=seeded_s,
        reevaluate_s=reevaluate_s,
        reevaluate_output=output.strip(),
        size_mb=path.stat().st_size / 1e6,
    )


def _checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _one_day_back(path: Path) -> None:
    """Procedure dates and the stored evaluations' `as_of` and next change one day earlier."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE procedure SET performed_on = date(performed_on, '-1 day')")
        connection.execute(
            "UPDATE procedure_evaluation SET as_of = date(as_of, '-1 day'),"
            " next_change_on = date(next_change_on, '-1 day')"
        )
        connection.execute("UPDATE patient_progress SET as_of = date(as_of, '-1 day')")
        connection.execute("COMMIT")
    finally:
        connection.close()
    _reschedule(path, lambda day, _zone: None if day is None else day - timedelta(days=1))


def _reschedule(path: Path, next_change: Callable[[date | None, str], date | None]) -> int:
    """Set each patient's stored next change to `next_change(stored one, patient's zone)`, with
    the instant it is due at (`due_at`, if the schema has it) as the service computes it: the
    start of that day in the patient's time zone. Through the model's table, so each value is
    stored as the service stores it. Returns the patients changed."""
    from sqlalchemy import bindparam, create_engine, select, update

    from models.evaluation import PatientProgress
    from models.patient import Patient

    progress = PatientProgress.__table__  # type: ignore[attr-defined]
    patient = Patient.__table__  # type: ignore[attr-defined]
    has_due_at = "due_at" in progress.c
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            rows = connection.execute(
                select(progress.c.patient_id, progress.c.next_change_on, patient.c.timezone).join(
                    patient, patient.c.id == progress.c.patient_id
                )
            ).all()
            values = []
            for patient_id, day, zone in rows:
                changed = next_change(day, zone)
                value = {"key": patient_id, "next_change_on": changed}
                if has_due_at:
                    value["due_at"] = None if changed is None else _start_of_day(changed, zone)
                values.append(value)
            statement = update(progress).where(progress.c.patient_id == bindparam("key"))
            columns: dict[str, Any] = {"next_change_on": bindparam("next_change_on")}
            if has_due_at:
                columns["due_at"] = bindparam("due_at")
            if values:
                connection.execute(statement.values(**columns), values)
    finally:
        engine.dispose()
    return len(values)


def _start_of_day(day: date, zone: str) -> datetime:
    """When `day` begins in a zone (the service's `start_of_day`)."""
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def status_counts(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT progress_status, count(*) FROM patient_progress GROUP BY progress_status"
        ).fetchall()
    finally:
        connection.close()
    return dict(rows)


def make_all_due(path: Path) -> int:
    """Every stored evaluation due today, each patient's today in their own time zone (and
    `due_at` the start of it): the sweep's work on a day when every window changes. Returns the
    patients due."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        zones = [row[0] for row in connection.execute("SELECT DISTINCT timezone FROM patient")]
        connection.execute("BEGIN IMMEDIATE")
        for zone in zones:
            today = datetime.now(ZoneInfo(zone)).date().isoformat()
            connection.execute(
                "UPDATE procedure_evaluation SET next_change_on = ?"
                " WHERE patient_id IN (SELECT id FROM patient WHERE timezone = ?)",
                (today, zone),
            )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return _reschedule(path, lambda _day, zone: datetime.now(ZoneInfo(zone)).date())


def due_count(path: Path) -> int:
    """Patients whose stored evaluation is due on or before today in their own time zone."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT p.timezone, pp.next_change_on FROM patient_progress pp"
            " JOIN patient p ON p.id = pp.patient_id WHERE pp.next_change_on IS NOT NULL"
        ).fetchall()
    finally:
        connection.close()
    today = {zone: datetime.now(ZoneInfo(zone)).date().isoformat() for zone, _ in rows}
    return sum(1 for zone, day in rows if day <= today[zone])


def copy(dataset: Dataset, destination: Path) -> Path:
    """A copy of the seeded database for one scenario (the seeded file stays untouched; it was
    checkpointed, so the file is the whole database)."""
    remove(destination)
    shutil.copyfile(dataset.path, destination)
    return destination


def remove(path: Path) -> None:
    """A database file and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Datasets:
    """Seeded databases of one run, by (patients, variant): each is seeded once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / "seeded"
        self.workdir.mkdir(exist_ok=True)
        self._made: dict[tuple[int, str], Dataset] = {}
        self.seeded: list[Dataset] = []  # every one made in this run, for the report

    def get(self, patients: int, variant: str = "main") -> Dataset:
        key = (patients, variant)
        if key not in self._made:
            print(f"  seeding {patients} patients ({variant})...", flush=True)
            dataset = seed(self.workdir, patients, variant)
            print(f"  seeded: {dataset.summary()}", flush=True)
            self._made[key] = dataset
            self.seeded.append(dataset)
        return self._made[key]

    def drop(self, patients: int) -> None:
        """Delete the databases of one size (a run over several sizes keeps one at a time)."""
        for key in [k for k in self._made if k[0] == patients]:
            remove(self._made.pop(key).path)


def main() -> None:  # a quick manual check: python bench/dataset.py N
    import sys
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="recovery-seed-"))
    try:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
        variant = sys.argv[2] if len(sys.argv) > 2 else "main"
        started = clock.monotonic()
        dataset = seed(workdir, count, variant, evaluate=not os.environ.get("BENCH_NO_EVAL"))
        print(dataset.summary(), f"total {clock.monotonic() - started:.1f} s")
        print(dataset.reevaluate_output[-1000:])
        if os.environ.get("BENCH_KEEP"):
            kept = Path(os.environ["BENCH_KEEP"])
            shutil.copyfile(dataset.path, kept)
            print(f"kept {kept}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
