"""A small client of the Abacus API for tests: exact decimals, one session per client."""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import requests

ADMIN_TOKEN = "test-admin-token"


@dataclass
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: Any
    text: str


def decode(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


class Api:
    """A keep-alive client of the API. Every one is closed after its test (see `close_all`): a
    session left to the garbage collector drops an open socket at some random later moment, and
    its ResourceWarning fails whichever test is running then."""

    _open: ClassVar[weakref.WeakSet[Api]] = weakref.WeakSet()

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        Api._open.add(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        response = self.session.request(
            method, self.url + path, data=data, headers=headers, timeout=self.timeout
        )
        try:
            body = decode(response.text)
        except ValueError:
            body = None
        return Reply(response.status_code, response.headers, body, response.text)

    def add(self, number: object, key: str | None = None) -> Reply:
        raw = number if isinstance(number, str) else str(number)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.request("POST", "/abacus/number", data=f'{{"number": {raw}}}', headers=headers)

    def sum(self) -> Decimal:
        reply = self.request("GET", "/abacus/sum")
        assert reply.status == 200, reply.text
        value = reply.body["sum"]
        assert isinstance(value, Decimal)
        return value

    def reset(self, token: str | None = ADMIN_TOKEN) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.request("DELETE", "/abacus/sum", headers=headers)

    def close(self) -> None:
        self.session.close()
        Api._open.discard(self)

    @classmethod
    def close_all(cls) -> None:
        for api in list(cls._open):
            api.close()


@dataclass
class TimedAdd:
    """One add by a client of its own, and how long its answer took."""

    number: int
    key: str | None
    reply: Reply
    seconds: float

    @property
    def error(self) -> str | None:
        return None if self.reply.status == 200 else str(self.reply.body["error"])


def timed_add(url: str, number: int, key: str | None, timeout: float = 30.0) -> TimedAdd:
    api = Api(url, timeout=timeout)
    try:
        started = time.monotonic()
        reply = api.add(number, key=key)
        return TimedAdd(number, key, reply, time.monotonic() - started)
    finally:
        api.close()
