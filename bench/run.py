"""Benchmark the service against a bare baseline, scenario by scenario (`make bench`).

For each scenario: start the baseline (bench/baseline_app.py), warm up, measure, stop it; then
the same for the service on a fresh database. Servers run pinned to one core, wrk to another.
Prints a table per scenario and writes bench/results/<timestamp>.json. See bench/README.md.
"""

import argparse
import concurrent.futures
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import cputime
import dataset as seeded
import httpx
import sampling
import servers
from dataset import Dataset, Datasets
from loadgen import LoadRequest, WrkResult, ensure_wrk, run_wrk
from report import (
    Measured,
    Outcome,
    print_command,
    print_datasets,
    print_growth,
    print_outcome,
    print_summary,
    write_json,
)
from scale import SCALE_SCENARIOS, SWEEPS, CommandOutcome, CommandScenario, run_command
from scenarios import HTTP_TIMEOUT_S, SCENARIOS, Scenario

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DURATION_S = 15  # a scenario's measured seconds unless it or --duration says otherwise
CONNECTIONS = 32
PATIENTS = 10_000  # the seeded clinic's size unless --patients says otherwise
ALL_NAMES = [s.name for s in SCENARIOS + SCALE_SCENARIOS] + [c.name for c in SWEEPS]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        help="run only these (comma-separated): " + ", ".join(ALL_NAMES),
    )
    parser.add_argument(
        "--patients",
        default=str(PATIENTS),
        help="the seeded clinic's size for the scale scenarios, or sizes (comma-separated, e.g."
        f" 1000,3000,10000: each is seeded and measured in turn); default {PATIENTS}",
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
    try:
        args.patients = [int(n) for n in args.patients.split(",")]
    except ValueError:
        parser.error("--patients takes numbers, comma-separated")
    low = seeded.HEAVY_PATIENTS + 50
    if not all(low <= n <= 200_000 for n in args.patients):
        parser.error(f"--patients must be {low}..200000")
    names = args.scenario.split(",") if args.scenario else ALL_NAMES
    unknown = [n for n in names if n not in ALL_NAMES]
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; known: {', '.join(ALL_NAMES)}")
    args.names = names
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

    def load_beside(
        self, server: servers.Server, request: LoadRequest, readers: LoadRequest, scenario: Scenario
    ) -> tuple[Measured, WrkResult]:
        """The scenario's load again, with the readers' wrk running beside it the whole time
        (started a second earlier, stopped a second later): warm-up, then the measured run."""
        warmup, duration = self.args.warmup, self.duration(scenario)
        connections, beside = self.connections(scenario), scenario.reader_connections
        print(
            f"  service + readers: warm-up {warmup} s, measuring {duration} s,"
            f" {connections} + {beside} connections",
            flush=True,
        )
        url = server.base_url

        def both(seconds: int, label: str) -> tuple[WrkResult, WrkResult]:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                reading = pool.submit(
                    self.wrk_run, url, readers, f"readers-{label}", seconds + 2, beside
                )
                time.sleep(1)
                result = self.wrk_run(url, request, f"service-{label}", seconds, connections)
                return result, reading.result()

        if warmup:
            both(warmup, "warmup")
        before, table = self.cpu_times(server), cputime.processes()
        result, read = both(duration, "measured")
        server_s, wrk_s, busy_s = (
            a - b for a, b in zip(self.cpu_times(server), before, strict=True)
        )
        others = cputime.busiest(
            table, cputime.processes(), exclude={server.pid, os.getpid()}, seconds=result.seconds
        )
        # The readers' wrk ran about two seconds longer than the measured one: its CPU is in
        # wrk_s, and the server's CPU includes the readers' requests.
        measured = Measured(
            result,
            server_cpu_s=server_s,
            other_cpu_s=busy_s - server_s - wrk_s,
            busiest_others=others,
        )
        return measured, read

    def scenario(self, scenario: Scenario) -> Outcome:
        print(f"\n[{scenario.name}]", flush=True)
        baseline = self.baseline(scenario)
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

    def baseline(self, scenario: Scenario) -> Measured:
        with servers.baseline(self.workdir, f"baseline-{scenario.name}.db", self.server_cpu) as bl:
            return self.load(bl, scenario.baseline, scenario)

    def seeded_scenario(self, scenario: Scenario, data: Dataset) -> Outcome:
        """On a copy of the seeded clinic: the baseline, then the service (prepared from the
        dataset), then, for a scenario with readers, the service again with them beside."""
        assert scenario.seeded is not None
        print(f"\n[{scenario.name}, {data.patients} patients]", flush=True)
        baseline = self.baseline(scenario)
        db_name = f"service-{scenario.name}-{data.patients}.db"
        seeded.copy(data, self.workdir / db_name)
        beside: Measured | None = None
        readers: WrkResult | None = None
        try:
            with servers.service(self.workdir, db_name, self.server_cpu) as (server, _admin):
                print("  service: preparing (seeded clinic, through the API)", flush=True)
                with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client:
                    request = scenario.seeded(client, data)
                    service = self.load(server, request, scenario)
                    if scenario.readers is not None:
                        reading = scenario.readers(client, data)
                        beside, readers = self.load_beside(server, request, reading, scenario)
        finally:
            seeded.remove(self.workdir / db_name)
        return Outcome(
            scenario=scenario,
            baseline=baseline,
            service=service,
            connections=self.connections(scenario),
            patients=data.patients,
            beside=beside,
            readers=readers,
        )

    def command(self, scenario: CommandScenario, data: Dataset) -> CommandOutcome:
        print(f"\n[{scenario.name}, {data.patients} patients]", flush=True)
        outcome = run_command(scenario, data, self.workdir, self.server_cpu)
        print(f"  {outcome.seconds:.1f} s, exit code {outcome.returncode}", flush=True)
        return outcome

    def context(self) -> dict[str, Any]:
        version = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, timeout=10)
        return {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {
                "patients": self.args.patients,
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


FAILURES = (RuntimeError, ValueError, httpx.HTTPError, subprocess.SubprocessError, OSError)


def _failed(name: str, exc: Exception, failed: list[str]) -> None:
    expected = isinstance(exc, FAILURES) and not isinstance(exc, (KeyError, AttributeError))
    detail = str(exc) if expected else "".join(traceback.format_exception(exc)[-6:])
    print(f"  {name} FAILED: {detail}", file=sys.stderr, flush=True)
    failed.append(name)


def run_size(
    runner: Runner,
    datasets: Datasets,
    patients: int,
    scale: list[Scenario],
    sweeps: list[CommandScenario],
    outcomes: list[Outcome],
    commands: list[CommandOutcome],
    failed: list[str],
) -> None:
    """The seeded scenarios for one clinic size: seeded once (each variant), every scenario on
    a copy, the seeded files deleted after."""
    for scenario in scale:
        try:
            data = datasets.get(patients, "main")
            outcomes.append(runner.seeded_scenario(scenario, data))
        except Exception as exc:  # the seeding too: whatever it was, the others still run
            _failed(f"{scenario.name}@{patients}", exc, failed)
    for command in sweeps:
        try:
            data = datasets.get(patients, command.variant)
            commands.append(runner.command(command, data))
        except Exception as exc:
            _failed(f"{command.name}@{patients}", exc, failed)
    datasets.drop(patients)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plain = [s for s in SCENARIOS if s.name in args.names]
    scale = [s for s in SCALE_SCENARIOS if s.name in args.names]
    sweeps = [c for c in SWEEPS if c.name in args.names]
    wrk = ensure_wrk()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    outcomes: list[Outcome] = []
    commands: list[CommandOutcome] = []
    failed: list[str] = []
    datasets = Datasets(workdir)
    try:
        runner = Runner(args, wrk, workdir)
        context = runner.context()
        for scenario in plain:
            try:
                outcomes.append(runner.scenario(scenario))
            except FAILURES as exc:
                # One scenario's failure (its setup, a server, wrk) does not cost the others.
                print(f"  {scenario.name} FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append(scenario.name)
        for patients in args.patients if scale or sweeps else []:
            run_size(runner, datasets, patients, scale, sweeps, outcomes, commands, failed)
    except KeyboardInterrupt:
        print("\nInterrupted: servers stopped.", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for outcome in outcomes:
        print_outcome(outcome)
    for command_outcome in commands:
        print_command(command_outcome)
    print_datasets(datasets.seeded)
    if outcomes or commands:
        print_summary(outcomes, commands)
    print_growth(outcomes, commands)
    path = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    write_json(path, context, outcomes, commands, datasets.seeded)
    print(f"\nResults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if failed:
        print(f"Failed (no figures): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
