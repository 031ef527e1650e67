"""One add on its way to Redis, and what it can come to.

Its life: queued → attempted (an EXEC carrying it may be sent; if the reply is lost it *may have
counted*) → answered. An answer that says "nothing changed" (`unavailable`, `sum_out_of_range`,
the shutdown refusal) must stay true forever, so it is given only when no transaction carrying the
add can commit afterwards, from this node or any other (docs: "Truthful outcomes"):

- nothing of it was sent and nobody else carries it: answer at once;
- otherwise (our own EXEC may still be on its way, or other requests carry the same record key) a
  *fence* must commit first: a transaction that writes the sum (so every carrier's pending EXEC
  fails its WATCH) and a fence record under the key (so every later carrier reads it and stops);
- when no fence can be written in time (Redis unreachable, refusing writes, or the add past its
  deadline plus the resolve grace), the answer is `outcome_unknown`.

The key budget's answers (429 `key_quota_exhausted`, 503 `key_store_full`) claim less: only that
*this request* did not add. They need no fence, only that no EXEC of the add was ever sent.

Every such decision is made here; the commit lane and the ledger only report what happened.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from abacus.node import metrics, records
from abacus.node.amounts import render
from abacus.node.errors import (
    ApiError,
    idempotency_key_refused,
    idempotency_key_reused,
    out_of_time,
    outcome_unknown,
    unavailable,
)
from abacus.node.key_quota import Quota
from abacus.node.settings import RESOLVE_GRACE_S


@dataclass(frozen=True)
class Committed:
    """The add counted: `body` is its response (stored in Redis with it)."""

    body: str
    replayed: bool


Outcome = Committed | ApiError


class Others(enum.Enum):
    """Who else may carry the same add to Redis."""

    # Nobody: a keyless add, or the balancer's first try of one.
    NONE = "none"
    # Requests with the same record key: a client's Idempotency-Key (duplicates), the balancer's
    # retry key on a retry. A fence under the key stops them.
    SAME_KEY = "same_key"
    # Requests this node cannot see: a retry header without the balancer's trust. Their records
    # are not ours to fence, so this node never says "nothing changed".
    UNSEEN = "unseen"


class _CommitIds:
    """Commit ids, unique across every worker of every node: a random prefix per process and a
    counter, so that an add costs no call for entropy. A forked child draws a prefix of its own."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = uuid.uuid4().hex
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


new_commit_id = _CommitIds()
os.register_at_fork(after_in_child=new_commit_id.reseed)


@dataclass(eq=False)
class PendingAdd:
    number: Decimal
    # Redis key of this add's commit record: from the client's Idempotency-Key, the balancer's
    # retry key, or a fresh id; its presence is how any later attempt learns the add counted.
    record_key: str
    record_ttl_s: int
    deadline: float
    future: asyncio.Future[Outcome]
    others: Others = Others.NONE
    # A client's Idempotency-Key (a fenced one is refused with 409); else the balancer's or ours.
    client_key: bool = False
    # The quota its client's new records count against (client keys only; None: no quota).
    quota: Quota | None = None
    commit_id: str = field(default_factory=new_commit_id)
    # `number` as the response writes it (`"added"`), rendered once for all attempts.
    added: str = field(init=False)
    # Set once, when the add is answered; the future only carries it to the request, which may
    # have gone away (then the future is cancelled, the outcome still stands).
    outcome: Outcome | None = None
    # The add will not be applied; once a fence for it commits, this is its answer.
    refusal: ApiError | None = None
    # An EXEC carrying this add (or its fence) was sent and its reply never came.
    maybe_sent: bool = False
    # The last attempt that carried it failed because Redis could not be reached.
    redis_failed: bool = False
    # Loop time of the first of an unbroken run of attempts that could not reach Redis.
    unreachable_since: float | None = None
    # Some EXEC of it was lost on the way: counted in the metrics when it is resolved.
    was_ambiguous: bool = False
    attempts: int = 0
    conflicts: int = 0
    batch_size: int = 0

    def __post_init__(self) -> None:
        self.added = render(self.number)
        metrics.ADDS_PENDING.inc()

    @property
    def answer_by(self) -> float:
        """Loop time by which the add is answered, whatever Redis does."""
        return self.deadline + RESOLVE_GRACE_S

    @property
    def decide_by(self) -> float:
        """Loop time at which time alone changes what is due: an add not applied by its deadline
        is refused (or fenced); a fence not written by `answer_by` leaves it unknown."""
        return self.answer_by if self.fencing else self.deadline

    @property
    def fencing(self) -> bool:
        return self.refusal is not None and self.outcome is None

    def resolve(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        metrics.ADDS_PENDING.dec()
        if self.was_ambiguous:
            metrics.AMBIGUOUS_RESOLVED.labels(_resolution(outcome)).inc()
        if not self.future.done():
            self.future.set_result(outcome)

    # ----- the decisions --------------------------------------------------------------------

    def refuse(self, refusal: ApiError, now: float, *, can_fence: bool = True) -> Outcome | None:
        """This node will not apply the add. Returns the answer it may give now, or None when a
        fence must commit first (then carriers write one and `refusal` is the answer after)."""
        if self.others is Others.UNSEEN:
            return outcome_unknown(f"{refusal.message}, but another request may carry this add")
        if self.others is Others.NONE and not self.maybe_sent:
            return refusal
        if not can_fence or now >= self.answer_by:
            return outcome_unknown(f"{refusal.message}, but it could not be made final in time")
        self.refusal = refusal
        return None

    def refuse_for_budget(self, refusal: ApiError) -> Outcome | None:
        """The key budget will not take this add's new record (`refusal`: the client's quota, or
        the key store's memory). "This request did not add" is true at once, with no fence, when
        no EXEC of it was ever sent; it says nothing of other requests with the same key, so it
        needs none. Otherwise None: an earlier EXEC may have counted, and only applying or
        fencing the add can say which (its record is counted all the same)."""
        if self.maybe_sent:
            return None
        metrics.KEY_BUDGET_REFUSALS.labels(refusal.code).inc()
        return refusal

    def fence_not_written(self, reason: str) -> Outcome:
        """Redis refused the fence's transaction (full, read-only): nothing more can be done."""
        return outcome_unknown(f"the add could not be refused for good ({reason})")

    def outcome_of_record(self, raw: bytes) -> Outcome:
        """What a commit record found in Redis (read under the WATCH) means for this add."""
        record = records.read(raw)
        if record.commit_id == self.commit_id:
            # Our own EXEC whose reply was lost: it did commit.
            if record.body is None:
                assert self.refusal is not None, "only a refused add writes a fence"
                return self.refusal
            return Committed(record.body, replayed=False)
        if record.number != self.number:
            return idempotency_key_reused()
        if record.body is None:
            if self.client_key:
                return idempotency_key_refused()
            # The balancer's earlier try of this very request was refused for good.
            return unavailable("an earlier try of this request was refused; nothing changed")
        return Committed(record.body, replayed=True)

    def replay_of(self, body: str) -> Outcome:
        """The stored first response of the same key, if it added the same number."""
        if records.added_in(body) != self.number:
            return idempotency_key_reused()
        return Committed(body, replayed=True)

    def check_time(self, now: float, unreachable_for_s: float) -> Outcome | None:
        """Between attempts: the answer due now that time has run out, if any."""
        unreachable = (
            self.unreachable_since is not None and now - self.unreachable_since >= unreachable_for_s
        )
        if self.refusal is not None:
            if unreachable or now >= self.answer_by:
                return outcome_unknown(f"{self.refusal.message}, but it could not be made final")
            return None
        if now < self.deadline and not unreachable:
            return None
        return self.refuse(out_of_time(), now, can_fence=not unreachable)


def _resolution(outcome: Outcome) -> str:
    """How an add that had a lost EXEC ended, for the metrics."""
    if isinstance(outcome, Committed):
        return "not_counted" if outcome.replayed else "counted"
    return "unknown" if outcome.code == "outcome_unknown" else "not_counted"
