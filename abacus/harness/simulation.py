"""A discrete-event simulation of adds on the one hot key: nodes x workers commit lanes, closed-loop
clients, one Redis. Pure and deterministic for a seed; no real time passes.

The model (docs/scaling.md says the same for readers):

- C clients, each with one add in flight; the balancer deals requests round robin over the nodes,
  each node round robin over its workers. A request reaches its worker `client_hop_s` after it is
  sent, and its answer the client as long after it leaves; the client then sends the next.
- Every worker has a CPU of its own (its event loop: one piece of work at a time, in order). A
  request costs `node_request_s`, half to read it, half to answer it; an attempt
  `node_attempt_s`, half to plan it after round trip 1, half to settle it after round trip 2, and
  `node_attempt_add_s` more per add it carries, in the planning.
- Each worker has one lane, as abacus/node/group_commit.py: it takes its whole queue (up to
  `max_batch`) as the batch, sends round trip 1, plans, sends round trip 2; a discarded EXEC puts
  the batch back at the front of the queue (each add one retry) after the conflict backoff's
  sleep (sim_pacing.py).
- Policies: "before", optimistic attempts; "turns", round trip 1 starts with BLPOP on the turn
  (waiting up to `turn_wait_s` for the token) and every applied EXEC resets it to one token.
- Redis: one thread, round trips in arrival order, one fsync per event-loop iteration that wrote,
  the turn's list and its FIFO of blocked clients (sim_engine.py).
- `lose_turn_at`: a client pops the token then and never commits (a node killed holding it).
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from dataclasses import dataclass, field
from functools import partial

from abacus.harness.sim_engine import TURN_WAIT_S, Clock, Cpu, Redis, RoundTrip
from abacus.harness.sim_pacing import ConflictBackoff
from abacus.harness.sim_params import Calibration

# Whether the lanes take turns; both keep the conflict backoff.
POLICIES: dict[str, bool] = {"before": False, "turns": True}


@dataclass(frozen=True)
class Config:
    nodes: int
    workers: int = 1
    clients: int = 256
    policy: str = "turns"
    seed: int = 1
    warmup_s: float = 0.5
    measure_s: float = 30.0
    max_batch: int = 256
    # One way between a client and a worker, through the balancer; None: one loopback round trip
    # (two hops of half a round trip each).
    client_hop_s: float | None = None
    # How long round trip 1's BLPOP waits for the token ("turns").
    turn_wait_s: float = TURN_WAIT_S
    # When a client pops the token and never commits (None: never).
    lose_turn_at: float | None = None

    @property
    def lanes(self) -> int:
        return self.nodes * self.workers


@dataclass
class _Add:
    sent: float
    attempts: int = 0
    applied: bool = False


@dataclass
class Counts:
    """What happened inside the measured window."""

    answered: int = 0
    attempts: int = 0
    commits: int = 0
    conflicts: int = 0
    committed_adds: int = 0
    retries: int = 0
    # Attempts whose round trip 1 came back without the turn (its BLPOP timed out).
    without_turn: int = 0
    attempts_of_committed: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    config: Config
    adds_per_s: float
    attempts_per_add: float
    retries_per_add: float
    conflicts_per_commit: float
    batch: float
    p50_ms: float
    p99_ms: float
    # Share of time Redis's thread and the busiest worker were busy.
    redis_busy: float
    worker_busy: float
    # Share of attempts that went without the turn ("turns"); waits for it that timed out (run).
    without_turn: float
    turn_timeouts: int
    # Over the whole run, for conservation checks: adds sent, answered, applied (Redis's sum).
    sent: int
    answered_total: int
    applied_total: int
    in_flight: int
    # Answers on their way back to their clients.
    returning: int


class _Run:
    def __init__(self, config: Config, calibration: Calibration) -> None:
        self.config = config
        self.cal = calibration
        self.clock = Clock()
        self.redis = Redis(self.clock, calibration, turn_wait_s=config.turn_wait_s)
        self.rng = random.Random(config.seed)
        self.measuring = False
        self.counts = Counts()
        self.sent = 0
        self.answered = 0
        self.returning = 0
        turns = POLICIES[config.policy]
        self.nodes = [
            [_Worker(self, ConflictBackoff(self.rng), turns) for _ in range(config.workers)]
            for _ in range(config.nodes)
        ]
        self._next_node = 0
        self._next_worker = [0] * config.nodes
        hop = config.client_hop_s
        self.hop = calibration.rtt_s if hop is None else hop

    def balance(self) -> _Worker:
        node = self._next_node
        self._next_node = (node + 1) % len(self.nodes)
        worker = self._next_worker[node]
        self._next_worker[node] = (worker + 1) % self.config.workers
        return self.nodes[node][worker]

    def send_add(self) -> None:
        add = _Add(sent=self.clock.now)
        self.sent += 1
        worker = self.balance()
        self.clock.at(self.clock.now + self.hop, lambda: worker.receive(add))

    def answered_add(self, add: _Add) -> None:
        """The answer leaves the worker now; the client sends its next add once it has it."""
        self.answered += 1
        self.returning += 1
        arrives = self.clock.now + self.hop
        if self.measuring:
            self.counts.answered += 1
            self.counts.latencies.append(arrives - add.sent)
        self.clock.at(arrives, self.answer_arrives)

    def answer_arrives(self) -> None:
        self.returning -= 1
        self.send_add()


class _Worker:
    def __init__(self, run: _Run, backoff: ConflictBackoff, turns: bool) -> None:
        self.run = run
        self.cpu = Cpu(run.clock)
        self.backoff = backoff
        self.turns = turns
        self.queue: deque[_Add] = deque()
        self.busy = False

    def receive(self, add: _Add) -> None:
        self.cpu.run(self.run.cal.node_request_s / 2, lambda: self.push(add))

    def push(self, add: _Add) -> None:
        self.queue.append(add)
        if not self.busy:
            self.busy = True
            self.next_attempt()

    def next_attempt(self) -> None:
        if not self.queue:
            self.busy = False
            return
        self.attempt()

    def attempt(self) -> None:
        size = min(len(self.queue), self.run.config.max_batch)
        batch = [self.queue.popleft() for _ in range(size)]
        for add in batch:
            add.attempts += 1
        read = RoundTrip(size, commit=False, reply=lambda: self.plan(batch, read), turn=self.turns)
        self.run.redis.send(read)

    def plan(self, batch: list[_Add], read: RoundTrip) -> None:
        cal = self.run.cal
        cost = cal.node_attempt_s / 2 + cal.node_attempt_add_s * len(batch)

        def settle() -> None:
            self.cpu.run(cal.node_attempt_s / 2, lambda: self.settled(batch, read, trip))

        trip = RoundTrip(
            len(batch), commit=True, reply=settle, version=read.version, turn=self.turns
        )
        self.cpu.run(cost, lambda: self.run.redis.send(trip))

    def settled(self, batch: list[_Add], read: RoundTrip, trip: RoundTrip) -> None:
        run, counts = self.run, self.run.counts
        if run.measuring:
            counts.attempts += 1
            counts.without_turn += int(self.turns and not read.got_turn)
        if trip.applied:
            self.backoff.committed()
            if run.measuring:
                counts.commits += 1
                counts.committed_adds += len(batch)
                counts.attempts_of_committed += sum(add.attempts for add in batch)
            for add in batch:
                assert not add.applied, "an add applied twice"
                add.applied = True
                self.cpu.run(run.cal.node_request_s / 2, partial(run.answered_add, add))
            self.next_attempt()
            return
        sleep = self.backoff.conflict()
        if run.measuring:
            counts.conflicts += 1
            counts.retries += len(batch)
        self.queue.extendleft(reversed(batch))
        if sleep > 0.0:
            run.clock.at(run.clock.now + sleep, self.next_attempt)
        else:
            self.next_attempt()


def simulate(config: Config, calibration: Calibration) -> Result:
    run = _Run(config, calibration)
    # The clients start spread over the first millisecond, not all in one instant.
    for _ in range(config.clients):
        run.clock.at(run.rng.uniform(0.0, 0.001), run.send_add)
    if config.lose_turn_at is not None:
        # Its BLPOP pops the token (at once, or when its turn comes); its reply goes nowhere.
        lost = RoundTrip(0, commit=False, reply=lambda: None, turn=True)
        run.clock.at(config.lose_turn_at, lambda: run.redis.send(lost))
    run.clock.run(config.warmup_s)
    run.measuring = True
    busy_before = _busy(run)
    run.clock.run(config.warmup_s + config.measure_s)
    return _result(run, busy_before)


def _busy(run: _Run) -> tuple[float, float]:
    workers = [w.cpu.busy_s for node in run.nodes for w in node]
    return run.redis.busy_s, max(workers)


def _result(run: _Run, busy_before: tuple[float, float]) -> Result:
    c = run.counts
    window = run.config.measure_s
    latencies = sorted(c.latencies)
    redis_busy, worker_busy = _busy(run)
    return Result(
        config=run.config,
        adds_per_s=c.answered / window,
        attempts_per_add=c.attempts_of_committed / c.committed_adds if c.committed_adds else 0.0,
        retries_per_add=c.retries / c.committed_adds if c.committed_adds else 0.0,
        conflicts_per_commit=c.conflicts / c.commits if c.commits else 0.0,
        batch=c.committed_adds / c.commits if c.commits else 0.0,
        p50_ms=1000 * statistics.median(latencies) if latencies else 0.0,
        p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
        redis_busy=(redis_busy - busy_before[0]) / window,
        worker_busy=(worker_busy - busy_before[1]) / window,
        without_turn=c.without_turn / c.attempts if c.attempts else 0.0,
        turn_timeouts=run.redis.turn_timeouts,
        sent=run.sent,
        answered_total=run.answered,
        applied_total=run.redis.total,
        in_flight=run.sent - run.answered,
        returning=run.returning,
    )
