"""The content hash that tells a replayed check-in (200) from a conflicting one (409).

Stored hashes are compared with new ones for as long as the logs exist: the canonical text is
frozen. Changing it needs a migration that recomputes every stored hash.
"""

import hashlib
import json
from typing import Any

import pytest

from api.services.symptom_logs import content_hash

PAYLOAD = {
    "client_id": "6f1c2a70-3b1e-4c55-9d0e-2f4a8b9c1d3e",
    "recorded_at": "2026-03-01T08:30:00-05:00",
    "pain": 6,
    "note": "Café ✓",
    "symptoms": {"tingling": 2, "numbness": None},
}


def test_the_hash_of_a_known_log_never_changes() -> None:
    assert content_hash(PAYLOAD) == (
        "42b3f78f7e5e1e7bfeb787d9e5e3b0f14a9214813f462a0eb50aa8e0b9fc3f70"
    )


@pytest.mark.parametrize(
    "payload",
    [
        PAYLOAD,
        {"pain": 0, "side_effects": [], "red_flags": ["fever"], "odi_answers": [1, None, 5]},
        {"note": 'line one\nline two\ttab "quoted" \\ slash /'},
    ],
)
def test_the_canonical_text_is_sorted_compact_ascii_json(payload: dict[str, Any]) -> None:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    assert content_hash(payload) == hashlib.sha256(canonical.encode()).hexdigest()


def test_key_order_does_not_matter_and_values_do() -> None:
    assert content_hash(dict(reversed(PAYLOAD.items()))) == content_hash(PAYLOAD)
    assert content_hash(PAYLOAD | {"pain": 7}) != content_hash(PAYLOAD)
