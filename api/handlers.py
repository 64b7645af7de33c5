"""Every error as RFC 9457 problem+json, and an audit row for refused requests."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from api.db import Database, DatabaseBusy, is_transient
from api.errors import PROBLEM_JSON, ContentTooLarge, DomainError, FieldError, problem_body
from api.services.audit import Audit, record_refusal

logger = logging.getLogger("recovery_tracker.errors")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


async def _problem(
    request: Request,
    *,
    status: int,
    detail: str,
    slug: str,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    await _audit_refusal(request, status)
    body = problem_body(
        status=status,
        title=title or _TITLES.get(status, "Error"),
        detail=detail,
        slug=slug,
        errors=errors,
        request_id=_request_id(request) if status >= 500 else None,
        instance=request.url.path,
    )
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _audit_refusal(request: Request, status: int) -> None:
    """A request whose use-case never ran still gets its audit row (outcome denied/failed)."""
    audit: Audit | None = getattr(request.state, "audit", None)
    database: Database | None = getattr(request.state, "database", None)
    if audit is None or audit.recorded or database is None:
        return
    try:
        await database.run(record_refusal, audit=audit, status_code=status)
    except Exception as exc:  # the error being answered matters more than its audit row
        logger.error(
            "could not write audit row: %s request_id=%s", type(exc).__name__, audit.request_id
        )


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return await _problem(
        request,
        status=exc.status_code,
        title=exc.title,
        detail=exc.detail,
        slug=exc.slug,
        errors=exc.errors,
        headers=exc.headers or None,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers a body that is not UTF-8 with a bare 400; like any other unparseable
        # JSON it is a 422 on the whole body (API.md "General rules": JSON in, UTF-8).
        return await _problem(
            request,
            status=422,
            slug="validation-error",
            detail="Invalid request: body",
            errors=[FieldError("", "The body is not UTF-8 encoded JSON")],
        )
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return await _problem(
        request,
        status=exc.status_code,
        detail=detail,
        # A 413 is the same problem whether the body was announced or streamed (api/middleware.py).
        slug=ContentTooLarge.slug if exc.status_code == 413 else f"http-{exc.status_code}",
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the path supports (RFC 9110 §15.5.6). Starlette's own `Allow` names only
    the first route that matched the path, e.g. `POST` for `/v1/clinics`, which also has GET."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _pointer(loc: tuple[Any, ...]) -> str:
    """`("body", "logs", 3, "pain")` → `/logs/3/pain`; a query or header parameter → its name."""
    if not loc:
        return ""
    source, *path = loc
    if source == "body":
        return (
            "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
            if path
            else ""
        )
    return str(path[0]) if path else str(source)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        # Unparseable JSON: its loc holds a character offset, not a path; the whole body is at fault.
        FieldError(
            "" if e.get("type") == "json_invalid" else _pointer(tuple(e.get("loc", ()))),
            str(e.get("msg", "invalid")),
        )
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({e.pointer or "body" for e in errors}))
    return await _problem(
        request,
        status=422,
        slug="validation-error",
        detail=f"Invalid request: {fields}",
        errors=errors,
    )


async def database_error(request: Request, exc: Exception) -> Response:
    """A database error: 503 when it only means busy, else the 500 of any unexpected error."""
    if not is_transient(exc):
        return await unhandled_error(request, exc)
    # Another process held the database past the busy timeout, or PostgreSQL chose this
    # transaction as a deadlock's victim: nothing was written, and a retry will do.
    logger.warning("database busy: %s request_id=%s", type(exc).__name__, _request_id(request))
    return await domain_error(request, DatabaseBusy())


async def unhandled_error(request: Request, exc: Exception) -> Response:
    # The formatter (api/logs.py) prints the frames but never the message.
    logger.error("unhandled error request_id=%s", _request_id(request), exc_info=exc)
    response = await _problem(
        request,
        status=500,
        slug="internal-error",
        detail="An unexpected error occurred; quote the request_id when reporting it",
    )
    # This response bypasses the request-id middleware (it comes from the outermost layer).
    response.headers["X-Request-ID"] = _request_id(request)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(Exception, unhandled_error)
