"""The requests the clients send, one function per endpoint: what both HTTP libraries send."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from abacus_client.json_numbers import render

JSON = "application/json"


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def add(number: Decimal, key: str) -> ApiCall:
    # Rendered by hand: json.dumps would turn a Decimal into a float, or refuse it.
    body = f'{{"number": {render(number)}}}'.encode()
    return ApiCall("POST", "/abacus/number", {"Content-Type": JSON, "Idempotency-Key": key}, body)


def read_sum() -> ApiCall:
    return ApiCall("GET", "/abacus/sum")


def reset(token: str | None) -> ApiCall:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return ApiCall("DELETE", "/abacus/sum", headers)


def health() -> ApiCall:
    return ApiCall("GET", "/health")
