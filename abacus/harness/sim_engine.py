"""The commit simulation's machinery: simulated time, a worker's CPU, and the one Redis.

No real time passes: events are callbacks ordered by their simulated time (ties by the order they
were scheduled, so a run depends only on its seed).

Redis is modelled as its event loop runs it: each iteration takes every round trip that has
arrived, runs them one after another in arrival order (each costs its calibrated CPU), then, if
any of them wrote, one fsync for all of them (`appendfsync always` syncs once per iteration, in
`beforeSleep`), and only then sends every reply of the iteration. Round trips arriving meanwhile
wait for the next iteration. WATCH is exact: a lane's EXEC is discarded when an EXEC that wrote
the sum ran after its WATCH did.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from abacus.harness.sim_params import Calibration

Callback = Callable[[], None]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callback]] = []
        self._order = itertools.count()

    def at(self, when: float, callback: Callback) -> None:
        heapq.heappush(self._events, (when, next(self._order), callback))

    def run(self, until: float) -> None:
        events = self._events
        while events and events[0][0] <= until:
            self.now, _, callback = heapq.heappop(events)
            callback()
        self.now = until


class Cpu:
    """One worker's event loop: CPU work runs one piece at a time, in the order it was queued."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.free_at = 0.0
        self.busy_s = 0.0

    def run(self, seconds: float, then: Callback) -> None:
        done = max(self.clock.now, self.free_at) + seconds
        self.free_at = done
        self.busy_s += seconds
        self.clock.at(done, then)


@dataclass
class RoundTrip:
    """Round trip 1 (`commit` False: WATCH, GET, MGET) or 2 (MULTI ... EXEC) of k adds; `reply`
    is called when its replies reach the lane."""

    k: int
    commit: bool
    reply: Callback
    # Round trip 1: the sum's version when the WATCH ran. Round trip 2: the one it watched.
    version: int = 0
    applied: bool = False


@dataclass
class Redis:
    clock: Clock
    calibration: Calibration
    # How many EXECs have written the sum; and the sum itself (every simulated add is 1).
    version: int = 0
    total: int = 0
    busy_s: float = 0.0
    iterations: int = 0
    fsyncs: int = 0
    _arrived: list[RoundTrip] = field(default_factory=list)
    _busy: bool = False

    def send(self, trip: RoundTrip) -> None:
        """The lane writes the round trip now; it reaches Redis half a round trip later."""
        self.clock.at(self.clock.now + self.calibration.rtt_s / 2, lambda: self._arrive(trip))

    def _arrive(self, trip: RoundTrip) -> None:
        self._arrived.append(trip)
        if not self._busy:
            self._iterate()

    def _iterate(self) -> None:
        trips, self._arrived = self._arrived, []
        self._busy = True
        self.iterations += 1
        cal = self.calibration
        spent = 0.0
        written = 0
        for trip in trips:
            if not trip.commit:
                trip.version = self.version
                spent += cal.redis_read.at(trip.k)
            elif trip.version == self.version:
                trip.applied = True
                self.version += 1
                self.total += trip.k
                written += trip.k
                spent += cal.redis_commit.at(trip.k)
            else:
                spent += cal.redis_discarded.at(trip.k)
        if written:
            self.fsyncs += 1
            spent += cal.fsync.at(written)
        self.busy_s += spent
        self.clock.at(self.clock.now + spent, lambda: self._replies(trips))

    def _replies(self, trips: list[RoundTrip]) -> None:
        delivered = self.clock.now + self.calibration.rtt_s / 2
        for trip in trips:
            self.clock.at(delivered, trip.reply)
        self._busy = False
        if self._arrived:
            self._iterate()
