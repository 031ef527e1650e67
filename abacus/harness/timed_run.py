"""Load for a duration rather than a count, with a nemesis breaking things meanwhile or not.

A `TimedRun` is what `run_check` enters as the firing begins and leaves once it has ended
(its `during`), and its `stop` is the run's stop event. Entering starts the clock and the
nemesis. When `duration` seconds are up, the nemesis injects no more faults and finishes the one
in progress (held as long as planned, recovered, the stack healthy again); only then is the load
told to stop. So the load always covers every fault, however long recovering takes on this
machine, and the run's end is read from a recovered stack.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Protocol

from abacus.harness.check import CheckReport, run_check
from abacus.harness.faults import FaultEvent


class FaultInjector(Protocol):
    """What a timed run needs of a nemesis (abacus/harness/nemesis.py is the real one)."""

    events: list[FaultEvent]

    def start(self) -> None: ...

    def finish(self, *, hurry: bool = False) -> None: ...


class TimedRun:
    def __init__(self, duration: float, nemesis: FaultInjector | None = None) -> None:
        if duration <= 0:
            raise ValueError("duration must be positive")
        self.duration = duration
        self.nemesis = nemesis
        self.stop = threading.Event()  # the load's: set once the time is up and faults are over
        self._ended = threading.Event()  # the load ended before the time was up
        self._clock: threading.Thread | None = None

    def __enter__(self) -> TimedRun:
        if self.nemesis is not None:
            self.nemesis.start()
        self._clock = threading.Thread(target=self._keep_time, name="abacus-timer", daemon=True)
        self._clock.start()
        return self

    def _keep_time(self) -> None:
        self._ended.wait(self.duration)
        if self.nemesis is not None:
            self.nemesis.finish()
        self.stop.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The load has ended: on time, with its plan spent early, or interrupted. Interrupted,
        # the fault in progress is recovered at once rather than held to its end.
        self._ended.set()
        if self.nemesis is not None:
            self.nemesis.finish(hurry=exc_type is not None)
        if self._clock is not None:
            self._clock.join()
        self.stop.set()


def run_timed(
    url: str, *, duration: float, nemesis: FaultInjector | None = None, **options: Any
) -> CheckReport:
    """`run_check` firing for `duration` seconds (its `adds` the most it may fire), with the
    nemesis's faults, if any, in the report's history."""
    timed = TimedRun(duration, nemesis)
    report = run_check(url, stop=timed.stop, during=timed, **options)
    if nemesis is not None:
        report.history.faults = list(nemesis.events)
    return report
