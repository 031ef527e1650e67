"""`Client`: the blocking client, over `requests`, with exactly-once adds (retry_rules.py).

One `Client` may be shared by threads: a `requests.Session` is not documented as safe to share,
so each thread gets its own (one keep-alive connection each, as a thread sends one request at a
time), and `close` closes them all.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import TypeVar

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from abacus_client.answers import Answer, NoAnswer, read_answer
from abacus_client.api_calls import ApiCall
from abacus_client.backoff import Backoff
from abacus_client.json_numbers import as_decimal
from abacus_client.options import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_TIMEOUT_S,
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
from abacus_client.transport_failures import requests_never_sent

T = TypeVar("T")


class Client:
    """A blocking client of one Abacus service (its balancer's URL).

    `deadline` bounds a whole call, retries and waits included; `timeout` one attempt's wait for
    its answer; `connect_timeout` opening a connection. `adapter` replaces the HTTP transport
    (tests mount a fake one); `clock`, `sleep` and `rng` are there for the same reason."""

    def __init__(
        self,
        url: str,
        *,
        deadline: float = DEFAULT_DEADLINE_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        new_key_if_fenced: bool = False,
        backoff: Backoff | None = None,
        adapter: BaseAdapter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
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
        self._adapter = adapter
        self._sleep = sleep
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._closed = False

    def add(
        self,
        number: Decimal | int | str,
        key: str | None = None,
        *,
        deadline: float | None = None,
        new_key_if_fenced: bool | None = None,
    ) -> AddResult:
        """Add `number` exactly once, under `key` (a fresh one when None). Raises
        `OutcomeUnknown` (with the key) when the deadline ends with the outcome open, and
        `ServiceError` for a refusal that asking again would not change."""
        attempts = AddAttempts(self.options, deadline, as_decimal(number), key, new_key_if_fenced)
        return self._run(attempts)

    def sum(self, *, deadline: float | None = None) -> SumResult:
        return self._run(ReadAttempts(self.options, deadline))

    def reset(self, token: str | None = None, *, deadline: float | None = None) -> ResetResult:
        return self._run(ResetAttempts(self.options, deadline, token))

    def health(self, *, deadline: float | None = None) -> Health:
        """The answering node's /health: `healthy` is False on its 503, not an exception."""
        return self._run(HealthAttempts(self.options, deadline))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, attempts: Attempts[T]) -> T:
        while True:
            budget = attempts.budget()
            if budget is None:
                raise attempts.out_of_time()
            step = attempts.after(self._send(attempts.call(), budget))
            if isinstance(step, Done):
                return step.result
            if isinstance(step, GiveUp):
                raise step.error
            self._sleep(step.delay)

    def _send(self, call: ApiCall, budget: float) -> Answer | NoAnswer:
        timeout = (min(self.options.connect_timeout, budget), budget)
        try:
            response = self._session().request(
                call.method,
                self.url + call.path,
                data=call.body,
                headers=call.headers,
                timeout=timeout,
                allow_redirects=False,  # the API never redirects; a redirect is not the service
            )
        except requests.RequestException as exc:
            return NoAnswer(exc, sent=not requests_never_sent(exc))
        # The API's JSON is UTF-8: no guessing of the charset from the bytes.
        text = response.content.decode("utf-8", errors="replace")
        return read_answer(response.status_code, response.headers, text, response.reason or "")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = requests.Session()
        # No retries below ours (max_retries=0): urllib3 repeating a request whose fate is
        # unknown would hide whether it was sent, and could spend the deadline unseen. One pooled
        # connection: this session's thread sends one request at a time.
        adapter = self._adapter or HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        with self._lock:
            if self._closed:
                session.close()
                raise RuntimeError("the client is closed")
            self._sessions.append(session)
        self._local.session = session
        return session
