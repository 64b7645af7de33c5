"""Crash durability on SQLite: a check-in the server acknowledged (201) survives a SIGKILL of the
server mid-load, the database file stays intact, and alerts stay consistent with their logs.

The real `recovery-tracker serve` runs as a subprocess on a temporary SQLite file; several client
threads post check-ins until the server is killed without warning; then the file is opened with
the sqlite3 module and checked. Two trials, the second on the file the first one crashed.
"""

import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / ".venv" / "bin" / "recovery-tracker"
ADMIN_EMAIL = "admin@example.org"
CLINICIAN_EMAIL = "clinician@example.org"
PASSWORD = "a-long-test-passphrase-0123"
SECRET_KEY = secrets.token_urlsafe(48)
STARTUP_SECONDS = 30  # generous for a loaded machine; still bounded
REQUEST_TIMEOUT = 5.0
CLIENT_THREADS = 6
TRIALS = 2


@dataclass
class Trial:
    acknowledged: list[uuid.UUID] = field(default_factory=list)
    acknowledged_red_flags: int = 0
    other_statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
    return env | {
        "RECOVERY_DATABASE_URL": f"sqlite:///{database}",
        "RECOVERY_ENVIRONMENT": "local",
        "RECOVERY_LOG_LEVEL": "warning",
        "RECOVERY_SECRET_KEY": SECRET_KEY,
    }


def _client(port: int) -> httpx.Client:
    # trust_env=False: never route 127.0.0.1 through a proxy from the environment.
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT, trust_env=False
    )


@contextmanager
def _server(database: Path, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`recovery-tracker serve` on a free port; killed by its own pid on the way out."""
    port = _free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(COMMAND), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=_env(database),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, port, log)
        yield process, port, log
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _wait_until_up(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with _client(port) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get("/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"serve did not answer /healthz within {STARTUP_SECONDS}s")


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _login(client: httpx.Client, email: str) -> dict[str, str]:
    token = _ok(client.post("/v1/auth/token", data={"username": email, "password": PASSWORD}))
    return {"Authorization": f"Bearer {token['access_token']}"}


def _enrolled_patient(port: int) -> dict[str, str]:
    """Clinic, clinician and patient through the API (as an admin would); the app's token."""
    with _client(port) as client:
        admin = _login(client, ADMIN_EMAIL)
        clinic = _ok(
            client.post(
                "/v1/clinics",
                headers=admin,
                json={"name": "Durability Clinic", "timezone": "Europe/Berlin"},
            ),
            201,
        )
        _ok(
            client.post(
                "/v1/users",
                headers=admin,
                json={
                    "email": CLINICIAN_EMAIL,
                    "password": PASSWORD,
                    "role": "clinician",
                    "clinic_id": clinic["id"],
                },
            ),
            201,
        )
        clinician = _login(client, CLINICIAN_EMAIL)
        patient = _ok(
            client.post(
                "/v1/patients",
                headers=clinician,
                json={
                    "mrn": "MRN-DURABLE-1",
                    "given_name": "Ada",
                    "family_name": "Lovelace",
                    "birth_date": "1958-04-12",
                    "sex": "female",
                    "timezone": "Europe/Berlin",
                    "stenosis": {"region": "lumbar", "cause": "degenerative"},
                },
            ),
            201,
        )
        code = _ok(
            client.post(f"/v1/patients/{patient['id']}/enrolment-codes", headers=clinician), 201
        )["code"]
        enrolled = _ok(
            client.post("/v1/app/enrol", json={"code": code, "device_name": "Test phone"}), 201
        )
        assert enrolled["patient_id"] == patient["id"]
        return {"Authorization": f"Bearer {enrolled['access_token']}"}


def _post_logs(port: int, headers: dict[str, str], trial: Trial, stop: threading.Event) -> None:
    rng = random.Random()
    with _client(port) as client:
        while not stop.is_set():
            client_id = uuid.uuid4()
            red_flag = rng.random() < 0.1
            body: dict[str, Any] = {
                "client_id": str(client_id),
                "recorded_at": datetime.now(UTC).isoformat(),
                "pain": rng.randint(0, 10),
                "mobility": rng.randint(0, 10),
                "red_flags": ["fever"] if red_flag else [],
            }
            try:
                response = client.post("/v1/me/symptom-logs", headers=headers, json=body)
            except httpx.TransportError:
                return  # the server is gone (or going): this one was never acknowledged
            with trial.lock:
                if response.status_code == 201:
                    trial.acknowledged.append(client_id)
                    trial.acknowledged_red_flags += red_flag
                else:
                    trial.other_statuses.append(response.status_code)


def _run_trial(
    database: Path, workdir: Path, headers: dict[str, str] | None
) -> tuple[Trial, dict[str, str]]:
    trial = Trial()
    with _server(database, workdir) as (process, port, log):
        headers = headers or _enrolled_patient(port)
        stop = threading.Event()
        threads = [
            threading.Thread(target=_post_logs, args=(port, headers, trial, stop), daemon=True)
            for _ in range(CLIENT_THREADS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(1.5, 2.5))
        process.send_signal(signal.SIGKILL)  # no shutdown, no checkpoint, no flush
        process.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT + 2)
        assert not any(thread.is_alive() for thread in threads), "a client thread hung"
        assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    return trial, headers


def _check_database(database: Path) -> tuple[set[str], int, list[int]]:
    """Integrity, the stored client_ids, the flagged-log count and the open red-flag alerts."""
    with closing(sqlite3.connect(database, timeout=10)) as connection:
        (result,) = connection.execute("PRAGMA integrity_check").fetchone()
        assert result == "ok", result
        stored = {str(row[0]) for row in connection.execute("SELECT client_id FROM symptom_log")}
        (flagged,) = connection.execute(
            "SELECT count(*) FROM symptom_log WHERE red_flags <> '[]'"
        ).fetchone()
        occurrences = [
            int(row[0])
            for row in connection.execute(
                "SELECT occurrences FROM alert WHERE kind = 'red_flag' AND status = 'open'"
            )
        ]
    return stored, int(flagged), occurrences


@pytest.mark.slow
def test_acknowledged_check_ins_survive_a_sigkill(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite"
    workdir = tmp_path / "work"
    workdir.mkdir()
    created = subprocess.run(
        [str(COMMAND), "create-admin", "--email", ADMIN_EMAIL, "--password", PASSWORD],
        cwd=workdir,
        env=_env(database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr

    headers: dict[str, str] | None = None
    all_acknowledged: list[uuid.UUID] = []
    report = []
    for number in range(1, TRIALS + 1):
        trial, headers = _run_trial(database, workdir, headers)
        all_acknowledged += trial.acknowledged
        stored, flagged, open_red_flags = _check_database(database)
        lost = [cid for cid in all_acknowledged if cid.hex not in stored]
        report.append(
            f"trial {number}: acknowledged {len(trial.acknowledged)}, stored {len(stored)}, "
            f"lost {len(lost)}, other statuses {sorted(set(trial.other_statuses))}"
        )
        assert not lost, report
        assert trial.other_statuses == [], report  # every answered check-in was a 201
        assert trial.acknowledged, f"no write was acknowledged in trial {number}: {report}"
        # Alerts commit with their logs: the one open red-flag alert counts every flagged log.
        assert flagged >= trial.acknowledged_red_flags
        assert open_red_flags == ([flagged] if flagged else []), (open_red_flags, flagged)
    print("; ".join(report))  # noqa: T201  (shown with -s: the acknowledged/lost counts)
