"""A patient's own baseline (CLINICAL.md §Baseline): the procedure's explicit baseline, else the
per-metric median over logs on days -60..-1. Pure functions, no database."""

import statistics
from typing import Any

import pytest

from api.clinical.baseline import METRICS, Baseline, LogPoint, compute
from tests.default_rules import default_rules

RULES = default_rules()


def test_the_default_window_is_sixty_days_before_the_procedure() -> None:
    assert RULES["baseline"] == {"statistic": "median", "window_days": [-60, -1]}


def test_explicit_baseline_wins_over_logs() -> None:
    logs = [LogPoint(day=-10, pain=9, mobility=1), LogPoint(day=-5, pain=8, mobility=2)]
    result = compute({"pain": 4.0, "leg_pain": None, "mobility": 6.0, "odi": None}, logs, RULES)
    assert result is not None
    assert result.source == "procedure"
    assert result.values == {"pain": 4.0, "leg_pain": None, "mobility": 6.0, "odi": None}
    assert result["pain"] == 4.0
    assert result["odi"] is None


def test_explicit_baseline_without_logs() -> None:
    result = compute({"pain": 7.0}, [], RULES)
    assert result == Baseline(
        values={"pain": 7.0, "leg_pain": None, "mobility": None, "odi": None},
        n_logs=0,
        source="procedure",
    )


def test_explicit_baseline_of_zero_pain_still_wins() -> None:
    result = compute({"pain": 0.0}, [LogPoint(day=-3, pain=6)], RULES)
    assert result is not None
    assert result.source == "procedure"
    assert result["pain"] == 0.0


@pytest.mark.parametrize(
    "explicit", [None, {}, {"pain": None, "leg_pain": None, "mobility": None, "odi": None}]
)
def test_an_empty_explicit_baseline_falls_back_to_logs(explicit: dict[str, Any] | None) -> None:
    result = compute(explicit, [LogPoint(day=-3, pain=6)], RULES)
    assert result is not None
    assert result.source == "logs"
    assert result["pain"] == 6.0


def test_median_over_the_window_only() -> None:
    logs = [
        LogPoint(day=-61, pain=10, mobility=10),  # too early
        LogPoint(day=-60, pain=2, mobility=5),
        LogPoint(day=-30, pain=4, mobility=3),
        LogPoint(day=-1, pain=6, mobility=1),
        LogPoint(day=0, pain=0, mobility=0),  # procedure day: after the window
        LogPoint(day=5, pain=9, mobility=9),
    ]
    result = compute(None, logs, RULES)
    assert result is not None
    assert result.source == "logs"
    assert result.n_logs == 3
    assert result["pain"] == 4.0
    assert result["mobility"] == 3.0
    assert result["leg_pain"] is None
    assert result["odi"] is None


def test_each_metric_skips_its_own_missing_values() -> None:
    logs = [
        LogPoint(day=-20, pain=8, leg_pain=None, mobility=2, odi=40.0),
        LogPoint(day=-15, pain=6, leg_pain=5, mobility=None, odi=None),
        LogPoint(day=-10, pain=7, leg_pain=3, mobility=None, odi=None),
        LogPoint(day=-5, pain=5, leg_pain=None, mobility=None, odi=50.0),
    ]
    result = compute(None, logs, RULES)
    assert result is not None
    assert result.n_logs == 4  # every window log counts, whatever it reports
    assert result["pain"] == 6.5  # median of 5, 6, 7, 8
    assert result["leg_pain"] == 4.0  # median of 3, 5
    assert result["mobility"] == 2.0  # only one value
    assert result["odi"] == 45.0  # median of 40, 50


def test_even_count_is_the_mean_of_the_middle_two() -> None:
    pains = [2, 8, 3, 5]
    logs = [LogPoint(day=-d, pain=p) for d, p in zip((40, 30, 20, 10), pains, strict=True)]
    result = compute(None, logs, RULES)
    assert result is not None
    assert result["pain"] == 4.0
    assert result["pain"] == statistics.median(pains)


def test_odd_count_is_the_middle_value() -> None:
    logs = [LogPoint(day=-d, pain=p) for d, p in ((3, 9), (2, 1), (1, 4))]
    result = compute(None, logs, RULES)
    assert result is not None
    assert result["pain"] == 4.0
    assert result.n_logs == 3


@pytest.mark.parametrize(
    "logs",
    [
        [],
        [LogPoint(day=-61, pain=5), LogPoint(day=0, pain=5)],
        [LogPoint(day=-365, pain=5), LogPoint(day=1, pain=5), LogPoint(day=30, pain=5)],
    ],
)
def test_no_logs_in_the_window_means_no_baseline(logs: list[LogPoint]) -> None:
    assert compute(None, logs, RULES) is None


def test_values_are_floats_and_cover_every_metric() -> None:
    result = compute(None, [LogPoint(day=-2, pain=3, leg_pain=2, mobility=7, odi=22.2)], RULES)
    assert result is not None
    assert set(result.values) == set(METRICS)
    assert all(isinstance(v, float) for v in result.values.values())
    assert result.values == {"pain": 3.0, "leg_pain": 2.0, "mobility": 7.0, "odi": 22.2}


def test_the_window_is_read_from_the_rules() -> None:
    narrow = RULES | {"baseline": {"statistic": "median", "window_days": [-7, -1]}}
    logs = [LogPoint(day=-30, pain=9), LogPoint(day=-7, pain=3), LogPoint(day=-2, pain=5)]
    result = compute(None, logs, narrow)
    assert result is not None
    assert result.n_logs == 2
    assert result["pain"] == 4.0
