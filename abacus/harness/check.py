"""The consistency check end to end: reset or read the start, fire, read the end, judge."""

from __future__ import annotations

import contextlib
import math
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tqdm import tqdm

from abacus.harness import history_file
from abacus.harness.addends import make_addends, room_needed
from abacus.harness.client import AbacusClient, CannotRun, Reply
from abacus.harness.faults import FaultEvent
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.judge import DEFAULT_SEARCH_BUDGET, Verdict, judge
from abacus.harness.load import fire, record

SUM_BOUND = Decimal(10) ** 30  # the API's bound on the absolute value of the sum


EXIT_CONSISTENT = 0
EXIT_INCONSISTENT = 1
EXIT_CANNOT_RUN = 2
EXIT_INCONCLUSIVE = 3


@dataclass
class CheckReport:
    url: str
    history: History
    verdict: Verdict
    concurrency: int
    elapsed: float  # wall time of the firing phase, seconds
    reset: bool
    notes: list[str] = field(default_factory=list)
    started_at: str | None = None  # wall clock (ISO 8601) when the firing began
    # Above this share of unknown adds a consistent run is inconclusive (exit 3); None: never.
    max_unknown: float | None = None
    judged_from: str | None = None  # the history file this report re-judged, if any

    @property
    def faults_failed(self) -> list[FaultEvent]:
        """Faults the nemesis could not inject or recover as planned."""
        return [event for event in self.history.faults if event.error is not None]

    @property
    def inconclusive(self) -> bool:
        return self.max_unknown is not None and self.verdict.unknown_share > self.max_unknown

    @property
    def exit_code(self) -> int:
        """0 consistent; 1 inconsistent; 2 could not finish (no final sum, or a fault that did
        not go as planned); 3 inconclusive (more adds unknown than --max-unknown allows)."""
        if not self.verdict.consistent:
            return EXIT_INCONSISTENT
        if not self.verdict.complete or self.faults_failed:
            return EXIT_CANNOT_RUN
        return EXIT_INCONCLUSIVE if self.inconclusive else EXIT_CONSISTENT

    @property
    def word(self) -> str:
        """The verdict in one word, as `--json` gives it."""
        return {
            EXIT_CONSISTENT: "consistent",
            EXIT_INCONSISTENT: "inconsistent",
            EXIT_CANNOT_RUN: "incomplete",
            EXIT_INCONCLUSIVE: "inconclusive",
        }[self.exit_code]

    def headline(self) -> str:
        """The verdict line: the judge's, unless the run itself qualifies it."""
        verdict = self.verdict
        if self.exit_code == EXIT_INCONCLUSIVE:
            return (
                f"INCONCLUSIVE: {verdict.unknown_text()} ({verdict.unknown_share:.1%}), more "
                f"than --max-unknown {self.max_unknown:g} allows; no violation found"
            )
        if verdict.consistent and verdict.complete and self.faults_failed:
            kinds = ", ".join(sorted({event.kind.value for event in self.faults_failed}))
            return f"INCOMPLETE: no violation found, but faults did not go as planned: {kinds}"
        return verdict.message()


def save_history(report: CheckReport, path: Path) -> None:
    """The whole history, as JSON lines (abacus/harness/history_file.py)."""
    run = history_file.RunInfo(
        report.url,
        report.concurrency,
        report.elapsed,
        report.reset,
        started_at=report.started_at,
        notes=report.notes,
    )
    history_file.save(path, report.history, run)


def rejudge(
    path: Path,
    *,
    max_unknown: float | None = None,
    search_budget: int = DEFAULT_SEARCH_BUDGET,
) -> CheckReport:
    """Judge a saved history again, without any server. Raises HistoryFileError."""
    history, run = history_file.load(path)
    verdict = judge(history, search_budget=search_budget)
    return CheckReport(
        run.url,
        history,
        verdict,
        run.concurrency,
        run.elapsed,
        run.reset,
        run.notes,
        started_at=run.started_at,
        max_unknown=max_unknown,
        judged_from=str(path),
    )


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
    during: AbstractContextManager[object] | None = None,
    max_unknown: float | None = None,
) -> CheckReport:
    """Fire `adds` adds and about `read_ratio` reads per add at `url`, then judge the history.

    With `stop`, the run fires until `stop` is set (or all `adds` are spent, so `adds` is then
    the most it fires): load that must outlast an event, however fast the machine. Operations
    never started are left out of the history and the judgement. `on_done` is called, from the
    firing threads, with each operation as it finishes. `during` is entered right before the
    first operation is fired and left once the last has finished, before unknown outcomes are
    resolved and the final sum is read: a timer, or a nemesis, that must act while the load runs
    and be done before the end is read.

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
        origin = time.monotonic()
        started_at = datetime.now(UTC).isoformat()
        with during or contextlib.nullcontext():
            elapsed = _fire_with_progress(
                url, operations, concurrency, timeout, progress, stop=stop, on_done=on_done
            )
        if stop is not None:
            notes.extend(_stopped_early(operations, adds))
            operations = [op for op in operations if not math.isnan(op.start)]
        if resolve_unknown:
            notes.extend(_resolve_unknown(url, operations, concurrency, timeout))
        final_sum = _final_sum(control, final_read_timeout)
    history = History(start_sum, operations, final_sum, origin=origin)
    verdict = judge(history, search_budget=search_budget)
    return CheckReport(
        url,
        history,
        verdict,
        concurrency,
        elapsed,
        reset,
        notes,
        started_at=started_at,
        max_unknown=max_unknown,
    )


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
        # A run told to stop fires an unknown part of its plan: a count and a rate, no total.
        total=None if stop is not None else len(operations),
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


def _resolve_unknown(
    url: str, operations: list[Operation], concurrency: int, timeout: float
) -> list[str]:
    """Retry each unknown add once with its Idempotency-Key to learn whether it happened.

    A 200 settles it either way: a replay carries the first application's new_sum, a fresh
    answer means the first attempt never took effect and this one did. Either way the add
    happened once, somewhere between its first invocation and this answer. A refusal in
    NEVER_COUNTED settles it as not applied. The retries run `concurrency` at a time: a run with
    faults can leave thousands unknown.
    """
    pending = [
        op
        for op in operations
        if op.kind is Kind.ADD and op.outcome is Outcome.UNKNOWN and op.key is not None
    ]
    if not pending:
        return []
    lock = threading.Lock()
    queue = iter(pending)

    def work() -> int:
        settled = 0
        with AbacusClient(url, timeout=timeout) as client:
            while True:
                with lock:
                    op = next(queue, None)
                if op is None:
                    return settled
                settled += _ask_again(client, op)

    workers = min(concurrency, len(pending))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="abacus-resolve") as pool:
        settled = sum(future.result() for future in [pool.submit(work) for _ in range(workers)])
    return [f"retried {len(pending)} unknown adds with their Idempotency-Key: {settled} settled"]


def _ask_again(client: AbacusClient, op: Operation) -> bool:
    """One retry of an unknown add with its key; True when it settled the outcome."""
    assert op.number is not None
    reply = client.add(op.number, key=op.key)
    applied = reply.outcome is Outcome.OK and reply.value is not None
    refused = reply.outcome is Outcome.FAILED and reply.error in NEVER_COUNTED
    if not (applied or refused):
        return False
    op.first_outcome, op.first_end = op.outcome, op.end
    op.end = time.monotonic()
    record(op, reply)
    op.resolved = True
    return True


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
