"""The commit simulation's machinery: simulated time, a worker's CPU, and the one Redis.

No real time passes: events are callbacks ordered by their simulated time (ties by the order they
were scheduled, so a run depends only on its seed).

Redis is modelled as its event loop runs it: each iteration (a pass) takes every round trip that
has arrived, runs them one after another in arrival order (each costs its calibrated CPU), then,
in `beforeSleep`, the commands of the clients unblocked during the pass, then, if any of it wrote,
one fsync for all of it (`appendfsync always` syncs once per pass), and only then sends every
reply of the pass. Round trips arriving meanwhile wait for the next pass. WATCH is exact: a lane's
EXEC is discarded when an EXEC that wrote the sum ran after its WATCH did.

The turn (`<sum>:turn`, a list holding one token): a round trip 1 with `turn` starts with
`BLPOP <sum>:turn T`. With the token there, it pops it (a write: the pass fsyncs) and its WATCH,
GET and MGET run at once. Without, the client blocks, in a FIFO of waiters, and the rest of its
round trip waits with it. An applied EXEC with `turn` ends in `DEL <sum>:turn, RPUSH <sum>:turn
1`: one token, which the longest waiter pops at once; as Redis 7 does, that client's WATCH, GET
and MGET run in the same pass's `beforeSleep`, after the pass's other round trips and before its
fsync, and its replies leave with the pass's. A discarded EXEC pushes nothing. A waiter whose T
has passed gets nil and runs its WATCH, GET and MGET without the turn: in the `beforeSleep` of the
pass under way when T runs out, or, Redis idle, at its next `serverCron` tick (`hz` 10: every
100 ms, as measured here: an idle Redis answers `BLPOP k 0.1` after 0.1 to 0.2 s).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from abacus.harness.sim_params import Calibration

Callback = Callable[[], None]

# Redis's CPU for a BLPOP that pops (or blocks, or is served), and for the DEL and RPUSH in an
# EXEC: not in calibration.json; a few microseconds in a quick measurement here (schedstat, as
# sim_calibration.py), small beside the 21 µs of an EXEC and the 232 µs of an fsync.
TURN_S = 3e-6
# serverCron's frequency (redis.conf's default `hz`): when an idle Redis notices timeouts.
HZ = 10
# The node's TURN_WAIT: how long a BLPOP waits for the token.
TURN_WAIT_S = 0.1


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


@dataclass(eq=False)
class RoundTrip:
    """Round trip 1 (`commit` False: WATCH, GET, MGET) or 2 (MULTI ... EXEC) of k adds; `reply`
    is called when its replies reach the lane. `turn`: round trip 1 starts with BLPOP on the
    turn, round trip 2's EXEC ends by resetting it to one token. `release`: UNWATCH, DEL turn,
    RPUSH turn 1 (an attempt that writes nothing)."""

    k: int
    commit: bool
    reply: Callback
    # Round trip 1: the sum's version when the WATCH ran. Round trip 2: the one it watched.
    version: int = 0
    applied: bool = False
    turn: bool = False
    release: bool = False
    # Round trip 1 with `turn`: whether its BLPOP popped the token (False: it timed out), and
    # when its wait runs out while it is blocked.
    got_turn: bool = False
    deadline: float = math.inf


@dataclass
class _Pass:
    """What one event-loop pass did: Redis's time, adds written, whether it wrote at all (a
    popped or pushed token is a write too), the replies it sends, the waiters it served."""

    spent: float = 0.0
    written: int = 0
    wrote: bool = False
    replies: list[RoundTrip] = field(default_factory=list)
    served: list[RoundTrip] = field(default_factory=list)


@dataclass
class Redis:
    clock: Clock
    calibration: Calibration
    turn_wait_s: float = TURN_WAIT_S
    # How many EXECs have written the sum; and the sum itself (every simulated add is 1).
    version: int = 0
    total: int = 0
    busy_s: float = 0.0
    iterations: int = 0
    fsyncs: int = 0
    # Tokens in the turn list (0 or 1), the clients blocked on it, and how many waits timed out.
    tokens: int = 1
    turn_timeouts: int = 0
    _waiters: deque[RoundTrip] = field(default_factory=deque)
    _arrived: list[RoundTrip] = field(default_factory=list)
    _busy: bool = False

    def send(self, trip: RoundTrip) -> None:
        """The lane writes the round trip now; it reaches Redis half a round trip later."""
        self.clock.at(self.clock.now + self.calibration.rtt_s / 2, lambda: self._arrive(trip))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _arrive(self, trip: RoundTrip) -> None:
        self._arrived.append(trip)
        if not self._busy:
            self._iterate()

    def _iterate(self) -> None:
        trips, self._arrived = self._arrived, []
        self._busy = True
        self.iterations += 1
        cal = self.calibration
        done = _Pass()
        for trip in trips:
            self._run(trip, done)
        # beforeSleep: the waits that ran out by now get nil; then every client unblocked in this
        # pass (served first, in the order served) runs the rest of its round trip 1, a served
        # one after its BLPOP runs again and pops.
        expired = self._expired(self.clock.now + done.spent)
        done.spent += TURN_S * len(done.served)
        for trip in done.served + expired:
            done.wrote = done.wrote or trip.got_turn
            trip.version = self.version
            done.spent += cal.redis_read.at(trip.k)
            done.replies.append(trip)
        if done.written or done.wrote:
            self.fsyncs += 1
            done.spent += cal.fsync.at(done.written)
        self.busy_s += done.spent
        self.clock.at(self.clock.now + done.spent, lambda: self._replies(done.replies))

    def _run(self, trip: RoundTrip, done: _Pass) -> None:
        """One round trip's commands, in the pass under way."""
        cal = self.calibration
        if trip.release:
            done.spent += cal.redis_read.fixed + TURN_S
            done.wrote = True
            self._push_token(done.served)
        elif not trip.commit:
            if trip.turn:
                done.spent += TURN_S
                if not self.tokens:
                    trip.deadline = self.clock.now + done.spent + self.turn_wait_s
                    self._waiters.append(trip)
                    self.clock.at(trip.deadline, self._timeout)
                    return
                self.tokens = 0
                trip.got_turn = done.wrote = True
            trip.version = self.version
            done.spent += cal.redis_read.at(trip.k)
        elif trip.version == self.version:
            trip.applied = True
            self.version += 1
            self.total += trip.k
            done.written += trip.k
            done.spent += cal.redis_commit.at(trip.k)
            if trip.turn:
                done.spent += TURN_S
                self._push_token(done.served)
        else:
            done.spent += cal.redis_discarded.at(trip.k)
        done.replies.append(trip)

    def _push_token(self, served: list[RoundTrip]) -> None:
        """DEL, RPUSH: exactly one token, popped at once by the longest waiter if there is one."""
        self.tokens = 1
        if self._waiters:
            trip = self._waiters.popleft()
            self.tokens = 0
            trip.got_turn = True
            served.append(trip)

    def _expired(self, now: float) -> list[RoundTrip]:
        # Every lane waits the same T, so the FIFO is also in order of deadline.
        expired = []
        while self._waiters and self._waiters[0].deadline <= now:
            expired.append(self._waiters.popleft())
        self.turn_timeouts += len(expired)
        return expired

    def _timeout(self) -> None:
        """A wait may have run out: a busy Redis notices at the end of its pass; an idle one at
        its next serverCron tick."""
        if not self._busy and self._waiters and self._waiters[0].deadline <= self.clock.now:
            self._at_next_tick()

    def _at_next_tick(self) -> None:
        tick = math.floor(self.clock.now * HZ + 1) / HZ
        self.clock.at(tick, self._tick)

    def _tick(self) -> None:
        if not self._busy and self._waiters and self._waiters[0].deadline <= self.clock.now:
            self._iterate()

    def _replies(self, trips: list[RoundTrip]) -> None:
        delivered = self.clock.now + self.calibration.rtt_s / 2
        for trip in trips:
            self.clock.at(delivered, trip.reply)
        self._busy = False
        if self._arrived:
            self._iterate()
        elif self._waiters and self._waiters[0].deadline <= self.clock.now:
            self._at_next_tick()
