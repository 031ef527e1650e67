"""Operation records: what the checker asked for, when, and what it learnt.

Following Jepsen, an operation is *invoked*, then *ok* (it happened, with this result),
*failed* (it certainly did not happen) or *unknown* (it may or may not have happened, for
example after a timeout or a 502). Times are `time.monotonic()` seconds; a history read back
from a file (abacus/harness/history_file.py) counts them from the run's start instead. Beside the
operations, a history holds the faults the nemesis injected while they ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from abacus.harness.faults import FaultEvent


class Kind(StrEnum):
    ADD = "add"
    READ = "read"


BODY_KEPT = 1024  # an answer's body is small (the API's largest is about 400 bytes)


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
    request_id: str | None = None  # X-Request-ID of the answer (the balancer's), if any
    body: str | None = None  # the answer's body as received (cut at BODY_KEPT characters)
    # What the client saw first, when the outcome was learnt later by asking again: what a
    # timeline shows at the moment of the answer; the judge uses the settled outcome.
    first_outcome: Outcome | None = None
    first_end: float | None = None

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
    """Everything the judge needs: the sum before, every operation, the sum after; and the
    faults injected meanwhile, which the judge does not need but the report shows."""

    start_sum: Decimal
    operations: list[Operation] = field(default_factory=list)
    final_sum: Decimal | None = None  # None when the final read never succeeded
    faults: list[FaultEvent] = field(default_factory=list)
    origin: float = 0.0  # when the firing began, on the clock of the times above

    def of(self, kind: Kind, outcome: Outcome | None = None) -> list[Operation]:
        return [
            op
            for op in self.operations
            if op.kind is kind and (outcome is None or op.outcome is outcome)
        ]
