"""The `recovery-tracker` command: serve, migrate, sweep, reevaluate, create-admin, demo."""

import logging
import uuid
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from api import migrations, security
from api.config import Settings
from api.db import is_transient, make_engine
from api.logs import log_config
from api.services import sweep as sweep_service
from models.identity import Role, UserAccount, UserCreate

# No pretty tracebacks: they print local variables, and those can be passwords or patient data.
app = typer.Typer(
    help="Recovery Tracker: recovery tracking after regenerative spine procedures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        messages = "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in exc.errors())
        typer.secho(f"Refusing to start: {messages}", err=True, fg="red")
        raise typer.Exit(2) from None


def _echo_err(message: str) -> None:
    typer.secho(message, err=True, fg="red")


@app.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head), then evaluate what they left due."""
    settings = _settings()
    migrations.upgrade(settings.database_url)
    typer.echo("Database is at the latest schema.")
    _sweep(settings, force=False, patient_ids=None)


def _sweep(settings: Settings, *, force: bool, patient_ids: list[uuid.UUID] | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        counts = sweep_service.run(engine, patient_ids=patient_ids, force=force)
    except DBAPIError as exc:
        if not is_transient(exc):
            raise
        _echo_err("The database is busy (another process holds it); nothing was changed. Retry.")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if counts is None:
        typer.echo("Another process is sweeping; nothing done.")
        return
    if patient_ids and counts.evaluated == 0:
        _echo_err(f"No patient with the id {patient_ids[0]}.")
        raise typer.Exit(1)
    alerts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.alerts.items())) or "none"
    looked_at = (
        f"{counts.candidates} patients"
        if force
        else f"{counts.candidates} whose next change may be today in their time zone"
    )
    typer.echo(f"Re-evaluated {counts.evaluated} of {looked_at}; alerts raised: {alerts}.")


@app.command()
def sweep() -> None:
    """Re-evaluate every patient whose progress the clock has changed, raising alerts (for cron;
    `serve` also does this periodically)."""
    settings = _settings()
    _sweep(settings, force=False, patient_ids=None)


@app.command()
def reevaluate(
    patient: Annotated[
        uuid.UUID | None, typer.Option(help="Only this patient (default: every patient)")
    ] = None,
) -> None:
    """Rebuild the stored progress from the milestone engine (every patient, or one)."""
    settings = _settings()
    _sweep(settings, force=True, patient_ids=[patient] if patient else None)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only)")] = 1,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not apply migrations first")
    ] = False,
) -> None:
    """Apply migrations (unless --no-migrate), then serve the API."""
    import uvicorn

    settings = _settings()
    if settings.is_sqlite and workers > 1:
        _echo_err(
            "SQLite takes one writer at a time: run one process, or use PostgreSQL for several."
        )
        raise typer.Exit(2)
    if not no_migrate:
        migrations.upgrade(settings.database_url)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"Recovery Tracker on http://{shown}:{port} — API docs: http://{shown}:{port}/docs")
    uvicorn.run(
        "api.main:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # our access log leaves out query strings (api/middleware.py)
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
    )


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's e-mail address")],
    password: Annotated[
        str, typer.Option(help="At least 15 characters", prompt=True, hide_input=True)
    ],
) -> None:
    """Create an admin account."""
    settings = _settings()
    try:
        data = UserCreate(email=email, password=password, role=Role.admin)
    except ValidationError as exc:
        _echo_err("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        raise typer.Exit(2) from None
    migrations.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        session.add(
            UserAccount(
                email=data.email.lower(),
                role=Role.admin,
                password_hash=security.hash_password(data.password),
            )
        )
        try:
            session.commit()
        except IntegrityError:
            _echo_err(f"An account with the email {data.email} already exists.")
            raise typer.Exit(1) from None
    engine.dispose()
    typer.echo(f"Admin {data.email} created.")


@app.command()
def demo(
    patients: Annotated[int, typer.Option(help="How many demo patients", min=1, max=2000)] = 40,
) -> None:
    """Load a realistic demo clinic, staff and patients with months of check-ins."""
    from rich.progress import track
    from sqlmodel import select

    from api.demo import PASSWORD, load

    settings = _settings()
    migrations.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        if session.exec(
            select(UserAccount).where(UserAccount.email == "demo-admin@example.org")
        ).first():
            _echo_err("The demo data is already loaded (demo-admin@example.org exists).")
            raise typer.Exit(1)
    result = load(
        lambda: Session(engine, expire_on_commit=False),
        settings,
        patients_count=patients,
        progress=lambda items: track(items, description="Loading demo patients"),
    )
    engine.dispose()
    # Check-ins missed by today are the clock's alerts: sweep once, so the queue is complete now.
    _sweep(settings, force=False, patient_ids=None)
    typer.echo(
        f"Demo clinic {result.clinic_id}: {result.patients} patients, {result.logs} check-ins."
    )
    for role, email in result.users.items():
        typer.echo(f"  {role:<10} {email}  password: {PASSWORD}")
    typer.echo(f"  patient app enrolment code (first patient): {result.enrolment_code}")


def main() -> None:
    app(prog_name="recovery-tracker")


if __name__ == "__main__":
    main()
