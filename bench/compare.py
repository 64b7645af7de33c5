"""Compare the service as checked out with another revision of it, on one scenario.

    .venv/bin/python bench/compare.py --against HEAD~1 --scenario symptom-batch --rounds 3

On this VM one scenario's throughput moves by 10-30% from one run to the next, which hides most
changes worth measuring. This runs the service alone (no baseline), alternating the two versions
round after round on fresh databases, and compares their medians: slow spells then hit both.
The other revision is checked out with `git worktree` in a temporary directory and runs with
this checkout's virtualenv (a revision that needs other dependencies cannot be compared).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import servers
from loadgen import ensure_wrk
from report import Measured
from run import Runner, parse_args
from scenarios import HTTP_TIMEOUT_S, SCENARIOS, by_name

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument(
        "--scenario", required=True, help="one of: " + ", ".join(s.name for s in SCENARIOS)
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each version (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds (default 2)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")
    return args


def measure(runner: Runner, source: Path | None, scenario_name: str, db_name: str) -> Measured:
    """One service-only run on a fresh database."""
    scenario = by_name(scenario_name)
    with servers.service(runner.workdir, db_name, runner.server_cpu, source) as (server, admin):
        with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client:
            request = scenario.prepare(client, admin)
        return runner.load(server, request, scenario)


def line(label: str, measured: Measured, per_item: int | None) -> str:
    wrk = measured.wrk
    items = f" {wrk.items_per_s:8.0f} items/s" if per_item and wrk.items_per_s else ""
    return (
        f"  {label:<24} {wrk.rps:8.1f} req/s{items}  p99 {wrk.p99_ms:6.1f} ms"
        f"  cpu {measured.cpu_ms_per_request:6.2f} ms/req  errors {wrk.errors}"
    )


def main(argv: list[str]) -> int:
    args = parse(argv)
    scenario = by_name(args.scenario)
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.against],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="recovery-compare-"))
    other = workdir / f"rev-{revision}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(other), revision],
        check=True,
    )
    run_args = parse_args(
        [
            "--scenario",
            args.scenario,
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
        ]
    )
    runner = Runner(run_args, ensure_wrk(), workdir)
    sides: dict[str, tuple[Path | None, list[Measured]]] = {
        "this checkout": (None, []),
        f"{args.against} ({revision})": (other, []),
    }
    try:
        for round_number in range(1, args.rounds + 1):
            print(f"\nround {round_number} of {args.rounds}", flush=True)
            for side, (label, (source, results)) in enumerate(sides.items()):
                db_name = f"compare-{round_number}-{side}.db"
                results.append(measure(runner, source, args.scenario, db_name))
                print(line(label, results[-1], scenario.items_per_request), flush=True)
    except KeyboardInterrupt:
        print("\nInterrupted: servers stopped.", file=sys.stderr)
        return 130
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)])
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.scenario}: medians of {args.rounds} rounds")
    medians = {}
    for label, (_, results) in sides.items():
        medians[label] = statistics.median(r.wrk.rps for r in results)
        cpu = statistics.median(r.cpu_ms_per_request for r in results)
        p99 = statistics.median(r.wrk.p99_ms for r in results)
        print(
            f"  {label:<24} {medians[label]:8.1f} req/s  p99 {p99:6.1f} ms  cpu {cpu:6.2f} ms/req"
        )
    ours, theirs = medians.values()
    if theirs:
        print(f"  this checkout / {args.against}: {ours / theirs:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
