"""The scenarios at scale: reads over a seeded clinic of N patients (bench/dataset.py), a check-in
beside the heaviest reads, and the clock sweep timed as a command.

* `patient-list-filtered`, `patient-list-sparse`, `progress-730`: wrk against the service on a
  copy of the seeded database, the bare authenticated GET of the baseline beside it (an audit
  INSERT + COMMIT, as the service's audited reads do).
* `checkin-readers`: check-ins alone, then the same check-ins with READER_CONNECTIONS clients
  running the heaviest reads beside them (a second wrk): the growth of the check-ins' p99.
* `sweep-due`, `sweep-windows`: `recovery-tracker sweep` timed on a copy of the seeded database
  in which every patient's stored evaluation is due today (`CommandScenario`, no wrk).

Every seeded scenario of one run works on a copy of the same seeded database, so each starts
from the same state; the seeded file itself is never served.
"""

import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dataset as seeded
import httpx
from dataset import Dataset
from loadgen import LoadRequest, lua_string, pinned
from scenarios import (
    Scenario,
    Target,
    _baseline_paths,
    _check_one_log,
    _ok,
    _sign_in,
    log_request,
)
from servers import Admin, service_env

LIST_LIMIT = 50
READER_CONNECTIONS = 4
STATUSES = ("on_track", "behind", "met", "not_met", "insufficient_data", "pending")


def clinician_headers(client: httpx.Client, data: Dataset) -> dict[str, str]:
    return _sign_in(client, data.clinician_email, data.clinician_password)


def list_path(status: str, limit: int = LIST_LIMIT) -> str:
    return f"/v1/patients?progress_status={status}&limit={limit}"


def progress_path(patient_id: str) -> str:
    return f"/v1/patients/{patient_id}/progress"


def rarest_status(data: Dataset) -> str:
    """The status fewest patients have (none, if one is absent): the filter that has to look
    furthest for a page, the worst case of a list that scans."""
    return min(STATUSES, key=lambda s: (data.statuses.get(s, 0), STATUSES.index(s)))


def lua_get_round_robin(paths: Sequence[str]) -> str:
    """A request() that GETs the next path in turn (the headers stay wrk's)."""
    listed = "{" + ", ".join(lua_string(p) for p in paths) + "}"
    return f"""
local bench_paths = {listed}
local bench_next = 0
function request()
  bench_next = bench_next + 1
  return wrk.format("GET", bench_paths[(bench_next - 1) % #bench_paths + 1])
end
"""


def _get_request(paths: Sequence[str], headers: dict[str, str]) -> LoadRequest:
    return LoadRequest(path=paths[0], headers=headers, lua=lua_get_round_robin(paths))


def _check_list(client: httpx.Client, headers: dict[str, str], status: str) -> int:
    """One page by hand (a setup problem fails loudly): the items it held, each of `status`."""
    page = _ok(client.get(list_path(status), headers=headers)).json()
    wrong = [p["progress_status"] for p in page["items"] if p["progress_status"] != status]
    if wrong or any("open_alerts" not in p for p in page["items"]):
        raise RuntimeError(f"list filtered by {status} returned other statuses: {wrong[:5]}")
    return len(page["items"])


def prepare_list_filtered(client: httpx.Client, data: Dataset) -> LoadRequest:
    headers = clinician_headers(client, data)
    found = _check_list(client, headers, "not_met")
    print(f"  not_met: {data.statuses.get('not_met', 0)} patients, a page holds {found}")
    return _get_request([list_path("not_met")], headers)


def prepare_list_sparse(client: httpx.Client, data: Dataset) -> LoadRequest:
    headers = clinician_headers(client, data)
    status = rarest_status(data)
    found = _check_list(client, headers, status)
    print(f"  rarest status {status}: {data.statuses.get(status, 0)} patients, page holds {found}")
    return _get_request([list_path(status)], headers)


def prepare_progress(client: httpx.Client, data: Dataset) -> LoadRequest:
    headers = clinician_headers(client, data)
    paths = [progress_path(p) for p in data.heavy_patients]
    body = _ok(client.get(paths[0], headers=headers)).json()
    print(
        f"  {len(paths)} patients with {seeded.HEAVY_LOGS} check-ins in turn; the first is on day"
        f" {body['day']}, current milestone {body['current_milestone']}"
    )
    return _get_request(paths, headers)


def enrol_seeded_phones(client: httpx.Client, data: Dataset, headers: dict[str, str]) -> list[str]:
    """An enrolled phone for each of the dataset's app patients: their access tokens."""
    tokens = []
    for patient_id in data.app_patients:
        code = _ok(
            client.post(f"/v1/patients/{patient_id}/enrolment-codes", headers=headers), 201
        ).json()["code"]
        enrolled = client.post("/v1/app/enrol", json={"code": code, "device_name": "bench"})
        tokens.append(_ok(enrolled, 201).json()["access_token"])
    return tokens


def prepare_checkins(client: httpx.Client, data: Dataset) -> LoadRequest:
    headers = clinician_headers(client, data)
    tokens = enrol_seeded_phones(client, data, headers)
    _check_one_log(client, tokens[0])
    return log_request(["/v1/me/symptom-logs"], tokens)


def prepare_readers(client: httpx.Client, data: Dataset) -> LoadRequest:
    """The heaviest reads, in turn: a 730-log progress report, then a page of the list
    filtered by one status after another (the rarest among them)."""
    headers = clinician_headers(client, data)
    paths = []
    for n, patient_id in enumerate(data.heavy_patients):
        paths += [progress_path(patient_id), list_path(STATUSES[n % len(STATUSES)])]
    _ok(client.get(paths[1], headers=headers))
    return _get_request(paths, headers)


def _seeded_only(_client: httpx.Client, _admin: Admin) -> LoadRequest:
    raise RuntimeError("a seeded scenario is prepared with its dataset (bench/run.py)")


# The baseline has no token to check and no clinic to read: a bare authenticated GET is its
# closest counterpart to an audited read (the audit INSERT + COMMIT, a small JSON body).
BARE_GET = LoadRequest(path="/users/me")

SCALE_SCENARIOS: list[Scenario] = [
    Scenario(
        name="patient-list-filtered",
        description=(
            f"clinician GET /v1/patients?progress_status=not_met&limit={LIST_LIMIT} over the"
            " seeded clinic vs the bare GET /users/me"
        ),
        baseline=BARE_GET,
        prepare=_seeded_only,
        seeded=prepare_list_filtered,
        target=Target(max_p99_ms=50, max_errors=0),
        connections=READER_CONNECTIONS,
    ),
    Scenario(
        name="patient-list-sparse",
        description=(
            f"clinician GET /v1/patients?progress_status=<the rarest status>&limit={LIST_LIMIT}"
            " (fewer patients than a page, or none) vs the bare GET /users/me"
        ),
        baseline=BARE_GET,
        prepare=_seeded_only,
        seeded=prepare_list_sparse,
        target=Target(max_p99_ms=50, max_errors=0),
        connections=READER_CONNECTIONS,
    ),
    Scenario(
        name="progress-730",
        description=(
            f"clinician GET /v1/patients/{{id}}/progress, {seeded.HEAVY_PATIENTS} patients with"
            f" {seeded.HEAVY_LOGS} check-ins each in turn, vs the bare GET /users/me"
        ),
        baseline=BARE_GET,
        prepare=_seeded_only,
        seeded=prepare_progress,
        target=Target(min_ratio=0.3, max_errors=0),
        connections=32,
    ),
    Scenario(
        name="checkin-readers",
        description=(
            "patient app POST /v1/me/symptom-logs (20 seeded patients' phones) alone, then with"
            f" {READER_CONNECTIONS} clients reading beside (730-log progress reports and"
            " filtered list pages in turn); baseline: the bare POST"
        ),
        baseline=log_request(_baseline_paths("symptom-logs")),
        prepare=_seeded_only,
        seeded=prepare_checkins,
        readers=prepare_readers,
        target=Target(max_p99_growth=2.0, max_errors=0),
        connections=32,
    ),
]


# --- the sweep, timed as a command ------------------------------------------------------------


@dataclass(frozen=True)
class CommandScenario:
    """A command timed on a copy of the seeded database, after `setup` (which returns a
    sentence saying what it did)."""

    name: str
    description: str
    variant: str  # which seeded dataset
    setup: Callable[[Path], str]
    argv: tuple[str, ...]
    max_seconds: float | None = None


@dataclass(frozen=True)
class CommandOutcome:
    scenario: CommandScenario
    patients: int
    seconds: float  # the command, start to exit
    cpu_seconds: float  # its user + system CPU
    inner_seconds: float | None  # what the command itself reports ("sweep done in X s")
    setup: str
    output: str
    returncode: int

    def misses(self) -> list[str] | None:
        limit = self.scenario.max_seconds
        if limit is None:
            return None
        missed = [f"{self.seconds:.1f} s >= {limit:.0f} s"] if self.seconds >= limit else []
        if self.returncode != 0:
            missed.append(f"exit code {self.returncode}")
        return missed


def _all_due(path: Path) -> str:
    due = seeded.make_all_due(path)
    return (
        f"patient_progress.next_change_on = today, due_at = its start (each patient's zone;"
        f" procedure_evaluation too): {due} due"
    )


def _windows_due(path: Path) -> str:
    return (
        f"every procedure on day 30, 91, 180 or 366 today, evaluated yesterday:"
        f" {seeded.due_count(path)} due"
    )


SWEEPS: list[CommandScenario] = [
    CommandScenario(
        name="sweep-due",
        description=(
            "recovery-tracker sweep over the seeded clinic after every patient's stored"
            " evaluation was made due today (its windows where the seed put them)"
        ),
        variant="main",
        setup=_all_due,
        argv=("sweep",),
        max_seconds=30,
    ),
    CommandScenario(
        name="sweep-windows",
        description=(
            "recovery-tracker sweep over a clinic whose every procedure opens or closes a"
            " milestone window today (day 30, 91, 180 or 366), stored evaluations from yesterday"
        ),
        variant="windows",
        setup=_windows_due,
        argv=("sweep",),
        max_seconds=30,
    ),
]

_INNER = re.compile(r"sweep done in ([\d.]+) s")


def run_command(
    scenario: CommandScenario, data: Dataset, workdir: Path, cpu: int | None
) -> CommandOutcome:
    """Copy the dataset, set it up, run the command pinned to the server's core, time it."""
    from servers import VENV_BIN

    name = f"command-{scenario.name}-{data.patients}.db"
    path = seeded.copy(data, workdir / name)
    try:
        said = scenario.setup(path)
        print(f"  {said}", flush=True)
        env = service_env(workdir, name)
        argv = pinned([str(VENV_BIN / "recovery-tracker"), *scenario.argv], cpu)
        started = time.monotonic()
        before = _children_cpu()
        done = subprocess.run(
            argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=seeded.CLI_TIMEOUT_S
        )
        seconds = time.monotonic() - started
        output = (done.stdout + done.stderr).strip()
        inner = _INNER.search(output)
        return CommandOutcome(
            scenario=scenario,
            patients=data.patients,
            seconds=seconds,
            cpu_seconds=_children_cpu() - before,
            inner_seconds=float(inner[1]) if inner else None,
            setup=said,
            output=output,
            returncode=done.returncode,
        )
    finally:
        seeded.remove(path)


def _children_cpu() -> float:
    import cputime

    return cputime.children_seconds()
