"""The results: a table per scenario on stdout, and everything as JSON in bench/results/."""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dataset import Dataset
from loadgen import WrkResult
from scale import CommandOutcome
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
    patients: int | None = None  # a seeded scenario: the clinic's size
    beside: Measured | None = None  # the service's load again, with the readers beside it
    readers: WrkResult | None = None  # ... and what the readers got meanwhile

    @property
    def name(self) -> str:
        return self.scenario.name + (f"@{self.patients}" if self.patients else "")

    @property
    def ratio(self) -> float:
        baseline_rps = self.baseline.wrk.rps
        return self.service.wrk.rps / baseline_rps if baseline_rps else 0.0

    @property
    def p99_growth(self) -> float | None:
        """The service's p99 with the readers beside over its p99 alone."""
        if self.beside is None:
            return None
        alone = self.service.wrk.p99_ms
        return self.beside.wrk.p99_ms / alone if alone else float("inf")

    def target_misses(self) -> list[str] | None:
        """None when the scenario has no target; [] when it is met."""
        target = self.scenario.target
        beside = self.beside.wrk if self.beside else None
        return None if target is None else target.misses(self.ratio, self.service.wrk, beside)

    @property
    def other_cpu_percent(self) -> float:
        sides = [self.baseline, self.service] + ([self.beside] if self.beside else [])
        return max(m.other_cpu_percent for m in sides)


def _statuses(result: WrkResult) -> str:
    """`201: 4512, 503: 3, timeout: 1`: every status, then the socket errors."""
    parts = [f"{status}: {n}" for status, n in sorted(result.statuses.items())]
    parts += [f"{kind}: {n}" for kind, n in result.socket_errors.items() if n]
    return ", ".join(parts) or "no responses"


def print_outcome(outcome: Outcome) -> None:
    scenario = outcome.scenario
    print(f"\n{outcome.name}: {scenario.description}")
    print(f"  {outcome.connections} connections, {outcome.service.wrk.seconds:.1f} s measured")
    header = (
        f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cpu%':>5} {'cpu ms/req':>10}"
    )
    items = scenario.item_name if scenario.items_per_request else None
    if items:
        header += f" {items + '/s':>9}"
    print(f"  {'':<9} {header}")
    sides = [("baseline", outcome.baseline), ("service", outcome.service)]
    if outcome.beside is not None:
        sides.append(("+readers", outcome.beside))
    for side, measured in sides:
        r = measured.wrk
        line = (
            f"  {side:<9} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
            f" {measured.cpu_percent:>5.0f} {measured.cpu_ms_per_request:>10.2f}"
        )
        if items:
            line += f" {r.items_per_s or 0:>9.0f}"
        print(f"{line}   [{_statuses(r)}]")
    if outcome.readers is not None:
        r = outcome.readers
        print(
            f"  {'readers':<9} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
            f" {'':>5} {'':>10}   [{_statuses(r)}] ({scenario.reader_connections} connections,"
            " beside the +readers run)"
        )
    for side, measured in sides:
        r = measured.wrk
        if r.items_bad:
            print(f"  {side}: {r.items_bad} {scenario.item_name} not created")
        for status, body in sorted(r.samples.items()):
            what = f"a refused {scenario.item_name[:-1]}" if status == 0 else f"HTTP {status}"
            print(f"  {side} {what}, first body: {body}")
    print(f"  ratio service/baseline req/s: {outcome.ratio:.3f}")
    if outcome.p99_growth is not None:
        print(f"  service p99 with readers / alone: {outcome.p99_growth:.2f}")
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


def print_command(outcome: CommandOutcome) -> None:
    scenario = outcome.scenario
    print(f"\n{scenario.name}@{outcome.patients}: {scenario.description}")
    print(f"  setup: {outcome.setup}")
    inner = f", {outcome.inner_seconds:.1f} s by its own count" if outcome.inner_seconds else ""
    print(
        f"  recovery-tracker {' '.join(scenario.argv)}: {outcome.seconds:.1f} s{inner},"
        f" {outcome.cpu_seconds:.1f} s CPU, exit code {outcome.returncode}"
    )
    lines = outcome.output.splitlines()
    for line in lines[:1] + lines[-2:] if len(lines) > 3 else lines:
        print(f"  | {line}")
    misses = outcome.misses()
    if misses is not None:
        verdict = "met" if not misses else "NOT met: " + "; ".join(misses)
        print(f"  target (< {scenario.max_seconds:.0f} s): {verdict}")


def print_summary(outcomes: Sequence[Outcome], commands: Sequence[CommandOutcome] = ()) -> None:
    """One line per scenario."""
    width = max([17] + [len(o.name) for o in outcomes])
    print("\nSummary")
    print(
        f"  {'scenario':<{width}} {'conns':>5} {'service/s':>10} {'baseline/s':>10} {'ratio':>6}"
        f" {'p99 ms':>8} {'errors':>6} {'other%':>6}  target"
    )
    for outcome in outcomes:
        service, misses = outcome.service.wrk, outcome.target_misses()
        target = "-" if misses is None else "met" if not misses else "NOT met"
        if outcome.scenario.items_per_request and service.items_per_s is not None:
            target += f" ({service.items_per_s:.0f} {outcome.scenario.item_name}/s)"
        if outcome.beside is not None:
            target += (
                f" (p99 {outcome.beside.wrk.p99_ms:.1f} ms with readers, x{outcome.p99_growth:.2f})"
            )
        print(
            f"  {outcome.name:<{width}} {outcome.connections:>5} {service.rps:>10.1f}"
            f" {outcome.baseline.wrk.rps:>10.1f} {outcome.ratio:>6.3f} {service.p99_ms:>8.1f}"
            f" {service.errors + (service.items_bad or 0):>6} {outcome.other_cpu_percent:>6.0f}"
            f"  {target}"
        )
    for command in commands:
        misses = command.misses()
        target = "-" if misses is None else "met" if not misses else "NOT met"
        name = f"{command.scenario.name}@{command.patients}"
        print(
            f"  {name:<{width}} {'':>5} {command.seconds:>9.1f}s {'':>10} {'':>6} {'':>8}"
            f" {0 if command.returncode == 0 else 1:>6} {'':>6}  {target}"
        )


def print_datasets(datasets: list[Dataset]) -> None:
    if datasets:
        print("\nSeeded clinics")
        for data in datasets:
            print(f"  {data.summary()}")


def print_growth(outcomes: list[Outcome], commands: list[CommandOutcome]) -> None:
    """How the seeded scenarios' figures move with the clinic's size (one column a size)."""
    sizes = sorted({o.patients for o in outcomes if o.patients} | {c.patients for c in commands})
    if len(sizes) < 2:
        return
    rows: dict[str, dict[int, str]] = {}
    for o in outcomes:
        if not o.patients:
            continue
        name = o.scenario.name
        if o.beside is not None:
            rows.setdefault(f"{name} p99 alone / +readers ms", {})[o.patients] = (
                f"{o.service.wrk.p99_ms:.0f} / {o.beside.wrk.p99_ms:.0f}"
            )
            continue
        rows.setdefault(f"{name} req/s (ratio)", {})[o.patients] = (
            f"{o.service.wrk.rps:.0f} ({o.ratio:.2f})"
        )
        rows.setdefault(f"{name} p50 / p99 ms", {})[o.patients] = (
            f"{o.service.wrk.p50_ms:.0f} / {o.service.wrk.p99_ms:.0f}"
        )
    for c in commands:
        rows.setdefault(f"{c.scenario.name} s", {})[c.patients] = f"{c.seconds:.1f}"
    width = max(len(k) for k in rows)
    print("\nGrowth with the clinic's size (patients)")
    print(f"  {'':<{width}} " + " ".join(f"{n:>14}" for n in sizes))
    for label, by_size in rows.items():
        print(f"  {label:<{width}} " + " ".join(f"{by_size.get(n, '-'):>14}" for n in sizes))


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
        "patients": outcome.patients,
        "description": scenario.description,
        "connections": outcome.connections,
        "target": asdict(scenario.target) if scenario.target else None,
        "target_met": None if misses is None else not misses,
        "target_misses": misses,
        "baseline": _side_json(outcome.baseline),
        "service": _side_json(outcome.service),
        "ratio": outcome.ratio,
        "service_with_readers": _side_json(outcome.beside) if outcome.beside else None,
        "readers": asdict(outcome.readers) if outcome.readers else None,
        "p99_growth": outcome.p99_growth,
    }


def command_json(outcome: CommandOutcome) -> dict[str, Any]:
    misses = outcome.misses()
    return {
        "name": outcome.scenario.name,
        "patients": outcome.patients,
        "description": outcome.scenario.description,
        "argv": list(outcome.scenario.argv),
        "setup": outcome.setup,
        "seconds": outcome.seconds,
        "cpu_seconds": outcome.cpu_seconds,
        "inner_seconds": outcome.inner_seconds,
        "returncode": outcome.returncode,
        "output": outcome.output[-4000:],
        "max_seconds": outcome.scenario.max_seconds,
        "target_met": None if misses is None else not misses,
        "target_misses": misses,
    }


def dataset_json(data: Dataset) -> dict[str, Any]:
    return {
        "patients": data.patients,
        "variant": data.variant,
        "logs": data.logs,
        "statuses": data.statuses,
        "seed_s": data.seed_s,
        "reevaluate_s": data.reevaluate_s,
        "reevaluate_output": data.reevaluate_output[-2000:],
        "size_mb": data.size_mb,
    }


def write_json(
    path: Path,
    run: dict[str, Any],
    outcomes: Sequence[Outcome],
    commands: Sequence[CommandOutcome] = (),
    datasets: Sequence[Dataset] = (),
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = run | {
        "scenarios": [outcome_json(o) for o in outcomes],
        "commands": [command_json(c) for c in commands],
        "datasets": [dataset_json(d) for d in datasets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
