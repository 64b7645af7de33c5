"""The milestone engine (CLINICAL.md §Milestones): a patient's change against their own baseline,
window by window, on one procedure's clock. Pure functions over plain data.

Milestones measure change against the patient's own baseline; they do not show that a
treatment works, and nothing here words a result that way.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import median
from typing import Any

from api.clinical.baseline import Baseline

IMMEDIATE_SIDE_EFFECTS_KEY = "soreness_persisting"


@dataclass(frozen=True)
class ClockLog:
    """One effective log on this procedure's clock."""

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
    flags = sorted({flag for log in logs for flag in log.red_flags})
    if not flags:
        return []
    return [
        Finding(
            "red_flag", "red flags reported: " + ", ".join(flags) + "; get medical help right away"
        )
    ]


def immediate_findings(
    logs: Sequence[ClockLog], baseline: Baseline | None, spec: dict[str, Any]
) -> list[Finding]:
    findings = _red_flag_findings(logs)
    flare = spec["pain_flare"]
    base_pain = baseline["pain"] if baseline else None
    if base_pain is not None:
        flares = [
            log
            for log in logs
            if flare["from_day"] <= log.day <= flare["to_day"]
            and log.pain >= base_pain + flare["rise_points"]
        ]
        if len(flares) >= flare["min_logs"]:
            findings.append(
                Finding(
                    "pain_flare",
                    f"pain at least {flare['rise_points']} points above baseline in "
                    f"{len(flares)} check-ins on days {flare['from_day']}-{flare['to_day']}",
                )
            )
    sore = spec["soreness_persisting"]
    late = sorted(
        {
            effect
            for log in logs
            if log.day >= sore["from_day"]
            for effect in log.side_effects
            if effect in sore["side_effects"]
        }
    )
    if late:
        findings.append(
            Finding(
                "soreness_persisting",
                "injection-site "
                + ", ".join(late).replace("_", " ")
                + f" still reported on day {sore['from_day']} or later",
            )
        )
    return findings


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
            big = None
        else:
            findings = _red_flag_findings(window)
            status = _later_status(state, observed, baseline, spec, rules)
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
