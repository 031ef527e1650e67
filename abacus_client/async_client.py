"""`AsyncClient`: the asyncio client, over httpx2, with the same rules as `Client`
(retry_rules.py). One `AsyncClient` serves any number of tasks of one event loop over one
connection pool."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from types import TracebackType
from typing import TypeVar

import httpx2

from abacus_client.answers import Answer, NoAnswer, read_answer
from abacus_client.api_calls import ApiCall
from abacus_client.backoff import Backoff
from abacus_client.json_numbers import as_decimal
from abacus_client.options import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT_S,
    KEEPALIVE_EXPIRY_S,
    Options,
    base_url,
)
from abacus_client.results import AddResult, Health, ResetResult, SumResult
from abacus_client.retry_rules import (
    AddAttempts,
    Attempts,
    Done,
    GiveUp,
    HealthAttempts,
    ReadAttempts,
    ResetAttempts,
)
from abacus_client.transport_failures import httpx_never_sent

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of one Abacus service; the options are `Client`'s, plus
    `max_connections` (the pool's size) and `transport` (tests pass a MockTransport)."""

    def __init__(
        self,
        url: str,
        *,
        deadline: float = DEFAULT_DEADLINE_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        new_key_if_fenced: bool = False,
        backoff: Backoff | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.url = base_url(url)
        self.options = Options(
            deadline=deadline,
            timeout=timeout,
            connect_timeout=connect_timeout,
            new_key_if_fenced=new_key_if_fenced,
            backoff=backoff or Backoff(),
            clock=clock,
            rng=rng or random.Random(),
        )
        self._sleep = sleep
        self._http = httpx2.AsyncClient(
            # Every connection may be kept alive: under steady load, closing some after each
            # request would only open them again (and each new one costs a connect). Idle ones go
            # before the balancer would drop them (see KEEPALIVE_EXPIRY_S).
            limits=httpx2.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            ),
            transport=transport,
            follow_redirects=False,  # the API never redirects; a redirect is not the service
        )

    async def add(
        self,
        number: Decimal | int | str,
        key: str | None = None,
        *,
        deadline: float | None = None,
        new_key_if_fenced: bool | None = None,
    ) -> AddResult:
        """As `Client.add`."""
        attempts = AddAttempts(self.options, deadline, as_decimal(number), key, new_key_if_fenced)
        return await self._run(attempts)

    async def sum(self, *, deadline: float | None = None) -> SumResult:
        return await self._run(ReadAttempts(self.options, deadline))

    async def reset(
        self, token: str | None = None, *, deadline: float | None = None
    ) -> ResetResult:
        return await self._run(ResetAttempts(self.options, deadline, token))

    async def health(self, *, deadline: float | None = None) -> Health:
        return await self._run(HealthAttempts(self.options, deadline))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, attempts: Attempts[T]) -> T:
        while True:
            budget = attempts.budget()
            if budget is None:
                raise attempts.out_of_time()
            step = attempts.after(await self._send(attempts.call(), budget))
            if isinstance(step, Done):
                return step.result
            if isinstance(step, GiveUp):
                raise step.error
            await self._sleep(step.delay)

    async def _send(self, call: ApiCall, budget: float) -> Answer | NoAnswer:
        # Waiting for a pooled connection counts against the attempt too, so that a full pool
        # cannot hold a call past its deadline.
        timeout = httpx2.Timeout(budget, connect=min(self.options.connect_timeout, budget))
        try:
            response = await self._http.request(
                call.method,
                self.url + call.path,
                content=call.body,
                headers=call.headers,
                timeout=timeout,
            )
        except httpx2.RequestError as exc:
            return NoAnswer(exc, sent=not httpx_never_sent(exc))
        text = response.content.decode("utf-8", errors="replace")
        return read_answer(response.status_code, response.headers, text, response.reason_phrase)
