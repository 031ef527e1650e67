"""The history over time: what the clients saw second by second, and while each fault lasted.

Everything here is what a client saw when its answer came: an add whose outcome was learnt later
by asking again with its key counts as it was first answered (unknown), at the moment of that
first answer. Times are seconds since the run began.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from abacus.harness.faults import FaultEvent
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.stats import percentile


def seen_outcome(op: Operation) -> Outcome:
    return op.first_outcome or op.outcome


def seen_end(op: Operation) -> float:
    return op.first_end if op.first_end is not None else op.end


@dataclass(frozen=True)
class Second:
    """One bucket of the timeline: the operations answered in [start, start + width)."""

    start: float
    width: float
    adds: Counter[Outcome]
    reads: Counter[Outcome]
    add_latency_ms: tuple[float, ...]  # of every add answered in the bucket, as first answered

    @property
    def ops_per_s(self) -> float:
        return (sum(self.adds.values()) + sum(self.reads.values())) / self.width

    def latency_ms(self, q: float) -> float | None:
        return percentile(self.add_latency_ms, q)


def seconds(history: History, width: float = 1.0) -> list[Second]:
    """Buckets of `width` seconds from the run's start to its last answer (empty ones too)."""
    answered = [
        op for op in history.operations if op.outcome is not Outcome.INVOKED and not _nan(op)
    ]
    if not answered:
        return []
    origin = history.origin
    last = max(seen_end(op) - origin for op in answered)
    count = max(1, math.ceil(last / width))
    adds: list[Counter[Outcome]] = [Counter() for _ in range(count)]
    reads: list[Counter[Outcome]] = [Counter() for _ in range(count)]
    latency: list[list[float]] = [[] for _ in range(count)]
    for op in answered:
        end = seen_end(op)
        index = min(count - 1, max(0, int((end - origin) // width)))
        if op.kind is Kind.ADD:
            adds[index][seen_outcome(op)] += 1
            latency[index].append((end - op.start) * 1000)
        else:
            reads[index][seen_outcome(op)] += 1
    # The last bucket ends with the last answer: its rate is per the time it covers.
    widths = [width] * (count - 1) + [max(last - (count - 1) * width, width / 100)]
    return [
        Second(i * width, widths[i], adds[i], reads[i], tuple(latency[i])) for i in range(count)
    ]


def during(history: History, event: FaultEvent) -> Counter[Outcome]:
    """How the adds answered between a fault's start and the stack's recovery ended."""
    return Counter(
        seen_outcome(op)
        for op in history.of(Kind.ADD)
        if op.outcome is not Outcome.INVOKED
        and not _nan(op)
        and event.start <= seen_end(op) <= event.end
    )


def _nan(op: Operation) -> bool:
    return math.isnan(op.start) or math.isnan(seen_end(op))
