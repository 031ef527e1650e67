"""What a failover run shows, read from a checker run's history: how long adds stopped, whether
the final sum kept every acknowledged add, how the reads behaved, and what was lost.

The checker's judge holds reads to linearizability: no read older than one that finished before
it began. A failover over asynchronous replication breaks that in one documented way (docs/
design.md, "Replication and failover"): an add applied on the old primary but never acknowledged
can be seen by a read and then vanish with the primary, so a later read goes back past it. This
module tells that apart from what must never happen with ABACUS_MIN_REPLICA_ACKS=1, a read below
an add acknowledged before the read began; and it judges the adds on their own.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal

from abacus.harness.check import CheckReport
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.judge import judge

# Acknowledged adds that 0 acks can lose are those the old primary answered before its last
# writes reached a replica: on this loopback, within milliseconds of its death. Those answered
# longer than this before the kill are held to be kept (a second is far more than the replication
# lag, which is what this bounds), so the judge's search stays small.
LOSS_WINDOW_S = 1.0


@dataclass(frozen=True)
class Figures:
    """One failover run, as the tests report and assert it."""

    # From the kill to the first acknowledgement of an add invoked after it.
    resumed_after_s: float
    acknowledged: int
    unknown: int
    failed: int
    reads: int
    # Reads below an add acknowledged before they began: never, with 1 replica ack.
    reads_below_acknowledged: int
    # Reads below an earlier read (one that ended before they began) but not below any
    # acknowledged add: they went back past adds that were never acknowledged.
    reads_gone_back: int

    def line(self) -> str:
        return (
            f"adds resumed {self.resumed_after_s:.2f} s after the kill; adds {self.acknowledged} "
            f"acknowledged, {self.unknown} unknown, {self.failed} failed; reads {self.reads}: "
            f"{self.reads_below_acknowledged} below an acknowledged add, "
            f"{self.reads_gone_back} went back past unacknowledged adds"
        )


def figures(report: CheckReport, killed_at: float) -> Figures:
    history = report.history
    acknowledged = history.of(Kind.ADD, Outcome.OK)
    after = [op.end for op in acknowledged if op.start > killed_at]
    below, gone_back = _read_regressions(history)
    return Figures(
        resumed_after_s=min(after) - killed_at if after else math.inf,
        acknowledged=len(acknowledged),
        unknown=len(history.of(Kind.ADD, Outcome.UNKNOWN)),
        failed=len(history.of(Kind.ADD, Outcome.FAILED)),
        reads=len(history.of(Kind.READ, Outcome.OK)),
        reads_below_acknowledged=below,
        reads_gone_back=gone_back,
    )


def adds_only(report: CheckReport) -> CheckReport:
    """The run judged without its reads: every acknowledged add in the final sum, once, the new_sum
    values one order consistent with real time, and only a subset of the unknown adds."""
    history = History(
        report.history.start_sum,
        [op for op in report.history.operations if op.kind is Kind.ADD],
        report.history.final_sum,
    )
    return dataclasses.replace(report, history=history, verdict=judge(history))


def lost_acknowledged(report: CheckReport, killed_at: float) -> list[Operation] | None:
    """The acknowledged adds the final sum lacks: [] when it holds every one; else those found
    among the adds acknowledged within LOSS_WINDOW_S before the kill (each taken as unknown, the
    judge decides which of them the final sum and the new_sum order hold); None when that does not
    explain the final sum."""
    judged = adds_only(report)
    if judged.verdict.consistent and judged.verdict.expected_sum == judged.verdict.final_sum:
        return []
    acknowledged = report.history.of(Kind.ADD, Outcome.OK)
    suspects = {
        op.op_id
        for op in acknowledged
        if op.start < killed_at and op.end > killed_at - LOSS_WINDOW_S
    }
    relaxed = [
        dataclasses.replace(op, outcome=Outcome.UNKNOWN, result=None)
        if op.op_id in suspects
        else op
        for op in judged.history.operations
    ]
    history = History(judged.history.start_sum, relaxed, judged.history.final_sum)
    verdict = judge(history)
    if not verdict.consistent or verdict.applied_unknown is None:
        return None
    kept = set(verdict.applied_unknown)
    return [op for op in acknowledged if op.op_id in suspects and op.op_id not in kept]


def _read_regressions(history: History) -> tuple[int, int]:
    acknowledged = sorted(history.of(Kind.ADD, Outcome.OK), key=lambda op: op.end)
    reads = history.of(Kind.READ, Outcome.OK)
    add_ends, add_best = _running_max(acknowledged)
    read_ends, read_best = _running_max(sorted(reads, key=lambda op: op.end))
    below = gone_back = 0
    for read in reads:
        value = _result(read)
        floor = _best_before(add_ends, add_best, read.start)
        if value < floor:
            below += 1
        elif value < _best_before(read_ends, read_best, read.start):
            gone_back += 1
    return below, gone_back


def _running_max(ops: list[Operation]) -> tuple[list[float], list[Decimal]]:
    """The ops' end times (sorted) and, at each, the highest result seen up to it."""
    ends: list[float] = []
    best: list[Decimal] = []
    for op in ops:
        ends.append(op.end)
        best.append(max(_result(op), best[-1]) if best else _result(op))
    return ends, best


def _best_before(ends: list[float], best: list[Decimal], moment: float) -> Decimal:
    index = bisect_left(ends, moment)
    return best[index - 1] if index else Decimal("-Infinity")


def _result(op: Operation) -> Decimal:
    assert op.result is not None
    return op.result
