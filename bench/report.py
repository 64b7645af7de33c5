"""The results: a table per scenario on stdout, and everything as JSON in bench/results/."""

import json
from dataclasses import asdict, dataclass
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

    @property
    def ratio(self) -> float:
        baseline_rps = self.baseline.wrk.rps
        return self.service.wrk.rps / baseline_rps if baseline_rps else 0.0

    def target_misses(self) -> list[str] | None:
        """None when the scenario has no target; [] when it is met."""
        target = self.scenario.target
        return None if target is None else target.misses(self.ratio, self.service.wrk.p99_ms)


def _error_detail(result: WrkResult) -> str:
    parts = [
        f"HTTP {status}: {n}" for status, n in sorted(result.statuses.items()) if status >= 400
    ]
    parts += [f"{kind}: {n}" for kind, n in result.socket_errors.items() if n]
    return f"  ({', '.join(parts)})" if parts else ""


def print_outcome(outcome: Outcome) -> None:
    scenario = outcome.scenario
    print(f"\n{scenario.name}: {scenario.description}")
    header = (
        f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cpu%':>5} {'cpu ms/req':>10}"
    )
    print(f"  {'':<9} {header}")
    for side, measured in (("baseline", outcome.baseline), ("service", outcome.service)):
        r = measured.wrk
        print(
            f"  {side:<9} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
            f" {measured.cpu_percent:>5.0f} {measured.cpu_ms_per_request:>10.2f}{_error_detail(r)}"
        )
    print(f"  ratio service/baseline req/s: {outcome.ratio:.3f}")
    misses = outcome.target_misses()
    if misses is not None:
        print(f"  target: {'met' if not misses else 'NOT met: ' + '; '.join(misses)}")
    other = max(outcome.baseline.other_cpu_percent, outcome.service.other_cpu_percent)
    if other > BUSY_OTHER_PERCENT:
        print(f"  warning: other processes used up to {other:.0f}% of a core during a run")


def _side_json(measured: Measured) -> dict[str, Any]:
    return asdict(measured.wrk) | {
        "errors": measured.wrk.errors,
        "server_cpu_s": measured.server_cpu_s,
        "server_cpu_percent": measured.cpu_percent,
        "server_cpu_ms_per_request": measured.cpu_ms_per_request,
        "other_cpu_s": measured.other_cpu_s,
        "other_cpu_percent": measured.other_cpu_percent,
    }


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    scenario, misses = outcome.scenario, outcome.target_misses()
    return {
        "name": scenario.name,
        "description": scenario.description,
        "target": asdict(scenario.target) if scenario.target else None,
        "target_met": None if misses is None else not misses,
        "baseline": _side_json(outcome.baseline),
        "service": _side_json(outcome.service),
        "ratio": outcome.ratio,
    }


def write_json(path: Path, run: dict[str, Any], outcomes: list[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = run | {"scenarios": [outcome_json(o) for o in outcomes]}
    path.write_text(json.dumps(document, indent=2) + "\n")
