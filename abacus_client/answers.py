"""One answer of the API as both clients and the consistency checker read it: the status, the
JSON body with exact numbers, the error code and the few headers the retry rules look at.

`NoAnswer` is the other thing an attempt can end in: no response at all, and whether the request
may have reached the service before it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from abacus.node.errors import ErrorCode
from abacus_client.json_numbers import parse_json


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    text: str
    body: dict[str, Any] | None  # the JSON object, numbers as Decimal; None when not one
    node_id: str | None  # X-Node-Id, else the body's node_id
    request_id: str | None  # X-Request-ID: the same id is in the balancer's and the node's logs
    replayed: bool  # Idempotent-Replayed: true
    retry_after: float | None  # seconds, when the answer asks for a wait

    @property
    def error(self) -> str | None:
        """The body's `error`, as sent (a code this version does not know stays readable)."""
        error = self.body.get("error") if self.body else None
        return error if isinstance(error, str) else None

    @property
    def code(self) -> ErrorCode | None:
        try:
            return ErrorCode(self.error) if self.error is not None else None
        except ValueError:  # a code newer than this client
            return None

    @property
    def message(self) -> str | None:
        message = self.body.get("message") if self.body else None
        return message if isinstance(message, str) else None


@dataclass(frozen=True)
class NoAnswer:
    """No response: refused, timed out, cut off. `sent` is False only when the connection could
    not even be opened, so the request certainly never reached the service."""

    error: Exception
    sent: bool


def read_answer(status: int, headers: Mapping[str, str], text: str, reason: str = "") -> Answer:
    """`headers` must look names up without regard to case (both HTTP libraries' do)."""
    body = _object(text)
    node = headers.get("X-Node-Id") or (body.get("node_id") if body else None)
    return Answer(
        status=status,
        reason=reason,
        text=text,
        body=body,
        node_id=node if isinstance(node, str) else None,
        request_id=headers.get("X-Request-ID"),
        replayed=headers.get("Idempotent-Replayed", "").lower() == "true",
        retry_after=retry_after(headers.get("Retry-After")),
    )


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds. The service only ever sends whole seconds; an HTTP date (which a
    proxy in between might send) is ignored rather than trusted to a clock we do not share."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _object(text: str) -> dict[str, Any] | None:
    try:
        body = parse_json(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
