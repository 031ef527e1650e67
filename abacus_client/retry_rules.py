"""The retry rules: after each attempt of a call, return its result, raise, or wait and ask again.

One implementation for both clients: a call's `Attempts` is told what each attempt saw (an
`Answer` or `NoAnswer`) and says the next `Step`; the clients only send and sleep. docs/client.md
has the rules as one table. For an add they keep three promises:

- every attempt of one add carries the same Idempotency-Key, so however often it is asked, it
  counts at most once; a new key is taken only once the old one is known never to count (409
  `idempotency_key_refused`), and only when the caller allowed it;
- an answer that leaves the outcome open (503 `outcome_unknown`, 502, 504, 500, a timeout, a
  connection dropped after sending) is asked again, and so is a refusal that changed nothing
  and may pass (503 `unavailable`, 429); other refusals are raised at once;
- once the deadline leaves no time for another attempt, an outcome still open is raised as
  `OutcomeUnknown` with the key, never guessed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeAlias, TypeVar

from abacus.node.errors import ErrorCode
from abacus_client import api_calls
from abacus_client.answers import Answer, NoAnswer
from abacus_client.errors import AbacusError, OutcomeUnknown, ServiceError, TransportError
from abacus_client.keys import new_key
from abacus_client.options import Options
from abacus_client.outcomes import AddOutcome, add_outcome
from abacus_client.results import (
    AddResult,
    Health,
    MalformedAnswer,
    ResetResult,
    SumResult,
    add_result,
    health,
    reset_result,
    sum_result,
)

T = TypeVar("T")

# Refusals that changed nothing and may pass if asked again: Redis (or every node) unavailable
# for now, the balancer's rate limit. The key budget's answers pass too (add_outcome says so).
PASSING_REFUSALS = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.RATE_LIMITED})


@dataclass(frozen=True)
class Done(Generic[T]):
    result: T


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds to wait before the next attempt


@dataclass(frozen=True)
class GiveUp:
    error: AbacusError


Step: TypeAlias = Done[T] | Retry | GiveUp


class Attempts(ABC, Generic[T]):
    """The attempts of one call, within its deadline."""

    def __init__(self, options: Options, deadline: float | None) -> None:
        self._options = options
        self._total = options.deadline if deadline is None else deadline
        if not self._total > 0:
            raise ValueError(f"deadline must be positive, not {self._total}")
        self._ends_at = options.clock() + self._total
        self.tries = 0
        self._retries = 0
        self.last: AbacusError | None = None  # the last failure seen

    @abstractmethod
    def call(self) -> api_calls.ApiCall:
        """The request of the next attempt."""

    def budget(self) -> float | None:
        """Seconds the next attempt may wait for its answer; None when no time is left."""
        if self.tries == 0:
            return min(self._options.timeout, self._total)
        remaining = self._ends_at - self._options.clock()
        return None if remaining <= 0 else min(self._options.timeout, remaining)

    def after(self, seen: Answer | NoAnswer) -> Step[T]:
        """The step after an attempt that saw `seen`."""
        self.tries += 1
        return self._judge(seen)

    @abstractmethod
    def _judge(self, seen: Answer | NoAnswer) -> Step[T]: ...

    @abstractmethod
    def out_of_time(self) -> AbacusError:
        """What to raise once the deadline leaves no time for another attempt."""

    def _retry(self, retry_after: float | None) -> Step[T]:
        delay = self._options.backoff.delay(self._retries, retry_after, self._options.rng)
        # A retry that cannot start before the deadline is not made: waiting for it would only
        # make the caller learn the same thing later.
        if self._options.clock() + delay >= self._ends_at:
            return GiveUp(self.out_of_time())
        self._retries += 1
        return Retry(delay)


class AddAttempts(Attempts[AddResult]):
    def __init__(
        self,
        options: Options,
        deadline: float | None,
        number: Decimal,
        key: str | None,
        new_key_if_fenced: bool | None,
    ) -> None:
        super().__init__(options, deadline)
        self.number = number
        self.key = new_key() if key is None else key
        self._new_key_if_fenced = (
            options.new_key_if_fenced if new_key_if_fenced is None else new_key_if_fenced
        )
        # Whether an attempt under the current key may have counted, and no later answer has
        # settled it. Sticky: a later "this request changed nothing" says nothing about an
        # earlier attempt still in flight somewhere.
        self.open = False

    def call(self) -> api_calls.ApiCall:
        return api_calls.add(self.number, self.key)

    def _judge(self, seen: Answer | NoAnswer) -> Step[AddResult]:
        if isinstance(seen, NoAnswer):
            self.open = self.open or seen.sent
            self.last = TransportError(seen.error, sent=seen.sent, key=self.key)
            return self._retry(None)
        outcome = add_outcome(seen.status, seen.error)
        if outcome is AddOutcome.COUNTED:
            try:
                return Done(add_result(seen, self.key, self.tries))
            except MalformedAnswer:
                # A 200 cut short: it counted, but its new_sum is lost; asking again replays it.
                outcome = AddOutcome.OPEN
        error = ServiceError(seen, key=self.key)
        self.last = error
        if outcome is AddOutcome.OPEN:
            self.open = True
            return self._retry(seen.retry_after)
        if seen.code is ErrorCode.IDEMPOTENCY_KEY_REFUSED:
            return self._fenced(error)
        if outcome is AddOutcome.NOT_BY_THIS_REQUEST or _passing(seen):
            return self._retry(seen.retry_after)
        return GiveUp(error)

    def _fenced(self, error: ServiceError) -> Step[AddResult]:
        """The key is fenced: its add never counted and never will, so a new key is a new add,
        not a second count of this one. Still the caller's choice: it may have told someone the
        key."""
        self.open = False
        if not self._new_key_if_fenced:
            return GiveUp(error)
        self.key = new_key()
        return self._retry(None)

    def out_of_time(self) -> AbacusError:
        if self.open or self.last is None:
            return OutcomeUnknown(self.key, self.tries, self.last)
        return self.last


class ReadAttempts(Attempts[SumResult]):
    """A read changes nothing, so any failure but a lasting refusal is simply asked again."""

    def call(self) -> api_calls.ApiCall:
        return api_calls.read_sum()

    def _judge(self, seen: Answer | NoAnswer) -> Step[SumResult]:
        if isinstance(seen, NoAnswer):
            self.last = TransportError(seen.error, sent=seen.sent)
            return self._retry(None)
        if seen.status == 200:
            try:
                return Done(sum_result(seen))
            except MalformedAnswer:
                pass
        error = ServiceError(seen)
        self.last = error
        if _lasting_refusal(seen):
            return GiveUp(error)
        return self._retry(seen.retry_after)

    def out_of_time(self) -> AbacusError:
        return self.last or TransportError(TimeoutError("no attempt was made"), sent=False)


class ResetAttempts(Attempts[ResetResult]):
    """A reset is asked again only when the service said it did nothing: repeating one that
    happened would wipe the adds counted since, which no caller asked for."""

    def __init__(self, options: Options, deadline: float | None, token: str | None) -> None:
        super().__init__(options, deadline)
        self._token = token

    def call(self) -> api_calls.ApiCall:
        return api_calls.reset(self._token)

    def _judge(self, seen: Answer | NoAnswer) -> Step[ResetResult]:
        if isinstance(seen, NoAnswer):
            self.last = TransportError(seen.error, sent=seen.sent)
            return self._retry(None) if not seen.sent else GiveUp(self._open())
        error = ServiceError(seen)
        if seen.status == 200:
            try:
                return Done(reset_result(seen))
            except MalformedAnswer:
                self.last = error
                return GiveUp(self._open())
        self.last = error
        if _passing(seen):
            return self._retry(seen.retry_after)
        if 400 <= seen.status < 500:
            return GiveUp(error)
        return GiveUp(self._open())

    def _open(self) -> OutcomeUnknown:
        return OutcomeUnknown(None, self.tries, self.last)

    def out_of_time(self) -> AbacusError:
        return self.last or self._open()


class HealthAttempts(Attempts[Health]):
    """One question, never repeated: a probe that retried would hide what it is asked about."""

    def call(self) -> api_calls.ApiCall:
        return api_calls.health()

    def _judge(self, seen: Answer | NoAnswer) -> Step[Health]:
        if isinstance(seen, NoAnswer):
            return GiveUp(TransportError(seen.error, sent=seen.sent))
        if seen.status in (200, 503):
            try:
                return Done(health(seen))
            except MalformedAnswer:
                pass  # the balancer's own 503: no node to ask
        return GiveUp(ServiceError(seen))

    def out_of_time(self) -> AbacusError:
        return self.last or TransportError(TimeoutError("no attempt was made"), sent=False)


def _passing(answer: Answer) -> bool:
    return answer.code in PASSING_REFUSALS or answer.status == 429


def _lasting_refusal(answer: Answer) -> bool:
    return 400 <= answer.status < 500 and answer.status != 429
