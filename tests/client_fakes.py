"""A scripted Abacus service in process, for the client library's tests: no sockets, no sleeps.

A `FakeService` answers each request with the next step of its script (an answer, or a failure
of the connection) and records what it was sent. The same service backs both clients: a
`requests` transport adapter for `Client`, an httpx2 `MockTransport` for `AsyncClient`. Its
`clock` is the clients' clock: it moves only when a client sleeps or a step says the attempt took
time, so deadlines are tested without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx2
import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from abacus_client import (
    AddResult,
    AsyncClient,
    Backoff,
    Client,
    Health,
    ResetResult,
    SumResult,
)

T = TypeVar("T")

URL = "http://abacus.test"
TIMESTAMP = "2026-11-27T18:30:00.123456+00:00"


class Failure(Enum):
    """A request that got no answer."""

    REFUSED = "refused"  # the connection could not be opened: nothing was sent
    TIMEOUT = "timeout"  # sent, and no answer in time
    DROPPED = "dropped"  # sent, and the connection closed before an answer


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    took: float = 0.0  # seconds of the fake clock this attempt takes

    def content(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, default=str).encode()


Step = Reply | Failure


def added(new_sum: str, number: str, node: str = "node-1", **headers: str) -> Reply:
    """A 200 to an add; numbers are written as the literals given (exact)."""
    body = (
        f'{{"new_sum": {new_sum}, "added": {number}, "timestamp": "{TIMESTAMP}", '
        f'"node_id": "{node}"}}'
    )
    return Reply(200, body, {"X-Node-Id": node, **headers})


def error(status: int, code: str, retry_after: int | None = None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(status, {"error": code, "message": f"the {code} message"}, headers)


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    timeout: float | None  # the attempt's read timeout
    at: float  # the fake clock when it was sent

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class FakeService:
    def __init__(self, *steps: Step, then: Step | None = None) -> None:
        self.steps: deque[Step] = deque(steps)
        self.then = then  # answered once the script is spent (None: a spent script fails)
        self.sent: list[Sent] = []
        self.now = 1000.0
        self.slept: list[float] = []

    # -- the clients' clock and sleep ----------------------------------------------------

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    # -- answering -----------------------------------------------------------------------

    def take(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> Step:
        lower = {name.lower(): value for name, value in headers.items()}
        self.sent.append(Sent(method, urlsplit(url).path, lower, body, timeout, self.now))
        if self.steps:
            step = self.steps.popleft()
        else:
            assert self.then is not None, f"the script is spent: {method} {url}"
            step = self.then
        if isinstance(step, Reply):
            self.now += step.took
        elif step is Failure.TIMEOUT and timeout is not None:
            self.now += timeout  # a timeout takes the attempt's whole time
        return step

    @property
    def keys(self) -> list[str | None]:
        return [sent.key for sent in self.sent]


class FakeAdapter(BaseAdapter):
    """`requests`' side: raises what requests raises for each failure."""

    def __init__(self, service: FakeService) -> None:
        super().__init__()
        self.service = service

    def send(  # noqa: PLR0917 (requests' own signature)
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        read = timeout[1] if isinstance(timeout, tuple) else timeout
        body = request.body if isinstance(request.body, bytes) else b""
        step = self.service.take(
            request.method or "", request.url or "", request.headers, body, read
        )
        if step is Failure.REFUSED:
            pool = urllib3.HTTPConnectionPool("abacus.test")
            refused = NewConnectionError(HTTPConnection("abacus.test"), "Connection refused")
            raise requests.ConnectionError(MaxRetryError(pool, request.url, refused))
        if step is Failure.TIMEOUT:
            raise requests.ReadTimeout("read timed out")
        if step is Failure.DROPPED:
            raise requests.ConnectionError(ProtocolError("Connection aborted."))
        assert isinstance(step, Reply)
        response = requests.Response()
        response.status_code = step.status
        response.headers = CaseInsensitiveDict(step.headers)
        response._content = step.content()
        response.url = request.url or ""
        response.request = request
        response.reason = "fake"
        return response

    def close(self) -> None:
        pass


def httpx_handler(service: FakeService) -> Callable[[httpx2.Request], httpx2.Response]:
    """httpx2's side: raises what httpx2 raises for each failure."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout", {})
        step = service.take(
            request.method, str(request.url), request.headers, request.content, timeouts.get("read")
        )
        if step is Failure.REFUSED:
            raise httpx2.ConnectError("Connection refused", request=request)
        if step is Failure.TIMEOUT:
            raise httpx2.ReadTimeout("read timed out", request=request)
        if step is Failure.DROPPED:
            raise httpx2.RemoteProtocolError("Server disconnected", request=request)
        assert isinstance(step, Reply)
        return httpx2.Response(step.status, headers=dict(step.headers), content=step.content())

    return handle


class Driver(Protocol):
    """Either client, called the same (blocking) way, so every rule is tested on both."""

    service: FakeService

    def add(
        self,
        number: Decimal | int | str,
        key: str | None = None,
        *,
        deadline: float | None = None,
        new_key_if_fenced: bool | None = None,
    ) -> AddResult: ...

    def sum(self) -> SumResult: ...

    def reset(self, token: str | None = None) -> ResetResult: ...

    def health(self) -> Health: ...


class SyncDriver:
    def __init__(self, service: FakeService, options: dict[str, Any]) -> None:
        self.service = service
        self.client = Client(
            URL, adapter=FakeAdapter(service), clock=service.clock, sleep=service.sleep, **options
        )

    def add(
        self,
        number: Decimal | int | str,
        key: str | None = None,
        *,
        deadline: float | None = None,
        new_key_if_fenced: bool | None = None,
    ) -> AddResult:
        return self.client.add(number, key, deadline=deadline, new_key_if_fenced=new_key_if_fenced)

    def sum(self) -> SumResult:
        return self.client.sum()

    def reset(self, token: str | None = None) -> ResetResult:
        return self.client.reset(token)

    def health(self) -> Health:
        return self.client.health()

    def close(self) -> None:
        self.client.close()


class AsyncDriver:
    """Each call in an event loop of its own, with a client of its own over the one service."""

    def __init__(self, service: FakeService, options: dict[str, Any]) -> None:
        self.service = service
        self.options = options

    def _run(self, call: Callable[[AsyncClient], Any]) -> Any:
        async def run() -> Any:
            async with AsyncClient(
                URL,
                transport=httpx2.MockTransport(httpx_handler(self.service)),
                clock=self.service.clock,
                sleep=self.service.async_sleep,
                **self.options,
            ) as client:
                return await call(client)

        return asyncio.run(run())

    def add(
        self,
        number: Decimal | int | str,
        key: str | None = None,
        *,
        deadline: float | None = None,
        new_key_if_fenced: bool | None = None,
    ) -> AddResult:
        result = self._run(
            lambda c: c.add(number, key, deadline=deadline, new_key_if_fenced=new_key_if_fenced)
        )
        assert isinstance(result, AddResult)
        return result

    def sum(self) -> SumResult:
        result = self._run(lambda c: c.sum())
        assert isinstance(result, SumResult)
        return result

    def reset(self, token: str | None = None) -> ResetResult:
        result = self._run(lambda c: c.reset(token))
        assert isinstance(result, ResetResult)
        return result

    def health(self) -> Health:
        result = self._run(lambda c: c.health())
        assert isinstance(result, Health)
        return result

    def close(self) -> None:
        pass


class MaxRandom(random.Random):
    """Every draw at the top of its range: the backoff's ceilings, exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


# Small, so that tests read in round numbers; seeded, so that a failure repeats.
BACKOFF = Backoff(first=0.1, cap=1.0)


def default_options(**options: Any) -> dict[str, Any]:
    return {"deadline": 10.0, "timeout": 3.0, "backoff": BACKOFF, "rng": random.Random(7)} | options
