"""One add on its way to Redis, and what it can come to.

Its life: queued → attempted (an EXEC carrying it may be sent; if the reply is lost it *may have
counted*) → answered. An answer that says "nothing changed" (`unavailable`, `sum_out_of_range`,
the shutdown refusal) must stay true forever, so it is given only when no transaction carrying the
add can commit afterwards, from this node or any other (docs: "Truthful outcomes"):

- nothing of it can be in Redis (no EXEC carrying it was sent, or each one sent was answered
  without being applied) and nobody else carries it: answer at once;
- otherwise (our own EXEC may still be on its way, or other requests carry the same record key) a
  *fence* must commit first: a transaction that writes the sum (so every carrier's pending EXEC
  fails its WATCH) and a fence record under the key (so every later carrier reads it and stops);
- when no fence can be written in time (Redis unreachable, refusing writes, or the add past its
  deadline plus the resolve grace), the answer is `outcome_unknown`.

The key budget's answers (429 `key_quota_exhausted`, 503 `key_store_full`) claim less: only that
*this request* did not add. They need no fence, only that nothing of the add can be in Redis.

Every such decision is made here; the commit lane and the ledger only report what happened. What
the decisions read of an add's past is two values, each changed only by the events those modules
report, in this module:

- its `Exposure`, what Redis may hold of it: every EXEC that carries it is reported sent
  (`exec_sent`) and then ended in exactly one way (`exec_applied`, `exec_discarded` for a
  conflict's nil reply, `exec_refused` for an error reply, `exec_reply_lost`), by the ledger,
  within the attempt that sent it; `_EXPOSURE_AFTER` is every transition there is, and any
  other is refused (`ImpossibleTransition`);
- its `Outage`, the unbroken run of attempts that found Redis refusing connections, which makes
  it give up before its deadline: the lane reports each attempt's end (`redis_reached`,
  `redis_unreachable`).
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


class Exposure(enum.Enum):
    """What Redis may hold of an add, as far as this node's own EXECs go (other carriers are
    `Others`). An EXEC is in flight (SENT, SENT_AGAIN) only inside the `ledger.attempt` that sent
    it, which reports how it ended before it returns or raises: the decisions, made between
    round trips, see the other three. Once the add is answered its outcome says what became of
    it (an add found by its own record stays MAYBE_APPLIED), and nothing reads this again."""

    # Nothing, and no EXEC of ours can commit it later: none carrying it was sent, or each one
    # sent was answered without being applied (a conflict's nil reply, an error reply).
    NOT_SENT = "not_sent"
    # An EXEC carrying it is on its way, and no earlier one can have been applied.
    SENT = "sent"
    # An EXEC carrying it was sent and its reply lost: it may have been applied, or may still be
    # on its way to Redis. Only reading its record under a WATCH (then applying or fencing it)
    # can say which; until then the add is never answered "nothing changed" without a fence.
    MAYBE_APPLIED = "maybe_applied"
    # MAYBE_APPLIED, and another EXEC carrying it is on its way (the attempt that settles it).
    SENT_AGAIN = "sent_again"
    # An EXEC carrying it (the add or its fence) was applied: its record is in Redis.
    APPLIED = "applied"


class ExecEvent(enum.Enum):
    """What the ledger reports of an EXEC that carries an add."""

    SENT = "sent"
    # The reply: the transaction was applied.
    APPLIED = "applied"
    # The reply was nil: its WATCH failed (a conflict) and Redis discarded the whole transaction.
    DISCARDED = "discarded"
    # An error reply (out of memory, read-only, ...): Redis discarded the whole transaction.
    REFUSED = "refused"
    # No reply, ever (the connection failed, the wait ran out, the reply could not be read).
    REPLY_LOST = "reply_lost"


# Every transition of an add's Exposure; any other pair is a bug, refused.
_EXPOSURE_AFTER: dict[tuple[Exposure, ExecEvent], Exposure] = {
    # The lane runs one transaction at a time and an answered add is never sent again, so an add
    # has at most one EXEC in flight and an APPLIED one is final.
    (Exposure.NOT_SENT, ExecEvent.SENT): Exposure.SENT,
    (Exposure.MAYBE_APPLIED, ExecEvent.SENT): Exposure.SENT_AGAIN,
    (Exposure.SENT, ExecEvent.APPLIED): Exposure.APPLIED,
    # The attempt read no record of it under the WATCH and wrote the sum: the lost EXEC that
    # made it MAYBE_APPLIED did not commit, and now never can.
    (Exposure.SENT_AGAIN, ExecEvent.APPLIED): Exposure.APPLIED,
    # Redis discarded the transaction, so the add is exactly as exposed as before it was sent:
    # an earlier lost EXEC of it may even be what conflicted. Were a discarded EXEC counted as
    # maybe applied, a plain conflict would call for a fence and let the add past the key budget.
    (Exposure.SENT, ExecEvent.DISCARDED): Exposure.NOT_SENT,
    (Exposure.SENT_AGAIN, ExecEvent.DISCARDED): Exposure.MAYBE_APPLIED,
    (Exposure.SENT, ExecEvent.REFUSED): Exposure.NOT_SENT,
    (Exposure.SENT_AGAIN, ExecEvent.REFUSED): Exposure.MAYBE_APPLIED,
    (Exposure.SENT, ExecEvent.REPLY_LOST): Exposure.MAYBE_APPLIED,
    (Exposure.SENT_AGAIN, ExecEvent.REPLY_LOST): Exposure.MAYBE_APPLIED,
}


class ImpossibleTransition(RuntimeError):
    """An event that cannot happen in the add's state: a bug in whoever reported it. The state
    stays as it was; raised inside an attempt, it ends the attempt like any other bug (the lane
    logs it and tries again, and the add is still answered by its deadline plus the grace)."""


@dataclass(frozen=True)
class Outage:
    """An unbroken run of attempts that found Redis refusing or resetting connections, from the
    loop time of the first."""

    since: float

    def lasted(self, now: float, at_least_s: float) -> bool:
        return now - self.since >= at_least_s


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
    attempts: int = 0
    conflicts: int = 0
    batch_size: int = 0
    # What Redis may hold of it; changed only by the exec_* events.
    _exposure: Exposure = field(default=Exposure.NOT_SENT, init=False)
    # The run of attempts carrying it that found Redis refusing connections; None when there is
    # none, or an attempt has reached Redis since. Changed only by the redis_* events.
    _outage: Outage | None = field(default=None, init=False)
    # An attempt failed to reach Redis while an EXEC of it may have been applied: the metrics
    # count how it is resolved (AMBIGUOUS_RESOLVED). Set by `redis_unreachable`, never cleared.
    _ambiguous: bool = field(default=False, init=False)

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

    # ----- its state, as the decisions read it ------------------------------------------------

    @property
    def exposure(self) -> Exposure:
        return self._exposure

    @property
    def may_be_in_redis(self) -> bool:
        """Whether an EXEC of ours carrying it can have been applied, or still be: then only its
        record, read under a WATCH, says what became of it."""
        return self._exposure is not Exposure.NOT_SENT

    @property
    def exec_in_flight(self) -> bool:
        """An EXEC carrying it was sent and the ledger has not yet reported how it ended."""
        return self._exposure in (Exposure.SENT, Exposure.SENT_AGAIN)

    @property
    def outage(self) -> Outage | None:
        return self._outage

    @property
    def was_ambiguous(self) -> bool:
        """Redis could not be reached while an EXEC of it may have been applied: one of the
        adds the ambiguity metrics follow to their answer."""
        return self._ambiguous

    # ----- the events: what the ledger reports of each EXEC ----------------------------------

    def exec_sent(self) -> None:
        """An EXEC carrying it (the add or its fence) is being sent."""
        self._exec(ExecEvent.SENT)

    def exec_applied(self) -> None:
        """The EXEC's reply came: the transaction was applied."""
        self._exec(ExecEvent.APPLIED)

    def exec_discarded(self) -> None:
        """The EXEC's reply was nil: a conflict, nothing of the transaction was applied."""
        self._exec(ExecEvent.DISCARDED)

    def exec_refused(self) -> None:
        """Redis answered the transaction with an error: nothing of it was applied."""
        self._exec(ExecEvent.REFUSED)

    def exec_reply_lost(self) -> None:
        """The EXEC's reply will never be read: the transaction may have been applied."""
        self._exec(ExecEvent.REPLY_LOST)

    def _exec(self, event: ExecEvent) -> None:
        after = _EXPOSURE_AFTER.get((self._exposure, event))
        if after is None:
            raise ImpossibleTransition(f"EXEC {event.value} while {self._exposure.value}")
        self._exposure = after

    # ----- the events: what the lane reports of each attempt ---------------------------------

    def redis_reached(self) -> None:
        """An attempt carrying it had Redis's answers (whatever they said): any outage is over."""
        self._outage = None

    def redis_unreachable(self, now: float, *, stalled: bool) -> None:
        """An attempt carrying it could not reach Redis: connections refused or reset, or
        (`stalled`) no reply in time. Refused or reset, Redis is gone and the outage starts (or
        goes on); a stall (a pause, a slow fsync) may end before the deadline, so it neither
        starts an outage nor ends one."""
        if self.may_be_in_redis:
            self._ambiguous = True
        if not stalled and self._outage is None:
            self._outage = Outage(since=now)

    def resolve(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        metrics.ADDS_PENDING.dec()
        metrics.ADD_OUTCOMES.labels(_outcome_label(outcome)).inc()
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
        if self.others is Others.NONE and not self.may_be_in_redis:
            return refusal
        if not can_fence or now >= self.answer_by:
            return outcome_unknown(f"{refusal.message}, but it could not be made final in time")
        self.refusal = refusal
        return None

    def refuse_for_budget(self, refusal: ApiError) -> Outcome | None:
        """The key budget will not take this add's new record (`refusal`: the client's quota, or
        the key store's memory). "This request did not add" is true at once, with no fence, when
        nothing of it can be in Redis; it says nothing of other requests with the same key, so it
        needs none. Otherwise None: an earlier EXEC may have counted, and only applying or
        fencing the add can say which (its record is counted all the same)."""
        if self.may_be_in_redis:
            return None
        metrics.KEY_BUDGET_REFUSALS.labels(refusal.code).inc()
        return refusal

    def unconfirmed(self, replicas: int) -> Outcome:
        """Redis's primary holds what this add's answer would report (its commit, its fence, its
        record), but fewer than `replicas` replicas confirmed it in time: a failover could still
        undo it, so neither a 200 nor a final refusal is true yet."""
        return outcome_unknown(
            f"the primary holds this add's outcome, but fewer than {replicas} replica(s) "
            "confirmed it in time, so a failover could still undo it"
        )

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
        unreachable = self._outage is not None and self._outage.lasted(now, unreachable_for_s)
        if self.refusal is not None:
            if unreachable or now >= self.answer_by:
                return outcome_unknown(f"{self.refusal.message}, but it could not be made final")
            return None
        if now < self.deadline and not unreachable:
            return None
        return self.refuse(out_of_time(), now, can_fence=not unreachable)


def _outcome_label(outcome: Outcome) -> str:
    """An answer as the outcome metric names it: counted, replayed, or its error code."""
    if isinstance(outcome, Committed):
        return "replayed" if outcome.replayed else "counted"
    return outcome.code.value


def _resolution(outcome: Outcome) -> str:
    """How an add that had a lost EXEC ended, for the metrics."""
    if isinstance(outcome, Committed):
        return "not_counted" if outcome.replayed else "counted"
    return "unknown" if outcome.code == "outcome_unknown" else "not_counted"
