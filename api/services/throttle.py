"""Counting failed attempts per account, per client address and per enrolment source.

Counts live in the database so every API process behind a load balancer sees the same ones.
Keys are stored as keyed hashes: no e-mail address or IP lands in this table.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from api.errors import TooManyRequests
from models.identity import LoginFailure


@dataclass(frozen=True)
class Window:
    max_failures: int
    seconds: int


def check(session: Session, *, keys: list[tuple[str, str]], window: Window, now: datetime) -> None:
    """Refuse with 429 while any key has too many failures in the window."""
    since = now - timedelta(seconds=window.seconds)
    for scope, key_hash in keys:
        count, oldest = session.exec(
            select(func.count(), func.min(LoginFailure.at)).where(
                LoginFailure.scope == scope,
                LoginFailure.key_hash == key_hash,
                col(LoginFailure.at) > since,
            )
        ).one()
        if count >= window.max_failures and oldest is not None:
            retry_after = window.seconds - int((now - oldest).total_seconds())
            raise TooManyRequests(
                "Too many failed attempts; wait before trying again", retry_after=retry_after
            )


def add_failure(
    session: Session, *, keys: list[tuple[str, str]], window: Window, now: datetime
) -> None:
    for scope, key_hash in keys:
        session.add(LoginFailure(scope=scope, key_hash=key_hash, at=now))
    # Old rows only ever matter for one window; prune them as we go.
    session.execute(
        delete(LoginFailure).where(
            col(LoginFailure.at) < now - timedelta(seconds=window.seconds * 10)
        )
    )
