"""Drive `wrk` for one benchmark point, with a Lua script that reports JSON.

wrk counts only statuses above 399 as errors, so the script counts non-2xx itself in
`response()`, and `done()` prints one JSON line with the totals and latency percentiles.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

from abacus.harness.workload import ADD_BODY, LoadResult, Mode, Workload

MARKER = "ABACUS_WRK_RESULT "

_SCRIPT = """
wrk.method = "{method}"
{body}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non = 0
  for _, thread in ipairs(threads) do
    non = non + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"responses": %d, "non_2xx": %d, "errors": %d, "duration_us": %d, '
    .. '"p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, non, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def find_wrk() -> str | None:
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def lua_script(mode: Mode) -> str:
    if mode is Mode.ADD:
        body = (
            f'wrk.body = \'{ADD_BODY.decode()}\'\nwrk.headers["Content-Type"] = "application/json"'
        )
        return _SCRIPT.format(method="POST", body=body, marker=MARKER)
    return _SCRIPT.format(method="GET", body="", marker=MARKER)


def run_wrk(workload: Workload, *, wrk: str, threads: int = 2) -> LoadResult:
    """One wrk run; wrk takes whole seconds, so the duration is rounded up to at least 1."""
    seconds = max(1, math.ceil(workload.duration))
    timeout = max(1, math.ceil(workload.timeout))
    with tempfile.TemporaryDirectory(prefix="abacus-wrk-") as scratch:
        script = Path(scratch) / f"{workload.mode.value}.lua"
        script.write_text(lua_script(workload.mode))
        command = [
            wrk,
            f"--threads={min(threads, workload.concurrency)}",
            f"--connections={workload.concurrency}",
            f"--duration={seconds}s",
            f"--timeout={timeout}s",
            f"--script={script}",
            workload.target,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + timeout + 30, check=False
        )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            has_latency = data["responses"] > 0
            return LoadResult(
                responses=data["responses"],
                non_2xx=data["non_2xx"],
                errors=data["errors"],
                duration=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000 if has_latency else None,
                p99_ms=data["p99_us"] / 1000 if has_latency else None,
            )
    raise RuntimeError(
        f"wrk gave no result (exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
    )
