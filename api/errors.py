"""Typed domain errors and their rendering as RFC 9457 problem+json.

DomainError
 ├── BadRequest (400)
 ├── Unauthorized (401)
 ├── Forbidden (403)
 ├── NotFound (404)
 ├── Conflict (409)
 ├── PreconditionFailed (412)
 ├── ContentTooLarge (413)
 ├── RuleViolation (422)       a business rule broken by an otherwise well-formed body
 ├── PreconditionRequired (428)
 └── TooManyRequests (429)
"""

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    pointer: str  # JSON Pointer into the body, or the query/header parameter name
    message: str


class DomainError(Exception):
    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal-error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers: dict[str, str] = {}


class BadRequest(DomainError):
    status_code, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(DomainError):
    status_code, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "Missing, invalid or expired token") -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status_code, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    status_code, title, slug = 404, "Not Found", "not-found"


class Conflict(DomainError):
    status_code, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(DomainError):
    status_code, title, slug = 412, "Precondition Failed", "precondition-failed"


class ContentTooLarge(DomainError):
    status_code, title, slug = 413, "Content Too Large", "content-too-large"


class RuleViolation(DomainError):
    status_code, title, slug = 422, "Unprocessable Content", "rule-violation"


class PreconditionRequired(DomainError):
    status_code, title, slug = 428, "Precondition Required", "precondition-required"


class TooManyRequests(DomainError):
    status_code, title, slug = 429, "Too Many Requests", "too-many-requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


def problem_type(slug: str) -> str:
    return f"urn:recovery-tracker:problem:{slug}"


class ProblemFieldError(BaseModel):
    pointer: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemFieldError] | None = None


def problem_body(
    *,
    status: int,
    title: str,
    detail: str,
    slug: str,
    errors: list[FieldError] | None = None,
    request_id: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [{"pointer": e.pointer, "message": e.message} for e in errors]
    return body


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problem statuses a route can return."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": _DESCRIPTIONS[status],
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid, expired or revoked token",
    403: "The caller's role may not use this operation",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state",
    412: "If-Match does not match the current version",
    413: "Request body larger than 1 MiB",
    422: "Invalid request: `errors` names each field and rule",
    428: "If-Match header required",
    429: "Too many attempts; retry after the Retry-After seconds",
    500: "Internal error; the body carries the request_id",
}
