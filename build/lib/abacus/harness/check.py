"""The consistency check end to end: reset or read the start, fire, read the end, judge."""

from __future__ import annotations

import math
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from tqdm import tqdm

from abacus.harness.addends import make_addends, room_needed
from abacus.harness.client import AbacusClient, CannotRun, Reply
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.judge import DEFAULT_SEARCH_BUDGET, Verdict, judge
from abacus.harness.load import fire, record

SUM_BOUND = Decimal(10) ** 30  # the API's bound on the absolute value of the sum


@dataclass
class CheckReport:
    url: str
    history: History
    verdict: Verdict
    concurrency: int
    elapsed: float  # wall time of the firing phase, seconds
    reset: bool
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 consistent, 1 inconsistent, 2 could not finish (no final sum)."""
        if not self.verdict.consistent:
            return 1
        return 0 if self.verdict.complete else 2


def run_check(
    url: str,
    *,
    adds: int = 1000,
    concurrency: int = 16,
    read_ratio: float = 0.25,
    reset: bool = False,
    admin_token: str | None = None,
    timeout: float = 10.0,
    final_read_timeout: float = 10.0,
    resolve_unknown: bool = False,
    seed: int | None = None,
    progress: bool = False,
    search_budget: int = DEFAULT_SEARCH_BUDGET,
    stop: threading.Event | None = None,
    on_done: Callable[[Operation], None] | None = None,
) -> CheckReport:
    """Fire `adds` adds and about `read_ratio` reads per add at `url`, then judge the history.

    With `stop`, the run fires until `stop` is set (or all `adds` are spent, so `adds` is then
    the most it fires): load that must outlast an event, however fast the machine. Operations
    never started are left out of the history and the judgement. `on_done` is called, from the
    firing threads, with each operation as it finishes.

    Raises CannotRun when the server cannot be reached, the reset is refused, or the starting
    sum cannot be read; ValueError on nonsensical arguments.
    """
    if adds < 1:
        raise ValueError("adds must be at least 1")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if read_ratio < 0:
        raise ValueError("read_ratio must not be negative")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    notes: list[str] = []
    with AbacusClient(url, timeout=timeout) as control:
        if reset:
            _reset(control, admin_token)
        start_sum = _starting_sum(control)
        if not reset:
            notes.append(
                f"started from the current sum {start_sum} without --reset: any other writer "
                "during the run spoils the check"
            )
        if abs(start_sum) + room_needed(adds) >= SUM_BOUND:
            raise CannotRun(
                f"the current sum {start_sum} leaves no room for {adds} adds below the API's "
                "bound of 10^30; use --reset"
            )
        # All `adds` are planned even when `stop` may end the run early: the addends' tags are
        # spaced for the whole plan, which keeps any subset of them exactly decidable.
        operations = plan(adds, read_ratio, random.Random(seed), keyed=resolve_unknown)
        elapsed = _fire_with_progress(
            url, operations, concurrency, timeout, progress, stop=stop, on_done=on_done
        )
        if stop is not None:
            notes.extend(_stopped_early(operations, adds))
            operations = [op for op in operations if not math.isnan(op.start)]
        if resolve_unknown:
            notes.extend(_resolve_unknown(control, operations))
        final_sum = _final_sum(control, final_read_timeout)
    history = History(start_sum, operations, final_sum)
    verdict = judge(history, search_budget=search_budget)
    return CheckReport(url, history, verdict, concurrency, elapsed, reset, notes)


def plan(adds: int, read_ratio: float, rng: random.Random, *, keyed: bool) -> list[Operation]:
    """The adds, with reads spread evenly among them; ids follow the planned order."""
    reads = round(adds * read_ratio)
    run = uuid.uuid4().hex[:12]
    operations: list[Operation] = []
    for i, number in enumerate(make_addends(adds, rng)):
        op_id = len(operations) + 1
        key = f"abacus-check-{run}-{op_id}" if keyed else None
        operations.append(Operation(op_id, Kind.ADD, number=number, key=key))
        for _ in range((i + 1) * reads // adds - i * reads // adds):
            operations.append(Operation(len(operations) + 1, Kind.READ))
    return operations


def _reset(control: AbacusClient, token: str | None) -> None:
    reply = control.reset(token)
    if reply.outcome is Outcome.OK:
        return
    if reply.status in (401, 403):
        raise CannotRun(
            f"reset refused ({reply.status} {reply.error}): pass --admin-token or set "
            "ABACUS_ADMIN_TOKEN"
        )
    raise CannotRun(f"reset failed: {_describe(reply)}")


def _starting_sum(control: AbacusClient) -> Decimal:
    reply = control.read()
    if reply.outcome is Outcome.OK and reply.value is not None:
        return reply.value
    raise CannotRun(f"cannot read the starting sum from {control.url}: {_describe(reply)}")


def _describe(reply: Reply) -> str:
    if reply.status is None:
        return f"{reply.error}: {reply.message}"
    return f"HTTP {reply.status} {reply.error or ''} {reply.message or ''}".strip()


def _fire_with_progress(
    url: str,
    operations: list[Operation],
    concurrency: int,
    timeout: float,
    progress: bool,
    *,
    stop: threading.Event | None,
    on_done: Callable[[Operation], None] | None,
) -> float:
    lock = threading.Lock()
    with tqdm(
        total=len(operations),
        desc="checking",
        unit="op",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    ) as bar:

        def tick(op: Operation) -> None:
            with lock:
                bar.update(1)
            if on_done is not None:
                on_done(op)

        return fire(
            url, operations, concurrency=concurrency, timeout=timeout, on_done=tick, stop=stop
        )


def _stopped_early(operations: list[Operation], planned: int) -> list[str]:
    fired = sum(op.kind is Kind.ADD and not math.isnan(op.start) for op in operations)
    if fired == planned:
        return [f"all {planned} planned adds were fired before the run was told to stop"]
    return [f"told to stop after {fired} of {planned} planned adds"]


# Answers to a keyed add that say it never counted and never will: the service gives them only
# once a fence under the key has committed (docs: truthful answers), so they settle an unknown
# add too. Anything else (a 429, another 503 such as the key budget's key_store_full, a timeout)
# leaves it unknown.
NEVER_COUNTED = frozenset({"idempotency_key_refused", "unavailable", "sum_out_of_range"})


def _resolve_unknown(control: AbacusClient, operations: list[Operation]) -> list[str]:
    """Retry each unknown add once with its Idempotency-Key to learn whether it happened.

    A 200 settles it either way: a replay carries the first application's new_sum, a fresh
    answer means the first attempt never took effect and this one did. Either way the add
    happened once, somewhere between its first invocation and this answer. A refusal in
    NEVER_COUNTED settles it as not applied.
    """
    pending = [op for op in operations if op.kind is Kind.ADD and op.outcome is Outcome.UNKNOWN]
    settled = 0
    for op in pending:
        assert op.number is not None
        reply = control.add(op.number, key=op.key)
        applied = reply.outcome is Outcome.OK and reply.value is not None
        refused = reply.outcome is Outcome.FAILED and reply.error in NEVER_COUNTED
        if applied or refused:
            op.end = time.monotonic()
            record(op, reply)
            op.resolved = True
            settled += 1
    if not pending:
        return []
    return [f"retried {len(pending)} unknown adds with their Idempotency-Key: {settled} settled"]


def _final_sum(control: AbacusClient, patience: float) -> Decimal | None:
    """Read the sum once everything has finished, retrying while faults may still linger."""
    deadline = time.monotonic() + patience
    pause = 0.1
    while True:
        reply = control.read()
        if reply.outcome is Outcome.OK and reply.value is not None:
            return reply.value
        if time.monotonic() + pause > deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
