"""The milestone engine (CLINICAL.md §Milestones): a patient's change against their own baseline,
window by window, on one procedure's clock. Pure functions over plain data.

Milestones measure change against the patient's own baseline; they do not show that a
treatment works, and nothing here words a result that way.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import median
from typing import Any, NamedTuple

from api.clinical.baseline import Baseline

IMMEDIATE_SIDE_EFFECTS_KEY = "soreness_persisting"

# What each finding says, with the numbers (API.md §Progress against milestones). The fields
# are the finding's facts: api/clinical/wording.py reads them back to word them for the patient.
MESSAGES = {
    "red_flag": "red flags reported: {flags}",
    "pain_flare": (
        "pain {pains} on {days} vs baseline {baseline}; a flare is pain at least {rise} points "
        "above baseline ({threshold} or more) in {n} check-ins on days {start}-{end}"
    ),
    "soreness_persisting": (
        "injection-site {effects} reported on {days} (expected to settle by day {settled})"
    ),
    "pain_not_improved": (
        "pain {observed} vs baseline {baseline}; improved means a {change} of {points} points "
        "or {percent} % (to {target} or {bound})"
    ),
    "mobility_worse": (
        "mobility {observed} vs baseline {baseline}; worse means a {change} of {points} points "
        "(to {target} or {bound})"
    ),
    "too_few_logs": "{n} {logs} in days {start}-{end}; at least {needed} needed",
    "no_baseline": (
        "no baseline pain: needs check-ins in the {reach} days before the procedure "
        "(days {low} to {high}) or an explicit baseline on the procedure"
    ),
}


class ClockLog(NamedTuple):
    """One effective log on this procedure's clock. A named tuple: a patient's evaluation makes
    hundreds, and a frozen dataclass takes three times as long to build."""

    day: int
    pain: float
    leg_pain: float | None = None
    mobility: float | None = None
    odi: float | None = None
    side_effects: tuple[str, ...] = ()
    red_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    code: str
    message: str


def finding(code: str, **facts: object) -> Finding:
    return Finding(code, MESSAGES[code].format(**facts))


def one_decimal(value: float) -> str:
    return f"{value:.1f}"


def days_said(days: Sequence[int]) -> str:
    """ "day 3", "days 9, 11": the days on the clock a finding saw."""
    return f"day {days[0]}" if len(days) == 1 else "days " + ", ".join(map(str, days))


@dataclass
class Observed:
    n_logs: int
    pain: float | None = None
    pain_change: float | None = None
    pain_change_pct: float | None = None
    mobility: float | None = None
    mobility_change: float | None = None
    odi: float | None = None
    odi_change: float | None = None


@dataclass
class MilestoneResult:
    key: str
    label: str
    start_day: int
    end_day: int
    state: str  # upcoming | open | closed
    status: str  # pending | on_track | behind | met | not_met | insufficient_data
    expected: str
    observed: Observed
    substantial: bool | None
    findings: list[Finding] = field(default_factory=list)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(median(present)) if present else None


def _change(observed: float | None, base: float | None) -> float | None:
    return None if observed is None or base is None else round(observed - base, 2)


def _pct(observed: float | None, base: float | None) -> float | None:
    if observed is None or base is None or base <= 0:
        return None
    return round(100 * (observed - base) / base, 1)


def observe(logs: Sequence[ClockLog], baseline: Baseline | None) -> Observed:
    base = baseline.values if baseline else {}
    pain = _median([log.pain for log in logs])
    mobility = _median([log.mobility for log in logs])
    odi = _median([log.odi for log in logs])
    return Observed(
        n_logs=len(logs),
        pain=pain,
        pain_change=_change(pain, base.get("pain")),
        pain_change_pct=_pct(pain, base.get("pain")),
        mobility=mobility,
        mobility_change=_change(mobility, base.get("mobility")),
        odi=odi,
        odi_change=_change(odi, base.get("odi")),
    )


def improved(metric: dict[str, Any], observed: float, base: float) -> bool:
    """The MCID: a change of enough points, or enough percent of a baseline above zero."""
    gain = base - observed if metric["better"] == "lower" else observed - base
    by_points = gain >= metric["improved_points"]
    by_percent = base > 0 and 100 * gain / base >= metric["improved_percent"]
    return by_points or by_percent


def worse(metric: dict[str, Any], observed: float, base: float) -> bool:
    loss = observed - base if metric["better"] == "lower" else base - observed
    return bool(loss >= metric["worse_points"])


def substantial(metric: dict[str, Any], observed: float, base: float) -> bool:
    percent = metric.get("substantial_percent")
    return percent is not None and base > 0 and 100 * (base - observed) / base >= percent


def state_of(day_now: int, start: int, end: int) -> str:
    if day_now < start:
        return "upcoming"
    return "open" if day_now <= end else "closed"


def _red_flag_findings(logs: Sequence[ClockLog]) -> list[Finding]:
    """Each red flag with the days it was reported on: what happened, for the clinician (the
    patient's wording adds the urgent advice)."""
    days: dict[str, set[int]] = {}
    for log in logs:
        for flag in log.red_flags:
            days.setdefault(flag, set()).add(log.day)
    if not days:
        return []
    flags = [f"{flag} ({days_said(sorted(days[flag]))})" for flag in sorted(days)]
    return [finding("red_flag", flags="; ".join(flags))]


def _pain_flare(
    logs: Sequence[ClockLog], base_pain: float, flare: dict[str, Any]
) -> Finding | None:
    """Enough check-ins in the flare days with pain at or above baseline + the rise."""
    threshold = base_pain + flare["rise_points"]
    flares = sorted(
        (
            log
            for log in logs
            if flare["from_day"] <= log.day <= flare["to_day"] and log.pain >= threshold
        ),
        key=lambda log: log.day,
    )
    if len(flares) < flare["min_logs"]:
        return None
    return finding(
        "pain_flare",
        pains=", ".join(_as_given(log.pain) for log in flares),
        days=days_said([log.day for log in flares]),
        baseline=one_decimal(base_pain),
        rise=_as_given(flare["rise_points"]),
        threshold=one_decimal(threshold),
        n=flare["min_logs"],
        start=flare["from_day"],
        end=flare["to_day"],
    )


def _soreness_persisting(logs: Sequence[ClockLog], sore: dict[str, Any]) -> Finding | None:
    """Injection-site soreness still reported from the day it should have settled by."""
    late = [
        log
        for log in logs
        if log.day >= sore["from_day"] and set(log.side_effects) & set(sore["side_effects"])
    ]
    if not late:
        return None
    effects = {e for log in late for e in log.side_effects if e in sore["side_effects"]}
    return finding(
        "soreness_persisting",
        effects=", ".join(sorted(effects)).replace("_", " "),
        days=days_said(sorted({log.day for log in late})),
        settled=sore["from_day"] - 1,
    )


def immediate_findings(
    logs: Sequence[ClockLog], baseline: Baseline | None, spec: dict[str, Any]
) -> list[Finding]:
    findings = _red_flag_findings(logs)
    base_pain = baseline["pain"] if baseline else None
    flare = None if base_pain is None else _pain_flare(logs, base_pain, spec["pain_flare"])
    sore = _soreness_persisting(logs, spec["soreness_persisting"])
    return findings + [found for found in (flare, sore) if found is not None]


def _immediate_status(state: str, findings: list[Finding], n_logs: int) -> str:
    if state == "upcoming":
        return "pending"
    if findings:
        return "behind" if state == "open" else "not_met"
    if state == "open":
        return "on_track" if n_logs else "pending"
    return "met" if n_logs else "insufficient_data"


def criteria_met(rules: dict[str, Any], observed: Observed, baseline: Baseline) -> bool:
    """Pain improved (MCID) and mobility not worse, when both mobility values exist."""
    metrics = rules["metrics"]
    base_pain = baseline["pain"]
    assert observed.pain is not None
    assert base_pain is not None
    if not improved(metrics["pain"], observed.pain, base_pain):
        return False
    base_mobility = baseline["mobility"]
    if observed.mobility is None or base_mobility is None:
        return True
    return not worse(metrics["mobility"], observed.mobility, base_mobility)


def _as_given(threshold: float) -> str:
    """A protocol's threshold as it gives it: 2, 30, 1.5."""
    return f"{threshold:g}"


def _moved(metric: dict[str, Any], base: float, step: float, *, better: bool) -> dict[str, str]:
    """The score `step` points from `base` toward better (or worse), within the metric's range:
    the nearest one-decimal score that the rule counts. The check allows for floating point,
    in which 6 - 4.2 is 1.7999999999999998, just short of 30 % of 6."""
    low, high = metric["range"]
    down = (metric["better"] == "lower") == better
    tick = -0.1 if down else 0.1
    target = round(min(high, max(low, base - step if down else base + step)), 1)
    rule = improved if better else worse
    while not rule(metric, target + tick * 1e-6, base) and low <= target + tick <= high:
        target = round(target + tick, 1)
    if down:
        return {"change": "drop", "target": one_decimal(target), "bound": "less"}
    return {"change": "rise", "target": one_decimal(target), "bound": "more"}


def _mcid_step(metric: dict[str, Any], base: float) -> float:
    """The least change that counts as improved: the points rule or, for a baseline above 0,
    the percent rule, whichever asks for less."""
    points: float = metric["improved_points"]
    return min(points, metric["improved_percent"] * base / 100) if base > 0 else points


def _pain_not_improved(metric: dict[str, Any], observed: float, base: float) -> Finding:
    return finding(
        "pain_not_improved",
        observed=one_decimal(observed),
        baseline=one_decimal(base),
        points=_as_given(metric["improved_points"]),
        percent=_as_given(metric["improved_percent"]),
        **_moved(metric, base, _mcid_step(metric, base), better=True),
    )


def _mobility_worse(metric: dict[str, Any], observed: float, base: float) -> Finding:
    return finding(
        "mobility_worse",
        observed=one_decimal(observed),
        baseline=one_decimal(base),
        points=_as_given(metric["worse_points"]),
        **_moved(metric, base, metric["worse_points"], better=False),
    )


def _too_few_logs(spec: dict[str, Any], n_logs: int, needed: int) -> Finding:
    return finding(
        "too_few_logs",
        n=n_logs,
        logs="log" if n_logs == 1 else "logs",
        start=spec["start_day"],
        end=spec["end_day"],
        needed=needed,
    )


def _no_baseline(rules: dict[str, Any]) -> Finding:
    low, high = rules["baseline"]["window_days"]
    return finding("no_baseline", reach=-low, low=low, high=high)


def criteria_findings(
    rules: dict[str, Any], observed: Observed, baseline: Baseline
) -> list[Finding]:
    """Why the criteria are not met: pain short of the MCID, mobility worse (either or both)."""
    metrics = rules["metrics"]
    base_pain, base_mobility = baseline["pain"], baseline["mobility"]
    assert observed.pain is not None
    assert base_pain is not None
    found = []
    if not improved(metrics["pain"], observed.pain, base_pain):
        found.append(_pain_not_improved(metrics["pain"], observed.pain, base_pain))
    if (
        observed.mobility is not None
        and base_mobility is not None
        and worse(metrics["mobility"], observed.mobility, base_mobility)
    ):
        found.append(_mobility_worse(metrics["mobility"], observed.mobility, base_mobility))
    return found


def later_findings(
    status: str,
    state: str,
    observed: Observed,
    baseline: Baseline | None,
    spec: dict[str, Any],
    rules: dict[str, Any],
) -> list[Finding]:
    """Why a short_term or long_term milestone is behind, not met, or cannot be judged."""
    if status in ("behind", "not_met"):
        assert baseline is not None
        return criteria_findings(rules, observed, baseline)
    if status != "insufficient_data":
        return []
    found = [] if baseline and baseline["pain"] is not None else [_no_baseline(rules)]
    needed = spec["min_logs_when_closed"]
    if state == "closed" and observed.n_logs < needed:
        found.append(_too_few_logs(spec, observed.n_logs, needed))
    return found


def _later_status(
    state: str,
    observed: Observed,
    baseline: Baseline | None,
    spec: dict[str, Any],
    rules: dict[str, Any],
) -> str:
    if state == "upcoming":
        return "pending"
    if baseline is None or baseline["pain"] is None:
        return "insufficient_data"
    if state == "open":
        if observed.n_logs == 0:
            return "pending"
        return "on_track" if criteria_met(rules, observed, baseline) else "behind"
    if observed.n_logs < spec["min_logs_when_closed"]:
        return "insufficient_data"
    return "met" if criteria_met(rules, observed, baseline) else "not_met"


def evaluate(
    *, rules: dict[str, Any], logs: Sequence[ClockLog], baseline: Baseline | None, day_now: int
) -> list[MilestoneResult]:
    """Every milestone of the protocol, as of `day_now` (logs after it are the caller's to drop)."""
    results = []
    for spec in rules["milestones"]:
        start, end = spec["start_day"], spec["end_day"]
        window = [log for log in logs if start <= log.day <= end and log.day <= day_now]
        state = state_of(day_now, start, end)
        observed = observe(window, baseline)
        if spec["key"] == "immediate":
            findings = immediate_findings(window, baseline, spec)
            status = _immediate_status(state, findings, len(window))
            if status == "insufficient_data":  # closed without a log: one would have been enough
                findings.append(_too_few_logs(spec, 0, 1))
            big = None
        else:
            status = _later_status(state, observed, baseline, spec, rules)
            findings = _red_flag_findings(window) + later_findings(
                status, state, observed, baseline, spec, rules
            )
            big = _substantial(spec, status, observed, baseline, rules)
        results.append(
            MilestoneResult(
                key=spec["key"],
                label=spec["label"],
                start_day=start,
                end_day=end,
                state=state,
                status=status,
                expected=spec["expected"],
                observed=observed,
                substantial=big,
                findings=findings,
            )
        )
    return results


def _substantial(
    spec: dict[str, Any],
    status: str,
    observed: Observed,
    baseline: Baseline | None,
    rules: dict[str, Any],
) -> bool | None:
    if not spec.get("report_substantial") or status not in ("on_track", "behind", "met", "not_met"):
        return None
    assert baseline is not None
    assert baseline["pain"] is not None
    assert observed.pain is not None
    return substantial(rules["metrics"]["pain"], observed.pain, baseline["pain"])


def current_milestone(results: Sequence[MilestoneResult]) -> MilestoneResult | None:
    """The last milestone whose window has opened (None before day 0)."""
    started = [r for r in results if r.state != "upcoming"]
    return started[-1] if started else None


def progress_status(results: Sequence[MilestoneResult]) -> str:
    current = current_milestone(results)
    return current.status if current else "pending"


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
