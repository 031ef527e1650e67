"""What the clients raise.

- `ServiceError`: the service answered with an error of its table (docs/api.md), and the rules
  say it will not change by asking again: `.code` is the service's `ErrorCode`.
- `OutcomeUnknown`: the deadline ran out while an add (or a reset) may or may not have counted.
  `.key` asks again later: `add(number, key=error.key)` settles it.
- `TransportError`: no answer at all (refused, timed out, cut off) where that settles nothing
  worth an `OutcomeUnknown` (a read, or an add that never reached the service).

`ErrorCode` is the service's own list (abacus/node/errors.py), not a copy of it.
"""

from __future__ import annotations

from abacus.node.errors import ErrorCode
from abacus_client.answers import Answer

__all__ = ["AbacusError", "ErrorCode", "OutcomeUnknown", "ServiceError", "TransportError"]


class AbacusError(Exception):
    """Anything the clients raise about the service."""


class ServiceError(AbacusError):
    """An error answer. For an add, `.key` is the Idempotency-Key it was sent with."""

    def __init__(self, answer: Answer, key: str | None = None) -> None:
        self.answer = answer
        self.status = answer.status
        self.error = answer.error  # the code as sent, even one this version does not know
        self.code: ErrorCode | None = answer.code
        self.message = answer.message or answer.text[:200] or answer.reason
        self.retry_after = answer.retry_after
        self.node_id = answer.node_id
        self.request_id = answer.request_id
        self.key = key
        super().__init__(f"{self.status} {self.error or answer.reason}: {self.message}")


class TransportError(AbacusError):
    """No answer. `sent` is False when the request certainly never reached the service."""

    def __init__(self, cause: Exception, *, sent: bool, key: str | None = None) -> None:
        self.cause = cause
        self.sent = sent
        self.key = key
        super().__init__(f"no answer ({type(cause).__name__}): {cause}")


class OutcomeUnknown(AbacusError):
    """The deadline ran out and the outcome is still open: it may or may not have counted.

    For an add, asking again with `.key` (`add(number, key=error.key)`) settles it: a replay of
    the first answer (`replayed=True`) if it counted, else the key's refusal. `.last` is the last
    thing the client saw (a `ServiceError` or a `TransportError`)."""

    def __init__(self, key: str | None, attempts: int, last: AbacusError | None) -> None:
        self.key = key
        self.attempts = attempts
        self.last = last
        what = f"the add with Idempotency-Key {key!r}" if key is not None else "the request"
        advice = "; ask again with the same key to settle it" if key is not None else ""
        super().__init__(
            f"{what} may or may not have counted after {attempts} attempt(s) (last: {last})"
            + advice
        )
