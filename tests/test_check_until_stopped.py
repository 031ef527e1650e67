"""The checker told to stop: load bounded by an event rather than a count, judged as exactly."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from abacus.harness.check import run_check
from abacus.harness.history import Kind, Operation, Outcome
from abacus.harness.judge import APPLIED_TWICE
from tests.faulty_servers import AppliedTwice, Correct, serve

PLAN = 50_000  # far more than any of these runs fires before it is stopped


def stop_after(adds: int, stop: threading.Event) -> Callable[[Operation], None]:
    """An `on_done` that sets `stop` once `adds` adds have finished."""
    lock = threading.Lock()
    finished = 0

    def on_done(op: Operation) -> None:
        nonlocal finished
        if op.kind is Kind.ADD:
            with lock:
                finished += 1
                if finished >= adds:
                    stop.set()

    return on_done


def test_a_stopped_run_judges_exactly_what_it_fired() -> None:
    stop = threading.Event()
    with serve(Correct()) as url:
        report = run_check(
            url,
            adds=PLAN,
            concurrency=8,
            reset=True,
            seed=5,
            stop=stop,
            on_done=stop_after(200, stop),
        )
    operations = report.history.operations
    adds = report.history.of(Kind.ADD)
    assert 200 <= len(adds) < PLAN
    assert all(op.outcome is not Outcome.INVOKED and not math.isnan(op.start) for op in operations)
    # Once one operation is refused every later one is: what ran is a prefix of the plan.
    assert [op.op_id for op in operations] == list(range(1, len(operations) + 1))
    assert report.exit_code == 0, report.verdict.message()
    assert report.verdict.acknowledged == len(adds)
    assert report.verdict.final_sum == report.verdict.expected_sum
    assert any(f"of {PLAN} planned adds" in note for note in report.notes), report.notes


def test_a_fault_is_still_caught_in_a_stopped_run() -> None:
    stop = threading.Event()
    with serve(AppliedTwice()) as url:
        report = run_check(
            url,
            adds=PLAN,
            concurrency=8,
            reset=True,
            seed=6,
            stop=stop,
            on_done=stop_after(240, stop),
        )
    assert report.exit_code == 1
    assert report.verdict.fault == APPLIED_TWICE


def test_a_plan_spent_before_the_stop_says_so() -> None:
    with serve(Correct()) as url:
        report = run_check(url, adds=20, concurrency=2, reset=True, stop=threading.Event())
    assert len(report.history.of(Kind.ADD)) == 20
    assert report.exit_code == 0
    assert any("all 20 planned adds were fired" in note for note in report.notes), report.notes
