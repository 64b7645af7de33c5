"""The scenarios: one request to the service against its bare counterpart in the baseline.

To add one: write a `prepare` function that signs in / creates what the request needs through the
running service and returns the LoadRequest, give the baseline app (bench/baseline_app.py) the
bare counterpart, and append a Scenario to SCENARIOS. A POST with a body that must vary from one
request to the next can put a Lua `request()` function in LoadRequest.lua; `bench_uuid()` (in
LUA_UUID) makes client ids that never repeat within a run nor between the warm-up and the
measured run (a counter and the run number are part of each id).
"""

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx
from loadgen import LoadRequest, WrkResult, lua_string
from servers import Admin

if TYPE_CHECKING:
    from dataset import Dataset

HTTP_TIMEOUT_S = 30
PATIENT_TIMEZONE = "Europe/Berlin"
PROCEDURE_PATIENTS = 50  # create-procedure posts to these round-robin
APP_PATIENTS = 20  # the symptom-log scenarios: one phone (token) each
BATCH_SIZE = 500


@dataclass(frozen=True)
class Target:
    """What the service should reach; reported, never a reason to fail the run."""

    min_ratio: float | None = None  # service req/s divided by baseline req/s
    max_p99_ms: float | None = None  # the service's p99
    max_errors: int | None = None  # unexpected statuses + socket errors (+ refused batch items)
    min_items_per_s: float | None = None  # items (batch logs) the service accepted per second
    items: str = "items"  # what the items are called
    # With readers beside (`Scenario.readers`): the service's p99 then, over its p99 alone.
    max_p99_growth: float | None = None

    def misses(
        self, ratio: float, service: WrkResult, beside: WrkResult | None = None
    ) -> list[str]:
        missed = []
        if self.min_ratio is not None and ratio < self.min_ratio:
            missed.append(f"ratio {ratio:.2f} < {self.min_ratio}")
        if self.max_p99_ms is not None and service.p99_ms >= self.max_p99_ms:
            missed.append(f"p99 {service.p99_ms:.1f} ms >= {self.max_p99_ms} ms")
        errors = service.errors + (service.items_bad or 0)
        if self.max_errors is not None and errors > self.max_errors:
            missed.append(f"{errors} errors > {self.max_errors}")
        items_per_s = service.items_per_s or 0.0
        if self.min_items_per_s is not None and items_per_s < self.min_items_per_s:
            missed.append(f"{items_per_s:.0f} {self.items}/s < {self.min_items_per_s:.0f}")
        if self.max_p99_growth is not None and beside is not None:
            growth = beside.p99_ms / service.p99_ms if service.p99_ms else float("inf")
            if growth > self.max_p99_growth:
                missed.append(f"p99 x{growth:.2f} with readers > x{self.max_p99_growth}")
            if beside.errors:
                missed.append(f"{beside.errors} errors with readers")
        return missed

    def describe(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f"ratio >= {self.min_ratio}")
        if self.max_p99_ms is not None:
            parts.append(f"p99 < {self.max_p99_ms:.0f} ms")
        if self.max_errors is not None:
            parts.append(f"errors <= {self.max_errors}")
        if self.min_items_per_s is not None:
            parts.append(f">= {self.min_items_per_s:.0f} {self.items}/s")
        if self.max_p99_growth is not None:
            parts.append(f"p99 with readers <= x{self.max_p99_growth} alone")
        return ", ".join(parts)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    baseline: LoadRequest
    prepare: Callable[[httpx.Client, Admin], LoadRequest]  # runs against the started service
    target: Target | None = None
    connections: int | None = None  # None: the runner's --connections
    duration: int | None = None  # measured seconds; None: the runner's --duration
    items_per_request: int | None = None  # a batch: report items/s too
    item_name: str = "items"
    # On the seeded clinic (bench/dataset.py, bench/scale.py): prepared from the dataset on a
    # copy of the seeded database instead of by `prepare` on a fresh one.
    seeded: "Callable[[httpx.Client, Dataset], LoadRequest] | None" = None
    # A second load run beside the measured one, on the same service: the scenario is measured
    # alone, then again with this load beside it (its own wrk, `reader_connections`).
    readers: "Callable[[httpx.Client, Dataset], LoadRequest] | None" = None
    reader_connections: int = 4


# --- preparation through the running service --------------------------------------------------


def _ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: expected {status}, got"
            f" {response.status_code}: {response.text[:1000]}"
        )
    return response


def sign_in(client: httpx.Client, admin: Admin) -> dict[str, str]:
    """The Authorization header of a fresh sign-in (the access token lasts 15 minutes)."""
    return _sign_in(client, admin.email, admin.password)


def _sign_in(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = _ok(client.post("/v1/auth/token", data={"username": email, "password": password}))
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


_JSON = {"Content-Type": "application/json"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def clinician(client: httpx.Client, admin: Admin) -> dict[str, str]:
    """A clinic and a clinician in it, signed in: the clinician's Authorization header."""
    headers = sign_in(client, admin)
    clinic = _ok(
        client.post(
            "/v1/clinics", json={"name": "Bench", "timezone": PATIENT_TIMEZONE}, headers=headers
        ),
        201,
    ).json()
    email, password = "bench-clinician@example.com", secrets.token_urlsafe(24)
    body = {"email": email, "password": password, "role": "clinician", "clinic_id": clinic["id"]}
    _ok(client.post("/v1/users", json=body, headers=headers), 201)
    return _sign_in(client, email, password)


def patient_body(index: int) -> dict[str, object]:
    return {
        "mrn": f"BENCH-{index:05d}-{secrets.token_hex(4)}",
        "given_name": f"Bench{index}",
        "family_name": "Patient",
        "birth_date": "1961-05-17",
        "sex": ("female", "male")[index % 2],
        "timezone": PATIENT_TIMEZONE,
        "stenosis": {"region": "lumbar", "cause": "degenerative"},
        "comorbidities": [],
        "smoker": False,
        "research_consent": True,
        "screening": {
            "conservative_care_tried": ["physical_therapy"],
            "conservative_care_failed": True,
            "evaluation": {
                "medical_history_reviewed": True,
                "physical_exam_done": True,
                "imaging": ["mri"],
                "labs_done": True,
            },
        },
    }


def create_patients(client: httpx.Client, headers: dict[str, str], count: int) -> list[str]:
    return [
        _ok(client.post("/v1/patients", json=patient_body(i), headers=headers), 201).json()["id"]
        for i in range(count)
    ]


def enrol_phones(client: httpx.Client, admin: Admin, count: int) -> list[str]:
    """`count` patients, each with a PRP procedure 7 weeks ago and an enrolled phone: the app's
    access tokens."""
    headers = clinician(client, admin)
    performed_on = (_today() - timedelta(weeks=7)).isoformat()
    procedure = {
        "performed_on": performed_on,
        "treatment": "prp",
        "harvest": {"method": "blood_draw"},
        "injections": [{"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}],
    }
    tokens = []
    for patient_id in create_patients(client, headers, count):
        base = f"/v1/patients/{patient_id}"
        _ok(client.post(f"{base}/procedures", json=procedure, headers=headers), 201)
        code = _ok(client.post(f"{base}/enrolment-codes", headers=headers), 201).json()["code"]
        enrolled = client.post("/v1/app/enrol", json={"code": code, "device_name": "bench"})
        tokens.append(_ok(enrolled, 201).json()["access_token"])
    return tokens


# --- Lua: varying requests ------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(ZoneInfo(PATIENT_TIMEZONE)).date()


def lua_list(values: Sequence[str]) -> str:
    return "{" + ", ".join(lua_string(v) for v in values) + "}"


# A UUID v4 per call: random bits, then the run number, the wrk thread and a counter in the last
# 12 hex digits, so no two calls of one run, nor of the warm-up and the measured run, give the same.
LUA_UUID = """
local bench_counter = 0
local function hex4() return string.format("%04x", math.random(0, 65535)) end
function bench_uuid()
  bench_counter = bench_counter + 1
  return string.format("%s%s-%s-4%03x-%x%03x-%02x%02x%04x%04x",
    hex4(), hex4(), hex4(), math.random(0, 4095), 8 + math.random(0, 3), math.random(0, 4095),
    bench_run % 256, bench_thread % 256, math.floor(bench_counter / 65536) % 65536,
    bench_counter % 65536)
end
"""


def recorded_at_formats(days: int = 21) -> list[str]:
    """string.format patterns (hour, minute) for the last `days` days before today, each with
    the patient's UTC offset that day: check-ins recorded in the past, with an offset."""
    zone, today = ZoneInfo(PATIENT_TIMEZONE), _today()
    patterns = []
    for back in range(1, days + 1):
        day = today - timedelta(days=back)
        offset = datetime.combine(day, time(12), zone).strftime("%z")
        patterns.append(f"{day.isoformat()}T%02d:%02d:00{offset[:3]}:{offset[3:]}")
    return patterns


LUA_LOG = """
local bench_days = BENCH_DAYS
function bench_log()
  local day = bench_days[math.random(1, #bench_days)]
  return string.format(
    '{"client_id":"%s","recorded_at":"%s","pain":%d,"mobility":%d,"side_effects":[],'
    .. '"red_flags":[]}',
    bench_uuid(), string.format(day, math.random(7, 21), math.random(0, 59)),
    math.random(0, 10), math.random(0, 10))
end
"""


def lua_log() -> str:
    return LUA_UUID + LUA_LOG.replace("BENCH_DAYS", lua_list(recorded_at_formats()))


def lua_round_robin(paths: Sequence[str], tokens: Sequence[str] | None, body: str) -> str:
    """A request() that takes the next path (and bearer token) in turn, with the body that the
    Lua expression `body` makes."""
    headers = "{}" if tokens is None else lua_list([f"Bearer {t}" for t in tokens])
    return f"""
local bench_paths = {lua_list(paths)}
local bench_tokens = {headers}
local bench_next = 0
function request()
  bench_next = bench_next + 1
  local headers = {{["Content-Type"] = "application/json"}}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  if #bench_tokens > 0 then
    headers["Authorization"] = bench_tokens[(bench_next - 1) % #bench_tokens + 1]
  end
  local path = bench_paths[(bench_next - 1) % #bench_paths + 1]
  return wrk.format("POST", path, headers, {body})
end
"""


LUA_BATCH = """
function bench_batch()
  local logs = {}
  for i = 1, bench_batch_size do logs[i] = bench_log() end
  return '{"logs":[' .. table.concat(logs, ",") .. ']}'
end
function bench_count_items(body)
  local _, ok = string.gsub(body, '"status":"created"', "")
  local _, all = string.gsub(body, '"status":"', "")
  local bad = all - ok
  local sample = nil
  if bad > 0 then
    local at = string.find(body, '"status":"[^c]') or 1
    sample = string.sub(body, math.max(1, at - 100))
  end
  return ok, bad, sample
end
"""


def _fake_patients(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


# --- the scenarios ------------------------------------------------------------------------------


def prepare_users_me(client: httpx.Client, admin: Admin) -> LoadRequest:
    headers = sign_in(client, admin)
    client.get("/v1/users/me", headers=headers).raise_for_status()
    return LoadRequest(path="/v1/users/me", headers=headers)


PROCEDURE_BODY = (
    '{"performed_on":"2026-03-02","treatment":"stem_cell","cell_source":"bone_marrow",'
    '"harvest":{"method":"bone_marrow_aspiration","site":"iliac crest","volume_ml":60},'
    '"injections":[{"route":"epidural","levels":["L4-L5"],"guidance":"fluoroscopy",'
    '"volume_ml":3,"cell_count":1000000}],"baseline":{"pain":7,"mobility":3}}'
)


def procedure_request(paths: Sequence[str], headers: dict[str, str]) -> LoadRequest:
    return LoadRequest(
        path=paths[0],
        method="POST",
        headers=headers | _JSON,
        lua=lua_round_robin(paths, None, lua_string(PROCEDURE_BODY)),
        expect_status=201,
    )


def prepare_create_procedure(client: httpx.Client, admin: Admin) -> LoadRequest:
    headers = clinician(client, admin)
    patients = create_patients(client, headers, PROCEDURE_PATIENTS)
    paths = [f"/v1/patients/{p}/procedures" for p in patients]
    # One request by hand: a 4xx here is a setup problem, not a benchmark figure.
    _ok(client.post(paths[0], content=PROCEDURE_BODY, headers=headers | _JSON), 201)
    return procedure_request(paths, headers)


def log_request(paths: Sequence[str], tokens: Sequence[str] | None = None) -> LoadRequest:
    """Single check-ins, posted to `paths` in turn (with `tokens` in turn, if any)."""
    return LoadRequest(
        path=paths[0],
        method="POST",
        headers=_JSON,
        lua=lua_log() + lua_round_robin(paths, tokens, "bench_log()"),
        expect_status=201,
    )


def batch_request(paths: Sequence[str], tokens: Sequence[str] | None = None) -> LoadRequest:
    """Batches of BATCH_SIZE fresh check-ins; every item must come back `created`."""
    return LoadRequest(
        path=paths[0],
        method="POST",
        headers=_JSON,
        lua=lua_log()
        + f"bench_batch_size = {BATCH_SIZE}\n"
        + LUA_BATCH
        + lua_round_robin(paths, tokens, "bench_batch()"),
        expect_status=200,
    )


def _check_one_log(client: httpx.Client, token: str) -> None:
    body = {
        "client_id": str(uuid.uuid4()),
        "recorded_at": (datetime.now(ZoneInfo(PATIENT_TIMEZONE)) - timedelta(hours=1)).isoformat(),
        "pain": 4,
        "mobility": 6,
        "side_effects": [],
        "red_flags": [],
    }
    _ok(client.post("/v1/me/symptom-logs", json=body, headers=_bearer(token)), 201)


def prepare_symptom_log(client: httpx.Client, admin: Admin) -> LoadRequest:
    tokens = enrol_phones(client, admin, APP_PATIENTS)
    _check_one_log(client, tokens[0])
    return log_request(["/v1/me/symptom-logs"], tokens)


def prepare_symptom_batch(client: httpx.Client, admin: Admin) -> LoadRequest:
    tokens = enrol_phones(client, admin, APP_PATIENTS)
    _check_one_log(client, tokens[0])
    return batch_request(["/v1/me/symptom-logs/batch"], tokens)


# The baseline has no tokens: its counterparts take the patient from the path, in turn.
_BASELINE_PATIENTS = _fake_patients(APP_PATIENTS)


def _baseline_paths(suffix: str) -> list[str]:
    return [f"/patients/{p}/{suffix}" for p in _BASELINE_PATIENTS]


SCENARIOS: list[Scenario] = [
    Scenario(
        name="users-me",
        description="authenticated GET /v1/users/me vs a bare GET doing the audit INSERT + COMMIT",
        baseline=LoadRequest(path="/users/me"),
        prepare=prepare_users_me,
    ),
    Scenario(
        name="create-procedure",
        description=(
            "clinician POST /v1/patients/{id}/procedures (stem cell, 50 patients round-robin)"
            " vs a bare POST validating the body and doing the INSERT + COMMIT"
        ),
        baseline=procedure_request(
            [f"/patients/{p}/procedures" for p in _fake_patients(PROCEDURE_PATIENTS)], {}
        ),
        prepare=prepare_create_procedure,
        target=Target(min_ratio=0.4, max_p99_ms=100),
        connections=32,
    ),
    Scenario(
        name="symptom-log",
        description=(
            "patient app POST /v1/me/symptom-logs (20 phones round-robin, fresh client_id each)"
            " vs a bare POST doing the log INSERT + COMMIT"
        ),
        baseline=log_request(_baseline_paths("symptom-logs")),
        prepare=prepare_symptom_log,
        target=Target(min_ratio=0.4, max_p99_ms=100, max_errors=0),
        connections=32,
    ),
    Scenario(
        name="symptom-batch",
        description=(
            f"patient app POST /v1/me/symptom-logs/batch, {BATCH_SIZE} fresh logs each"
            f" vs a bare POST doing one executemany of {BATCH_SIZE} rows + COMMIT"
        ),
        baseline=batch_request(_baseline_paths("symptom-logs/batch")),
        prepare=prepare_symptom_batch,
        target=Target(min_items_per_s=10_000, max_errors=0, items="logs"),
        connections=4,
        items_per_request=BATCH_SIZE,
        item_name="logs",
    ),
    Scenario(
        name="writers-64",
        description=(
            "64 connections posting single check-ins to POST /v1/me/symptom-logs for 30 s:"
            " no 'database is locked' (or any other error) may reach a client"
        ),
        baseline=log_request(_baseline_paths("symptom-logs")),
        prepare=prepare_symptom_log,
        target=Target(max_errors=0),
        connections=64,
        duration=30,
    ),
]


def by_name(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    known = ", ".join(s.name for s in SCENARIOS)
    raise SystemExit(f"No scenario {name!r}; known: {known}")
