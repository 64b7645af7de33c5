"""Property-based conformance: every operation of the OpenAPI schema, fuzzed by Schemathesis
against the in-process app, on SQLite and on PostgreSQL (reliability_perf.md §2.7).

Each case runs every default check (not_a_server_error, status_code_conformance,
content_type_conformance, response_schema_conformance, response_headers_conformance,
negative_data_rejection, positive_data_acceptance, missing_required_header, ignored_auth,
unsupported_method, allow_header_conformance). None is switched off; the one adjustment is
the statuses positive_data_acceptance expects (POSITIVE_STATUSES, with the reason there).
Phases: examples, coverage (deterministic boundary, type and wrong-method cases) and fuzzing
(MAX_EXAMPLES per operation); the stateful phase does not run under `parametrize()`.

Hypothesis refuses function-scoped fixtures, so the data the cases need lives in a module-scoped
fixture (`seed`): a clinic, an admin, a clinician, a patient with an app token, a procedure, an
adverse event, two symptom logs and the red-flag alert they raised. Their ids are fixed path
parameters (Schemathesis config `parameters`), so the operations get past 404 and reach their
business logic; everything else is generated (half of the `timezone` and `procedure_id` body
fields are drawn from real values). `If-Match` is fixed to `*` so PATCH bodies reach the update
instead of stopping at 428/412 (those answers are covered in tests/api/). The seed and whatever
the run created are deleted afterwards, as conftest.py does after each function-scoped test.

Credentials follow the route's roles: `/v1/me/...` gets the patient's app token, the admin-only
and any-staff operations the admin's, every clinical operation the clinician's. `logout` gets a
fresh token per call, so it never revokes the tokens the other cases use.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi as schemathesis_asgi
from sqlalchemy import Engine
from sqlmodel import Session

from api.clinical.clock import today_in
from api.config import Settings
from models.identity import Role, UserAccount
from tests.conftest import _empty_all_tables
from tests.factories import (
    auth,
    make_clinic,
    make_patient,
    make_user,
    patient_token,
    token_for,
)

# Per operation, for the fuzzing phase. The coverage phase adds its own deterministic cases:
# about 3,300 requests per database in all, ~90 s for both databases on 2 cores.
MAX_EXAMPLES = 15
# positive_data_acceptance stays on, with 422 added to its default expected statuses: a JSON
# Schema cannot express what the API's business rules refuse with 422 (API.md "General rules";
# api/errors.py RuleViolation): an onset before the procedure, a cursor this service did not
# issue, a zone name that is not an IANA name, or the `patient` role on POST /v1/users. 400, 412,
# 413, 415, 428 and anything else on schema-valid input still fail it; 5xx fail
# not_a_server_error.
POSITIVE_STATUSES: list[int | str] = ["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]
# Operations called with the admin's token (admin-only, or open to any signed-in staff).
ADMIN_TOKEN_OPERATIONS = frozenset(
    {
        "clinic.create",
        "clinic.list",
        "clinic.update",
        "user.create",
        "user.me",
        "audit_event.list",
        "protocol.create",
        "protocol.list",
        "protocol.read",
    }
)


@dataclass(frozen=True)
class Seed:
    engine: Engine
    settings: Settings
    admin: UserAccount
    tokens: dict[str, str]
    path_ids: dict[str, str]
    own_log_id: str

    def token(self, case: Case[Any]) -> str:
        operation = case.operation
        if operation.path.startswith("/v1/me/"):
            return self.tokens["patient"]
        if operation.definition.raw.get("operationId") == "auth.logout":
            # A disposable session: a successful logout must not sign the admin out of the run.
            with Session(self.engine, expire_on_commit=False) as db:
                return token_for(db, self.settings, self.admin)
        if operation.definition.raw.get("operationId") in ADMIN_TOKEN_OPERATIONS:
            return self.tokens["admin"]
        return self.tokens["clinician"]


def _created(response: Any) -> str:
    assert response.status_code in (200, 201), response.text
    created_id: str = response.json()["id"]
    return created_id


@pytest.fixture(scope="module")
def seed(app: FastAPI, settings: Settings, engine: Engine) -> Iterator[Seed]:
    """Rows the fuzzed operations refer to, made with the factories and through the API."""
    _empty_all_tables(engine)
    with Session(engine, expire_on_commit=False) as db:
        clinic = make_clinic(db, name="Fuzz Clinic")
        admin = make_user(db, role=Role.admin)
        clinician = make_user(db, role=Role.clinician, clinic=clinic)
        patient = make_patient(db, clinic=clinic)
        tokens = {
            "admin": token_for(db, settings, admin),
            "clinician": token_for(db, settings, clinician),
            "patient": patient_token(db, settings, patient),
        }

    today = today_in(patient.timezone)
    staff = auth(tokens["clinician"])
    base = f"/v1/patients/{patient.id}"
    with TestClient(app) as client:
        procedure_id = _created(
            client.post(
                f"{base}/procedures",
                headers=staff,
                json={
                    "performed_on": (today - timedelta(days=20)).isoformat(),
                    "treatment": "prp",
                    "harvest": {"method": "blood_draw"},
                    "injections": [
                        {"route": "epidural", "levels": ["L4-L5"], "guidance": "ultrasound"}
                    ],
                    "baseline": {"pain": 6},
                },
            )
        )
        adverse_event_id = _created(
            client.post(
                f"{base}/adverse-events",
                headers=staff,
                json={
                    "procedure_id": procedure_id,
                    "onset_on": (today - timedelta(days=19)).isoformat(),
                    "kind": "injection_site_pain",
                    "grade": 2,
                    "serious": False,
                    "description": "Aching at the injection site.",
                },
            )
        )
        # A log stays correctable until its first correction: one for each correcting route.
        log_id, own_log_id = (
            _created(
                client.post(
                    "/v1/me/symptom-logs",
                    headers=auth(tokens["patient"]),
                    json={
                        "client_id": str(uuid.uuid4()),
                        "recorded_at": f"{(today - timedelta(days=days)).isoformat()}T09:00:00Z",
                        "pain": 5,
                        "red_flags": ["fever"],
                    },
                )
            )
            for days in (2, 3)
        )
        alerts = client.get(
            "/v1/alerts", headers=staff, params={"status": "open", "kind": "red_flag"}
        )
        assert alerts.status_code == 200, alerts.text
        [alert] = alerts.json()["items"]  # the second red flag bumps the same open alert

    yield Seed(
        engine=engine,
        settings=settings,
        admin=admin,
        tokens=tokens,
        path_ids={
            "patient_id": str(patient.id),
            "procedure_id": procedure_id,
            "adverse_event_id": adverse_event_id,
            "log_id": log_id,
            "alert_id": alert["id"],
        },
        own_log_id=own_log_id,
    )
    # The ASGI lifespan Schemathesis started holds a connection pool on this database.
    schemathesis_asgi.shutdown_lifespans()
    _empty_all_tables(engine)


@pytest.fixture(scope="module")
def api_schema(app: FastAPI, seed: Seed) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {
                # Three wrong methods show the 405 + Allow answer as well as all seven would.
                "coverage": {"unexpected-methods": ["DELETE", "OPTIONS", "PUT"]},
                # Not run under `parametrize()`; switched off for the reader's benefit.
                "stateful": {"enabled": False},
            },
            "parameters": {f"path.{name}": value for name, value in seed.path_ids.items()}
            | {
                "header.if-match": "*",
                # Half the bodies get a real zone name or the seeded procedure, so creating a
                # clinic, a patient or an adverse event can succeed; the other half stay random.
                "body.timezone": {"dictionary": "zones", "probability": 0.5},
                "body.procedure_id": {"dictionary": "procedures", "probability": 0.5},
            },
            "dictionaries": {
                "zones": {"values": ["Europe/Berlin", "America/New_York", "Asia/Kolkata"]},
                "procedures": {"values": [seed.path_ids["procedure_id"]]},
            },
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
            "operations": [
                {
                    "include-operation-id": "symptom_log.correct_own",
                    "parameters": {"path.log_id": seed.own_log_id},
                },
                {
                    # API.md "Identity": an unknown, used or expired enrolment code is 400, and
                    # a generated code is never a real one.
                    "include-operation-id": "auth.enrol",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, 400]}
                    },
                },
            ],
        }
    )
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)

    @loaded.auth(refresh_interval=None)
    class RoleAuth:
        def get(self, case: Case[Any], context: Any) -> str:  # noqa: ARG002  (protocol signature)
            return seed.token(case)

        def set(self, case: Case[Any], data: str, context: Any) -> None:  # noqa: ARG002
            case.headers["Authorization"] = f"Bearer {data}"

    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_lazy_schemas(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32.5's lazy schemas read and rename `node._nodeid`, which pytest 9.2 no
    longer has (AttributeError). Giving the node that attribute is enough; it only renames the
    per-operation subtest reports."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
def test_every_operation_conforms_to_the_schema(case: Case[Any]) -> None:
    response = case.call_and_validate()
    # 401 is documented everywhere, so a revoked or expired seed token would pass every check
    # while testing nothing but the auth guard.
    if case.operation.definition.raw.get("security"):
        assert response.status_code != 401, f"the seeded token was refused: {response.text}"
