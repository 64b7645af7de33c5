"""The default protocol's rules (CLINICAL.md as data), read from the migration that seeds them:
the rule tests run on plain data, against exactly what the database holds."""

import copy
import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _load() -> dict[str, Any]:
    (path,) = (ROOT / "alembic" / "versions").glob("*procedures_adverse_events_and_protocols.py")
    spec = importlib.util.spec_from_file_location("default_protocol_migration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rules: dict[str, Any] = module.DEFAULT_RULES
    return rules


_RULES = _load()


def default_rules() -> dict[str, Any]:
    """A fresh copy each call: a test may change it without touching the others'."""
    return copy.deepcopy(_RULES)
