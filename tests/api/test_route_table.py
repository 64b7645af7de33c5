"""The route table: every non-public route declares its roles, is named for the audit trail, and
is documented with its error responses.

The check functions take any FastAPI app; the negative controls run them on small apps built
here to show that each check reports what it is meant to catch.
"""

import re
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

from api.deps import ADMIN, RoleGuard
from models.identity import Role

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/redoc",
        "/v1/auth/token",
        "/v1/auth/refresh",
        "/v1/app/enrol",
    }
)
PUBLIC_PREFIXES = ("/docs",)  # /docs and /docs/oauth2-redirect
# Probes answer 200 or 5xx; there is no client error for them to document.
NO_CLIENT_ERRORS = frozenset({"/healthz", "/readyz"})
ACTION_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _label(context: Any) -> str:
    methods = ",".join(sorted(context.methods or [])) or "*"
    return f"{methods} {context.path} ({context.name})"


def _has_role_guard(context: Any) -> bool:
    """A RoleGuard among the route's top-level dependencies (route- or router-level)."""
    dependant = getattr(context, "dependant", None)
    if dependant is None:  # not an APIRoute (a mount, a plain Starlette route): no guard
        return False
    return any(isinstance(dep.call, RoleGuard) for dep in dependant.dependencies)


def unguarded_routes(app: FastAPI) -> list[str]:
    return sorted(
        _label(context)
        for context in iter_route_contexts(app.routes)
        if not _is_public(str(context.path)) and not _has_role_guard(context)
    )


def badly_named_guarded_routes(app: FastAPI) -> list[str]:
    """A guarded route's name is its audit action: it must read `resource.verb`."""
    return sorted(
        _label(context)
        for context in iter_route_contexts(app.routes)
        if _has_role_guard(context) and not ACTION_NAME.match(str(context.name or ""))
    )


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    schema = app.openapi()
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def operations_without_client_errors(app: FastAPI) -> list[str]:
    return sorted(
        f"{method.upper()} {path}"
        for path, method, operation in _operations(app)
        if path not in NO_CLIENT_ERRORS
        and not any(str(status).startswith("4") for status in operation.get("responses", {}))
    )


def operations_without_summary(app: FastAPI) -> list[str]:
    return sorted(
        f"{method.upper()} {path}"
        for path, method, operation in _operations(app)
        if not str(operation.get("summary", "")).strip()
    )


# --- the application -------------------------------------------------------------------------


def test_every_non_public_route_has_a_role_guard(app: FastAPI) -> None:
    assert unguarded_routes(app) == []


def test_public_routes_are_the_listed_ones(app: FastAPI) -> None:
    """Control: the walk sees the routes, public ones included, and they really are public."""
    contexts = list(iter_route_contexts(app.routes))
    paths = {str(context.path) for context in contexts}
    assert paths >= PUBLIC_PATHS | {"/docs", "/v1/users/me", "/v1/audit-events"}
    guarded_public = [_label(c) for c in contexts if _is_public(str(c.path)) and _has_role_guard(c)]
    assert guarded_public == []


def test_every_guarded_route_is_named_resource_dot_verb(app: FastAPI) -> None:
    assert badly_named_guarded_routes(app) == []


def test_every_operation_documents_a_client_error(app: FastAPI) -> None:
    assert operations_without_client_errors(app) == []


def test_every_operation_has_a_summary(app: FastAPI) -> None:
    assert operations_without_summary(app) == []


def test_operation_ids_are_the_route_names_and_unique(app: FastAPI) -> None:
    operation_ids = [operation["operationId"] for _, _, operation in _operations(app)]
    assert len(operation_ids) == len(set(operation_ids))
    assert "user.me" in operation_ids


STAFF_ROLES = frozenset({Role.admin, Role.clinician, Role.researcher})
# Routes whose roles are not those of a clinic's patient data: admins manage protocols and a
# clinic's settings, and every staff role reads the protocols its procedures are measured by.
DECLARED_ROLES = {
    "protocol.create": frozenset({Role.admin}),
    "protocol.list": STAFF_ROLES,
    "protocol.read": STAFF_ROLES,
    "clinic.update": frozenset({Role.admin}),
}


def _roles(context: Any) -> frozenset[Role]:
    dependant = getattr(context, "dependant", None)
    guards = [dep.call for dep in getattr(dependant, "dependencies", ())]
    return frozenset(role for g in guards if isinstance(g, RoleGuard) for role in g.roles)


def test_protocol_and_clinic_settings_routes_declare_their_roles(app: FastAPI) -> None:
    declared = {
        str(context.name): _roles(context)
        for context in iter_route_contexts(app.routes)
        if context.name in DECLARED_ROLES
    }
    assert declared == DECLARED_ROLES


# --- negative controls -----------------------------------------------------------------------


def _small_app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/things", name="thing.list", dependencies=[ADMIN], responses={403: {}})
    def list_things() -> list[str]:
        return []

    @router.get("/secrets", name="secret.list", responses={403: {}})
    def list_secrets() -> list[str]:
        return []

    @router.post("/widgets", name="makeWidget", dependencies=[ADMIN])
    def make_widget() -> str:
        return ""

    guarded_router = APIRouter(prefix="/v1/admin", dependencies=[ADMIN])

    @guarded_router.get("/stats", name="stats.read", summary="Stats", responses={401: {}})
    def stats() -> dict[str, int]:
        return {}

    app.include_router(router)
    app.include_router(guarded_router)

    @app.get("/v1/direct", name="direct.read", summary="", responses={401: {}})
    def direct() -> str:
        return ""

    return app


def test_the_guard_check_reports_an_unguarded_route() -> None:
    assert unguarded_routes(_small_app()) == [
        "GET /v1/direct (direct.read)",
        "GET /v1/secrets (secret.list)",
    ]


def test_the_guard_check_sees_router_level_guards() -> None:
    labels = unguarded_routes(_small_app())
    assert not any("/v1/admin/stats" in label for label in labels)


def test_the_name_check_reports_a_name_that_is_no_action() -> None:
    assert badly_named_guarded_routes(_small_app()) == ["POST /v1/widgets (makeWidget)"]


def test_the_openapi_check_reports_an_operation_without_client_errors() -> None:
    assert operations_without_client_errors(_small_app()) == ["POST /v1/widgets"]


def test_the_openapi_check_reports_an_operation_without_summary() -> None:
    app = _small_app()
    assert operations_without_summary(app) == []  # FastAPI derives one from the function name
    app.openapi_schema = None
    direct = app.openapi()["paths"]["/v1/direct"]["get"]
    direct["summary"] = ""
    assert operations_without_summary(app) == ["GET /v1/direct"]
