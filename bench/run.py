"""Benchmark the service against a bare baseline, scenario by scenario (`make bench`).

For each scenario: start the baseline (bench/baseline_app.py), warm up, measure, stop it; then
the same for the service on a fresh database. Servers run pinned to one core, wrk to another.
Prints a table per scenario and writes bench/results/<timestamp>.json. See bench/README.md.
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import cputime
import httpx
import servers
from loadgen import LoadRequest, WrkResult, ensure_wrk, run_wrk
from report import Measured, Outcome, print_outcome, write_json
from scenarios import SCENARIOS, Scenario, by_name

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", help="run only this one: " + ", ".join(s.name for s in SCENARIOS)
    )
    parser.add_argument("--duration", type=int, default=15, help="measured seconds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    args = parser.parse_args(argv)
    # The service's access token lasts 15 minutes: stay well inside it.
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..600 and --warmup 0..60 seconds")
    if not 1 <= args.connections <= 10_000:
        parser.error("--connections must be 1..10000")
    return args


def pick_cpus() -> tuple[int | None, int | None]:
    """(server core, wrk core): the first two cores this process may use, or no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        print("Warning: fewer than 2 cores or no taskset: server and wrk are not pinned.")
        return None, None
    return cpus[0], cpus[1]


class Runner:
    def __init__(self, args: argparse.Namespace, wrk: str, workdir: Path) -> None:
        self.args, self.wrk, self.workdir = args, wrk, workdir
        self.server_cpu, self.load_cpu = pick_cpus()

    def wrk_run(self, base_url: str, request: LoadRequest, label: str, seconds: int) -> WrkResult:
        return run_wrk(
            self.wrk,
            base_url + request.path,
            request,
            script_path=self.workdir / f"{label}.lua",
            seconds=seconds,
            connections=self.args.connections,
            cpu=self.load_cpu,
        )

    def load(self, server: servers.Server, request: LoadRequest) -> Measured:
        """A warm-up (its figures are dropped), then the measured run."""
        warmup, duration = self.args.warmup, self.args.duration
        print(f"  {server.name}: warm-up {warmup} s, measuring {duration} s", flush=True)
        if warmup:
            self.wrk_run(server.base_url, request, server.name, warmup)
        before = self.cpu_times(server)
        result = self.wrk_run(server.base_url, request, server.name, duration)
        server_s, wrk_s, busy_s = (
            a - b for a, b in zip(self.cpu_times(server), before, strict=True)
        )
        return Measured(result, server_cpu_s=server_s, other_cpu_s=busy_s - server_s - wrk_s)

    @staticmethod
    def cpu_times(server: servers.Server) -> tuple[float, float, float]:
        """(server, finished children such as wrk, whole machine busy) CPU seconds so far."""
        return (
            cputime.process_seconds(server.pid),
            cputime.children_seconds(),
            cputime.machine_busy_seconds(),
        )

    def scenario(self, scenario: Scenario) -> Outcome:
        print(f"\n[{scenario.name}]", flush=True)
        with servers.baseline(self.workdir, f"baseline-{scenario.name}.db", self.server_cpu) as bl:
            baseline = self.load(bl, scenario.baseline)
        db_name = f"service-{scenario.name}.db"
        with servers.service(self.workdir, db_name, self.server_cpu) as (server, admin):
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                request = scenario.prepare(client, admin)
            service = self.load(server, request)
        return Outcome(scenario=scenario, baseline=baseline, service=service)

    def context(self) -> dict[str, Any]:
        version = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, timeout=10)
        return {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {
                "duration_s": self.args.duration,
                "warmup_s": self.args.warmup,
                "connections": self.args.connections,
                "wrk_threads": 1,
                "server_cpu": self.server_cpu,
                "wrk_cpu": self.load_cpu,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "wrk": (version.stdout + version.stderr).splitlines()[0].strip(),
            },
        }


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    chosen = [by_name(args.scenario)] if args.scenario else SCENARIOS
    wrk = ensure_wrk()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    try:
        runner = Runner(args, wrk, workdir)
        context = runner.context()
        outcomes = [runner.scenario(scenario) for scenario in chosen]
    except KeyboardInterrupt:
        print("\nInterrupted: servers stopped.", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for outcome in outcomes:
        print_outcome(outcome)
    path = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    write_json(path, context, outcomes)
    print(f"\nResults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
