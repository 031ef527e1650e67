"""Load for a duration: it covers every fault, however long recovering takes. No stack: a
stand-in nemesis whose fault is over only once the test has seen adds acknowledged after the
time was up."""

from __future__ import annotations

import threading
import time

import pytest

from abacus.harness.faults import FaultEvent
from abacus.harness.history import Kind, Operation, Outcome
from abacus.harness.timed_run import TimedRun, run_timed
from tests.faulty_servers import Correct, serve
from tests.waiting import PATIENCE_S

PLAN = 50_000  # far more than any of these runs fires
AFTER_TIME = 50  # adds acknowledged after the time was up, while the fault still recovers


class SlowToRecover:
    """A fault whose recovery ends only once `AFTER_TIME` adds, invoked after the nemesis was
    told to finish, have been acknowledged: the load must still be running then."""

    def __init__(self) -> None:
        self.events: list[FaultEvent] = []
        self.finishes: list[bool] = []  # `hurry` of each call
        self.finishing_at: float | None = None
        self.started = threading.Event()
        self.recovered = threading.Event()
        self._lock = threading.Lock()
        self._seen = 0

    def start(self) -> None:
        self.started.set()

    def finish(self, *, hurry: bool = False) -> None:
        with self._lock:
            self.finishes.append(hurry)
            if self.finishing_at is None:
                self.finishing_at = time.monotonic()
        if hurry:
            self.recovered.set()  # as the real one ends its hold at once, for every caller
        self.recovered.wait(PATIENCE_S)

    def on_done(self, op: Operation) -> None:
        with self._lock:
            after = self.finishing_at is not None and op.start > self.finishing_at
            if after and op.kind is Kind.ADD and op.outcome is Outcome.OK:
                self._seen += 1
                if self._seen >= AFTER_TIME:
                    self.recovered.set()


def test_the_load_runs_until_the_fault_in_progress_is_over() -> None:
    nemesis = SlowToRecover()
    with serve(Correct()) as url:
        report = run_timed(
            url,
            duration=0.3,
            nemesis=nemesis,
            adds=PLAN,
            concurrency=4,
            reset=True,
            on_done=nemesis.on_done,
        )
    assert nemesis.started.is_set()
    assert nemesis.recovered.is_set(), "adds went on being acknowledged after the time was up"
    assert nemesis.finishes[0] is False, "on time, the fault is held to its end"
    assert nemesis.finishing_at is not None
    assert report.elapsed >= 0.3
    late = [op for op in report.history.of(Kind.ADD) if op.start > nemesis.finishing_at]
    assert len(late) >= AFTER_TIME
    assert len(report.history.of(Kind.ADD)) < PLAN, "and then the load stopped"
    assert report.exit_code == 0


def test_a_plan_spent_before_the_time_is_up_ends_the_run_at_once() -> None:
    with serve(Correct()) as url:
        began = time.monotonic()
        report = run_timed(url, duration=PATIENCE_S, adds=20, concurrency=2, reset=True)
    assert time.monotonic() - began < PATIENCE_S
    assert len(report.history.of(Kind.ADD)) == 20
    assert any("all 20 planned adds" in note for note in report.notes)


def test_an_interrupted_run_hurries_the_fault_in_progress() -> None:
    nemesis = SlowToRecover()
    with pytest.raises(KeyboardInterrupt), TimedRun(PATIENCE_S, nemesis) as timed:
        raise KeyboardInterrupt
    assert True in nemesis.finishes, "recovered at once rather than held to its end"
    assert timed.stop.is_set()
