"""The `recovery-tracker` console command, run as a real subprocess on a temporary SQLite file."""

import os
import secrets
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table on the metadata)
from api import security

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / ".venv" / "bin" / "recovery-tracker"
ADMIN_PASSWORD = "a-long-admin-passphrase"
MODEL_TABLES = {table.name for table in SQLModel.metadata.sorted_tables}
STARTUP_SECONDS = 60


@dataclass
class Cli:
    """Runs the console command in an isolated working directory against one SQLite file."""

    workdir: Path
    database: Path

    def env(self, **overrides: str | None) -> dict[str, str]:
        # Nothing RECOVERY_* leaks in from the caller's environment (or a .env: cwd is ours).
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
        env |= {
            "RECOVERY_DATABASE_URL": f"sqlite:///{self.database}",
            "RECOVERY_ENVIRONMENT": "local",
            "RECOVERY_LOG_LEVEL": "warning",
        }
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(
        self, *args: str, timeout: float = 120, **env: str | None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMMAND), *args],
            cwd=self.workdir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def tables(self) -> set[str]:
        if not self.database.exists():
            return set()
        with _sqlite(self.database) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {str(name) for (name,) in rows}

    def accounts(self, email: str) -> list[tuple[str, str, str | None]]:
        with _sqlite(self.database) as connection:
            rows = connection.execute(
                "SELECT role, password_hash, clinic_id FROM user_account WHERE email = ?",
                (email,),
            )
            return [(str(role), str(hash_), clinic) for role, hash_, clinic in rows]


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Cli(workdir=workdir, database=tmp_path / "cli.db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(cli: Cli, *args: str, **env: str | None) -> Iterator[Server]:
    """`recovery-tracker serve --port <free>`, stopped (by its own pid) on the way out."""
    port = _free_port()
    log = cli.workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(COMMAND), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cli.workdir,
            env=cli.env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(process=process, port=port, log=log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def wait_until_up(server: Server) -> httpx.Response:
    """Poll GET /healthz until it answers; fail if the process exits or it takes too long."""
    deadline = time.monotonic() + STARTUP_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"serve exited with {server.process.returncode} before answering:\n"
                f"{server.output()[-3000:]}"
            )
        try:
            return httpx.get(server.url("/healthz"), timeout=2)
        except httpx.TransportError as exc:
            last_error = exc
            time.sleep(0.2)
    pytest.fail(f"serve did not answer within {STARTUP_SECONDS}s ({last_error!r})")


# --- create-admin ----------------------------------------------------------------------------


def test_create_admin_creates_an_admin_account(cli: Cli) -> None:
    result = cli.run("create-admin", "--email", "admin@example.org", "--password", ADMIN_PASSWORD)
    assert result.returncode == 0, result.stderr
    accounts = cli.accounts("admin@example.org")
    assert len(accounts) == 1
    role, password_hash, clinic_id = accounts[0]
    assert role == "admin"
    assert clinic_id is None
    assert ADMIN_PASSWORD not in password_hash
    assert security.verify_password(password_hash, ADMIN_PASSWORD)


@pytest.mark.parametrize("second_email", ["admin@example.org", "Admin@Example.org"])
def test_create_admin_refuses_an_existing_email(cli: Cli, second_email: str) -> None:
    first = cli.run("create-admin", "--email", "admin@example.org", "--password", ADMIN_PASSWORD)
    assert first.returncode == 0, first.stderr

    again = cli.run("create-admin", "--email", second_email, "--password", ADMIN_PASSWORD + "!")
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(cli.accounts("admin@example.org")) == 1


def test_create_admin_refuses_a_short_password(cli: Cli) -> None:
    result = cli.run("create-admin", "--email", "admin@example.org", "--password", "too-short-pw")
    assert result.returncode != 0
    assert "password" in result.stderr.lower()
    assert "too-short-pw" not in result.stderr + result.stdout  # the password is not echoed
    assert "Traceback" not in result.stderr
    assert "user_account" not in cli.tables() or cli.accounts("admin@example.org") == []


# --- migrate ---------------------------------------------------------------------------------


def test_migrate_creates_every_table(cli: Cli) -> None:
    assert cli.tables() == set()
    result = cli.run("migrate")
    assert result.returncode == 0, result.stderr
    assert cli.tables() == MODEL_TABLES | {"alembic_version"}


def test_migrate_twice_is_harmless(cli: Cli) -> None:
    assert cli.run("migrate").returncode == 0
    again = cli.run("migrate")
    assert again.returncode == 0, again.stderr
    assert cli.tables() == MODEL_TABLES | {"alembic_version"}


# --- serve -----------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "changeme", "short-but-not-a-placeholder"])
def test_serve_in_production_refuses_a_placeholder_secret(cli: Cli, secret: str | None) -> None:
    port = str(_free_port())
    result = cli.run(
        "serve",
        "--port",
        port,
        timeout=60,
        RECOVERY_ENVIRONMENT="production",
        RECOVERY_SECRET_KEY=secret,
    )
    assert result.returncode != 0
    assert "RECOVERY_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.tables() == set()  # refused before touching the database


def test_other_commands_in_production_refuse_a_placeholder_secret(cli: Cli) -> None:
    result = cli.run("migrate", RECOVERY_ENVIRONMENT="production", RECOVERY_SECRET_KEY=None)
    assert result.returncode != 0
    assert "RECOVERY_SECRET_KEY" in result.stderr


@pytest.mark.slow
def test_serve_in_production_starts_with_a_long_random_secret(cli: Cli) -> None:
    with serving(
        cli, RECOVERY_ENVIRONMENT="production", RECOVERY_SECRET_KEY=secrets.token_urlsafe(48)
    ) as server:
        response = wait_until_up(server)
        assert response.status_code == 200, server.output()


@pytest.mark.slow
def test_serve_migrates_then_serves(cli: Cli) -> None:
    with serving(cli) as server:
        health = wait_until_up(server)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers.get("X-Request-ID")
        ready = httpx.get(server.url("/readyz"), timeout=5)
        assert ready.status_code == 200, ready.text
        assert cli.tables() == MODEL_TABLES | {"alembic_version"}
        docs = httpx.get(server.url("/openapi.json"), timeout=5)
        assert docs.status_code == 200
        assert "/v1/users/me" in docs.json()["paths"]
        unauthenticated = httpx.get(server.url("/v1/users/me"), timeout=5)
        assert unauthenticated.status_code == 401
    assert server.process.returncode is not None


@pytest.mark.slow
def test_serve_no_migrate_leaves_an_empty_database_empty(cli: Cli) -> None:
    with serving(cli, "--no-migrate") as server:
        assert wait_until_up(server).status_code == 200
    assert "user_account" not in cli.tables()
    assert "alembic_version" not in cli.tables()


@pytest.mark.slow
def test_serve_access_log_leaves_out_query_strings(cli: Cli) -> None:
    """A query string can hold a name (`q`): the access line has the path without it."""
    with serving(cli, RECOVERY_LOG_LEVEL="info") as server:
        assert wait_until_up(server).status_code == 200
        marker = "Lovelace" + secrets.token_hex(4)
        response = httpx.get(server.url(f"/v1/audit-events?action={marker}"), timeout=5)
        request_id = response.headers["X-Request-ID"]
    access_lines = [line for line in server.output().splitlines() if request_id in line]
    assert access_lines, "no access line for the request"  # control: the access log is on
    assert any("/v1/audit-events" in line for line in access_lines)
    assert marker not in server.output()
