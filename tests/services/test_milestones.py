"""The milestone engine (CLINICAL.md §Milestones, §Metrics and thresholds): window states, the
immediate findings, the MCID rules of the later windows, observed values and the current
milestone. Pure functions over the default protocol's rules, no database."""

import copy
import re
from datetime import date
from statistics import median
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.clinical import milestones
from api.clinical.baseline import Baseline
from api.clinical.milestones import ClockLog, Finding, MilestoneResult
from tests.default_rules import default_rules

RULES = default_rules()
WINDOWS = {"immediate": (0, 14), "short_term": (30, 90), "long_term": (180, 365)}
LATER = ["short_term", "long_term"]


# --- helpers -----------------------------------------------------------------------------------


def baseline(
    pain: float | None = 7.0,
    mobility: float | None = None,
    *,
    odi: float | None = None,
    source: str = "logs",
) -> Baseline:
    return Baseline(
        values={"pain": pain, "leg_pain": None, "mobility": mobility, "odi": odi},
        n_logs=3 if source == "logs" else 0,
        source=source,
    )


def log(day: int, pain: float = 5, **fields: Any) -> ClockLog:
    for name in ("side_effects", "red_flags"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return ClockLog(day=day, pain=pain, **fields)


def evaluate(
    logs: list[ClockLog], base: Baseline | None, day_now: int
) -> dict[str, MilestoneResult]:
    results = milestones.evaluate(rules=RULES, logs=logs, baseline=base, day_now=day_now)
    return {r.key: r for r in results}


def one(key: str, logs: list[ClockLog], base: Baseline | None, day_now: int) -> MilestoneResult:
    return evaluate(logs, base, day_now)[key]


def codes(result: MilestoneResult) -> list[str]:
    return [f.code for f in result.findings]


def open_day(key: str) -> int:
    """A day_now inside the window, late enough that the window holds a few logs."""
    start, end = WINDOWS[key]
    return (start + end) // 2


def closed_day(key: str) -> int:
    return WINDOWS[key][1] + 1


def days_in(key: str, n: int) -> list[int]:
    start, _ = WINDOWS[key]
    return [start + i for i in range(n)]


def logs_in(key: str, *pains: float, **fields: Any) -> list[ClockLog]:
    return [
        log(day, pain, **fields) for day, pain in zip(days_in(key, len(pains)), pains, strict=True)
    ]


# --- the rules are data ------------------------------------------------------------------------


def test_the_default_protocol_has_the_three_windows_of_the_article() -> None:
    assert [(m["key"], m["start_day"], m["end_day"]) for m in RULES["milestones"]] == [
        (key, *days) for key, days in WINDOWS.items()
    ]


def test_every_milestone_is_reported_in_protocol_order() -> None:
    results = milestones.evaluate(rules=RULES, logs=[], baseline=None, day_now=0)
    assert [r.key for r in results] == ["immediate", "short_term", "long_term"]
    assert [(r.start_day, r.end_day) for r in results] == list(WINDOWS.values())
    assert all(r.label and r.expected for r in results)


# --- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(WINDOWS))
def test_state_is_upcoming_before_the_start_day(key: str) -> None:
    start, _ = WINDOWS[key]
    assert one(key, [], baseline(), start - 1).state == "upcoming"


@pytest.mark.parametrize("key", list(WINDOWS))
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_state_is_open_from_start_to_end_inclusive(key: str, where: str) -> None:
    start, end = WINDOWS[key]
    day_now = {"start": start, "middle": (start + end) // 2, "end": end}[where]
    assert one(key, [], baseline(), day_now).state == "open"


@pytest.mark.parametrize("key", list(WINDOWS))
def test_state_is_closed_after_the_end_day(key: str) -> None:
    _, end = WINDOWS[key]
    assert one(key, [], baseline(), end + 1).state == "closed"
    assert one(key, [], baseline(), end + 400).state == "closed"


@pytest.mark.parametrize("key", list(WINDOWS))
def test_an_upcoming_milestone_is_pending(key: str) -> None:
    start, _ = WINDOWS[key]
    result = one(key, [log(-5, 7)], baseline(), start - 1)
    assert result.status == "pending"
    assert result.substantial is None


# --- immediate: status without findings ---------------------------------------------------------


def test_immediate_open_without_logs_is_pending() -> None:
    result = one("immediate", [], baseline(), 3)
    assert (result.state, result.status) == ("open", "pending")
    assert result.findings == []


def test_immediate_open_ignores_pre_procedure_logs() -> None:
    assert one("immediate", [log(-3, 7), log(-1, 7)], baseline(), 2).status == "pending"


def test_immediate_open_with_logs_is_on_track() -> None:
    result = one("immediate", [log(0, 6), log(2, 5)], baseline(), 3)
    assert (result.state, result.status) == ("open", "on_track")


def test_immediate_closed_with_one_log_is_met() -> None:
    result = one("immediate", [log(9, 6)], baseline(), 15)
    assert (result.state, result.status) == ("closed", "met")


def test_immediate_closed_without_logs_is_insufficient_data() -> None:
    result = one("immediate", [log(-2, 7), log(20, 5)], baseline(), 25)
    assert (result.state, result.status) == ("closed", "insufficient_data")


def test_immediate_needs_no_baseline() -> None:
    assert one("immediate", [log(1, 9)], None, 3).status == "on_track"
    assert one("immediate", [log(1, 9)], None, 15).status == "met"


def test_immediate_never_reports_substantial() -> None:
    assert one("immediate", [log(1, 1), log(2, 1)], baseline(8), 20).substantial is None


# --- immediate: findings -----------------------------------------------------------------------


@pytest.mark.parametrize("day", [0, 7, 14])
def test_red_flag_in_days_0_to_14_is_a_finding(day: int) -> None:
    result = one("immediate", [log(day, 5, red_flags=["fever"])], baseline(), 14)
    assert codes(result) == ["red_flag"]
    assert "fever" in result.findings[0].message


def test_red_flag_finding_names_every_flag_once() -> None:
    logs = [
        log(1, 5, red_flags=["new_weakness", "fever"]),
        log(2, 5, red_flags=["fever"]),
    ]
    [finding] = one("immediate", logs, baseline(), 3).findings
    assert finding.code == "red_flag"
    assert "fever" in finding.message
    assert "new_weakness" in finding.message
    assert finding.message.count("fever") == 1


@pytest.mark.parametrize("day", [-1, 15])
def test_red_flag_outside_days_0_to_14_is_not_an_immediate_finding(day: int) -> None:
    # The window closed with no log of its own: that is its only finding.
    result = one("immediate", [log(day, 5, red_flags=["fever"])], baseline(), 20)
    assert codes(result) == ["too_few_logs"]


def test_two_logs_on_days_7_to_14_with_pain_at_baseline_plus_2_are_a_pain_flare() -> None:
    result = one("immediate", [log(7, 7), log(14, 8)], baseline(5), 14)
    assert codes(result) == ["pain_flare"]


def test_pain_flare_counts_logs_anywhere_in_days_7_to_14() -> None:
    result = one("immediate", [log(9, 9), log(11, 9)], baseline(5), 12)
    assert codes(result) == ["pain_flare"]


def test_one_flare_log_is_not_a_pain_flare() -> None:
    result = one("immediate", [log(8, 9), log(10, 5)], baseline(5), 12)
    assert codes(result) == []


def test_a_flare_on_day_6_does_not_count() -> None:
    result = one("immediate", [log(6, 9), log(10, 9)], baseline(5), 12)
    assert codes(result) == []


def test_pain_one_point_above_baseline_is_no_flare() -> None:
    result = one("immediate", [log(8, 6), log(10, 6), log(12, 6)], baseline(5), 13)
    assert codes(result) == []


def test_no_baseline_means_no_pain_flare() -> None:
    result = one("immediate", [log(8, 10), log(10, 10)], None, 12)
    assert codes(result) == []


def test_a_baseline_without_pain_means_no_pain_flare() -> None:
    result = one("immediate", [log(8, 10), log(10, 10)], baseline(None, 4), 12)
    assert codes(result) == []


@pytest.mark.parametrize("effect", ["injection_site_pain", "swelling", "redness"])
@pytest.mark.parametrize("day", [8, 14])
def test_soreness_on_day_8_or_later_is_soreness_persisting(effect: str, day: int) -> None:
    result = one("immediate", [log(day, 4, side_effects=[effect])], baseline(), 14)
    assert codes(result) == ["soreness_persisting"]


@pytest.mark.parametrize("effect", ["injection_site_pain", "swelling", "redness"])
def test_soreness_on_day_7_is_expected(effect: str) -> None:
    logs = [log(day, 4, side_effects=[effect]) for day in range(8)]
    result = one("immediate", logs, baseline(), 10)
    assert codes(result) == []
    assert result.status == "on_track"


@pytest.mark.parametrize("effect", ["fatigue", "headache"])
def test_other_side_effects_on_day_10_are_not_soreness_persisting(effect: str) -> None:
    result = one("immediate", [log(10, 4, side_effects=[effect])], baseline(), 10)
    assert codes(result) == []


def test_soreness_after_day_14_is_outside_the_window() -> None:
    result = one("immediate", [log(15, 4, side_effects=["swelling"])], baseline(), 20)
    assert codes(result) == ["too_few_logs"]


def test_several_findings_are_all_reported() -> None:
    logs = [log(8, 9, side_effects=["redness"]), log(9, 9, red_flags=["fever"])]
    assert codes(one("immediate", logs, baseline(5), 10)) == [
        "red_flag",
        "pain_flare",
        "soreness_persisting",
    ]


@pytest.mark.parametrize(
    "logs",
    [
        [log(3, 5, red_flags=["saddle_numbness"])],
        [log(7, 9), log(8, 9)],
        [log(9, 4, side_effects=["swelling"])],
    ],
    ids=["red_flag", "pain_flare", "soreness_persisting"],
)
def test_any_finding_makes_immediate_behind_while_open(logs: list[ClockLog]) -> None:
    result = one("immediate", logs, baseline(5), 14)
    assert result.findings
    assert (result.state, result.status) == ("open", "behind")


@pytest.mark.parametrize(
    "logs",
    [
        [log(3, 5, red_flags=["saddle_numbness"])],
        [log(7, 9), log(8, 9)],
        [log(9, 4, side_effects=["swelling"])],
    ],
    ids=["red_flag", "pain_flare", "soreness_persisting"],
)
def test_any_finding_makes_immediate_not_met_when_closed(logs: list[ClockLog]) -> None:
    result = one("immediate", logs, baseline(5), 15)
    assert result.findings
    assert (result.state, result.status) == ("closed", "not_met")


def test_findings_only_count_logs_up_to_day_now() -> None:
    logs = [log(2, 5), log(9, 5, red_flags=["fever"])]
    result = one("immediate", logs, baseline(), 5)
    assert codes(result) == []
    assert result.status == "on_track"


# --- short_term and long_term: status ----------------------------------------------------------


@pytest.mark.parametrize("key", LATER)
def test_no_baseline_is_insufficient_data_while_open(key: str) -> None:
    result = one(key, logs_in(key, 2, 2, 2), None, open_day(key))
    assert (result.state, result.status) == ("open", "insufficient_data")
    assert result.substantial is None


@pytest.mark.parametrize("key", LATER)
def test_no_baseline_is_insufficient_data_when_closed(key: str) -> None:
    result = one(key, logs_in(key, 2, 2, 2), None, closed_day(key))
    assert (result.state, result.status) == ("closed", "insufficient_data")
    assert result.substantial is None


@pytest.mark.parametrize("key", LATER)
def test_no_baseline_is_pending_while_upcoming(key: str) -> None:
    start, _ = WINDOWS[key]
    result = one(key, [], None, start - 1)
    assert (result.state, result.status) == ("upcoming", "pending")


@pytest.mark.parametrize("key", LATER)
def test_a_baseline_without_pain_is_insufficient_data(key: str) -> None:
    result = one(key, logs_in(key, 2, 2, mobility=8), baseline(None, 3), open_day(key))
    assert result.status == "insufficient_data"


@pytest.mark.parametrize("key", LATER)
def test_open_without_logs_in_the_window_is_pending(key: str) -> None:
    start, _ = WINDOWS[key]
    logs = [log(-5, 7), log(3, 2), log(start - 1, 2)]
    result = one(key, logs, baseline(7), open_day(key))
    assert (result.state, result.status) == ("open", "pending")
    assert result.observed.n_logs == 0
    assert result.observed.pain is None
    assert result.substantial is None


@pytest.mark.parametrize("key", LATER)
def test_a_pain_drop_of_exactly_2_points_is_improved(key: str) -> None:
    # 8 -> 6 is 25 %: only the points rule makes it an improvement.
    result = one(key, logs_in(key, 6), baseline(8), open_day(key))
    assert result.observed.pain_change == -2.0
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_a_pain_drop_of_30_percent_with_less_than_2_points_is_improved(key: str) -> None:
    # 5 -> 3.5 (median of 3 and 4) is 1.5 points, exactly 30 %.
    result = one(key, logs_in(key, 3, 4), baseline(5), open_day(key))
    assert result.observed.pain == 3.5
    assert result.observed.pain_change == -1.5
    assert result.observed.pain_change_pct == -30.0
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_a_pain_drop_of_1_point_from_7_is_behind(key: str) -> None:
    result = one(key, logs_in(key, 6), baseline(7), open_day(key))
    assert result.observed.pain_change_pct == -14.3
    assert result.status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_a_drop_below_both_thresholds_is_behind(key: str) -> None:
    # 8 -> 6.5: 1.5 points and 18.75 %.
    result = one(key, logs_in(key, 6, 7), baseline(8), open_day(key))
    assert result.observed.pain == 6.5
    assert result.status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_unchanged_or_worse_pain_is_behind(key: str) -> None:
    assert one(key, logs_in(key, 7), baseline(7), open_day(key)).status == "behind"
    assert one(key, logs_in(key, 10), baseline(7), open_day(key)).status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_a_baseline_of_zero_turns_the_percent_rule_off(key: str) -> None:
    result = one(key, logs_in(key, 0, 0), baseline(0), open_day(key))
    assert result.observed.pain_change == 0.0
    assert result.observed.pain_change_pct is None
    assert result.status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_a_baseline_of_one_can_only_improve_by_percent(key: str) -> None:
    # 1 -> 0 is 1 point but 100 %: the percent rule applies to any baseline above 0.
    assert one(key, logs_in(key, 0), baseline(1), open_day(key)).status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_mobility_worse_by_2_points_with_pain_improved_is_behind_while_open(key: str) -> None:
    result = one(key, logs_in(key, 3, 3, mobility=3), baseline(7, 5), open_day(key))
    assert result.observed.mobility_change == -2.0
    assert result.status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_mobility_worse_by_2_points_with_pain_improved_is_not_met_when_closed(key: str) -> None:
    result = one(key, logs_in(key, 3, 3, mobility=3), baseline(7, 5), closed_day(key))
    assert result.status == "not_met"


@pytest.mark.parametrize("key", LATER)
def test_mobility_worse_by_1_point_is_not_worse(key: str) -> None:
    result = one(key, logs_in(key, 3, 3, mobility=4), baseline(7, 5), open_day(key))
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_mobility_better_does_not_rescue_pain_that_did_not_improve(key: str) -> None:
    result = one(key, logs_in(key, 7, 7, mobility=9), baseline(7, 3), open_day(key))
    assert result.status == "behind"


@pytest.mark.parametrize("key", LATER)
def test_mobility_missing_from_the_logs_is_not_considered(key: str) -> None:
    result = one(key, logs_in(key, 3, 3), baseline(7, 8), open_day(key))
    assert result.observed.mobility is None
    assert result.observed.mobility_change is None
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_mobility_missing_from_the_baseline_is_not_considered(key: str) -> None:
    result = one(key, logs_in(key, 3, 3, mobility=0), baseline(7, None), open_day(key))
    assert result.observed.mobility == 0.0
    assert result.observed.mobility_change is None
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_closed_with_one_log_is_insufficient_data(key: str) -> None:
    result = one(key, logs_in(key, 2), baseline(8), closed_day(key))
    assert (result.state, result.status) == ("closed", "insufficient_data")
    assert result.observed.n_logs == 1


@pytest.mark.parametrize("key", LATER)
def test_closed_without_logs_is_insufficient_data(key: str) -> None:
    result = one(key, [], baseline(8), closed_day(key))
    assert result.status == "insufficient_data"


@pytest.mark.parametrize("key", LATER)
def test_closed_with_two_improved_logs_is_met(key: str) -> None:
    result = one(key, logs_in(key, 4, 5), baseline(7), closed_day(key))
    assert (result.state, result.status) == ("closed", "met")


@pytest.mark.parametrize("key", LATER)
def test_closed_with_two_logs_not_improved_is_not_met(key: str) -> None:
    result = one(key, logs_in(key, 6, 7, 6), baseline(7), closed_day(key))
    assert (result.state, result.status) == ("closed", "not_met")


@pytest.mark.parametrize("key", LATER)
def test_open_with_one_log_is_already_judged(key: str) -> None:
    assert one(key, logs_in(key, 4), baseline(7), WINDOWS[key][0]).status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_the_observed_value_is_the_median_of_the_windows_logs(key: str) -> None:
    # Pains 2, 9, 3: the median is 3 (a mean would be 4.67, still improved from 7 but not 3).
    result = one(key, logs_in(key, 2, 9, 3), baseline(7), open_day(key))
    assert result.observed.pain == 3.0
    assert result.observed.n_logs == 3
    assert result.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_the_median_is_robust_to_one_bad_day(key: str) -> None:
    # Pains 4, 4, 10 from 7: the median 4 is improved; a mean (6) would not be.
    assert one(key, logs_in(key, 4, 10, 4), baseline(7), closed_day(key)).status == "met"


@pytest.mark.parametrize("key", LATER)
def test_only_the_windows_own_days_count(key: str) -> None:
    start, end = WINDOWS[key]
    logs = [log(start - 1, 10), log(start, 3), log(end, 3), log(end + 1, 10)]
    result = one(key, logs, baseline(7), end + 5)
    assert result.observed.n_logs == 2
    assert result.observed.pain == 3.0
    assert result.status == "met"


# --- substantial (long_term) and red flags in the later windows --------------------------------


def test_long_term_pain_drop_of_50_percent_is_substantial() -> None:
    result = one("long_term", logs_in("long_term", 4, 4), baseline(8), 200)
    assert result.status == "on_track"
    assert result.substantial is True


def test_long_term_pain_drop_below_50_percent_is_not_substantial() -> None:
    # 8 -> 4.5 is 43.75 %: improved, not substantial.
    result = one("long_term", logs_in("long_term", 4, 5), baseline(8), 200)
    assert result.observed.pain == 4.5
    assert result.status == "on_track"
    assert result.substantial is False


@pytest.mark.parametrize(
    ("logs", "day_now", "status", "substantial"),
    [
        ([4, 4], 366, "met", True),
        ([4, 5], 366, "met", False),
        ([7, 8], 366, "not_met", False),
        ([7], 200, "behind", False),
    ],
)
def test_long_term_substantial_is_reported_for_every_judged_status(
    logs: list[float], day_now: int, status: str, substantial: bool
) -> None:
    result = one("long_term", logs_in("long_term", *logs), baseline(8), day_now)
    assert result.status == status
    assert result.substantial is substantial


def test_long_term_substantial_even_when_mobility_makes_it_behind() -> None:
    result = one("long_term", logs_in("long_term", 2, 2, mobility=1), baseline(8, 5), 200)
    assert result.status == "behind"
    assert result.substantial is True


def test_long_term_substantial_is_null_while_pending() -> None:
    result = one("long_term", [], baseline(8), 200)
    assert result.status == "pending"
    assert result.substantial is None


def test_long_term_substantial_is_null_with_insufficient_data() -> None:
    closed = one("long_term", logs_in("long_term", 1), baseline(8), 366)
    assert closed.status == "insufficient_data"
    assert closed.substantial is None
    no_baseline = one("long_term", logs_in("long_term", 1, 1), None, 200)
    assert no_baseline.status == "insufficient_data"
    assert no_baseline.substantial is None


def test_short_term_never_reports_substantial() -> None:
    result = one("short_term", logs_in("short_term", 1, 1), baseline(8), 91)
    assert result.status == "met"
    assert result.substantial is None


@pytest.mark.parametrize("key", LATER)
def test_red_flags_are_reported_in_later_windows_without_changing_their_status(key: str) -> None:
    logs = logs_in(key, 3, 3)
    flagged = [*logs, log(WINDOWS[key][0] + 5, 3, red_flags=["bladder_bowel_change"])]
    plain = one(key, logs, baseline(7), open_day(key))
    result = one(key, flagged, baseline(7), open_day(key))
    assert plain.findings == []
    assert codes(result) == ["red_flag"]
    assert "bladder_bowel_change" in result.findings[0].message
    assert result.status == plain.status == "on_track"


@pytest.mark.parametrize("key", LATER)
def test_later_windows_report_no_pain_flare_or_soreness(key: str) -> None:
    logs = logs_in(key, 10, 10, side_effects=["swelling"])
    # Behind because pain did not improve, which is said; a flare or soreness is not.
    assert codes(one(key, logs, baseline(5), open_day(key))) == ["pain_not_improved"]


# --- findings: why a milestone is behind, not met or cannot be judged ---------------------------


def messages(result: MilestoneResult) -> dict[str, str]:
    return {f.code: f.message for f in result.findings}


def test_the_immediate_findings_say_what_was_seen_and_on_which_days() -> None:
    logs = [
        log(3, 4, red_flags=["fever"]),
        log(8, 9, side_effects=["swelling", "redness"]),
        log(9, 9, red_flags=["new_weakness", "fever"]),
        log(11, 10, side_effects=["swelling"]),
    ]
    assert messages(one("immediate", logs, baseline(7), 12)) == {
        "red_flag": "red flags reported: fever (days 3, 9); new_weakness (day 9)",
        "pain_flare": "pain 9, 9, 10 on days 8, 9, 11 vs baseline 7.0; a flare is pain at least "
        "2 points above baseline (9.0 or more) in 2 check-ins on days 7-14",
        "soreness_persisting": "injection-site redness, swelling reported on days 8, 11 "
        "(expected to settle by day 7)",
    }


def test_the_red_flag_finding_is_for_the_clinician_and_gives_no_advice() -> None:
    [finding] = one("immediate", [log(3, 5, red_flags=["fever"])], baseline(), 5).findings
    assert finding == Finding("red_flag", "red flags reported: fever (day 3)")


def test_a_pain_flare_names_only_the_check_ins_that_flared() -> None:
    logs = [log(6, 9), log(9, 9), log(10, 8), log(10, 9)]
    assert messages(one("immediate", logs, baseline(7), 12)) == {
        "pain_flare": "pain 9, 9 on days 9, 10 vs baseline 7.0; a flare is pain at least "
        "2 points above baseline (9.0 or more) in 2 check-ins on days 7-14"
    }


def test_soreness_persisting_names_the_days_it_was_still_reported() -> None:
    logs = [log(5, 4, side_effects=["swelling"]), log(9, 4, side_effects=["swelling"])]
    logs += [log(10, 4, side_effects=["fatigue"]), log(11, 4, side_effects=["swelling"])]
    assert messages(one("immediate", logs, baseline(), 12)) == {
        "soreness_persisting": "injection-site swelling reported on days 9, 11 "
        "(expected to settle by day 7)"
    }


def test_another_protocol_words_its_own_immediate_rules() -> None:
    rules = copy.deepcopy(RULES)
    rules["milestones"][0] |= {
        "pain_flare": {"from_day": 5, "to_day": 12, "min_logs": 3, "rise_points": 1.5},
        "soreness_persisting": {"from_day": 6, "side_effects": ["redness"]},
    }
    logs = [log(5, 6), log(6, 7, side_effects=["redness"]), log(12, 6.5)]
    [immediate, *_] = milestones.evaluate(
        rules=rules, logs=logs, baseline=baseline(4.5), day_now=13
    )
    assert messages(immediate) == {
        "pain_flare": "pain 6, 7, 6.5 on days 5, 6, 12 vs baseline 4.5; a flare is pain at least "
        "1.5 points above baseline (6.0 or more) in 3 check-ins on days 5-12",
        "soreness_persisting": "injection-site redness reported on day 6 "
        "(expected to settle by day 5)",
    }


@pytest.mark.parametrize("key", LATER)
def test_pain_unchanged_from_6_says_the_numbers_and_the_target(key: str) -> None:
    # 30 % of 6 is 1.8 points, less than 2: the percent rule sets the target, 4.2.
    result = one(key, logs_in(key, 6, 6, 6), baseline(6), closed_day(key))
    assert result.status == "not_met"
    assert result.findings == [
        Finding(
            "pain_not_improved",
            "pain 6.0 vs baseline 6.0; improved means a drop of 2 points or 30 % (to 4.2 or less)",
        )
    ]


def test_a_high_baseline_takes_its_target_from_the_points_rule() -> None:
    # 30 % of 8 is 2.4 points, more than 2: the points rule sets the target, 6.0.
    result = one("short_term", logs_in("short_term", 7, 7), baseline(8), open_day("short_term"))
    assert result.status == "behind"
    assert messages(result) == {
        "pain_not_improved": "pain 7.0 vs baseline 8.0; improved means a drop of 2 points or "
        "30 % (to 6.0 or less)"
    }


def test_the_target_is_rounded_down_so_that_it_still_counts() -> None:
    # 30 % of 5.5 is 1.65: 3.85 would show as 3.9, which is not improved; 3.8 is.
    result = one("short_term", logs_in("short_term", 5, 5), baseline(5.5), 40)
    assert messages(result)["pain_not_improved"].endswith("(to 3.8 or less)")


def test_a_baseline_of_zero_has_no_lower_target() -> None:
    result = one("short_term", logs_in("short_term", 0), baseline(0), 40)
    assert messages(result) == {
        "pain_not_improved": "pain 0.0 vs baseline 0.0; improved means a drop of 2 points or "
        "30 % (to 0.0 or less)"
    }


def test_another_protocol_words_its_own_thresholds() -> None:
    rules = copy.deepcopy(RULES)
    rules["metrics"]["pain"] |= {"improved_points": 3, "improved_percent": 40}
    rules["metrics"]["mobility"] |= {"worse_points": 1.5}
    logs = logs_in("short_term", 5, 5, mobility=3)
    [_, short_term, _] = milestones.evaluate(
        rules=rules, logs=logs, baseline=baseline(7, 4.5), day_now=40
    )
    # 40 % of 7 is 2.8 points, less than 3: the target is 4.2.
    assert messages(short_term) == {
        "pain_not_improved": "pain 5.0 vs baseline 7.0; improved means a drop of 3 points or "
        "40 % (to 4.2 or less)",
        "mobility_worse": "mobility 3.0 vs baseline 4.5; worse means a drop of 1.5 points "
        "(to 3.0 or less)",
    }
    rules["baseline"]["window_days"] = [-90, -1]
    rules["milestones"][2]["min_logs_when_closed"] = 3
    [*_, long_term] = milestones.evaluate(rules=rules, logs=[], baseline=None, day_now=400)
    assert messages(long_term) == {
        "no_baseline": "no baseline pain: needs check-ins in the 90 days before the procedure "
        "(days -90 to -1) or an explicit baseline on the procedure",
        "too_few_logs": "0 logs in days 180-365; at least 3 needed",
    }


@pytest.mark.parametrize("key", LATER)
def test_mobility_worse_says_the_numbers_and_the_threshold(key: str) -> None:
    result = one(key, logs_in(key, 3, 3, mobility=3), baseline(7, 5), closed_day(key))
    assert result.status == "not_met"
    assert result.findings == [
        Finding(
            "mobility_worse",
            "mobility 3.0 vs baseline 5.0; worse means a drop of 2 points (to 3.0 or less)",
        )
    ]


def test_pain_not_improved_and_mobility_worse_are_both_said() -> None:
    result = one("long_term", logs_in("long_term", 7, 7, mobility=2), baseline(7, 5), 200)
    assert result.status == "behind"
    assert codes(result) == ["pain_not_improved", "mobility_worse"]


def test_mobility_worse_by_1_point_is_not_a_finding() -> None:
    result = one("short_term", logs_in("short_term", 7, mobility=4), baseline(7, 5), 40)
    assert codes(result) == ["pain_not_improved"]


def test_red_flags_come_first_in_a_milestone_that_is_behind() -> None:
    logs = [*logs_in("short_term", 7), log(33, 7, red_flags=["fever"])]
    assert codes(one("short_term", logs, baseline(7), 40)) == ["red_flag", "pain_not_improved"]


@pytest.mark.parametrize(("n", "said"), [(0, "0 logs"), (1, "1 log")])
def test_a_closed_window_with_too_few_logs_says_how_many(n: int, said: str) -> None:
    result = one("short_term", logs_in("short_term", *[3] * n), baseline(7), 91)
    assert result.status == "insufficient_data"
    assert result.findings == [Finding("too_few_logs", f"{said} in days 30-90; at least 2 needed")]


def test_immediate_closed_without_a_log_needs_one() -> None:
    result = one("immediate", [], baseline(), 15)
    assert result.status == "insufficient_data"
    assert result.findings == [Finding("too_few_logs", "0 logs in days 0-14; at least 1 needed")]


NO_BASELINE = (
    "no baseline pain: needs check-ins in the 60 days before the procedure (days -60 to -1) "
    "or an explicit baseline on the procedure"
)


@pytest.mark.parametrize("base", [None, baseline(None, 4)], ids=["none", "no_pain"])
@pytest.mark.parametrize("key", LATER)
def test_no_baseline_pain_says_where_one_comes_from(key: str, base: Baseline | None) -> None:
    result = one(key, logs_in(key, 2, 2, 2), base, open_day(key))
    assert result.status == "insufficient_data"
    assert result.findings == [Finding("no_baseline", NO_BASELINE)]


@pytest.mark.parametrize("key", LATER)
def test_a_closed_window_without_baseline_or_logs_says_both(key: str) -> None:
    result = one(key, logs_in(key, 2), None, closed_day(key))
    assert codes(result) == ["no_baseline", "too_few_logs"]


@pytest.mark.parametrize("key", LATER)
def test_a_closed_window_with_enough_logs_and_no_baseline_says_only_that(key: str) -> None:
    assert codes(one(key, logs_in(key, 2, 2), None, closed_day(key))) == ["no_baseline"]


@pytest.mark.parametrize("status", ["pending", "on_track", "met"])
def test_pending_on_track_and_met_milestones_need_no_explanation(status: str) -> None:
    logs = {"pending": [], "on_track": logs_in("short_term", 3), "met": logs_in("short_term", 3, 3)}
    day_now = 91 if status == "met" else 40
    result = one("short_term", logs[status], baseline(7, 5), day_now)
    assert result.status == status
    assert result.findings == []


# --- observed values ---------------------------------------------------------------------------


def test_pain_change_is_observed_minus_baseline() -> None:
    observed = one("short_term", logs_in("short_term", 3), baseline(7), 40).observed
    assert observed.pain == 3.0
    assert observed.pain_change == -4.0
    assert observed.pain_change_pct == -57.1


def test_a_rise_in_pain_is_a_positive_change() -> None:
    observed = one("short_term", logs_in("short_term", 9), baseline(6), 40).observed
    assert observed.pain_change == 3.0
    assert observed.pain_change_pct == 50.0


def test_pain_change_pct_is_rounded_to_one_decimal() -> None:
    observed = one("short_term", logs_in("short_term", 6, 7), baseline(3), 40).observed
    # (6.5 - 3) / 3 = 116.666... %
    assert observed.pain_change_pct == 116.7


def test_pain_change_pct_is_null_when_the_baseline_is_zero() -> None:
    observed = one("short_term", logs_in("short_term", 2), baseline(0), 40).observed
    assert observed.pain_change == 2.0
    assert observed.pain_change_pct is None


def test_changes_are_null_without_a_baseline() -> None:
    observed = one("immediate", [log(1, 6, mobility=4)], None, 3).observed
    assert observed.pain == 6.0
    assert observed.mobility == 4.0
    assert observed.pain_change is None
    assert observed.pain_change_pct is None
    assert observed.mobility_change is None


def test_mobility_and_odi_changes_are_observed_minus_baseline() -> None:
    logs = [log(30, 4, mobility=6, odi=30.0), log(31, 4, mobility=7, odi=40.0)]
    observed = one("short_term", logs, baseline(7, 3, odi=50.0), 40).observed
    assert (observed.mobility, observed.mobility_change) == (6.5, 3.5)
    assert (observed.odi, observed.odi_change) == (35.0, -15.0)


def test_metrics_missing_from_some_logs_take_the_median_of_the_others() -> None:
    logs = [log(30, 4, mobility=6), log(31, 4), log(32, 4, mobility=8)]
    observed = one("short_term", logs, baseline(7, 5), 40).observed
    assert observed.n_logs == 3
    assert observed.mobility == 7.0


def test_logs_after_day_now_are_not_counted() -> None:
    logs = [log(35, 3), log(50, 9), log(60, 9)]
    result = one("short_term", logs, baseline(7), 40)
    assert result.observed.n_logs == 1
    assert result.observed.pain == 3.0
    assert result.status == "on_track"


def test_a_log_on_day_now_is_counted() -> None:
    result = one("short_term", [log(35, 3), log(40, 9)], baseline(7), 40)
    assert result.observed.n_logs == 2
    assert result.observed.pain == 6.0


# --- current milestone and progress_status ------------------------------------------------------


def _current(day_now: int, logs: list[ClockLog] | None = None) -> tuple[str | None, str]:
    results = milestones.evaluate(
        rules=RULES, logs=logs or [], baseline=baseline(), day_now=day_now
    )
    current = milestones.current_milestone(results)
    return (current.key if current else None), milestones.progress_status(results)


def test_before_day_0_there_is_no_current_milestone_and_status_is_pending() -> None:
    assert _current(-1, [log(-5, 7)]) == (None, "pending")


def test_on_day_0_the_current_milestone_is_immediate() -> None:
    assert _current(0) == ("immediate", "pending")


def test_between_windows_the_last_started_milestone_stays_current() -> None:
    # Day 20: immediate closed, short_term upcoming.
    assert _current(20, [log(3, 6)]) == ("immediate", "met")
    assert _current(29) == ("immediate", "insufficient_data")


def test_day_40_the_current_milestone_is_short_term() -> None:
    assert _current(40, [log(3, 6), log(35, 3)]) == ("short_term", "on_track")


def test_day_120_short_term_stays_current_after_it_closes() -> None:
    assert _current(120, [log(35, 3), log(49, 7)]) == ("short_term", "met")


def test_day_200_the_current_milestone_is_long_term() -> None:
    assert _current(200, [log(35, 3), log(190, 7)]) == ("long_term", "behind")


def test_long_term_stays_current_after_day_365() -> None:
    assert _current(800) == ("long_term", "insufficient_data")


# --- generated histories: statuses follow CLINICAL.md, and every shortfall says why ------------

SORENESS = ("injection_site_pain", "swelling", "redness", "fatigue")
FLAGS = ("fever", "new_weakness")
SHORTFALLS = ("behind", "not_met", "insufficient_data")
scores = st.integers(0, 20).map(lambda half: half / 2)
# Days in and around the windows, scores on the 0-10 scale in halves; most logs are quiet.
clock_logs = st.builds(
    ClockLog,
    day=st.one_of([st.integers(*WINDOWS[key]) for key in WINDOWS] + [st.integers(-70, 400)]),
    pain=scores,
    mobility=st.none() | scores,
    side_effects=st.sampled_from(
        [(), (), (), ("fatigue",), ("swelling",), ("redness", "swelling")]
    ),
    red_flags=st.sampled_from([(), (), (), (), (), ("fever",), ("new_weakness", "fever")]),
)
baselines = st.one_of(
    st.none(),
    st.builds(baseline, scores, st.none() | scores),
    st.builds(baseline, scores, scores),
    st.builds(baseline, st.none(), scores),
)
day_nows = st.one_of(st.integers(-5, 420), st.sampled_from([10, 15, 40, 91, 200, 366]))
histories = st.tuples(st.lists(clock_logs, max_size=30), baselines, day_nows)


def _spec_improved(base: float, observed: float) -> bool:
    """CLINICAL.md: pain drops by 2 points or by 30 % of a baseline above 0."""
    drop = base - observed
    return drop >= 2 or (base > 0 and drop / base >= 0.3)


def _spec_immediate(window: list[ClockLog], base_pain: float | None, closed: bool) -> str:
    flare = [
        g for g in window if 7 <= g.day <= 14 and base_pain is not None and g.pain >= base_pain + 2
    ]
    sore = [g for g in window if g.day >= 8 and set(g.side_effects) & set(SORENESS[:3])]
    if any(g.red_flags for g in window) or len(flare) >= 2 or sore:
        return "not_met" if closed else "behind"
    if not closed:
        return "on_track" if window else "pending"
    return "met" if window else "insufficient_data"


def _spec_later(window: list[ClockLog], base: Baseline | None, closed: bool) -> str:
    if base is None or base["pain"] is None:
        return "insufficient_data"
    if not closed and not window:
        return "pending"
    if closed and len(window) < 2:
        return "insufficient_data"
    pain = median(g.pain for g in window)
    mobilities = [g.mobility for g in window if g.mobility is not None]
    base_mobility = base["mobility"]
    mobility_worse = (
        bool(mobilities) and base_mobility is not None and base_mobility - median(mobilities) >= 2
    )
    met = _spec_improved(base["pain"], pain) and not mobility_worse
    return ("met" if closed else "on_track") if met else ("not_met" if closed else "behind")


def spec_status(key: str, logs: list[ClockLog], base: Baseline | None, day_now: int) -> str:
    """The status table of CLINICAL.md §Milestones, read independently of the engine."""
    start, end = WINDOWS[key]
    if day_now < start:
        return "pending"
    window = [g for g in logs if start <= g.day <= min(end, day_now)]
    if key == "immediate":
        return _spec_immediate(window, base["pain"] if base else None, day_now > end)
    return _spec_later(window, base, day_now > end)


@given(histories)
@settings(max_examples=500)
def test_statuses_follow_the_rules_of_clinical_md(
    history: tuple[list[ClockLog], Baseline | None, int],
) -> None:
    logs, base, day_now = history
    for key, result in evaluate(logs, base, day_now).items():
        assert result.status == spec_status(key, logs, base, day_now), key


@given(histories)
@settings(max_examples=500)
def test_every_shortfall_carries_a_finding_that_says_why(
    history: tuple[list[ClockLog], Baseline | None, int],
) -> None:
    for result in evaluate(*history).values():
        found = set(codes(result))
        if result.status in ("behind", "not_met") and result.key != "immediate":
            assert found & {"pain_not_improved", "mobility_worse"}, result
        elif result.status == "insufficient_data":
            assert found & {"too_few_logs", "no_baseline"}, result
        elif result.status in SHORTFALLS:
            assert found & {"red_flag", "pain_flare", "soreness_persisting"}, result
        else:
            assert found <= {"red_flag"}, result


TARGET = re.compile(r"baseline (?P<base>[\d.]+); .* \(to (?P<target>[\d.]+) or less\)")


@given(st.integers(1, 100).map(lambda tenths: tenths / 10), scores)
def test_the_pain_target_is_the_least_drop_that_counts_as_improved(
    base: float, observed: float
) -> None:
    result = one("short_term", logs_in("short_term", observed), baseline(base), 40)
    said = messages(result).get("pain_not_improved")
    if said is None:
        assert result.status == "on_track"
        return
    found = TARGET.search(said)
    assert found is not None
    target = float(found["target"])
    metric = RULES["metrics"]["pain"]
    # Up to floating point: 4.2 from 6 is a drop of 1.7999999999999998.
    assert milestones.improved(metric, target - 1e-6, base)
    assert not milestones.improved(metric, round(target + 0.1, 1), base)


# --- age ---------------------------------------------------------------------------------------


def test_age_before_the_birthday_in_that_year_is_one_less() -> None:
    assert milestones.age_on(date(1958, 4, 12), date(2026, 3, 2)) == 67
    assert milestones.age_on(date(1958, 4, 12), date(2026, 4, 11)) == 67


def test_age_on_the_birthday_counts_the_new_year() -> None:
    assert milestones.age_on(date(1958, 4, 12), date(2026, 4, 12)) == 68


def test_age_after_the_birthday() -> None:
    assert milestones.age_on(date(1958, 4, 12), date(2026, 12, 31)) == 68


def test_age_of_a_leap_day_birthday() -> None:
    assert milestones.age_on(date(1960, 2, 29), date(2025, 2, 28)) == 64
    assert milestones.age_on(date(1960, 2, 29), date(2025, 3, 1)) == 65
