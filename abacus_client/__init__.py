"""abacus_client: Python clients of the Abacus API with exactly-once adds (docs/client.md).

`Client` (blocking, over requests) and `AsyncClient` (asyncio, over httpx2) send every add with
an Idempotency-Key and ask again, with the same key, until the answer is final or the caller's
deadline runs out.
"""

from __future__ import annotations

from abacus_client.async_client import AsyncClient
from abacus_client.backoff import Backoff
from abacus_client.errors import (
    AbacusError,
    ErrorCode,
    OutcomeUnknown,
    ServiceError,
    TransportError,
)
from abacus_client.results import AddResult, Health, ResetResult, SumResult
from abacus_client.sync_client import Client

__all__ = [
    "AbacusError",
    "AddResult",
    "AsyncClient",
    "Backoff",
    "Client",
    "ErrorCode",
    "Health",
    "OutcomeUnknown",
    "ResetResult",
    "ServiceError",
    "SumResult",
    "TransportError",
]
