"""Starting and stopping the servers under test: the service and the bare baseline.

Each runs as one uvicorn process on 127.0.0.1, in its own session (so a Ctrl-C reaches only the
runner, which then stops it), and is always stopped when its `with` block ends.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from loadgen import pinned

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = ROOT / ".venv" / "bin"
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
CLI_TIMEOUT_S = 120
LOG_TAIL_CHARS = 3000


@dataclass(frozen=True)
class Server:
    name: str
    base_url: str
    log_path: Path
    pid: int


@dataclass(frozen=True)
class Admin:
    email: str
    password: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The runner's environment without any RECOVERY_ setting of its own, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
    return env | extra


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready (exit code {process.poll()})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def running(
    name: str, argv: list[str], *, env: dict[str, str], workdir: Path, cpu: int | None
) -> Iterator[Server]:
    port = free_port()
    argv = [*argv, "--host", HOST, "--port", str(port)]
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(argv, cpu),
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://{HOST}:{port}"
        _wait_ready(process, f"{base_url}/healthz")
        yield Server(name=name, base_url=base_url, log_path=log_path, pid=process.pid)
    except Exception:
        print(f"--- end of the {name} log ---", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:], file=sys.stderr)
        raise
    finally:
        _stop(process)


def service_env(workdir: Path, db_name: str, source: Path | None = None) -> dict[str, str]:
    """The service's settings; with `source`, its code (api/, models/, alembic/) comes from that
    checkout instead of this one (bench/compare.py), with this checkout's virtualenv."""
    return clean_env(
        RECOVERY_DATABASE_URL=f"sqlite:///{workdir / db_name}",
        RECOVERY_SECRET_KEY=secrets.token_urlsafe(36),  # 48 characters
        RECOVERY_LOG_LEVEL="warning",
        **({"PYTHONPATH": str(source)} if source else {}),
    )


def create_admin(env: dict[str, str], workdir: Path) -> Admin:
    """Migrate the service's database and create an admin to sign in with."""
    admin = Admin(email="bench-admin@example.com", password=secrets.token_urlsafe(24))
    argv = [str(VENV_BIN / "recovery-tracker"), "create-admin", "--email", admin.email]
    done = subprocess.run(
        [*argv, "--password", admin.password],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"create-admin failed: {done.stdout}{done.stderr}")
    return admin


@contextlib.contextmanager
def service(
    workdir: Path, db_name: str, cpu: int | None, source: Path | None = None
) -> Iterator[tuple[Server, Admin]]:
    """The service on a fresh SQLite database in workdir, with one admin."""
    env = service_env(workdir, db_name, source)
    admin = create_admin(env, workdir)
    argv = [str(VENV_BIN / "recovery-tracker"), "serve", "--no-migrate"]
    with running("service", argv, env=env, workdir=workdir, cpu=cpu) as server:
        yield server, admin


@contextlib.contextmanager
def baseline(workdir: Path, db_name: str, cpu: int | None) -> Iterator[Server]:
    """The bare baseline app (bench/baseline_app.py) on a fresh database in workdir."""
    env = clean_env(BENCH_BASELINE_DB=str(workdir / db_name))
    argv = [
        str(VENV_BIN / "python"),
        "-m",
        "uvicorn",
        "baseline_app:app",
        "--app-dir",
        str(BENCH_DIR),
    ]
    argv += ["--log-level", "warning", "--no-access-log"]
    with running("baseline", argv, env=env, workdir=workdir, cpu=cpu) as server:
        yield server
