"""Operation records: what the checker asked for, when, and what it learnt.

Following Jepsen, an operation is *invoked*, then *ok* (it happened, with this result),
*failed* (it certainly did not happen) or *unknown* (it may or may not have happened, for
example after a timeout or a 502). Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Kind(StrEnum):
    ADD = "add"
    READ = "read"


class Outcome(StrEnum):
    INVOKED = "invoked"
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass
class Operation:
    """One add or read; mutated once by the worker that performs it."""

    op_id: int
    kind: Kind
    number: Decimal | None = None  # the add's argument; None for reads
    key: str | None = None  # Idempotency-Key sent with an add, if any
    outcome: Outcome = Outcome.INVOKED
    start: float = math.nan
    end: float = math.nan  # when the client stopped waiting; for UNKNOWN not when it took effect
    result: Decimal | None = None  # new_sum of an ok add, sum of an ok read
    node_id: str | None = None  # the node that answered (X-Node-Id, else the body's node_id)
    status: int | None = None  # HTTP status, None when no response arrived
    error: str | None = None  # error code from the body, or the exception's name
    replayed: bool = False  # answered with Idempotent-Replayed: true
    resolved: bool = False  # outcome learnt by retrying with the same Idempotency-Key

    @property
    def latency(self) -> float:
        return self.end - self.start


def add(
    op_id: int,
    number: Decimal | int,
    start: float,
    end: float,
    *,
    new_sum: Decimal | int | None = None,
    outcome: Outcome = Outcome.OK,
) -> Operation:
    """Build a finished add, as tests and replayed histories need."""
    return Operation(
        op_id=op_id,
        kind=Kind.ADD,
        number=Decimal(number),
        outcome=outcome,
        start=start,
        end=end,
        result=None if new_sum is None else Decimal(new_sum),
    )


def read(
    op_id: int,
    start: float,
    end: float,
    value: Decimal | int | None,
    *,
    outcome: Outcome = Outcome.OK,
) -> Operation:
    """Build a finished read."""
    return Operation(
        op_id=op_id,
        kind=Kind.READ,
        outcome=outcome,
        start=start,
        end=end,
        result=None if value is None else Decimal(value),
    )


@dataclass
class History:
    """Everything the judge needs: the sum before, every operation, the sum after."""

    start_sum: Decimal
    operations: list[Operation] = field(default_factory=list)
    final_sum: Decimal | None = None  # None when the final read never succeeded

    def of(self, kind: Kind, outcome: Outcome | None = None) -> list[Operation]:
        return [
            op
            for op in self.operations
            if op.kind is kind and (outcome is None or op.outcome is outcome)
        ]
