"""What the clients return: one result type per endpoint, numbers exact, times aware."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from abacus_client.answers import Answer


class MalformedAnswer(ValueError):
    """A 200 whose body is not what the API promises (cut off, or from something else)."""


@dataclass(frozen=True)
class AddResult:
    new_sum: Decimal  # the sum right after this add took effect
    added: Decimal  # the number as the service read it
    node_id: str
    timestamp: datetime
    replayed: bool  # the stored answer of an earlier request with this key: added nothing now
    key: str  # the Idempotency-Key it counted under
    attempts: int  # requests this call sent


@dataclass(frozen=True)
class SumResult:
    sum: Decimal
    node_id: str
    timestamp: datetime


@dataclass(frozen=True)
class ResetResult:
    message: str
    node_id: str
    timestamp: datetime


@dataclass(frozen=True)
class Health:
    """A node's answer to /health: `healthy` is False on its 503 (it cannot commit to Redis)."""

    healthy: bool
    node_id: str | None
    redis_connected: bool
    current_sum: Decimal | None
    keyed_adds: str | None  # "accepted", or "paused" while Redis memory is nearly full
    body: dict[str, Any]


def add_result(answer: Answer, key: str, attempts: int) -> AddResult:
    body = _body(answer)
    return AddResult(
        new_sum=_number(body, "new_sum"),
        added=_number(body, "added"),
        node_id=_node(answer),
        timestamp=_timestamp(body),
        replayed=answer.replayed,
        key=key,
        attempts=attempts,
    )


def sum_result(answer: Answer) -> SumResult:
    body = _body(answer)
    return SumResult(_number(body, "sum"), _node(answer), _timestamp(body))


def reset_result(answer: Answer) -> ResetResult:
    body = _body(answer)
    message = body.get("message")
    if not isinstance(message, str):
        raise MalformedAnswer("no message")
    return ResetResult(message, _node(answer), _timestamp(body))


def health(answer: Answer) -> Health:
    body = _body(answer)
    status = body.get("status")
    if status not in ("healthy", "unhealthy"):
        raise MalformedAnswer(f"not a health answer: {answer.text[:200]!r}")
    current = body.get("current_sum")
    keyed = body.get("keyed_adds")
    return Health(
        healthy=answer.status == 200 and status == "healthy",
        node_id=answer.node_id,
        redis_connected=body.get("redis_connected") is True,
        current_sum=current if isinstance(current, Decimal) else None,
        keyed_adds=keyed if isinstance(keyed, str) else None,
        body=body,
    )


def _body(answer: Answer) -> dict[str, Any]:
    if answer.body is None:
        raise MalformedAnswer(f"not a JSON object: {answer.text[:200]!r}")
    return answer.body


def _number(body: dict[str, Any], field: str) -> Decimal:
    value = body.get(field)
    if not isinstance(value, Decimal):
        raise MalformedAnswer(f"no numeric {field}")
    return value


def _node(answer: Answer) -> str:
    if answer.node_id is None:
        raise MalformedAnswer("no node_id")
    return answer.node_id


def _timestamp(body: dict[str, Any]) -> datetime:
    value = body.get("timestamp")
    if not isinstance(value, str):
        raise MalformedAnswer("no timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedAnswer(f"not an ISO 8601 timestamp: {value!r}") from None
