"""Stored progress is never stale (issue 9): Hypothesis drives random sequences of the writes
that change the engine's inputs, through the HTTP API, over one or two patients of a clinic: a
check-in (the app's or the clinic's), a batch with replays, a correction, a procedure recorded,
moved or given another baseline, and a patient's birth date, health or time zone changed. After
every write the rows of procedure_evaluation, milestone_evaluation and patient_progress must
equal the engine's evaluation made from scratch (`progress_store.evaluate_patient`), on SQLite
and on PostgreSQL. A refused write (a 4xx) changes nothing, and the rows must still hold."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Table, select
from sqlmodel import Session

from api.clinical.baseline import METRICS
from api.clinical.clock import today_in
from api.clinical.evaluation import Evaluation
from api.config import Settings
from api.services import progress_store
from api.services.progress_store import MILESTONE_EVALUATION as MILESTONES
from api.services.progress_store import PATIENT_PROGRESS as PROGRESS
from api.services.progress_store import PROCEDURE_EVALUATION as PROCEDURES
from models.patient import Patient
from models.symptom_log import Alert
from tests.factories import World, auth, patient_token

ALERT: Table = Alert.__table__  # type: ignore[attr-defined]
STEPS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Zones far apart: a log written now in Kiritimati (UTC+14) is dated a day or two after the
# patient's today in Pago Pago (UTC-11), and a time zone change moves the patient's today.
ZONES = ["Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]
# Valid procedures of three shapes (CLINICAL.md §Procedure consistency rules).
TREATMENTS: list[dict[str, Any]] = [
    {
        "treatment": "stem_cell",
        "cell_source": "umbilical_cord",
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "fluoroscopy"}],
    },
    {
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "facet", "levels": ["L5-S1"], "guidance": "ultrasound"}],
    },
    {"treatment": "red_light"},
]
SIDE_EFFECTS = ["injection_site_pain", "swelling", "redness", "fatigue"]
RED_FLAGS = ["fever", "new_weakness"]
COMORBIDITIES = ["diabetes", "obesity", "osteoporosis"]
# Days on a procedure's clock where the rules turn: the baseline window, the milestone windows,
# the pain flare and soreness days.
EDGES = [-61, -60, -1, 0, 7, 8, 14, 15, 29, 30, 90, 91, 179, 180, 365, 366]


# --- strategies ------------------------------------------------------------------------------

PATIENT_INDEX = st.integers(0, 1)
INDEX = st.integers(0, 20)  # taken modulo the number of things to choose from
DAY = st.integers(-70, 400) | st.sampled_from(EDGES)
ZONE = st.sampled_from(ZONES)
SCORE = st.integers(0, 10)


def _unanswered(answers: list[int], gaps: list[int]) -> list[int | None]:
    return [None if section in gaps else answer for section, answer in enumerate(answers)]


# At most one section may go unanswered; two make the log a 422 (a refused write).
ODI_ANSWERS = st.builds(
    _unanswered,
    st.lists(st.integers(0, 5), min_size=10, max_size=10),
    st.lists(st.integers(0, 9), max_size=2, unique=True),
)
FLAGS = {
    "side_effects": st.lists(st.sampled_from(SIDE_EFFECTS), max_size=2, unique=True),
    "red_flags": st.lists(st.sampled_from(RED_FLAGS), max_size=1),
}


@dataclass(frozen=True)
class When:
    """A check-in's time: `day` on the clock of one of the patient's procedures (today's date
    when there is none), at `hour`, in `zone` (the patient's own when None). A time still to
    come is moved back to now."""

    anchor: int
    day: int
    hour: int
    zone: str | None


WHEN = st.builds(
    When,
    anchor=INDEX,
    day=DAY,
    hour=st.integers(0, 23),
    zone=st.none() | ZONE,
)
LOG = st.fixed_dictionaries(
    {"when": WHEN, "pain": SCORE},
    optional={"mobility": SCORE, "odi_answers": ODI_ANSWERS, **FLAGS},
)
CORRECTION = st.fixed_dictionaries(
    {},
    optional={"when": WHEN, "pain": SCORE, "mobility": st.none() | SCORE, **FLAGS},
)


@dataclass(frozen=True)
class Replay:
    """An earlier log sent again: the same content (a duplicate) or new content (a conflict)."""

    which: int
    same: bool


BATCH_ITEM = LOG | st.builds(Replay, which=INDEX, same=st.booleans())
BASELINE = st.fixed_dictionaries(
    {"pain": SCORE},
    optional={"mobility": SCORE, "odi": st.integers(0, 100), "leg_pain": SCORE},
) | st.fixed_dictionaries({"pain": st.sampled_from([0.0, 2.5, 6.5])})
PROCEDURE_CHANGE = st.fixed_dictionaries(
    {}, optional={"days_ago": st.integers(0, 500), "baseline": st.none() | BASELINE}
).filter(bool)


# --- what the API is driven with -------------------------------------------------------------


@dataclass
class Subject:
    """One patient of the sequence, as the sequence knows it."""

    name: str
    id: uuid.UUID
    app: dict[str, str]  # the patient's app token
    timezone: str
    procedures: dict[str, date] = field(default_factory=dict)  # id -> performed_on
    log_ids: list[str] = field(default_factory=list)  # every stored log, corrections too
    sent: list[dict[str, Any]] = field(default_factory=list)  # log bodies that were stored

    def today(self) -> date:
        return today_in(self.timezone)

    def recorded_at(self, when: When) -> tuple[str, str | None]:
        anchors = list(self.procedures.values())
        on = (anchors[when.anchor % len(anchors)] if anchors else self.today()) + timedelta(
            days=when.day
        )
        zone = ZoneInfo(when.zone or self.timezone)
        instant = datetime.combine(on, time(when.hour, 30), zone)
        now = datetime.now(UTC)
        if instant > now:
            instant = (now - timedelta(seconds=5)).astimezone(zone)
        return instant.isoformat(), when.zone

    def log_body(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields = dict(spec)
        recorded_at, zone = self.recorded_at(fields.pop("when"))
        body = {"client_id": str(uuid.uuid4()), "recorded_at": recorded_at}
        return body | ({"timezone": zone} if zone else {}) | fields


@dataclass
class Harness:
    client: TestClient
    world: World
    db: Session
    settings: Settings
    engine: Engine

    @property
    def clinician(self) -> dict[str, str]:
        return self.world.headers("clinician_a")

    def enrol(self, name: str, facts: dict[str, Any]) -> Subject:
        body = {
            "mrn": f"PROP-{uuid.uuid4().hex[:12]}",
            "given_name": "Test",
            "family_name": name,
            "birth_date": facts["birth_date"].isoformat(),
            "sex": "female",
            "timezone": facts["timezone"],
            "stenosis": {"region": "lumbar", "cause": "degenerative"},
            "comorbidities": facts["comorbidities"],
            "smoker": facts["smoker"],
        }
        response = self.client.post("/v1/patients", json=body, headers=self.clinician)
        assert response.status_code == 201, response.text
        patient = self.db.get_one(Patient, uuid.UUID(response.json()["id"]))
        token = patient_token(self.db, self.settings, patient)
        return Subject(name, patient.id, auth(token), facts["timezone"])

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        """A PATCH with the If-Match of a fresh GET."""
        read = self.client.get(path, headers=self.clinician)
        assert read.status_code == 200, read.text
        headers = self.clinician | {"If-Match": read.headers["ETag"]}
        return self.client.patch(path, json=body, headers=headers)


def _accepted(response: Any, *statuses: int) -> Any:
    """A write either succeeds or is refused with a 4xx (then it changed nothing); never a 5xx."""
    assert response.status_code < 500, response.text
    return response.json() if response.status_code in statuses else None


# --- the stored rows against the engine ------------------------------------------------------


def _label(procedure_id: Any, performed_on: date | None) -> str:
    return f"procedure {performed_on} ({str(procedure_id)[:8]})"


def _baseline_view(values: dict[str, Any], n_logs: Any, source: Any) -> dict[str, Any] | None:
    return None if source is None else {**values, "n_logs": n_logs, "source": source}


def _next_change_on(result: Evaluation) -> date | None:
    """A write raises no missed_check_in (the clock's alert): it leaves the procedure due on
    `as_of` instead, for the sweep (progress_store.refresh)."""
    return result.as_of if result.missed is not None else result.next_change_on


def _procedure_view(result: Evaluation) -> dict[str, Any]:
    base = result.baseline
    return {
        "protocol": (result.procedure.protocol_id, result.procedure.protocol_version),
        "as_of": result.as_of,
        "next_change_on": _next_change_on(result),
        "baseline": _baseline_view(
            {m: base.values.get(m) for m in METRICS} if base else {},
            base.n_logs if base else None,
            base.source if base else None,
        ),
        "current_milestone": result.current_milestone,
        "progress_status": result.progress_status,
        "next_check_in_day": result.next_check_in_day,
        "age_at_procedure": result.age_at_procedure,
        "factors": [
            {"factor": f.factor, "impact": f.impact, "message": f.message} for f in result.factors
        ],
        "milestones": [
            {
                "key": m.key,
                "state": m.state,
                "status": m.status,
                "n_logs": m.observed.n_logs,
                "pain": m.observed.pain,
                "pain_change": m.observed.pain_change,
                "pain_change_pct": m.observed.pain_change_pct,
                "mobility": m.observed.mobility,
                "mobility_change": m.observed.mobility_change,
                "odi": m.observed.odi,
                "odi_change": m.observed.odi_change,
                "substantial": m.substantial,
                "findings": [{"code": f.code, "message": f.message} for f in m.findings],
            }
            for m in result.milestones
        ],
    }


MILESTONE_FIELDS = [
    "key",
    "state",
    "status",
    "n_logs",
    "pain",
    "pain_change",
    "pain_change_pct",
    "mobility",
    "mobility_change",
    "odi",
    "odi_change",
    "substantial",
    "findings",
]


def _stored_procedures(connection: Connection, patient_id: uuid.UUID) -> dict[Any, dict[str, Any]]:
    """The stored rows of a patient's procedures, in the shape of `_procedure_view`."""
    milestones: dict[Any, list[dict[str, Any]]] = {}
    rows = connection.execute(
        select(MILESTONES)
        .where(MILESTONES.c.patient_id == patient_id)
        .order_by(MILESTONES.c.procedure_id, MILESTONES.c.position)
    )
    for row in rows.mappings():
        milestones.setdefault(row["procedure_id"], []).append(
            {name: row[name] for name in MILESTONE_FIELDS}
        )
    stored = {}
    for row in connection.execute(select(PROCEDURES).where(PROCEDURES.c.patient_id == patient_id)):
        stored[row.procedure_id] = {
            "protocol": (row.protocol_id, row.protocol_version),
            "as_of": row.as_of,
            "next_change_on": row.next_change_on,
            "baseline": _baseline_view(
                {m: getattr(row, f"baseline_{m}") for m in METRICS},
                row.baseline_n_logs,
                row.baseline_source,
            ),
            "current_milestone": row.current_milestone,
            "progress_status": row.progress_status,
            "next_check_in_day": row.next_check_in_day,
            "age_at_procedure": row.age_at_procedure,
            "factors": row.factors,
            "milestones": milestones.pop(row.procedure_id, []),
        }
    for orphan in milestones:  # milestone rows without their procedure's row
        stored.setdefault(orphan, {"milestones": milestones[orphan]})
    return stored


def differences(path: str, stored: Any, expected: Any) -> list[str]:
    """Every place where the stored value differs from the expected one, by path."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        found = []
        for key in [*expected, *(k for k in stored if k not in expected)]:
            found += differences(f"{path}.{key}", stored.get(key), expected.get(key))
        return found
    if isinstance(stored, list) and isinstance(expected, list) and len(stored) == len(expected):
        found = []
        for index, (one, other) in enumerate(zip(stored, expected, strict=True)):
            name = one.get("key", index) if isinstance(one, dict) else index
            found += differences(f"{path}[{name}]", one, other)
        return found
    return [] if stored == expected else [f"{path}: stored {stored!r}, expected {expected!r}"]


def _as_of(stored_as_of: date | None, timezone: str, since: datetime) -> date:
    """Today in the patient's zone; or the day before, when midnight passed there since the
    sequence began and the stored rows were written before it (the sweep's turn, not a write's)."""
    today = today_in(timezone)
    if stored_as_of is not None and today_in(timezone, now=since) <= stored_as_of < today:
        return stored_as_of
    return today


def stale_rows(connection: Connection, subject: Subject, since: datetime) -> list[str]:
    """How the patient's stored rows differ from the engine's evaluation made from scratch."""
    patient = progress_store.patient_row(connection, subject.id)
    assert patient is not None
    progress = connection.execute(
        select(PROGRESS).where(PROGRESS.c.patient_id == subject.id)
    ).first()
    if progress is None:
        return [f"{subject.name}: no patient_progress row"]
    as_of = _as_of(progress.as_of, patient.timezone, since)
    covered = progress_store.AlertRecord.read(connection, subject.id).covered()
    results = progress_store.evaluate_patient(connection, patient, as_of=as_of, covered=covered)
    stored = _stored_procedures(connection, subject.id)
    found = []
    for result in results:
        label = f"{subject.name} {_label(result.procedure.id, result.procedure.performed_on)}"
        if result.procedure.id not in stored:
            found.append(f"{label}: no stored row")
            continue
        found += differences(label, stored.pop(result.procedure.id), _procedure_view(result))
    found += [f"{subject.name} {_label(p, None)}: stored, but no such procedure" for p in stored]
    latest = max(
        results, key=lambda r: (r.procedure.performed_on, str(r.procedure.id)), default=None
    )
    changes = [d for d in map(_next_change_on, results) if d is not None]
    summary = {
        "procedure_id": latest.procedure.id if latest else None,
        "current_milestone": latest.current_milestone if latest else None,
        "progress_status": latest.progress_status if latest else "pending",
        "as_of": as_of,
        "next_change_on": min(changes, default=None),
    }
    found += differences(
        f"{subject.name} patient_progress", {k: getattr(progress, k) for k in summary}, summary
    )
    return found


# --- the operations: each one write through the API --------------------------------------------


@dataclass
class Run:
    """One sequence: its patients, as far as the sequence knows them, and when it began."""

    harness: Harness
    subjects: list[Subject] = field(default_factory=list)
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def subject(self, index: int, having: str | None = None) -> Subject | None:
        """A patient of the sequence (among those that have logs or procedures, if asked)."""
        chosen = [s for s in self.subjects if having is None or getattr(s, having)]
        return chosen[index % len(chosen)] if chosen else None

    def check(self, after: str) -> None:
        """Every patient's stored rows equal a fresh evaluation, read in one transaction."""
        with self.harness.engine.connect() as connection:
            found = [line for s in self.subjects for line in stale_rows(connection, s, self.since)]
        assert not found, f"after {after}, stored progress is not current:\n" + "\n".join(found)


@dataclass(frozen=True)
class AddLog:
    """One check-in, from the app or entered by the clinic."""

    patient: int
    log: dict[str, Any]
    by_clinic: bool

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        body = subject.log_body(self.log)
        if self.by_clinic:
            path, headers = f"/v1/patients/{subject.id}/symptom-logs", run.harness.clinician
        else:
            path, headers = "/v1/me/symptom-logs", subject.app
        stored = _accepted(run.harness.client.post(path, json=body, headers=headers), 201)
        if stored:
            subject.log_ids.append(stored["id"])
            subject.sent.append(body)


@dataclass(frozen=True)
class AddBatch:
    """An offline batch from the app: new logs and replays of earlier ones."""

    patient: int
    items: list[dict[str, Any] | Replay]

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        bodies = []
        for item in self.items:
            if not isinstance(item, Replay):
                bodies.append(subject.log_body(item))
            elif subject.sent:
                earlier = subject.sent[item.which % len(subject.sent)]
                changed = {"pain": (earlier["pain"] + 1) % 11}
                bodies.append(earlier if item.same else earlier | changed)
        if not bodies:  # only replays, and nothing stored yet to replay
            return
        response = run.harness.client.post(
            "/v1/me/symptom-logs/batch", json={"logs": bodies}, headers=subject.app
        )
        answer = _accepted(response, 200)
        for body, result in zip(bodies, answer["results"] if answer else [], strict=True):
            if result["status"] == "created":
                subject.log_ids.append(result["id"])
                subject.sent.append(body)


@dataclass(frozen=True)
class CorrectLog:
    """A correction of a stored log (of one already superseded: a 409, nothing changes)."""

    patient: int
    which: int
    correction: dict[str, Any]
    by_clinic: bool

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient, having="log_ids")
        if subject is None:
            return
        log_id = subject.log_ids[self.which % len(subject.log_ids)]
        body = {"client_id": str(uuid.uuid4())} | self.correction
        if "when" in body:
            body["recorded_at"], zone = subject.recorded_at(body.pop("when"))
            body |= {"timezone": zone} if zone else {}
        if self.by_clinic:
            path = f"/v1/patients/{subject.id}/symptom-logs/{log_id}/corrections"
            headers = run.harness.clinician
        else:
            path, headers = f"/v1/me/symptom-logs/{log_id}/corrections", subject.app
        stored = _accepted(run.harness.client.post(path, json=body, headers=headers), 201)
        if stored:
            subject.log_ids.append(stored["id"])


@dataclass(frozen=True)
class RecordProcedure:
    """A procedure `days_ago` days before the patient's today, of one of three shapes."""

    patient: int
    days_ago: int
    shape: int
    baseline: dict[str, Any] | None

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        performed_on = subject.today() - timedelta(days=self.days_ago)
        body = TREATMENTS[self.shape] | {"performed_on": performed_on.isoformat()}
        body |= {"baseline": self.baseline} if self.baseline else {}
        response = run.harness.client.post(
            f"/v1/patients/{subject.id}/procedures", json=body, headers=run.harness.clinician
        )
        created = _accepted(response, 201)
        if created:
            subject.procedures[created["id"]] = performed_on


@dataclass(frozen=True)
class ChangeProcedure:
    """A procedure moved to another date, given another baseline (or none), or both."""

    patient: int
    which: int
    change: dict[str, Any]

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient, having="procedures")
        if subject is None:
            return
        procedure_id = list(subject.procedures)[self.which % len(subject.procedures)]
        body = {key: value for key, value in self.change.items() if key == "baseline"}
        performed_on = None
        if "days_ago" in self.change:
            performed_on = subject.today() - timedelta(days=self.change["days_ago"])
            body["performed_on"] = performed_on.isoformat()
        path = f"/v1/patients/{subject.id}/procedures/{procedure_id}"
        if _accepted(run.harness.patch(path, body), 200) and performed_on:
            subject.procedures[procedure_id] = performed_on


@dataclass(frozen=True)
class ChangeBirthDate:
    """A birth date `years` before one of the procedures (or today), `shift` days off: near the
    age factor's 65 when it matters."""

    patient: int
    which: int
    years: int
    shift: int

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        anchors = list(subject.procedures.values()) or [subject.today()]
        anchor = anchors[self.which % len(anchors)]
        birth = anchor.replace(year=anchor.year - self.years, day=min(anchor.day, 28))
        body = {"birth_date": (birth + timedelta(days=self.shift)).isoformat()}
        _accepted(run.harness.patch(f"/v1/patients/{subject.id}", body), 200)


@dataclass(frozen=True)
class ChangeHealth:
    """Comorbidities, smoking, both (or neither: a PATCH that changes no input)."""

    patient: int
    health: dict[str, Any]

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        _accepted(run.harness.patch(f"/v1/patients/{subject.id}", self.health), 200)


@dataclass(frozen=True)
class ChangeTimeZone:
    """The patient moves: their today, and the day of logs that name no zone, follow."""

    patient: int
    zone: str

    def apply(self, run: Run) -> None:
        subject = run.subject(self.patient)
        assert subject is not None
        body = {"timezone": self.zone}
        if _accepted(run.harness.patch(f"/v1/patients/{subject.id}", body), 200):
            subject.timezone = self.zone


Operation = (
    AddLog
    | AddBatch
    | CorrectLog
    | RecordProcedure
    | ChangeProcedure
    | ChangeBirthDate
    | ChangeHealth
    | ChangeTimeZone
)
OPERATIONS: st.SearchStrategy[Operation] = st.one_of(
    st.builds(AddLog, patient=PATIENT_INDEX, log=LOG, by_clinic=st.booleans()),
    st.builds(AddBatch, patient=PATIENT_INDEX, items=st.lists(BATCH_ITEM, min_size=1, max_size=5)),
    st.builds(
        CorrectLog,
        patient=PATIENT_INDEX,
        which=INDEX,
        correction=CORRECTION,
        by_clinic=st.booleans(),
    ),
    st.builds(
        RecordProcedure,
        patient=PATIENT_INDEX,
        days_ago=st.integers(0, 500),
        shape=st.integers(0, len(TREATMENTS) - 1),
        baseline=st.none() | BASELINE,
    ),
    st.builds(ChangeProcedure, patient=PATIENT_INDEX, which=INDEX, change=PROCEDURE_CHANGE),
    st.builds(
        ChangeBirthDate,
        patient=PATIENT_INDEX,
        which=INDEX,
        years=st.integers(55, 75),
        shift=st.integers(-2, 2),
    ),
    st.builds(
        ChangeHealth,
        patient=PATIENT_INDEX,
        health=st.fixed_dictionaries(
            {},
            optional={
                "comorbidities": st.lists(st.sampled_from(COMORBIDITIES), max_size=2, unique=True),
                "smoker": st.booleans(),
            },
        ),
    ),
    st.builds(ChangeTimeZone, patient=PATIENT_INDEX, zone=ZONE),
)
PATIENT_FACTS = st.fixed_dictionaries(
    {
        "birth_date": st.dates(date(1950, 1, 1), date(1970, 12, 31)),
        "timezone": ZONE,
        "comorbidities": st.lists(st.sampled_from(COMORBIDITIES), max_size=2, unique=True),
        "smoker": st.booleans(),
    }
)


# --- the property ----------------------------------------------------------------------------


@STEPS
@given(
    patients=st.lists(PATIENT_FACTS, min_size=1, max_size=2),
    first_procedure=st.none() | st.integers(0, 500),
    operations=st.lists(OPERATIONS, min_size=6, max_size=10),
)
def test_stored_progress_equals_a_fresh_evaluation_after_every_write(
    client: TestClient,
    world: World,
    db: Session,
    settings: Settings,
    engine: Engine,
    patients: list[dict[str, Any]],
    first_procedure: int | None,
    operations: list[Operation],
) -> None:
    """One or two new patients (most sequences give the first a procedure, so that logs fall on
    its clock), then the operations, the stored rows checked after each."""
    run = Run(Harness(client, world, db, settings, engine))
    for n, facts in enumerate(patients, start=1):
        run.subjects.append(run.harness.enrol(f"P{n}", facts))
    if first_procedure is not None:
        RecordProcedure(patient=0, days_ago=first_procedure, shape=0, baseline=None).apply(run)
    run.check("enrolment")
    for step, operation in enumerate(operations, start=1):
        operation.apply(run)
        run.check(f"step {step}, {operation}")
