"""The load generator: wrk (Debian package), driven by a generated Lua script.

The script sets the request (method, headers, body), counts responses per status code and prints
them when wrk is done, so errors can be told apart (wrk itself only counts "non-2xx or 3xx"). It
also keeps the start of the first body of each unexpected status, and, when the scenario's Lua
defines `bench_count_items(body)`, counts the items a response accepted and refused (a batch).

Every run gets its own random seed and run number (Lua globals `bench_seed`, `bench_run`, plus
`bench_thread` per wrk thread), so a script can make ids that never repeat within a run (a counter)
nor between the warm-up and the measured run (the run number).
"""

import itertools
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

APT_TIMEOUT_S = 600
# wrk leaves a request that takes longer than its timeout out of the latency figures (it counts
# it as a socket timeout instead): keep the timeout well above any latency worth measuring.
REQUEST_TIMEOUT_S = 10
SAMPLE_CHARS = 600
_run_numbers = itertools.count(1)


@dataclass(frozen=True)
class LoadRequest:
    """The request wrk sends over and over. `lua` is extra script (e.g. a request() function that
    varies the body from one request to the next); it runs after the defaults are set. Any
    status other than `expect_status` counts as an error."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    lua: str = ""
    expect_status: int = 200


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    statuses: dict[int, int]
    expect_status: int = 200
    samples: dict[int, str] = field(default_factory=dict)  # status -> start of a body
    items_ok: int | None = None  # with bench_count_items: items accepted
    items_bad: int | None = None  # ... and refused

    @property
    def unexpected(self) -> int:
        """Responses with a status other than the expected one (a 200 where 201 was due too)."""
        return sum(n for status, n in self.statuses.items() if status != self.expect_status)

    @property
    def errors(self) -> int:
        return self.unexpected + sum(self.socket_errors.values())

    @property
    def items_per_s(self) -> float | None:
        return None if self.items_ok is None or not self.seconds else self.items_ok / self.seconds


STATUS_COUNTER = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("bench_thread", #threads)
end
function init(args)
  statuses, samples, items_ok, items_bad = {}, {}, 0, 0
  math.randomseed(bench_seed + 7919 * bench_thread)
  if bench_init then bench_init(args) end
end
local function one_line(text)
  return (string.gsub(string.sub(text or "", 1, bench_sample_chars), "[%c]", " "))
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= bench_expect and not samples[status] then samples[status] = one_line(body) end
  if bench_count_items and status == bench_expect then
    local ok, bad, sample = bench_count_items(body)
    items_ok, items_bad = items_ok + ok, items_bad + bad
    if bad > 0 and not samples[0] then samples[0] = one_line(sample) end
  end
end
function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("STATUS %d %d\\n", status, count))
    end
    for status, body in pairs(thread:get("samples")) do
      io.write(string.format("SAMPLE %d %s\\n", status, body))
    end
    ok, bad = ok + thread:get("items_ok"), bad + thread:get("items_bad")
  end
  if bench_count_items then io.write(string.format("ITEMS %d %d\\n", ok, bad)) end
end
"""


def lua_string(value: str) -> str:
    """A Lua (5.1 / LuaJIT) string literal for any text."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(request: LoadRequest) -> str:
    """The whole script for one wrk run (a fresh seed and run number each time)."""
    lines = [
        f"bench_seed = {secrets.randbelow(2**31)}",
        f"bench_run = {next(_run_numbers)}",
        "bench_thread = 0",
        f"bench_expect = {int(request.expect_status)}",
        f"bench_sample_chars = {SAMPLE_CHARS}",
        f"wrk.method = {lua_string(request.method)}",
    ]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in request.headers.items()]
    if request.body is not None:
        lines.append(f"wrk.body = {lua_string(request.body)}")
    return "\n".join(lines) + "\n" + request.lua + "\n" + STATUS_COUNTER


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages first if missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed and this is not root: run `apt-get install -y wrk`.")
    print("Installing wrk (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "wrk"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        if done.returncode != 0:
            raise SystemExit(
                f"`{' '.join(argv)}` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk but it is not on PATH.")
    return found


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """argv run on one CPU core (taskset), or as is when there is none to pin to."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def run_wrk(
    wrk: str,
    url: str,
    request: LoadRequest,
    *,
    script_path: Path,
    seconds: int,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
) -> WrkResult:
    script_path.write_text(lua_script(request))
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += [f"--timeout={REQUEST_TIMEOUT_S}s", "--latency", "-s", str(script_path), url]
    done = subprocess.run(
        pinned(argv, cpu), capture_output=True, text=True, timeout=seconds + REQUEST_TIMEOUT_S + 30
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout, expect_status=request.expect_status)


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * UNITS_MS[match[2]]


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    if not match:
        raise ValueError(f"wrk output has no match for {pattern!r}:\n{output}")
    return match


def parse_wrk(output: str, *, expect_status: int = 200) -> WrkResult:
    """Figures from `wrk --latency` output (plus our STATUS, SAMPLE and ITEMS lines)."""
    totals = _search(r"^\s*(\d+) requests in ([\d.]+\w+),", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    items = re.search(r"^ITEMS (\d+) (\d+)$", output, re.M)
    return WrkResult(
        requests=int(totals[1]),
        seconds=_duration_ms(totals[2]) / 1000,
        rps=float(_search(r"^Requests/sec:\s*([\d.]+)", output)[1]),
        p50_ms=_duration_ms(_search(r"^\s*50%\s+(\S+)", output)[1]),
        p99_ms=_duration_ms(_search(r"^\s*99%\s+(\S+)", output)[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True)
        )
        if socket
        else {},
        statuses={int(s): int(n) for s, n in re.findall(r"^STATUS (\d+) (\d+)$", output, re.M)},
        expect_status=expect_status,
        samples={int(s): body for s, body in re.findall(r"^SAMPLE (\d+) (.*)$", output, re.M)},
        items_ok=int(items[1]) if items else None,
        items_bad=int(items[2]) if items else None,
    )
