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
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import cputime
import httpx
import sampling
import servers
from loadgen import LoadRequest, WrkResult, ensure_wrk, run_wrk
from report import Measured, Outcome, print_outcome, print_summary, write_json
from scenarios import HTTP_TIMEOUT_S, SCENARIOS, Scenario, by_name

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DURATION_S = 15  # a scenario's measured seconds unless it or --duration says otherwise
CONNECTIONS = 32


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", help="run only this one: " + ", ".join(s.name for s in SCENARIOS)
    )
    parser.add_argument(
        "--duration",
        type=int,
        help=f"measured seconds, for every scenario (default: the scenario's, else {DURATION_S})",
    )
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds (default 3)")
    parser.add_argument(
        "--connections",
        type=int,
        help=f"wrk connections, for every scenario (default: the scenario's, else {CONNECTIONS})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the service with py-spy during the measured run; prints where its CPU goes"
        " and keeps the collapsed stacks in bench/results/",
    )
    args = parser.parse_args(argv)
    # The service's access token lasts 15 minutes: stay well inside it.
    if args.duration is not None and not 1 <= args.duration <= 600:
        parser.error("--duration must be 1..600 seconds")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be 0..60 seconds")
    if args.connections is not None and not 1 <= args.connections <= 10_000:
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

    def duration(self, scenario: Scenario) -> int:
        return self.args.duration or scenario.duration or DURATION_S

    def connections(self, scenario: Scenario) -> int:
        return self.args.connections or scenario.connections or CONNECTIONS

    def wrk_run(
        self, base_url: str, request: LoadRequest, label: str, seconds: int, connections: int
    ) -> WrkResult:
        return run_wrk(
            self.wrk,
            base_url + request.path,
            request,
            script_path=self.workdir / f"{label}.lua",
            seconds=seconds,
            connections=connections,
            cpu=self.load_cpu,
        )

    def load(self, server: servers.Server, request: LoadRequest, scenario: Scenario) -> Measured:
        """A warm-up (its figures are dropped), then the measured run."""
        warmup, duration = self.args.warmup, self.duration(scenario)
        connections = self.connections(scenario)
        print(
            f"  {server.name}: warm-up {warmup} s, measuring {duration} s,"
            f" {connections} connections",
            flush=True,
        )
        if warmup:
            self.wrk_run(server.base_url, request, server.name, warmup, connections)
        before, table = self.cpu_times(server), cputime.processes()
        stacks = (
            self.stacks_path(scenario) if self.args.profile and server.name == "service" else None
        )
        with (
            sampling.recording(server.pid, stacks, duration, self.load_cpu)
            if stacks
            else nullcontext()
        ):
            result = self.wrk_run(server.base_url, request, server.name, duration, connections)
        if stacks:
            print(
                f"  profile of the service ({stacks.name}):\n{sampling.summary(stacks)}", flush=True
            )
        server_s, wrk_s, busy_s = (
            a - b for a, b in zip(self.cpu_times(server), before, strict=True)
        )
        others = cputime.busiest(
            table, cputime.processes(), exclude={server.pid, os.getpid()}, seconds=result.seconds
        )
        return Measured(
            result,
            server_cpu_s=server_s,
            other_cpu_s=busy_s - server_s - wrk_s,
            busiest_others=others,
        )

    @staticmethod
    def stacks_path(scenario: Scenario) -> Path:
        RESULTS_DIR.mkdir(exist_ok=True)
        return RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{scenario.name}.stacks"

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
            baseline = self.load(bl, scenario.baseline, scenario)
        db_name = f"service-{scenario.name}.db"
        with servers.service(self.workdir, db_name, self.server_cpu) as (server, admin):
            print("  service: preparing (through the API)", flush=True)
            with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client:
                request = scenario.prepare(client, admin)
            service = self.load(server, request, scenario)
        return Outcome(
            scenario=scenario,
            baseline=baseline,
            service=service,
            connections=self.connections(scenario),
        )

    def context(self) -> dict[str, Any]:
        version = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, timeout=10)
        return {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {
                "duration_s": self.args.duration,  # None: each scenario's own
                "warmup_s": self.args.warmup,
                "connections": self.args.connections,  # None: each scenario's own
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
        outcomes: list[Outcome] = []
        failed: list[str] = []
        for scenario in chosen:
            try:
                outcomes.append(runner.scenario(scenario))
            except (RuntimeError, ValueError, httpx.HTTPError, subprocess.SubprocessError) as exc:
                # One scenario's failure (its setup, a server, wrk) does not cost the others.
                print(f"  {scenario.name} FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append(scenario.name)
    except KeyboardInterrupt:
        print("\nInterrupted: servers stopped.", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for outcome in outcomes:
        print_outcome(outcome)
    if outcomes:
        print_summary(outcomes)
    path = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    write_json(path, context, outcomes)
    print(f"\nResults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if failed:
        print(f"Failed (no figures): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
