"""Pure ASGI middleware: request ids with an access log that carries no patient data, and the
request body limit."""

import itertools
import logging
import re
import secrets
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON, ContentTooLarge, problem_body
from api.logs import escape_control

logger = logging.getLogger("recovery_tracker.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A random prefix per process and a counter: unique, 32 hex digits like a UUID's, without a
# getrandom() system call per request. A request id names a request; it is not a secret.
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count()


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


class RequestContext:
    """Give every request an X-Request-ID and log it without query strings or bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]  # routing rewrites scope["path"] later
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path holds only opaque ids; the query string is left out (`q` may hold a name).
            # Both are the client's text, percent-decoded: escaped, they cannot forge a line.
            logger.info(
                "%s %s %s %.1fms request_id=%s",
                escape_control(method),
                escape_control(path),
                status["code"],
                (time.perf_counter() - started) * 1000,
                request_id,
            )


class BodyTooLarge(HTTPException):
    """A streamed body passed the limit. Raised from receive(), so it must be an HTTPException:
    FastAPI re-raises those from its body parsing but turns any other exception into a 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodyLimit:
    """Refuse request bodies over the limit with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(
                problem_body(
                    status=413,
                    title=ContentTooLarge.title,
                    slug=ContentTooLarge.slug,
                    detail=self._detail(),
                    request_id=scope.get("state", {}).get("request_id"),
                ),
                status_code=413,
                media_type=PROBLEM_JSON,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self._detail())
            return message

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes"
