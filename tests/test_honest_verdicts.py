"""Honest verdicts: a run that learnt little says so, --max-unknown makes it exit 3, a failed read
is failed, and runs with faults learn unknown outcomes by default."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from abacus.cli.check_consistency import parse_args
from abacus.harness.check import EXIT_INCONCLUSIVE, CheckReport, run_check
from abacus.harness.history import History, Kind, Outcome, add
from abacus.harness.judge import WEAK_SHARE, judge
from abacus.harness.report import render_check
from tests.faulty_servers import MostlyInternalErrors, serve
from tests.script_runner import run_script

ADDS = 100
NEMESIS = ["--stack-dir", "s", "--nemesis", "all", "--duration", "1"]


def test_mostly_unknown_is_consistent_but_weak_and_says_so() -> None:
    with serve(MostlyInternalErrors(every=10)) as url:
        report = run_check(url, adds=ADDS, concurrency=4, reset=True, seed=9)
    verdict = report.verdict
    assert verdict.consistent, verdict.violations
    assert verdict.unknown == 90
    assert verdict.weak
    assert report.exit_code == 0, "without --max-unknown a weak verdict is still a pass"
    assert verdict.message().startswith("CONSISTENT (")
    assert verdict.message().endswith(", weak: 90 of 100 adds unknown")
    assert "weak: 90 of 100 adds unknown" in render_check(report).splitlines()[1]


def test_max_unknown_makes_a_mostly_unknown_run_inconclusive_exit_3() -> None:
    with serve(MostlyInternalErrors(every=10)) as url:
        done = run_script(
            "check_consistency.py",
            *("--url", url, "--requests", str(ADDS), "--concurrency", "4", "--reset"),
            *("--max-unknown", "0.5", "--json"),
        )
    assert done.returncode == EXIT_INCONCLUSIVE, done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "inconclusive"
    assert data["exit_code"] == 3
    assert data["unknown_share"] == 0.9
    assert data["message"].startswith("INCONCLUSIVE: 90 of 100 adds unknown (90.0%)")
    assert data["fault"] is None


def test_max_unknown_above_the_share_is_a_pass() -> None:
    with serve(MostlyInternalErrors(every=10)) as url:
        report = run_check(url, adds=ADDS, concurrency=4, reset=True, max_unknown=0.95)
    assert report.exit_code == 0
    assert report.word == "consistent"


def test_an_inconsistent_run_stays_exit_1_whatever_max_unknown_says() -> None:
    # Two of three adds unknown, and a final sum none of them explains.
    h = History(
        Decimal(0),
        [add(1, 1, 0, 1, new_sum=1), *(add(i, i, 0, 9, outcome=Outcome.UNKNOWN) for i in (2, 3))],
        Decimal(100),
    )
    report = CheckReport("http://x", h, judge(h), 1, 1.0, True, max_unknown=0.0)
    assert report.verdict.weak
    assert report.exit_code == 1
    assert report.word == "inconsistent"


def test_weak_begins_above_half_the_adds_unknown() -> None:
    def share(unknown: int, of: int) -> bool:
        ops = [add(i, i, 0, 9, outcome=Outcome.UNKNOWN) for i in range(1, unknown + 1)]
        ops += [add(i, i, 0, 9, outcome=Outcome.FAILED) for i in range(unknown + 1, of + 1)]
        return judge(History(Decimal(0), ops, Decimal(0))).weak

    assert WEAK_SHARE == 0.5
    assert not share(5, 10)
    assert share(6, 10)


def test_a_failed_read_is_failed_not_unknown() -> None:
    with serve(MostlyInternalErrors(every=10)) as url:
        report = run_check(url, adds=ADDS, concurrency=4, reset=True)
    reads = report.history.of(Kind.READ)
    assert {op.outcome for op in reads} == {Outcome.OK, Outcome.FAILED}
    assert all(op.status == 500 for op in reads if op.outcome is Outcome.FAILED)
    assert not report.history.of(Kind.READ, Outcome.UNKNOWN)


@pytest.mark.parametrize(
    ("extra", "resolve"),
    [
        ([], False),
        (["--resolve-unknown"], True),
        ([*NEMESIS], True),
        ([*NEMESIS, "--no-resolve-unknown"], False),
    ],
)
def test_runs_with_faults_resolve_unknown_outcomes_by_default(
    extra: list[str], resolve: bool
) -> None:
    args = parse_args(["--url", "http://127.0.0.1:1", *extra])
    assert args.resolve_unknown is resolve
