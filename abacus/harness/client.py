"""One client of the public API: a `requests.Session` and the rules for reading its answers.

A client belongs to one thread (a Session is not meant to be shared). Every answer is
classified the way the judge needs it:

- 200: ok.
- any other 4xx (the balancer's 429 `rate_limited` included) and 503 `unavailable`: failed,
  certainly not applied.
- the key budget's 429 `key_quota_exhausted` and 503 `key_store_full`: unknown. They say only
  that *this request* did not add; another request with the same key (the balancer passing it on
  after a node failed) may have, so asking again with the key tells.
- 503 `outcome_unknown`, any other 5xx (502/504 from the balancer), a timeout after sending,
  a dropped connection: unknown, it may or may not have been applied.
- a connection that could not even be opened: failed, nothing was sent.

A read changes nothing, so a read that did not answer a sum is simply failed, never unknown.

The checker keeps this raw client (it must see every answer, never a retry), but reads answers
with the client library's rules: abacus_client's `read_answer`, `add_outcome` (the outcome table)
and `requests_never_sent`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from types import TracebackType
from typing import Any

import requests

from abacus.harness.history import BODY_KEPT, Outcome
from abacus_client.answers import Answer, read_answer
from abacus_client.json_numbers import render
from abacus_client.outcomes import AddOutcome, add_outcome
from abacus_client.transport_failures import requests_never_sent

JSON = "application/json"
# What the checker records for each outcome of the table: the key budget's answers leave the
# key's add open, so they are never "failed".
OUTCOMES = {
    AddOutcome.COUNTED: Outcome.OK,
    AddOutcome.NOT_COUNTED: Outcome.FAILED,
    AddOutcome.NOT_BY_THIS_REQUEST: Outcome.UNKNOWN,
    AddOutcome.OPEN: Outcome.UNKNOWN,
}


class CannotRun(Exception):
    """The check or benchmark cannot run at all (unreachable server, refused reset, ...)."""


@dataclass(frozen=True)
class Reply:
    """What one request produced."""

    outcome: Outcome
    status: int | None = None
    value: Decimal | None = None  # new_sum of an add, sum of a read
    node_id: str | None = None
    error: str | None = None  # the body's error code, or the exception's name
    message: str | None = None  # the body's message, or the exception's text
    replayed: bool = False
    request_id: str | None = None  # X-Request-ID of the answer
    body: str | None = None  # the answer's body as received, cut at BODY_KEPT characters


def classify(status: int, error: str | None) -> Outcome:
    """The outcome of an answered request that did not carry a usable 200 body."""
    return OUTCOMES[add_outcome(status, error)]


def base_url(url: str) -> str:
    return url.rstrip("/")


class AbacusClient:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = base_url(url)
        self.timeout = timeout
        self.session = requests.Session()

    def __enter__(self) -> AbacusClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def add(self, number: Decimal, *, key: str | None = None) -> Reply:
        headers = {"Content-Type": JSON}
        if key is not None:
            headers["Idempotency-Key"] = key
        # Rendered by hand: json.dumps would turn a Decimal into a float or refuse it.
        body = f'{{"number": {render(number)}}}'.encode()
        return self._call("POST", "/abacus/number", "new_sum", data=body, headers=headers)

    def read(self) -> Reply:
        reply = self._call("GET", "/abacus/sum", "sum")
        if reply.outcome is Outcome.UNKNOWN:
            # "May have taken effect" means nothing for a read: it failed to read a sum.
            return replace(reply, outcome=Outcome.FAILED)
        return reply

    def reset(self, token: str | None) -> Reply:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self._call("DELETE", "/abacus/sum", None, headers=headers)

    def _call(
        self,
        method: str,
        path: str,
        field: str | None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        try:
            response = self.session.request(
                method,
                self.url + path,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return _failure(exc)
        return _reply(response, field)


def _failure(exc: requests.RequestException) -> Reply:
    outcome = Outcome.FAILED if requests_never_sent(exc) else Outcome.UNKNOWN
    return Reply(outcome, error=type(exc).__name__, message=str(exc))


def _reply(response: requests.Response, field: str | None) -> Reply:
    answer = read_answer(response.status_code, response.headers, response.text)
    common: dict[str, Any] = {
        "status": answer.status,
        "node_id": answer.node_id,
        "error": answer.error,
        "message": _message(answer, response),
        "replayed": answer.replayed,
        "request_id": answer.request_id,
        "body": answer.text[:BODY_KEPT],
    }
    if answer.status == 200:
        value = answer.body.get(field) if answer.body and field else None
        if field is None or isinstance(value, Decimal):
            return Reply(Outcome.OK, value=value, **common)
        # A 200 without a usable number: it happened, but we cannot tell where it landed.
        return Reply(Outcome.UNKNOWN, **{**common, "error": f"200 without a numeric {field}"})
    return Reply(classify(answer.status, answer.error), **common)


def _message(answer: Answer, response: requests.Response) -> str | None:
    if answer.message is not None:
        return answer.message
    if answer.status == 200:
        return None
    return answer.text[:200] or response.reason
