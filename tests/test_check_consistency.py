"""The consistency checker against in-memory servers, correct and deliberately faulty."""

from __future__ import annotations

import json
import random
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from abacus.harness.check import plan, run_check
from abacus.harness.client import CannotRun, classify
from abacus.harness.history import Kind, Outcome
from abacus.harness.report import check_json, render_check
from tests.faulty_servers import FAULTY, BudgetRefusesSomeKeys, Correct, FencesSomeKeys, serve
from tests.script_runner import run_script

ADDS = 240
CONCURRENCY = 8


@pytest.fixture
def correct_url() -> Iterator[str]:
    with serve(Correct()) as url:
        yield url


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script("check_consistency.py", *args, env=env)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_correct_server_is_consistent(correct_url: str) -> None:
    report = run_check(correct_url, adds=ADDS, concurrency=CONCURRENCY, reset=True, seed=1)
    verdict = report.verdict
    assert verdict.consistent, verdict.violations
    assert report.exit_code == 0
    assert verdict.acknowledged == ADDS
    assert verdict.final_sum == verdict.expected_sum
    assert len(report.history.of(Kind.READ, Outcome.OK)) == ADDS // 4
    data = check_json(report)
    assert set(data["nodes"]) == {"node-1", "node-2", "node-3"}
    assert "CONSISTENT" in render_check(report)


@pytest.mark.parametrize("fault", sorted(FAULTY))
def test_each_fault_is_caught_and_named(fault: str) -> None:
    with serve(FAULTY[fault]()) as url:
        report = run_check(url, adds=ADDS, concurrency=CONCURRENCY, reset=True, seed=2)
    assert report.exit_code == 1
    assert report.verdict.fault == fault
    assert fault in report.verdict.message()


def test_without_reset_it_starts_from_the_current_sum(correct_url: str) -> None:
    run_check(correct_url, adds=20, concurrency=2, reset=True)
    report = run_check(correct_url, adds=20, concurrency=2)
    assert report.verdict.consistent
    assert report.verdict.start_sum > 0
    assert any("without --reset" in note for note in report.notes)


def test_resolve_unknown_sends_idempotency_keys(correct_url: str) -> None:
    report = run_check(correct_url, adds=20, concurrency=2, reset=True, resolve_unknown=True)
    assert report.verdict.consistent
    assert all(op.key for op in report.history.of(Kind.ADD))


def test_resolve_unknown_settles_a_fenced_key_as_not_applied() -> None:
    with serve(FencesSomeKeys(every=5)) as url:
        report = run_check(url, adds=50, concurrency=2, reset=True, resolve_unknown=True)
    adds = report.history.of(Kind.ADD)
    settled = [op for op in adds if op.resolved]
    assert len(settled) == 10, "every fifth key was left unknown, then asked again"
    assert all(op.outcome is Outcome.FAILED for op in settled)
    assert {op.error for op in settled} == {"idempotency_key_refused"}
    verdict = report.verdict
    assert verdict.consistent, verdict.violations
    assert verdict.unknown == 0
    assert verdict.final_sum == verdict.expected_sum
    assert report.exit_code == 0


BUDGET_REFUSALS = [(429, "key_quota_exhausted"), (503, "key_store_full")]


@pytest.mark.parametrize(("status", "code"), BUDGET_REFUSALS)
def test_a_budget_refusal_is_asked_again_and_a_replay_settles_it_as_applied(
    status: int, code: str
) -> None:
    """The refused request did not add, but the key's add counted elsewhere: judged as "failed",
    it would be a failed add applied; as unknown, asking again with the key finds its record."""
    refuses = BudgetRefusesSomeKeys(status=status, code=code, every=5, counted_elsewhere=True)
    with serve(refuses) as url:
        report = run_check(url, adds=50, concurrency=2, reset=True, resolve_unknown=True)
    settled = [op for op in report.history.of(Kind.ADD) if op.resolved]
    assert len(settled) == 10, "every fifth key was refused by the budget, then asked again"
    assert all(op.outcome is Outcome.OK for op in settled)
    verdict = report.verdict
    assert verdict.consistent, verdict.violations
    assert verdict.unknown == 0
    assert verdict.final_sum == verdict.expected_sum
    assert report.exit_code == 0


@pytest.mark.parametrize(("status", "code"), BUDGET_REFUSALS)
def test_a_budget_refusal_asked_again_and_refused_again_stays_unknown(
    status: int, code: str
) -> None:
    refuses = BudgetRefusesSomeKeys(status=status, code=code, every=5, counted_elsewhere=False)
    with serve(refuses) as url:
        report = run_check(url, adds=50, concurrency=2, reset=True, resolve_unknown=True)
    refused = [op for op in report.history.of(Kind.ADD) if op.error == code]
    assert len(refused) == 10
    assert all(op.outcome is Outcome.UNKNOWN and not op.resolved for op in refused), (
        "a budget refusal never says the add will not count"
    )
    verdict = report.verdict
    assert verdict.consistent, verdict.violations
    assert verdict.final_sum == verdict.expected_min, "none of them counted, and that fits"


@pytest.mark.parametrize(("ratio", "reads"), [(0, 0), (0.25, 25), (1, 100), (2.5, 250)])
def test_plan_spreads_reads_among_the_adds(ratio: float, reads: int) -> None:
    ops = plan(100, ratio, random.Random(0), keyed=False)
    assert [op.op_id for op in ops] == list(range(1, len(ops) + 1))
    assert len([op for op in ops if op.kind is Kind.READ]) == reads
    assert len({op.number for op in ops if op.kind is Kind.ADD}) == 100


def test_unreachable_server_cannot_run() -> None:
    with pytest.raises(CannotRun, match="starting sum"):
        run_check(closed_port_url(), adds=10, concurrency=2)


def test_refused_reset_cannot_run() -> None:
    with serve(Correct(), admin_token="s3cret") as url, pytest.raises(CannotRun, match="401"):
        run_check(url, adds=10, concurrency=2, reset=True)


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, Outcome.OK),
        (422, "invalid_number", Outcome.FAILED),
        (429, "rate_limited", Outcome.FAILED),
        (503, "unavailable", Outcome.FAILED),
        (503, "outcome_unknown", Outcome.UNKNOWN),
        # The key budget: this request did not add, but another carrier of the key may have.
        (429, "key_quota_exhausted", Outcome.UNKNOWN),
        (503, "key_store_full", Outcome.UNKNOWN),
        (502, None, Outcome.UNKNOWN),
        (504, None, Outcome.UNKNOWN),
        (500, "internal", Outcome.UNKNOWN),
    ],
)
def test_classification_of_answers(status: int, error: str | None, outcome: Outcome) -> None:
    assert classify(status, error) is outcome


# -- the command line ----------------------------------------------------------------------


def cli_json(url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(
        "--url", url, "--requests", str(ADDS), "--concurrency", str(CONCURRENCY), "--json", *extra
    )
    return done.returncode, json.loads(done.stdout)


def test_cli_passes_the_correct_server(correct_url: str) -> None:
    code, data = cli_json(correct_url, "--reset")
    assert code == 0
    assert data["verdict"] == "consistent"
    assert data["fault"] is None
    assert data["adds"]["ok"] == ADDS
    assert data["sum"]["final"] == data["sum"]["expected"]
    assert data["latency_ms"]["add"]["p50"] > 0
    assert data["throughput"]["ops_per_s"] > 0


@pytest.mark.parametrize("fault", sorted(FAULTY))
def test_cli_catches_each_fault(fault: str) -> None:
    with serve(FAULTY[fault]()) as url:
        code, data = cli_json(url, "--reset")
    assert code == 1
    assert data["verdict"] == "inconsistent"
    assert data["fault"] == fault
    assert fault in data["message"]
    assert data["violations"][fault]["count"] >= 1


def test_cli_human_summary(correct_url: str) -> None:
    done = run_cli("--url", correct_url, "--requests", "40", "--concurrency", "4", "--reset")
    assert done.returncode == 0
    for label in ("verdict", "adds", "reads", "sum", "order", "nodes", "latency", "throughput"):
        assert f"  {label} " in done.stdout


def test_cli_reset_token_from_the_environment() -> None:
    with serve(Correct(), admin_token="s3cret") as url:
        refused = run_cli("--url", url, "--requests", "10", "--reset", "--json")
        allowed = run_cli(
            "--url", url, "--requests", "10", "--reset", env={"ABACUS_ADMIN_TOKEN": "s3cret"}
        )
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["verdict"] == "error"
    assert allowed.returncode == 0


def test_cli_closed_port_exits_2() -> None:
    done = run_cli("--url", closed_port_url(), "--requests", "10", "--json")
    assert done.returncode == 2
    assert "cannot read the starting sum" in json.loads(done.stdout)["error"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--url", "http://127.0.0.1:1", "--requests", "0"],
        ["--url", "http://127.0.0.1:1", "--concurrency", "-3"],
        ["--url", "http://127.0.0.1:1", "--bogus"],
    ],
)
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert "usage:" in done.stderr
