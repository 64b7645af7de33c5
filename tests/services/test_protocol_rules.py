"""The rules document of a protocol (models/protocol.py `ProtocolRules`), on plain data: the
default protocol validates unchanged and dumps back to itself, and every rule refuses a broken
document at the field that breaks it."""

import copy
import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from models.protocol import ProtocolCreate, ProtocolRules
from tests.default_rules import default_rules

DEFAULT = default_rules()


def changed(path: str, value: Any) -> dict[str, Any]:
    """The default document with the value at `path` (slash-separated) replaced; `...` as the
    value deletes it."""
    document = copy.deepcopy(DEFAULT)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    target: Any = document
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return document


def locs(document: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as raised:
        ProtocolRules.model_validate(document)
    return [tuple(error["loc"]) for error in raised.value.errors()]


def loc(path: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in path.split("/"))


# --- the default protocol ------------------------------------------------------------------


def test_the_default_protocol_validates_unchanged() -> None:
    ProtocolRules.model_validate(DEFAULT)


def test_the_default_protocol_dumps_back_to_the_stored_document() -> None:
    dumped = ProtocolRules.model_validate(DEFAULT).model_dump(mode="json")
    assert dumped == DEFAULT
    # Same JSON too: integers stay integers (findings quote "2 points", not "2.0 points").
    assert json.dumps(dumped, sort_keys=True) == json.dumps(DEFAULT, sort_keys=True)


def test_the_default_protocol_round_trips_through_json() -> None:
    parsed = ProtocolRules.model_validate_json(json.dumps(DEFAULT))
    assert parsed.model_dump(mode="json") == DEFAULT


def test_a_valid_variant_keeps_its_numbers_as_sent() -> None:
    document = changed("metrics/pain/improved_points", 1.5)
    dumped = ProtocolRules.model_validate(document).model_dump(mode="json")
    assert dumped["metrics"]["pain"]["improved_points"] == 1.5
    assert type(dumped["metrics"]["pain"]["worse_points"]) is int


# --- each rule refuses a broken document at its field ----------------------------------------

BROKEN = [
    # milestone windows: ordered, non-overlapping, start <= end, inside the clock
    ("milestones/1/start_day", 14, "milestones/1/start_day"),
    ("milestones/2/start_day", 60, "milestones/2/start_day"),
    ("milestones/2/end_day", 170, "milestones/2/end_day"),
    ("milestones/0/start_day", -1, "milestones/0/start_day"),
    ("milestones/2/end_day", 4000, "milestones/2/end_day"),
    ("milestones/1/start_day", 30.0, "milestones/1/start_day"),
    # milestone keys: exactly immediate, short_term, long_term, in that order
    ("milestones/1/key", "long_term", "milestones/1/key"),
    ("milestones/0/key", "early", "milestones/0/key"),
    ("milestones/2", ..., "milestones/2"),
    # each window's own fields
    ("milestones/1/pain_flare", DEFAULT["milestones"][0]["pain_flare"], "milestones/1/pain_flare"),
    ("milestones/0/min_logs_when_closed", 2, "milestones/0/min_logs_when_closed"),
    ("milestones/0/pain_flare", ..., "milestones/0/pain_flare"),
    ("milestones/2/report_substantial", ..., "milestones/2/report_substantial"),
    ("milestones/0/pain_flare/to_day", 20, "milestones/0/pain_flare/to_day"),
    ("milestones/0/pain_flare/to_day", 5, "milestones/0/pain_flare/to_day"),
    ("milestones/0/start_day", 8, "milestones/0/pain_flare/from_day"),
    ("milestones/0/pain_flare/min_logs", 0, "milestones/0/pain_flare/min_logs"),
    ("milestones/0/pain_flare/rise_points", 11, "milestones/0/pain_flare/rise_points"),
    ("milestones/0/soreness_persisting/from_day", 15, "milestones/0/soreness_persisting/from_day"),
    (
        "milestones/0/soreness_persisting/side_effects",
        ["swelling", "swelling"],
        "milestones/0/soreness_persisting/side_effects",
    ),
    (
        "milestones/0/soreness_persisting/side_effects",
        ["fever"],
        "milestones/0/soreness_persisting/side_effects/0",
    ),
    (
        "milestones/0/soreness_persisting/side_effects",
        [],
        "milestones/0/soreness_persisting/side_effects",
    ),
    ("milestones/1/min_logs_when_closed", 0, "milestones/1/min_logs_when_closed"),
    ("milestones/2/report_substantial", "yes", "milestones/2/report_substantial"),
    # metric thresholds inside each metric's range; the scales themselves fixed
    ("metrics/pain/improved_points", 11, "metrics/pain/improved_points"),
    ("metrics/pain/worse_points", 10.5, "metrics/pain/worse_points"),
    ("metrics/mobility/improved_points", 0, "metrics/mobility/improved_points"),
    ("metrics/odi/worse_points", 101, "metrics/odi/worse_points"),
    ("metrics/odi/improved_points", -5, "metrics/odi/improved_points"),
    ("metrics/pain/improved_percent", 0, "metrics/pain/improved_percent"),
    ("metrics/pain/improved_percent", 100.5, "metrics/pain/improved_percent"),
    ("metrics/odi/substantial_percent", 120, "metrics/odi/substantial_percent"),
    ("metrics/pain/substantial_percent", 20, "metrics/pain/substantial_percent"),
    ("metrics/pain/improved_points", True, "metrics/pain/improved_points"),
    ("metrics/pain/improved_points", "2", "metrics/pain/improved_points"),
    ("metrics/pain/improved_points", math.nan, "metrics/pain/improved_points"),
    ("metrics/odi/worse_points", math.inf, "metrics/odi/worse_points"),
    ("metrics/odi/range", [0, 10], "metrics/odi/range"),
    ("metrics/pain/range", [1, 10], "metrics/pain/range"),
    ("metrics/mobility/better", "lower", "metrics/mobility/better"),
    ("metrics/pain/better", "less", "metrics/pain/better"),
    ("metrics/odi", ..., "metrics/odi"),
    ("metrics/leg_pain", DEFAULT["metrics"]["pain"], "metrics/leg_pain"),
    ("metrics/pain/substantial_percent", ..., "metrics/pain/substantial_percent"),
    # the cohort benchmark is a rate
    ("benchmark_met_rate", 70, "benchmark_met_rate"),
    ("benchmark_met_rate", -0.1, "benchmark_met_rate"),
    # baseline window [low, high] with low <= high < 0
    ("baseline/window_days", [-1, -60], "baseline/window_days/0"),
    ("baseline/window_days", [-60, 0], "baseline/window_days/1"),
    ("baseline/window_days", [-60, -1, 0], "baseline/window_days"),
    ("baseline/window_days", [-4000, -1], "baseline/window_days/0"),
    ("baseline/statistic", "mean", "baseline/statistic"),
    # check-in schedule: phases ordered and separate, sane steps
    ("check_in_schedule/0/to_day", -1, "check_in_schedule/0/to_day"),
    ("check_in_schedule/1/to_day", 20, "check_in_schedule/1/to_day"),
    ("check_in_schedule/1/from_day", 14, "check_in_schedule/1/from_day"),
    ("check_in_schedule/2/from_day", 10, "check_in_schedule/2/from_day"),
    ("check_in_schedule/1/every_days", 0, "check_in_schedule/1/every_days"),
    ("check_in_schedule/1/grace_days", -1, "check_in_schedule/1/grace_days"),
    ("check_in_schedule/2/phase", "daily", "check_in_schedule/2/phase"),
    ("check_in_schedule/2/phase", "Monthly Phase", "check_in_schedule/2/phase"),
    ("check_in_schedule", [], "check_in_schedule"),
    # worsening alert: the alert rule reads two consecutive logs and a pain rise
    ("worsening/consecutive_logs", 3, "worsening/consecutive_logs"),
    ("worsening/rise_points", 0, "worsening/rise_points"),
    ("worsening/after_day", -1, "worsening/after_day"),
    # factors
    ("factors/age_moderate_from_years", 200, "factors/age_moderate_from_years"),
    # texts: non-empty, capped, no control characters (labels: one line)
    ("caveat", "", "caveat"),
    ("caveat", "   ", "caveat"),
    ("caveat", "x" * 2001, "caveat"),
    ("caveat", "bad\x00text", "caveat"),
    ("milestones/0/label", "two\nlines", "milestones/0/label"),
    ("milestones/0/label", "x" * 201, "milestones/0/label"),
    ("milestones/1/expected", "", "milestones/1/expected"),
    ("milestones/2/expected", "bell\x07", "milestones/2/expected"),
    # nothing unknown
    ("colour", "red", "colour"),
    ("worsening/window", 3, "worsening/window"),
]


@pytest.mark.parametrize(
    ("path", "value", "where"), BROKEN, ids=[f"{p}={v!r:.30}" for p, v, _ in BROKEN]
)
def test_a_broken_document_is_refused_at_its_field(path: str, value: Any, where: str) -> None:
    assert loc(where) in locs(changed(path, value))


def test_schedule_phases_out_of_order_are_refused_at_the_later_phase() -> None:
    document = copy.deepcopy(DEFAULT)
    schedule = document["check_in_schedule"]
    schedule[1], schedule[2] = schedule[2], schedule[1]
    assert locs(document) == [("check_in_schedule", 2, "from_day")]


def test_every_broken_rule_is_reported_at_once() -> None:
    document = changed("milestones/1/start_day", 10)
    document["check_in_schedule"][3]["from_day"] = 300
    assert locs(document) == [
        ("milestones", 1, "start_day"),
        ("check_in_schedule", 3, "from_day"),
    ]


def test_a_milestone_may_leave_substantial_unreported_without_a_threshold() -> None:
    document = changed("metrics/pain/substantial_percent", None)
    document["milestones"][2]["report_substantial"] = False
    assert ProtocolRules.model_validate(document).metrics.pain.substantial_percent is None


def test_the_messages_say_why() -> None:
    with pytest.raises(ValidationError) as raised:
        ProtocolRules.model_validate(changed("milestones/1/start_day", 14))
    assert raised.value.errors()[0]["msg"] == "must be after the previous window ends (day 14)"


# --- the publish body ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol_id", ["Default", "with space", "", "x" * 65, "ünï", "a/b", "spine\n"]
)
def test_a_protocol_id_is_a_slug(protocol_id: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ProtocolCreate.model_validate({"id": protocol_id, "name": "A", "rules": DEFAULT})
    assert [e["loc"] for e in raised.value.errors()] == [("id",)]


@pytest.mark.parametrize("protocol_id", ["default", "spine-2027", "clinic_b", "x" * 64, "7"])
def test_slugs_are_taken(protocol_id: str) -> None:
    body = ProtocolCreate.model_validate({"id": protocol_id, "name": "A", "rules": DEFAULT})
    assert body.id == protocol_id
