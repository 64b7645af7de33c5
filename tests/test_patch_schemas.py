"""PATCH bodies (and check-in corrections): a field left out keeps its value, and a field every
record has cannot be cleared. What they validate and what the OpenAPI schema says must agree,
or a generated client sends the null the service refuses."""

from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from models.base import Patch
from models.patient import PatientUpdate
from models.procedure import AdverseEventUpdate, ProcedureUpdate
from models.symptom_log import CorrectionIn

PATCH_BODIES = [PatientUpdate, ProcedureUpdate, AdverseEventUpdate, CorrectionIn]


def _allows_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_allows_null(o) for o in schema.get("anyOf", ()))


def test_every_patch_body_is_listed_here() -> None:
    assert set(Patch.__subclasses__()) == set(PATCH_BODIES)


@pytest.mark.parametrize("model", PATCH_BODIES, ids=lambda m: m.__name__)
def test_not_null_names_real_fields(model: type[Patch]) -> None:
    assert model.NOT_NULL
    assert model.NOT_NULL.issubset(model.model_fields)


@pytest.mark.parametrize("model", PATCH_BODIES, ids=lambda m: m.__name__)
def test_the_openapi_schema_offers_null_only_where_null_is_taken(
    app: FastAPI, model: type[Patch]
) -> None:
    schema = app.openapi()["components"]["schemas"][model.__name__]
    assert "required" not in schema or set(schema["required"]) <= {"client_id"}
    for name, field_schema in schema["properties"].items():
        if name in model.NOT_NULL:
            assert not _allows_null(field_schema), name
            assert "default" not in field_schema, name
        elif model.model_fields[name].default is None:
            assert _allows_null(field_schema), name


@pytest.mark.parametrize("model", PATCH_BODIES, ids=lambda m: m.__name__)
def test_null_is_refused_for_not_null_fields_and_taken_for_the_rest(model: type[Patch]) -> None:
    base = {"client_id": "6f1c2a70-3b1e-4c55-9d0e-2f4a8b9c1d3e"} if model is CorrectionIn else {}
    for name, field in model.model_fields.items():
        if name == "client_id":
            continue
        if name in model.NOT_NULL:
            with pytest.raises(ValidationError, match="cannot be null") as raised:
                model.model_validate(base | {name: None})
            assert raised.value.errors()[0]["loc"] == (name,)
        elif field.default is None:
            assert getattr(model.model_validate(base | {name: None}), name) is None
    assert model.model_validate(base).model_fields_set == set(base)


def test_a_procedures_protocol_can_be_changed_but_not_cleared() -> None:
    """The pinned protocol moves only by naming another version; every procedure has one."""
    assert "protocol" in ProcedureUpdate.NOT_NULL
    moved = ProcedureUpdate.model_validate({"protocol": {"id": "default", "version": 2}})
    assert moved.protocol is not None
    assert (moved.protocol.id, moved.protocol.version) == ("default", 2)
    assert moved.model_fields_set == {"protocol"}
