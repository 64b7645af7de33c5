"""The load generator: wrk (Debian package), driven by a generated Lua script.

The script sets the request (method, headers, body), counts responses per status code and prints
them when wrk is done, so errors can be told apart (wrk itself only counts "non-2xx or 3xx").
"""

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

APT_TIMEOUT_S = 600
# wrk leaves a request that takes longer than its timeout out of the latency figures (it counts
# it as a socket timeout instead): keep the timeout well above any latency worth measuring.
REQUEST_TIMEOUT_S = 10


@dataclass(frozen=True)
class LoadRequest:
    """The request wrk sends over and over. `lua` is extra script (e.g. a request() function that
    varies the body from one request to the next); it runs after the defaults are set."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    lua: str = ""


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

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


STATUS_COUNTER = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("STATUS %d %d\\n", status, count))
    end
  end
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
    lines = [f"wrk.method = {lua_string(request.method)}"]
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
    return parse_wrk(done.stdout)


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


def parse_wrk(output: str) -> WrkResult:
    """Figures from `wrk --latency` output (plus our STATUS lines)."""
    totals = _search(r"^\s*(\d+) requests in ([\d.]+\w+),", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
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
    )
