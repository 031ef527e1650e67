"""One add on its way to Redis, and what it can come to."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from app.amounts import render
from app.errors import ApiError
from app.json_body import parse


@dataclass(frozen=True)
class Committed:
    """The add counted: `body` is its response (stored in Redis with it)."""

    body: str
    replayed: bool


Outcome = Committed | ApiError


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
    commit_id: str = field(default_factory=new_commit_id)
    # `number` as the response writes it (`"added"`), rendered once for all attempts.
    added: str = field(init=False)
    # Set once, when the add is answered; the future only carries it to the request, which may
    # have gone away (then the future is cancelled, the outcome still stands).
    outcome: Outcome | None = None
    # An EXEC carrying this add was sent and its reply never came: it may have been applied.
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

    def resolve(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        if not self.future.done():
            self.future.set_result(outcome)

    def record_value(self, body: str) -> str:
        return f"{self.commit_id}\n{body}"

    def outcome_of_record(self, record: bytes) -> Outcome:
        """What a commit record found in Redis means for this add."""
        commit_id, _, body = record.decode("utf-8").partition("\n")
        if commit_id == self.commit_id:
            # Our own EXEC whose reply was lost: applied once, and this is the first response.
            return Committed(body, replayed=False)
        return self.replay_of(body)

    def replay_of(self, body: str) -> Outcome:
        """The stored first response of the same key, if it added the same number."""
        if Decimal(parse(body.encode("utf-8"))["added"]) != self.number:
            return ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different number",
            )
        return Committed(body, replayed=True)
