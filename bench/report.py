"""The results: a table per scenario on stdout, and everything as JSON in bench/results/."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen import WrkResult
from scenarios import Scenario

# Above this share of one core used by other processes during a run, its figures are noisy.
BUSY_OTHER_PERCENT = 10.0


@dataclass(frozen=True)
class Measured:
    """One side's measured run: wrk's figures, and the CPU time the server and others used."""

    wrk: WrkResult
    server_cpu_s: float
    other_cpu_s: float  # by processes other than the server and wrk, all cores
    busiest_others: list[tuple[str, float]] = field(default_factory=list)  # name, % of a core

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.wrk.requests if self.wrk.requests else 0.0

    @property
    def cpu_percent(self) -> float:
        return 100 * self.server_cpu_s / self.wrk.seconds if self.wrk.seconds else 0.0

    @property
    def other_cpu_percent(self) -> float:
        return 100 * self.other_cpu_s / self.wrk.seconds if self.wrk.seconds else 0.0


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    baseline: Measured
    service: Measured
    connections: int

    @property
    def ratio(self) -> float:
        baseline_rps = self.baseline.wrk.rps
        return self.service.wrk.rps / baseline_rps if baseline_rps else 0.0

    def target_misses(self) -> list[str] | None:
        """None when the scenario has no target; [] when it is met."""
        target = self.scenario.target
        return None if target is None else target.misses(self.ratio, self.service.wrk)

    @property
    def other_cpu_percent(self) -> float:
        return max(self.baseline.other_cpu_percent, self.service.other_cpu_percent)


def _statuses(result: WrkResult) -> str:
    """`201: 4512, 503: 3, timeout: 1`: every status, then the socket errors."""
    parts = [f"{status}: {n}" for status, n in sorted(result.statuses.items())]
    parts += [f"{kind}: {n}" for kind, n in result.socket_errors.items() if n]
    return ", ".join(parts) or "no responses"


def print_outcome(outcome: Outcome) -> None:
    scenario = outcome.scenario
    print(f"\n{scenario.name}: {scenario.description}")
    print(f"  {outcome.connections} connections, {outcome.service.wrk.seconds:.1f} s measured")
    header = (
        f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cpu%':>5} {'cpu ms/req':>10}"
    )
    items = scenario.item_name if scenario.items_per_request else None
    if items:
        header += f" {items + '/s':>9}"
    print(f"  {'':<9} {header}")
    for side, measured in (("baseline", outcome.baseline), ("service", outcome.service)):
        r = measured.wrk
        line = (
            f"  {side:<9} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
            f" {measured.cpu_percent:>5.0f} {measured.cpu_ms_per_request:>10.2f}"
        )
        if items:
            line += f" {r.items_per_s or 0:>9.0f}"
        print(f"{line}   [{_statuses(r)}]")
    for side, measured in (("baseline", outcome.baseline), ("service", outcome.service)):
        r = measured.wrk
        if r.items_bad:
            print(f"  {side}: {r.items_bad} {scenario.item_name} not created")
        for status, body in sorted(r.samples.items()):
            what = f"a refused {scenario.item_name[:-1]}" if status == 0 else f"HTTP {status}"
            print(f"  {side} {what}, first body: {body}")
    print(f"  ratio service/baseline req/s: {outcome.ratio:.3f}")
    misses = outcome.target_misses()
    if misses is not None:
        assert scenario.target is not None
        verdict = "met" if not misses else "NOT met: " + "; ".join(misses)
        print(f"  target ({scenario.target.describe()}): {verdict}")
    if outcome.other_cpu_percent > BUSY_OTHER_PERCENT:
        worst = max((outcome.baseline, outcome.service), key=lambda m: m.other_cpu_percent)
        names = ", ".join(f"{name} {percent:.0f}%" for name, percent in worst.busiest_others)
        print(
            f"  warning: other processes used up to {outcome.other_cpu_percent:.0f}% of a core"
            f" during a run{f' ({names})' if names else ''}"
        )


def print_summary(outcomes: list[Outcome]) -> None:
    """One line per scenario."""
    print("\nSummary")
    print(
        f"  {'scenario':<17} {'conns':>5} {'service/s':>10} {'baseline/s':>10} {'ratio':>6}"
        f" {'p99 ms':>8} {'errors':>6} {'other%':>6}  target"
    )
    for outcome in outcomes:
        service, misses = outcome.service.wrk, outcome.target_misses()
        target = "-" if misses is None else "met" if not misses else "NOT met"
        if outcome.scenario.items_per_request and service.items_per_s is not None:
            target += f" ({service.items_per_s:.0f} {outcome.scenario.item_name}/s)"
        print(
            f"  {outcome.scenario.name:<17} {outcome.connections:>5} {service.rps:>10.1f}"
            f" {outcome.baseline.wrk.rps:>10.1f} {outcome.ratio:>6.3f} {service.p99_ms:>8.1f}"
            f" {service.errors + (service.items_bad or 0):>6} {outcome.other_cpu_percent:>6.0f}"
            f"  {target}"
        )


def _side_json(measured: Measured) -> dict[str, Any]:
    return asdict(measured.wrk) | {
        "errors": measured.wrk.errors,
        "items_per_s": measured.wrk.items_per_s,
        "server_cpu_s": measured.server_cpu_s,
        "server_cpu_percent": measured.cpu_percent,
        "server_cpu_ms_per_request": measured.cpu_ms_per_request,
        "other_cpu_s": measured.other_cpu_s,
        "other_cpu_percent": measured.other_cpu_percent,
        "busiest_others": measured.busiest_others,
    }


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    scenario, misses = outcome.scenario, outcome.target_misses()
    return {
        "name": scenario.name,
        "description": scenario.description,
        "connections": outcome.connections,
        "target": asdict(scenario.target) if scenario.target else None,
        "target_met": None if misses is None else not misses,
        "target_misses": misses,
        "baseline": _side_json(outcome.baseline),
        "service": _side_json(outcome.service),
        "ratio": outcome.ratio,
    }


def write_json(path: Path, run: dict[str, Any], outcomes: list[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = run | {"scenarios": [outcome_json(o) for o in outcomes]}
    path.write_text(json.dumps(document, indent=2) + "\n")
