"""Liveness and readiness probes (public)."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.db import DatabaseDep
from api.errors import DomainError, problem_responses

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class NotReady(DomainError):
    status_code, title, slug = 503, "Service Unavailable", "not-ready"


@router.get("/healthz", name="healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    name="readyz",
    responses=problem_responses(500) | {503: {"description": "Database unreachable"}},
)
async def readyz(database: DatabaseDep) -> Health:
    """The database answers."""

    def ping() -> None:
        with database.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except SQLAlchemyError:
        raise NotReady("The database does not answer") from None
    return Health(status="ready")
