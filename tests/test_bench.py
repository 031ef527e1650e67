"""Smoke runs of the benchmark against the correct in-memory server; no timing asserted."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from abacus.harness.bench import run_bench
from abacus.harness.bench_report import bench_json, render_bench
from abacus.harness.client import CannotRun
from abacus.harness.python_driver import run_python
from abacus.harness.workload import Mode, Workload
from abacus.harness.wrk_driver import MARKER, find_wrk, lua_script, run_wrk
from tests.faulty_servers import Correct, serve
from tests.script_runner import run_script

MODE_KEYS = {
    "per_s", "p50_ms", "p99_ms", "non_2xx", "errors", "responses", "per_s_spread", "p99_ms_spread",
}  # fmt: skip


@pytest.fixture
def url() -> Iterator[str]:
    with serve(Correct()) as base:
        yield base


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script("bench.py", *args, env=env)


def assert_measured(data: dict[str, Any], concurrencies: list[int]) -> None:
    assert data["concurrency"] == concurrencies
    (target,) = data["targets"]
    assert [p["concurrency"] for p in target["points"]] == concurrencies
    for point in target["points"]:
        for mode in ("add", "read"):
            assert set(point[mode]) == MODE_KEYS
            assert point[mode]["per_s"] > 0
            assert point[mode]["non_2xx"] == 0
        assert point["add_read_ratio"] > 0
    assert target["sum"]["after"] > target["sum"]["before"]
    assert data["comparison"] is None


def test_cli_json_with_the_default_driver(url: str) -> None:
    done = run_cli(
        "--url", url, "--concurrency", "2,4", "--duration", "1", "--warmup", "0", "--reset",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert_measured(data, [2, 4])
    assert data["tool"].startswith("wrk") == (find_wrk() is not None)


def test_cli_python_fallback_warns(url: str) -> None:
    done = run_cli(
        "--url", url, "--concurrency", "2,4", "--duration", "0.5", "--warmup", "0", "--no-wrk",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["tool"] == "python"
    assert any("Python load generator" in w for w in data["warnings"])
    assert_measured(data, [2, 4])


def test_cli_table(url: str) -> None:
    done = run_cli(
        "--url", url, "--concurrency", "2", "--duration", "0.3", "--warmup", "0", "--no-wrk",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for column in ("conc", "adds/s", "reads/s", "p50 ms", "p99 ms", "non-2xx", "adds/reads"):
        assert column in done.stdout
    assert "sum grew by" in done.stdout
    assert "c=2 adds" in done.stderr  # progress goes to stderr


def test_compare_alternates_and_gives_ratios() -> None:
    with serve(Correct()) as a, serve(Correct()) as b:
        result = run_bench(
            a,
            compare_url=b,
            concurrencies=[2],
            duration=0.2,
            warmup=0,
            rounds=2,
            use_wrk=False,
        )
    assert [len(t.rounds) for t in result.targets] == [2, 2]
    data = bench_json(result)
    (row,) = data["comparison"]
    assert row["concurrency"] == 2
    assert row["adds_per_s_ratio"] > 0
    assert row["reads_per_s_ratio"] > 0
    assert row["non_2xx_a"] == row["non_2xx_b"] == 0
    for target in data["targets"]:
        (point,) = target["points"]
        per_s = point["add"]["per_s_spread"]
        assert per_s["min"] <= per_s["median"] == point["add"]["per_s"] <= per_s["max"]
    table = render_bench(result)
    assert "A/B" in table
    assert "over the 2 rounds: min / median / max" in table


def test_unreachable_target_cannot_run() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(CannotRun):
        run_bench(closed, concurrencies=[1], duration=0.1, warmup=0, use_wrk=False)
    done = run_cli("--url", closed, "--duration", "0.1", "--json")
    assert done.returncode == 2
    assert "error" in json.loads(done.stdout)


@pytest.mark.parametrize("args", [[], ["--url", "http://x", "--concurrency", "0,2"]])
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    assert run_cli(*args).returncode == 2


def test_python_driver_counts_non_2xx() -> None:
    with serve(Correct()) as base:
        # A path the server does not know: every answer is a 404.
        result = run_python(Workload(base + "/nowhere", Mode.READ, 2, 0.2, 5.0))
    assert result.responses > 0
    assert result.non_2xx == result.responses
    assert result.ok_per_s == 0


def test_lua_script_posts_the_body_and_reports_json() -> None:
    add = lua_script(Mode.ADD)
    assert 'wrk.method = "POST"' in add
    assert '{"number": 1}' in add
    assert "application/json" in add
    assert MARKER in add
    assert 'wrk.method = "GET"' in lua_script(Mode.READ)


@pytest.mark.skipif(find_wrk() is None, reason="wrk is not installed")
def test_wrk_driver_measures(url: str) -> None:
    wrk = find_wrk()
    assert wrk is not None
    result = run_wrk(Workload(url, Mode.ADD, 2, 1, 5.0), wrk=wrk)
    assert result.responses > 0
    assert result.non_2xx == 0
    assert result.p50_ms is not None
